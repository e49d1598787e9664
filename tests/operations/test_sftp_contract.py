"""The Campaign contract's SFTP limits on local zones: the footprint against the quota (WARN at
80 %, uploads refused at 95 % and resumed once space frees), archive retention only for stored
and checksummed partitions, consumed or aged import files removed, every deletion in the ledger,
and the checks in the guardrail catalog and the data-quality report."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance, Definitions, materialize

from asset_checks.operations.ledger_checks import build_file_ledger_checks
from asset_checks.operations.sftp_checks import (
    campaign_sftp_checks,
    quota_result,
    retention_result,
)
from resources import embedded_resources
from resources.file_ledger import FileLedger
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_flow
from rtcdp_assets.customer_to_campaign.customer_imports import customer_import_job
from rtcdp_assets.operations.data_quality_report import build_data_quality_report
from rtcdp_assets.operations.ledger_snapshot import file_ledger_asset
from rtcdp_assets.operations.sftp_housekeeping import campaign_sftp_housekeeping, run_housekeeping
from rtcdp_assets.operations.upload_resume import build_upload_resume_sensor, deferred_uploads
from rtcdp_assets.shared.campaign_sftp_storage import UploadRefused, measure_footprint
from tests.drop_files import drop_campaign_export
from tests.operations.sftp_contract_helpers import (
    BROADLOG,
    assert_removal_recorded,
    broadlog_csv,
    create_previous_release_table,
    later,
    upload,
)
from tests.results import check_evaluations_by_name
from tests.runs import evaluate_sensor, materialize_partition


def env(tmp_path: Path, **settings) -> dict:
    resources = embedded_resources(tmp_path, **settings)
    return {**resources, "_tmp": str(tmp_path)}


def fill(root: Path, relpath: str, size: int) -> None:
    path = root / "campaign_sftp" / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def test_footprint_counts_archive_quarantine_and_imports_not_campaigns_exports(tmp_path):
    resources = env(tmp_path)
    fill(tmp_path, "export/broadLog_20261123_0800.csv", 5000)  # Campaign's, not ours
    fill(tmp_path, "export/archive/broadlog/a.csv@1", 100)
    fill(tmp_path, "export/markers/broadlog/a.csv.done@1", 1)
    fill(tmp_path, "export/quarantine/broadlog/b.csv@2", 20)
    fill(tmp_path, "export/quarantine/broadlog/b.csv@2.reason.json", 3)
    fill(tmp_path, "import/aep_audience/c.csv", 400)
    fp = measure_footprint(resources["campaign_sftp"], resources["settings"])
    assert fp.bytes_by_area == {"archive": 101, "quarantine": 23, "imports": 400}
    assert fp.files_by_area == {"archive": 2, "quarantine": 2, "imports": 1}
    assert fp.total_bytes == 524


def test_quota_warns_at_80_percent_and_fails_with_error_at_95(tmp_path):
    resources = env(tmp_path, campaign_sftp_quota_bytes=1000)
    zone, settings = resources["campaign_sftp"], resources["settings"]
    fill(tmp_path, "export/archive/broadlog/a.csv@1", 790)
    assert quota_result(zone, settings).passed
    fill(tmp_path, "export/quarantine/broadlog/b.csv@1", 10)  # 800 of 1000
    warn = quota_result(zone, settings)
    assert not warn.passed and warn.severity.value == "WARN"
    assert "80.0%" in warn.description
    fill(tmp_path, "import/c.csv", 150)  # 950 of 1000
    block = quota_result(zone, settings)
    assert not block.passed and block.severity.value == "ERROR"
    assert "uploads to Campaign refused" in block.description


def test_no_quota_configured_reports_the_footprint_and_passes(tmp_path):
    resources = env(tmp_path)
    fill(tmp_path, "export/archive/broadlog/a.csv@1", 10)
    result = quota_result(resources["campaign_sftp"], resources["settings"])
    assert result.passed and "no quota configured" in result.description


def test_an_upload_is_refused_at_95_percent_recorded_and_resumed_once_space_frees(tmp_path):
    resources = env(tmp_path, campaign_sftp_quota_bytes=1000)
    zone, ledger = resources["campaign_sftp"], resources["file_ledger"]
    fill(tmp_path, "export/quarantine/broadlog/b.csv@1", 100)
    first = upload(resources, zone, "customer_profiles_a.csv", b"a" * 700)  # 80 %: allowed
    assert first.size == 700
    with pytest.raises(UploadRefused, match="upload_deferred: Campaign SFTP storage"):
        upload(resources, zone, "customer_profiles_b.csv", b"b" * 100, run_id="run-2")
    # refused before anything was written: no file, no marker
    assert zone.stat("import/customer_profiles_b.csv") is None
    assert zone.stat("import/customer_profiles_b.csv.done") is None
    [deferred] = deferred_uploads(ledger, zone.describe())
    assert (deferred.version.name, deferred.dataset, deferred.run_id) == (
        "customer_profiles_b.csv",
        "profile_import",
        "run-2",
    )
    # the resume sensor waits while the server is still too full
    sensor = build_upload_resume_sensor({"profile_import": customer_import_job})
    instance = DagsterInstance.ephemeral()
    waiting = evaluate_sensor(sensor, resources, instance)
    assert "1 deferred uploads wait" in waiting.skip_message
    # Campaign consumes the first import (its workflow deletes the marker): housekeeping frees it
    assert zone.delete("import/customer_profiles_a.csv.done")
    run_housekeeping(zone, ledger, resources["warehouse"], resources["settings"], later(hours=1))
    assert zone.stat("import/customer_profiles_a.csv") is None
    [request] = evaluate_sensor(sensor, resources, instance).run_requests
    assert request.job_name == "customer_import_job"
    assert request.run_key == "upload_resume:run-2"
    assert [k.to_user_string() for k in request.asset_selection] == ["profile_import"]
    # the resumed run uploads it and the ledger says so
    upload(resources, zone, "customer_profiles_b.csv", b"b" * 100, run_id="run-3")
    assert zone.stat("import/customer_profiles_b.csv.done") is not None
    assert deferred_uploads(ledger, zone.describe()) == []
    uploaded = {r.version.name: r for r in ledger.in_zone(zone.describe(), ("uploaded",))}
    assert set(uploaded) == {"customer_profiles_b.csv"}


def ingest(resources, instance, root: Path, hour: int) -> str:
    pk = f"2026-11-23-{hour:02d}:00"
    drop_campaign_export(root, f"broadLog_20261123_{hour:02d}00.csv", broadlog_csv(hour))
    assert materialize_partition(BROADLOG, resources, pk, instance).success
    return pk


def archived(root: Path) -> list[str]:
    folder = root / "campaign_sftp" / "export" / "archive" / "broadlog"
    return sorted(p.name.split("@")[0] for p in folder.iterdir())


def test_retention_deletes_only_old_archived_files_whose_partition_is_stored(tmp_path):
    resources = env(tmp_path)
    zone, ledger, warehouse = (resources[k] for k in ("campaign_sftp", "file_ledger", "warehouse"))
    settings, instance = resources["settings"], DagsterInstance.ephemeral()
    stored = ingest(resources, instance, tmp_path, 8)
    unstored = ingest(resources, instance, tmp_path, 12)
    # the second partition's data is lost from the warehouse: its source must stay
    (tmp_path / "warehouse" / "broadlog" / unstored / "manifest.json").unlink()
    # an unreadable export is quarantined: never deleted by retention
    drop_campaign_export(tmp_path, "broadLog_20261123_1600.csv.gz", b"not gzip at all")
    materialize_partition(BROADLOG, resources, "2026-11-23-16:00", instance)
    quarantined_before = sorted((tmp_path / "campaign_sftp/export/quarantine").rglob("*"))
    assert any(p.name.startswith("broadLog_20261123_1600.csv.gz@") for p in quarantined_before)
    markers = tmp_path / "campaign_sftp" / "export" / "markers" / "broadlog"
    assert len(list(markers.iterdir())) >= 2

    # 14 days on: nothing is old enough
    young = run_housekeeping(zone, ledger, warehouse, settings, later(days=14))
    assert young["files_deleted"] == 0
    assert archived(tmp_path) == ["broadLog_20261123_0800.csv", "broadLog_20261123_1200.csv"]

    # 16 days on: the stored one goes (with its moved marker), the unstored one is held
    old = run_housekeeping(zone, ledger, warehouse, settings, later(days=16))
    assert old["archived_versions_removed"] == 1 and old["archived_versions_held"] == 1
    assert archived(tmp_path) == ["broadLog_20261123_1200.csv"]
    assert not [m for m in markers.iterdir() if m.name.startswith("broadLog_20261123_0800")]
    assert sorted((tmp_path / "campaign_sftp/export/quarantine").rglob("*")) == quarantined_before
    rows = {r.version.name: r for r in ledger.rows("broadlog")}
    gone = rows["broadLog_20261123_0800.csv"]
    assert gone.removed_at is not None and gone.status == "processed"
    assert gone.removed_reason.startswith("archive_retention: archived over 15 days; partition")
    assert stored in gone.removed_reason and gone.sha256 in gone.removed_reason
    assert rows["broadLog_20261123_1200.csv"].removed_at is None
    assert "not stored" in old["held"].value[0]

    # the retention check warns about the held one; the ledger check does not call it lost
    held = retention_result(zone, ledger, warehouse, settings, later(days=16))
    assert not held.passed and held.metadata["overdue_files"].value == 1
    result = materialize(
        [file_ledger_asset, build_file_ledger_checks([broadlog_flow])],
        resources=resources,
        instance=instance,
    )
    assert check_evaluations_by_name(result)["files_accounted_for"].passed
    snapshot = pq.read_table(tmp_path / "warehouse" / "file_ledger" / "current" / "data.parquet")
    removed = [
        (name, reason)
        for name, reason in zip(
            snapshot.column("name").to_pylist(),
            snapshot.column("removed_reason").to_pylist(),
            strict=True,
        )
        if reason
    ]
    assert [name for name, _ in removed] == ["broadLog_20261123_0800.csv"]


def test_imported_files_go_when_their_marker_is_gone_or_they_are_too_old(tmp_path):
    resources = env(tmp_path, campaign_import_max_age_days=3)
    zone, ledger, warehouse = (resources[k] for k in ("campaign_sftp", "file_ledger", "warehouse"))
    settings = resources["settings"]
    upload(resources, zone, "aep_audience_s1_20261123_080000.csv", b"consumed\n")
    upload(resources, zone, "aep_audience_s2_20261123_080000.csv", b"waiting\n")
    fill(tmp_path, "import/someone_elses.csv", 5)  # not ours: never touched
    # Campaign's import workflow deletes the marker of the file it loaded
    zone.delete("import/aep_audience_s1_20261123_080000.csv.done")
    # just uploaded: a missing marker may not be written yet, so nothing goes
    assert run_housekeeping(zone, ledger, warehouse, settings, later())["files_deleted"] == 0
    hour = run_housekeeping(zone, ledger, warehouse, settings, later(hours=1))
    assert hour["files_deleted"] == 1
    assert zone.stat("import/aep_audience_s1_20261123_080000.csv") is None
    assert zone.stat("import/aep_audience_s2_20261123_080000.csv.done") is not None
    aged = run_housekeeping(zone, ledger, warehouse, settings, later(days=4))
    assert aged["files_deleted"] == 2  # the file and its marker
    assert [e.name for e in zone.walk("import")] == ["someone_elses.csv"]
    reasons = {r.version.name: r.removed_reason for r in ledger.rows() if r.removed_at is not None}
    assert reasons == {
        "aep_audience_s1_20261123_080000.csv": (
            "consumed: Campaign's import workflow removed the marker"
        ),
        "aep_audience_s2_20261123_080000.csv": "import_max_age: not consumed after 3 days",
    }


def test_the_ledger_gains_its_removal_columns_on_an_existing_sqlite_table(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    create_previous_release_table(url)
    assert_removal_recorded(FileLedger(url=url))


def test_sftp_checks_are_in_the_catalog_and_the_data_quality_report(tmp_path):
    resources = env(tmp_path, campaign_sftp_quota_bytes=100)
    fill(tmp_path, "export/quarantine/broadlog/b.csv@1", 90)  # 90 %: WARN
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [campaign_sftp_housekeeping, campaign_sftp_checks],
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    checks = check_evaluations_by_name(result)
    assert not checks["sftp_storage_quota"].passed
    assert checks["sftp_retention"].passed
    # The report finds the SFTP checks by their guardrail metadata in the code location's graph.
    graph = Definitions(
        assets=[campaign_sftp_housekeeping],
        asset_checks=[campaign_sftp_checks],
        resources=resources,
    ).resolve_asset_graph()
    report = build_data_quality_report(["broadlog"], lambda: graph)
    pk = "2026-11-23-08:00"
    done = materialize([report], partition_key=pk, resources=resources, instance=instance)
    markdown = done.asset_materializations_for_node("data_quality_report")[0].metadata["report"]
    assert (
        "| campaign_sftp_housekeeping | sftp_storage_quota | FAILED | WARN | quota_used=0.9; "
        "footprint_bytes=90 |" in markdown.value
    )
    assert "| campaign_sftp_housekeeping | sftp_retention | passed |" in markdown.value
    catalog = Path("docs/guardrails.md").read_text()
    assert "| campaign_sftp_housekeeping | sftp_storage_quota | no |" in catalog
    assert "| campaign_sftp_housekeeping | sftp_retention | no |" in catalog
