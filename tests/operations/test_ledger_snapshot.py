"""The file ledger: every version's fate, exactly once, duplicates counted once, nothing lost."""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance, materialize

from asset_checks.campaign_to_aep.dataset_checks import campaign_export_checks
from asset_checks.operations.ledger_checks import build_file_ledger_checks
from resources import embedded_resources
from resources.drop_zones import Entry
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs, broadlog_flow
from rtcdp_assets.operations.ledger_snapshot import file_ledger_asset

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


def drop(root: Path, name: str, content: bytes = CONTENT, age: float = 3600) -> Path:
    path = root / "campaign_sftp" / "export" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (time.time() - age, time.time() - age))
    return path


@pytest.fixture
def env(tmp_path):
    return tmp_path, embedded_resources(tmp_path), DagsterInstance.ephemeral()


def run(env, pk: str):
    _, resources, instance = env
    result = materialize(
        [*broadlog_defs.assets, *campaign_export_checks(broadlog_defs.flow)],
        partition_key=pk,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
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
    return result, {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_a_processed_version_records_checksum_rows_partition_and_run(env):
    root, _, _ = env
    drop(root, "broadLog_20261123_0800.csv")
    result = run(env, "2026-11-23-08:00")
    [row] = env[1]["file_ledger"].rows()
    assert row.status == "processed"
    assert row.sha256 == hashlib.sha256(CONTENT).hexdigest()
    assert row.rows == 3
    assert row.partition == "2026-11-23-08:00"
    assert row.run_id == result.run_id
    assert row.location.startswith("export/archive/broadlog/broadLog_20261123_0800.csv@")
    assert (root / "campaign_sftp" / row.location).read_bytes() == CONTENT
    snapshot, checks = ledger_checks(env)
    assert checks["files_accounted_for"].passed
    assert checks["no_stuck_pending"].passed
    table = pq.read_table(root / "warehouse" / "file_ledger" / "current" / "data.parquet")
    assert table.column("status").to_pylist() == ["processed"]
    meta = snapshot.asset_materializations_for_node("file_ledger")[0].metadata
    assert meta["versions_by_status"].value == {"broadlog": {"processed": 1}}


def test_the_same_bytes_under_another_name_are_counted_once(env):
    root, _, _ = env
    drop(root, "broadLog_20261123_0800.csv")
    run(env, "2026-11-23-08:00")
    # Campaign re-delivers the same export under the next window's name.
    drop(root, "broadLog_20261123_1200.csv")
    run(env, "2026-11-23-12:00")
    later = manifest(root, "2026-11-23-12:00")
    [f] = later["files"]
    assert f["status"] == "duplicate"
    assert f["duplicate_of"].startswith("export/broadLog_20261123_0800.csv@")
    assert f["rows_duplicate"] == 3
    assert (later["rows_in"], later["rows_out"], later["rows_rejected"]) == (0, 0, 0)
    rows = ledger_rows(env)
    assert rows["broadLog_20261123_1200.csv", "duplicate"].duplicate_of == f["duplicate_of"]
    # nothing deleted: the duplicate is archived like any other delivery
    assert root / "campaign_sftp" / rows["broadLog_20261123_1200.csv", "duplicate"].location
    # re-runs of either partition keep the same answer
    run(env, "2026-11-23-12:00")
    run(env, "2026-11-23-08:00")
    assert manifest(root, "2026-11-23-12:00")["files"][0]["status"] == "duplicate"
    assert manifest(root, "2026-11-23-08:00")["rows_in"] == 3


def test_a_duplicate_within_one_partition_is_counted_once(env):
    root, _, _ = env
    drop(root, "broadLog_20261123_0800.csv")
    drop(root, "broadLog_20261123_0800_resend.csv")
    run(env, "2026-11-23-08:00")
    m = manifest(root, "2026-11-23-08:00")
    assert [f["status"] for f in m["files"]] == ["processed", "duplicate"]
    assert (m["rows_in"], m["rows_out"] + m["rows_rejected"]) == (3, 3)
    assert m["files_duplicate"] == 1


def test_a_rerun_changes_nothing_and_publishes_nothing_again(env):
    root, _, _ = env
    drop(root, "broadLog_20261123_0800.csv")
    first = run(env, "2026-11-23-08:00")
    landing = root / "aep_landing" / "campaign" / "broadlog" / "20261123_0800"
    data = landing / "broadlog_20261123_0800.json"
    before = (data.read_bytes(), data.stat().st_mtime_ns)
    second = run(env, "2026-11-23-08:00")
    assert (data.read_bytes(), data.stat().st_mtime_ns) == before  # not rewritten
    published = [
        m.metadata["already_published"].value
        for r in (first, second)
        for m in r.asset_materializations_for_node("broadlog_published")
    ]
    assert published == [False, True]
    [row] = env[1]["file_ledger"].rows()
    assert (row.status, row.rows, row.run_id) == ("processed", 3, second.run_id)


def test_a_new_version_of_the_same_name_supersedes_the_old_one(env):
    root, _, _ = env
    drop(root, "broadLog_20261123_0800.csv", age=7200)
    run(env, "2026-11-23-08:00")
    drop(root, "broadLog_20261123_0800.csv", (HEADER + ROWS[0] + "\n").encode())
    run(env, "2026-11-23-08:00")
    statuses = sorted((r.status, r.rows) for r in env[1]["file_ledger"].rows())
    assert statuses == [("processed", 1), ("superseded", 3)]
    assert manifest(root, "2026-11-23-08:00")["rows_in"] == 1


def test_a_quarantined_version_records_its_reason(env):
    root, _, _ = env
    drop(root, "broadLog_20261123_0800.csv", b"")
    _, resources, instance = env
    materialize(
        [*broadlog_defs.assets, *campaign_export_checks(broadlog_defs.flow)],
        partition_key="2026-11-23-08:00",
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    [row] = env[1]["file_ledger"].rows()
    assert (row.status, row.reason) == ("quarantined", "empty_file")
    assert row.sha256 == hashlib.sha256(b"").hexdigest()
    assert row.location.startswith("export/quarantine/broadlog/")


def test_an_archived_file_that_disappears_fails_the_ledger_check(env):
    root, _, _ = env
    drop(root, "broadLog_20261123_0800.csv")
    run(env, "2026-11-23-08:00")
    [row] = env[1]["file_ledger"].rows()
    (root / "campaign_sftp" / row.location).unlink()  # someone deleted it by hand
    _, checks = ledger_checks(env)
    lost = checks["files_accounted_for"]
    assert not lost.passed
    assert lost.metadata["lost_count"].value == 1
    assert "broadLog_20261123_0800.csv (processed)" in lost.metadata["lost"].value[0]


def test_a_version_pending_for_hours_is_flagged(env):
    root, resources, _ = env
    path = drop(root, "broadLog_20261123_0800.csv")
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
    _, checks = ledger_checks(env)
    stuck = checks["no_stuck_pending"]
    assert not stuck.passed
    assert stuck.severity.value == "WARN"
    assert stuck.metadata["stuck_count"].value == 1
    assert checks["files_accounted_for"].passed
