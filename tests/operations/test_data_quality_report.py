"""The data-quality report: every check outcome of a partition, with evidence and masked
samples of quarantined rows, in the UI and as an HTML page."""

from __future__ import annotations

from dagster import DagsterInstance, materialize

from asset_checks.campaign_to_aep.dataset_checks import campaign_export_checks
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs
from rtcdp_assets.operations.data_quality_report import build_data_quality_report
from tests.campaign_to_aep.test_broadlog_embedded import (
    BAD,
    GOOD,
    PK,
    with_bad_rows_tolerated,
    write_export,
)
from tests.campaign_to_aep.test_campaign_datasets import RAW_EMAIL, RAW_PHONE


def test_report_lists_every_check_with_evidence_and_masked_rejects(tmp_path):
    from resources import embedded_resources

    resources = with_bad_rows_tolerated(embedded_resources(tmp_path))
    write_export(tmp_path, "broadLog_20261123_0800.csv", GOOD + BAD)
    # a second export in the same window: the cadence check warns
    write_export(
        tmp_path,
        "broadLog_20261123_1000.csv",
        ["9,10,109,,zoe@example.com,1,0,0,2026-11-23 10:09:00,Newsletter"],
    )
    instance = DagsterInstance.ephemeral()
    assert materialize(
        [*broadlog_defs.assets, *campaign_export_checks(broadlog_defs.flow)],
        partition_key=PK,
        resources=resources,
        instance=instance,
    ).success
    keys = [spec.key for c in campaign_export_checks(broadlog_defs.flow) for spec in c.check_specs]
    report_asset = build_data_quality_report(["broadlog", "tracking_log"], keys)
    result = materialize([report_asset], partition_key=PK, resources=resources, instance=instance)
    meta = result.asset_materializations_for_node("data_quality_report")[0].metadata
    assert meta["checks"].value == len(keys)
    # export_cadence (two exports in the window) and reject_rate (3 rows of 8), both WARN
    assert meta["checks_failed"].value == 2
    markdown = meta["report"].value
    assert "| broadlog | export_cadence | FAILED | WARN | exports_in_window=2 |" in markdown
    assert (
        "| broadlog | reject_rate | FAILED | WARN | rows_rejected=3; reject_rate=0.375; "
        'top_reasons={"invalid_email": 1, "unknown_code:status": 1, "wrong_column_count": 1} |'
    ) in markdown
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

    from rtcdp_assets.operations.data_quality_report import last_closed_window

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


def test_a_range_of_partitions_is_one_run_with_a_page_per_partition(tmp_path):
    """The single-run backfill policy hands the report a partition range; each partition gets
    the same page a one-partition run writes, and the run's metadata sums them up."""
    from dagster import BackfillPolicy
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    from resources import embedded_resources

    resources = with_bad_rows_tolerated(embedded_resources(tmp_path))
    write_export(tmp_path, "broadLog_20261123_0800.csv", GOOD + BAD)
    instance = DagsterInstance.ephemeral()
    assert materialize(
        [*broadlog_defs.assets, *campaign_export_checks(broadlog_defs.flow)],
        partition_key=PK,
        resources=resources,
        instance=instance,
    ).success
    keys = [spec.key for c in campaign_export_checks(broadlog_defs.flow) for spec in c.check_specs]
    report_asset = build_data_quality_report(["broadlog"], keys)
    assert report_asset.backfill_policy == BackfillPolicy.single_run()

    window = ["2026-11-23-04:00", PK, "2026-11-23-12:00"]
    result = materialize(
        [report_asset],
        resources=resources,
        instance=instance,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: window[0],
            ASSET_PARTITION_RANGE_END_TAG: window[-1],
        },
    )
    assert result.success
    materializations = result.asset_materializations_for_node("data_quality_report")
    assert sorted(m.partition for m in materializations) == window
    meta = materializations[0].metadata
    assert meta["partitions"].value == 3
    assert meta["checks"].value == 3 * len(keys)
    assert meta["checks_not_run"].value == 2 * len(keys)  # nothing exported in the other two
    # 3 rows of 7 rejected: reject_rate fails at WARN
    assert f"| {PK} | {len(keys)} | 1 | 0 | broadlog:reject_rate |" in meta["report"].value

    pages = {pk: (tmp_path / "warehouse/data_quality_report" / pk / "report.html") for pk in window}
    assert "<td>broadlog</td><td>reconciliation</td><td>passed</td>" in pages[PK].read_text()
    assert "invalid_email" in pages[PK].read_text()
    for pk in (window[0], window[-1]):
        assert "<td>reconciliation</td><td>not run</td>" in pages[pk].read_text()
    # the same page as a run of that one partition writes
    single = pages[PK].read_text()
    materialize([report_asset], partition_key=PK, resources=resources, instance=instance)
    assert pages[PK].read_text() == single
