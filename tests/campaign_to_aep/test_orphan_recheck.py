"""orphan_tracking_rows when the reactions arrive before their sends: the tracking logs of the
demo's windows are loaded before any broadLog (`broadlog_not_loaded`, passing, the windows
named), then `orphan_recheck_sensor` (the code location's) asks for the check again as the
broadLog partitions arrive, in any order, until every result is settled."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, Definitions, SensorResult, SkipReason

from asset_checks.campaign_to_aep.dataset_checks import campaign_export_checks
from asset_checks.campaign_to_aep.tracking_checks import lookback_keys, missing_broadlog_windows
from resources import PipelineSettings
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs
from rtcdp_assets.campaign_to_aep.tracking_log import tracking_log_defs
from rtcdp_assets.definitions import orphan_recheck_job, orphan_recheck_sensor
from rtcdp_dev.sample_data import write_dataset_files
from tests.results import check_evaluations_by_name
from tests.runs import campaign_assets_and_checks, evaluate_sensor, materialize_partition

W0, W1 = "2026-11-23-08:00", "2026-11-23-12:00"


def write_sample_exports(root: Path) -> None:
    """Two windows of sample broadLog and trackingLog exports (with their markers), settled;
    W1's reactions reach back to W0's sends."""
    for dataset in ("broadlog", "tracking_log"):
        write_dataset_files(
            dataset,
            root / "campaign_sftp",
            start=datetime(2026, 11, 23, 8, tzinfo=UTC),
            end=datetime(2026, 11, 23, 16, tzinfo=UTC),
            rows_per_file=300,
            seed=11,
            now=datetime(2026, 11, 24, tzinfo=UTC),
        )
    past = time.time() - 600
    for path in (root / "campaign_sftp").rglob("*"):
        os.utime(path, (past, past))


def orphan_check(result: Any) -> Any:
    return check_evaluations_by_name(result)["orphan_tracking_rows"]


def tick(resources: dict[str, Any], instance: DagsterInstance, cursor: str | None) -> Any:
    result = evaluate_sensor(orphan_recheck_sensor, resources, instance, cursor)
    if isinstance(result, SkipReason):
        return [], cursor, result.skip_message
    assert isinstance(result, SensorResult)
    skip = result.skip_reason.skip_message if result.skip_reason else ""
    return result.run_requests or [], result.cursor, skip


def run_requests(resources, instance, requests) -> dict[str, Any]:
    """Each request as the daemon launches it: orphan_recheck_job, the partition as a tag."""
    defs = Definitions(
        assets=[*tracking_log_defs.assets, *broadlog_defs.assets],
        asset_checks=campaign_export_checks(tracking_log_defs.flow),
        jobs=[orphan_recheck_job],
        resources=resources,
    )
    job = defs.resolve_job_def("orphan_recheck_job")
    out = {}
    for request in requests:
        result = job.execute_in_process(tags=request.tags, instance=instance)
        assert result.success
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.partition == request.tags["dagster/partition"]
        out[evaluation.partition] = evaluation
    return out


def test_tracking_before_broadlog_waits_then_settles_as_broadlog_arrives(
    embedded_env_with_instance,
):
    root, resources, instance = embedded_env_with_instance
    write_sample_exports(root)
    tracking = campaign_assets_and_checks(tracking_log_defs)
    broadlog = campaign_assets_and_checks(broadlog_defs)

    # The demo's race: the tracking logs ran before any broadLog was loaded.
    for pk in (W0, W1):
        check = orphan_check(materialize_partition(tracking, resources, pk, instance))
        meta = check.metadata
        assert check.passed and check.severity.value == "WARN"
        assert meta["outcome"].value == "broadlog_not_loaded"
        assert meta["orphan_rows"].value == meta["tracking_rows"].value > 0
        # Every window of the 7-day look-back is still to come.
        missing = meta["broadlog_windows_missing"].value
        assert len(missing) == 43 and missing[-1] == pk
        assert missing[0] == ("2026-11-16-08:00" if pk == W0 else "2026-11-16-12:00")
        assert "not loaded" in check.description
    requests, cursor, skip = tick(resources, instance, None)
    assert requests == [] and skip == "no new broadlog partition"

    # W1's broadLog first: only W1 is affected (a send is never after its reaction). History
    # starts at the first broadLog loaded, so W1's reactions to W0's sends are orphans for now.
    assert materialize_partition(broadlog, resources, W1, instance).success
    requests, cursor, _ = tick(resources, instance, cursor)
    assert [r.tags["dagster/partition"] for r in requests] == [W1]
    first = run_requests(resources, instance, requests)[W1]
    assert first.metadata["outcome"].value == "orphans" and not first.passed
    assert 0 < first.metadata["orphan_rows"].value < first.metadata["tracking_rows"].value

    # W0's broadLog: both tracking partitions are evaluated again, and settle.
    assert materialize_partition(broadlog, resources, W0, instance).success
    requests, cursor, _ = tick(resources, instance, cursor)
    assert sorted(r.tags["dagster/partition"] for r in requests) == [W0, W1]
    settled = run_requests(resources, instance, requests)
    for pk in (W0, W1):
        assert settled[pk].passed, settled[pk].metadata
        assert settled[pk].metadata["outcome"].value == "all_matched"
        assert settled[pk].metadata["orphan_rows"].value == 0
        assert settled[pk].metadata["broadlog_windows_missing"].value == []

    # Nothing new: nothing; a broadLog re-run: every affected result is settled already.
    requests, cursor, skip = tick(resources, instance, cursor)
    assert requests == [] and skip == "no new broadlog partition"
    assert materialize_partition(broadlog, resources, W0, instance).success
    requests, cursor, skip = tick(resources, instance, cursor)
    assert requests == [] and skip == "every affected result is settled"


def test_the_look_back_starts_at_the_first_partition_and_the_first_broadlog_loaded():
    settings = PipelineSettings(orphan_lookback_hours=7 * 24)
    # The default first partition is 2026-11-01-00:00: nothing before it can ever arrive.
    keys = lookback_keys("2026-11-01-08:00", settings)
    assert keys == ["2026-11-01-08:00", "2026-11-01-04:00", "2026-11-01-00:00"]
    assert missing_broadlog_windows(keys, set()) == sorted(keys)
    # History starts at the first broadLog window loaded; gaps after it are missing.
    keys = lookback_keys(W1, settings)
    assert missing_broadlog_windows(keys, {"2026-11-22-20:00", W1}) == [
        "2026-11-23-00:00",
        "2026-11-23-04:00",
        W0,
    ]
