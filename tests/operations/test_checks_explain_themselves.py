"""Checks explain themselves: every check result carries a one-line description with its
numbers, the data-quality report names its failing checks, and a run whose WARN check failed
says so in its tags (what the run's page shows)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

from dagster import AssetKey, DagsterInstance, materialize

from asset_checks.aep_to_campaign.audience_checks.segment_export_checks import (
    field_count_result,
)
from asset_checks.campaign_to_aep.dataset_checks import campaign_export_checks
from asset_checks.campaign_to_aep.freshness import freshness_result
from resources import embedded_resources
from resources.audience_settings import AudienceSettings
from resources.settings import PipelineSettings
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs, broadlog_flow
from rtcdp_assets.campaign_to_aep.tracking_log import tracking_log_flow
from rtcdp_assets.definitions import defs
from rtcdp_assets.operations.data_quality_report import build_data_quality_report
from rtcdp_assets.shared.check_outcome_tags import CHECK_ERRORS_TAG, WARNINGS_TAG
from tests.campaign_to_aep.test_broadlog_embedded import (
    BAD,
    GOOD,
    PK,
    with_bad_rows_tolerated,
    write_export,
)
from tests.campaign_to_aep.test_campaign_datasets import BROADLOG_ROWS, ROWS, drop

REPO = Path(__file__).resolve().parents[2]


def test_every_check_result_in_the_code_is_built_with_a_description():
    missing = []
    for path in sorted((REPO / "asset_checks").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            described = "description" in {k.arg for k in node.keywords}
            if node.func.id in ("AssetCheckResult", "AssetCheckEvaluation") and not described:
                missing.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert missing == []


def run_job(job_name: str, resources: dict, instance: DagsterInstance, pk: str = PK):
    """The job as the sensor launches it (with its hooks), in `instance`."""
    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(
        partition_key=pk, resources=resources, instance=instance, raise_on_error=False
    )


def descriptions(result) -> dict[str, str]:
    return {e.check_name: e.description for e in result.get_asset_check_evaluations()}


def test_a_clean_partition_explains_its_passes_and_tags_nothing(tmp_path):
    resources = embedded_resources(tmp_path)
    write_export(tmp_path, "broadLog_20261123_0800.csv", GOOD)
    instance = DagsterInstance.ephemeral()
    result = run_job("broadlog_job", resources, instance)
    assert result.success
    lines = descriptions(result)
    assert lines["reconciliation"] == "4 rows in = 4 stored + 0 rejected"
    assert lines["reject_rate"].startswith("0 of 4 rows rejected (0.00%)")
    assert lines["export_cadence"] == "1 export in this 4-hour window (limit 1)"
    assert lines["xdm_conformance"] == "0 of 4 records fail XDM validation"
    assert lines["id_unique"] == "0 duplicate _ids among 4 records"
    assert lines["identity_count"].startswith("0 of 4 records carry more than 20 identities")
    assert all(lines.values())
    tags = instance.get_run_by_id(result.run_id).tags
    assert WARNINGS_TAG not in tags and CHECK_ERRORS_TAG not in tags


def test_a_warning_is_described_and_named_in_the_run_tags(tmp_path):
    resources = with_bad_rows_tolerated(embedded_resources(tmp_path))
    write_export(tmp_path, "broadLog_20261123_0800.csv", GOOD + BAD)
    write_export(
        tmp_path,
        "broadLog_20261123_1000.csv",
        ["9,10,109,,zoe@example.com,1,0,0,2026-11-23 10:09:00,Newsletter"],
    )
    instance = DagsterInstance.ephemeral()
    result = run_job("broadlog_job", resources, instance)
    assert result.success  # WARN checks do not fail the run ...
    lines = descriptions(result)
    assert lines["reject_rate"].startswith("3 of 8 rows rejected (37.50%); WARN above")
    assert lines["export_cadence"] == (
        "2 exports in this 4-hour window (limit 1): 20261123_0800, 20261123_1000"
    )
    assert lines["reconciliation"] == "8 rows in = 5 stored + 3 rejected"
    # ... so the run's tags say which ones failed
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags[WARNINGS_TAG] == "broadlog:export_cadence, broadlog:reject_rate"
    assert CHECK_ERRORS_TAG not in tags

    # The report names the failing checks, not only their count.
    keys = [spec.key for c in campaign_export_checks(broadlog_defs.flow) for spec in c.check_specs]
    report = materialize(
        [build_data_quality_report(["broadlog"], keys)],
        partition_key=PK,
        resources=resources,
        instance=instance,
    )
    meta = report.asset_materializations_for_node("data_quality_report")[0].metadata
    assert meta["checks_failed"].value == 2
    assert meta["failing_checks"].value == [
        "broadlog:export_cadence (WARN)",
        "broadlog:reject_rate (WARN)",
    ]


def test_an_error_check_is_described_and_tagged_apart(tmp_path):
    resources = embedded_resources(tmp_path)
    resources["settings"] = PipelineSettings(cadence_severity="ERROR")
    write_export(tmp_path, "broadLog_20261123_0800.csv", GOOD)
    write_export(
        tmp_path,
        "broadLog_20261123_1000.csv",
        ["9,10,109,,zoe@example.com,1,0,0,2026-11-23 10:09:00,Newsletter"],
    )
    instance = DagsterInstance.ephemeral()
    result = run_job("broadlog_job", resources, instance)
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags[CHECK_ERRORS_TAG] == "broadlog:export_cadence"
    assert WARNINGS_TAG not in tags


def test_orphan_tracking_rows_read_as_a_sentence_with_numbers(tmp_path):
    resources = embedded_resources(tmp_path)
    instance = DagsterInstance.ephemeral()
    drop(tmp_path, broadlog_flow, BROADLOG_ROWS[:1])  # only broadLog 11 exists
    assert run_job("broadlog_job", resources, instance).success
    drop(tmp_path, tracking_log_flow, ROWS["tracking_log"])
    result = run_job("tracking_log_job", resources, instance)
    line = descriptions(result)["orphan_tracking_rows"]
    assert line.startswith("2 of 4 tracking rows match no broadLog")
    tags = instance.get_run_by_id(result.run_id).tags
    assert "tracking_log:orphan_tracking_rows" in tags[WARNINGS_TAG].split(", ")


def test_freshness_names_the_late_windows():
    settings = PipelineSettings()
    now = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    late = freshness_result(AssetKey("broadlog"), set(), now, settings)
    assert not late.passed
    assert late.description.startswith(
        f"{settings.freshness_lookback_windows} of {settings.freshness_lookback_windows} "
        "recent 4-hour windows have no export"
    )
    assert "2026-11-23-04:00" in late.description
    due = {k for k in late.metadata["missing_windows"].value}
    fresh = freshness_result(AssetKey("broadlog"), due, now, settings)
    assert fresh.passed and fresh.description.startswith("0 of ")


def test_audience_field_count_pass_and_warn():
    settings = AudienceSettings()
    ok = field_count_result({"columns": [f"c{i}" for i in range(20)]}, settings)
    over = field_count_result({"columns": [f"c{i}" for i in range(21)]}, settings)
    assert ok.description == "20 fields in the audience export (limit 20)"
    assert over.description == "21 fields in the audience export (limit 20)"


def test_the_audience_and_campaign_jobs_tag_their_failed_checks():
    for name in (
        "audience_import_job",
        "broadlog_job",
        "push_subscriptions_job",
        "export_freshness_job",
        "file_ledger_job",
    ):
        hooks = {h.name for h in defs.resolve_job_def(name).hook_defs}
        assert "tag_failed_checks" in hooks, name
