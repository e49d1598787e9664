"""The file ledger: every version's fate, exactly once, duplicates counted once, nothing lost."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance, materialize

from asset_checks.operations.ledger_checks import build_file_ledger_checks
from resources import embedded_resources
from resources.drop_zones import Entry
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs, broadlog_flow
from rtcdp_assets.operations.ledger_snapshot import file_ledger_asset
from tests.drop_files import drop_campaign_export
from tests.results import check_evaluations_by_name
from tests.runs import campaign_assets_and_checks, materialize_partition

HEADER = (
    "iBroadLogId,iDeliveryId,iRecipientId,sExternalId,sAddress,iStatus,iFailureType,"
    "iFailureReason,tsEvent,sDeliveryLabel\n"
)
ROWS = [
    "1,10,100,CUST-1,alice@example.com,1,0,0,2026-11-23 08:01:00,Newsletter",
    "2,10,101,CUST-2,bob@example.org,1,0,0,2026-11-23 08:02:00,Newsletter",
    "3,10,102,CUST-3,not-an-email,1,0,0,2026-11-23 08:03:00,Newsletter",  # rejected
]
CONTENT = (HEADER + "\n".join(ROWS) + "\n").encode()
LEDGER_CHECKS = build_file_ledger_checks([broadlog_flow])


BROADLOG = campaign_assets_and_checks(broadlog_defs)


@pytest.fixture
def embedded_env_with_instance(tmp_path: Path) -> tuple[Path, dict, DagsterInstance]:
    """The shared fixture, except that ROWS rejects one row in three on purpose: `reject_rate`
    would block publication at 33 % (test_reject_rate.py); here the ledger is under test."""
    return (
        tmp_path,
        embedded_resources(tmp_path, reject_rate_block_above=0.5),
        DagsterInstance.ephemeral(),
    )


def run(env, pk: str):
    """broadLog for `pk` on `env` (`embedded_env_with_instance`); the run must succeed."""
    _, resources, instance = env
    result = materialize_partition(BROADLOG, resources, pk, instance)
    assert result.success
    return result


def manifest(root: Path, pk: str) -> dict:
    return json.loads((root / "warehouse" / "broadlog" / pk / "manifest.json").read_text())


def ledger_rows(env):
    return {(r.version.name, r.status): r for r in env[1]["file_ledger"].rows()}


def ledger_checks(env):
    _, resources, instance = env
    result = materialize(
        [file_ledger_asset, LEDGER_CHECKS],
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    return result, check_evaluations_by_name(result)


def test_a_processed_version_records_checksum_rows_partition_and_run(embedded_env_with_instance):
    root, _, _ = embedded_env_with_instance
    drop_campaign_export(root, "broadLog_20261123_0800.csv", CONTENT)
    result = run(embedded_env_with_instance, "2026-11-23-08:00")
    [row] = embedded_env_with_instance[1]["file_ledger"].rows()
    assert row.status == "processed"
    assert row.sha256 == hashlib.sha256(CONTENT).hexdigest()
    assert row.rows == 3
    assert row.partition == "2026-11-23-08:00"
    assert row.run_id == result.run_id
    assert row.location.startswith("export/archive/broadlog/broadLog_20261123_0800.csv@")
    assert (root / "campaign_sftp" / row.location).read_bytes() == CONTENT
    snapshot, checks = ledger_checks(embedded_env_with_instance)
    assert checks["files_accounted_for"].passed
    assert checks["no_stuck_pending"].passed
    table = pq.read_table(root / "warehouse" / "file_ledger" / "current" / "data.parquet")
    assert table.column("status").to_pylist() == ["processed"]
    meta = snapshot.asset_materializations_for_node("file_ledger")[0].metadata
    assert meta["versions_by_status"].value == {"broadlog": {"processed": 1}}


def test_the_same_bytes_under_another_name_are_counted_once(embedded_env_with_instance):
    root, _, _ = embedded_env_with_instance
    drop_campaign_export(root, "broadLog_20261123_0800.csv", CONTENT)
    run(embedded_env_with_instance, "2026-11-23-08:00")
    # Campaign re-delivers the same export under the next window's name.
    drop_campaign_export(root, "broadLog_20261123_1200.csv", CONTENT)
    run(embedded_env_with_instance, "2026-11-23-12:00")
    later = manifest(root, "2026-11-23-12:00")
    [f] = later["files"]
    assert f["status"] == "duplicate"
    assert f["duplicate_of"].startswith("export/broadLog_20261123_0800.csv@")
    assert f["rows_duplicate"] == 3
    assert (later["rows_in"], later["rows_out"], later["rows_rejected"]) == (0, 0, 0)
    rows = ledger_rows(embedded_env_with_instance)
    assert rows["broadLog_20261123_1200.csv", "duplicate"].duplicate_of == f["duplicate_of"]
    # nothing deleted: the duplicate is archived like any other delivery
    assert root / "campaign_sftp" / rows["broadLog_20261123_1200.csv", "duplicate"].location
    # re-runs of either partition keep the same answer
    run(embedded_env_with_instance, "2026-11-23-12:00")
    run(embedded_env_with_instance, "2026-11-23-08:00")
    assert manifest(root, "2026-11-23-12:00")["files"][0]["status"] == "duplicate"
    assert manifest(root, "2026-11-23-08:00")["rows_in"] == 3


def test_a_duplicate_within_one_partition_is_counted_once(embedded_env_with_instance):
    root, _, _ = embedded_env_with_instance
    drop_campaign_export(root, "broadLog_20261123_0800.csv", CONTENT)
    drop_campaign_export(root, "broadLog_20261123_0800_resend.csv", CONTENT)
    run(embedded_env_with_instance, "2026-11-23-08:00")
    m = manifest(root, "2026-11-23-08:00")
    assert [f["status"] for f in m["files"]] == ["processed", "duplicate"]
    assert (m["rows_in"], m["rows_out"] + m["rows_rejected"]) == (3, 3)
    assert m["files_duplicate"] == 1


def test_a_rerun_changes_nothing_and_publishes_nothing_again(embedded_env_with_instance):
    root, _, _ = embedded_env_with_instance
    drop_campaign_export(root, "broadLog_20261123_0800.csv", CONTENT)
    first = run(embedded_env_with_instance, "2026-11-23-08:00")
    landing = root / "aep_landing" / "campaign" / "broadlog" / "20261123_0800"
    data = landing / "broadlog_20261123_0800.parquet"  # the default form
    before = (data.read_bytes(), data.stat().st_mtime_ns)
    second = run(embedded_env_with_instance, "2026-11-23-08:00")
    assert (data.read_bytes(), data.stat().st_mtime_ns) == before  # not rewritten
    published = [
        m.metadata["already_published"].value
        for r in (first, second)
        for m in r.asset_materializations_for_node("broadlog_published")
    ]
    assert published == [False, True]
    [row] = embedded_env_with_instance[1]["file_ledger"].rows()
    assert (row.status, row.rows, row.run_id) == ("processed", 3, second.run_id)


def test_a_new_version_of_the_same_name_supersedes_the_old_one(embedded_env_with_instance):
    root, _, _ = embedded_env_with_instance
    drop_campaign_export(root, "broadLog_20261123_0800.csv", CONTENT, age_seconds=7200)
    run(embedded_env_with_instance, "2026-11-23-08:00")
    drop_campaign_export(root, "broadLog_20261123_0800.csv", (HEADER + ROWS[0] + "\n").encode())
    run(embedded_env_with_instance, "2026-11-23-08:00")
    statuses = sorted(
        (r.status, r.rows) for r in embedded_env_with_instance[1]["file_ledger"].rows()
    )
    assert statuses == [("processed", 1), ("superseded", 3)]
    assert manifest(root, "2026-11-23-08:00")["rows_in"] == 1


def test_a_quarantined_version_records_its_reason(embedded_env_with_instance):
    root, _, _ = embedded_env_with_instance
    drop_campaign_export(root, "broadLog_20261123_0800.csv", b"")
    _, resources, instance = embedded_env_with_instance
    materialize_partition(BROADLOG, resources, "2026-11-23-08:00", instance)
    [row] = embedded_env_with_instance[1]["file_ledger"].rows()
    assert (row.status, row.reason) == ("quarantined", "empty_file")
    assert row.sha256 == hashlib.sha256(b"").hexdigest()
    assert row.location.startswith("export/quarantine/broadlog/")


def test_an_archived_file_that_disappears_fails_the_ledger_check(embedded_env_with_instance):
    root, _, _ = embedded_env_with_instance
    drop_campaign_export(root, "broadLog_20261123_0800.csv", CONTENT)
    run(embedded_env_with_instance, "2026-11-23-08:00")
    [row] = embedded_env_with_instance[1]["file_ledger"].rows()
    (root / "campaign_sftp" / row.location).unlink()  # someone deleted it by hand
    _, checks = ledger_checks(embedded_env_with_instance)
    lost = checks["files_accounted_for"]
    assert not lost.passed
    assert lost.metadata["lost_count"].value == 1
    assert "broadLog_20261123_0800.csv (processed)" in lost.metadata["lost"].value[0]


def test_a_version_pending_for_hours_is_flagged(embedded_env_with_instance):
    root, resources, _ = embedded_env_with_instance
    path = drop_campaign_export(root, "broadLog_20261123_0800.csv", CONTENT)
    st = path.stat()
    entry = Entry(
        "export/broadLog_20261123_0800.csv",
        st.st_size,
        datetime.fromtimestamp(st.st_mtime, UTC),
        f"{st.st_size}-{st.st_mtime_ns}",
    )
    resources["file_ledger"].observe(
        resources["campaign_sftp"].describe(),
        "export",
        "broadlog",
        [entry],
        seen_at=datetime.now(UTC) - timedelta(hours=10),
    )
    _, checks = ledger_checks(embedded_env_with_instance)
    stuck = checks["no_stuck_pending"]
    assert not stuck.passed
    assert stuck.severity.value == "WARN"
    assert stuck.metadata["stuck_count"].value == 1
    assert checks["files_accounted_for"].passed
