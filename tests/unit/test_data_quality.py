"""The data-quality report: every check outcome of a partition, with evidence and masked
samples of quarantined rows, in the UI and as an HTML page."""

from __future__ import annotations

from dagster import DagsterInstance, materialize

from rtcdp_assets.broadlog import broadlog_defs
from rtcdp_assets.data_quality import build_data_quality_report
from tests.unit.test_broadlog_embedded import BAD, GOOD, PK, write_export
from tests.unit.test_campaign_datasets import RAW_EMAIL, RAW_PHONE


def test_report_lists_every_check_with_evidence_and_masked_rejects(tmp_path):
    from resources import embedded_resources

    resources = embedded_resources(tmp_path)
    write_export(tmp_path, "broadLog_20261123_0800.csv", GOOD + BAD)
    # a second export in the same window: the cadence check warns
    write_export(
        tmp_path,
        "broadLog_20261123_1000.csv",
        ["9,10,109,,zoe@example.com,1,0,0,2026-11-23 10:09:00,Newsletter"],
    )
    instance = DagsterInstance.ephemeral()
    assert materialize(
        [*broadlog_defs.assets, *broadlog_defs.asset_checks],
        partition_key=PK,
        resources=resources,
        instance=instance,
    ).success
    keys = [spec.key for c in broadlog_defs.asset_checks for spec in c.check_specs]
    report_asset = build_data_quality_report(["broadlog", "tracking_log"], keys)
    result = materialize([report_asset], partition_key=PK, resources=resources, instance=instance)
    meta = result.asset_materializations_for_node("data_quality_report")[0].metadata
    assert meta["checks"].value == len(keys)
    assert meta["checks_failed"].value == 1  # export_cadence (WARN), two exports in the window
    markdown = meta["report"].value
    assert "| broadlog | export_cadence | FAILED | WARN | exports_in_window=2 |" in markdown
    assert "| broadlog | reconciliation | passed |" in markdown
    # the quarantined rows are listed with file, line and reason, values masked
    assert "| broadLog_20261123_0800.csv | 6 | invalid_email | sAddress |" in markdown
    page = (tmp_path / "warehouse/data_quality_report" / PK / "report.html").read_text()
    assert "<table>" in page and "invalid_email" in page
    for text in (markdown, page):
        assert not RAW_EMAIL.search(text) and not RAW_PHONE.search(text)


def test_the_schedule_reports_the_last_closed_window(monkeypatch, tmp_path):
    from datetime import UTC, datetime

    from dagster import build_schedule_context

    from rtcdp_assets.data_quality import last_closed_window

    assert last_closed_window(datetime(2026, 11, 23, 9, 45, tzinfo=UTC)) == "2026-11-23-04:00"
    assert last_closed_window(datetime(2026, 11, 23, 12, 0, tzinfo=UTC)) == "2026-11-23-08:00"
    assert last_closed_window(datetime(2026, 11, 24, 0, 45, tzinfo=UTC)) == "2026-11-23-20:00"
    monkeypatch.setenv("RTCDP_DATA_DIR", str(tmp_path))
    from rtcdp_assets.definitions import defs

    schedule_def = defs.resolve_schedule_def("data_quality_report_schedule")
    context = build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 23, 13, 45, tzinfo=UTC)
    )
    request = schedule_def(context)
    assert request.partition_key == "2026-11-23-08:00"
