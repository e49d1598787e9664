"""Failed work comes back (issue 24): an audience export whose import failed because
`suppression_list` did not exist yet is requested again after the back-off, and imported once
the list exists; without it, it is `failed` after N runs. The sensor's clock is injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterInstance, SensorResult, materialize

from resources import PipelineSettings, embedded_resources
from resources.audience_settings import AepDestinationOptions, AudienceSettings
from rtcdp_assets.aep_to_campaign.audience_exports import job_and_sensor
from rtcdp_assets.campaign_to_aep.non_deliverables import non_deliverables_defs, suppression_list
from rtcdp_assets.campaign_to_aep.preferences import preferences_defs
from rtcdp_assets.campaign_to_aep.profiles import profiles_defs
from rtcdp_assets.shared.failed_runs import failed_runs_after
from rtcdp_dev import sample_audiences as sample
from tests.aep_to_campaign.campaign_side import run_audience_export
from tests.aep_to_campaign.test_audience_exports import AUD, DEST, FOLDER, PK, SENSOR, T0, put
from tests.drop_files import drop_campaign_export
from tests.runs import evaluate_sensor

BACKOFF = 600.0


@pytest.fixture
def env(tmp_path):
    resources = embedded_resources(tmp_path)
    resources["settings"] = PipelineSettings(
        file_settle_seconds=0, failed_run_max_attempts=2, failed_run_retry_backoff_seconds=BACKOFF
    )
    resources["audience_settings"] = AudienceSettings(
        destination_folder=FOLDER,
        default_destination=AepDestinationOptions(rows_per_file=60),
        max_rows_per_file=100,
    )
    instance = DagsterInstance.ephemeral()
    recipients = sample.campaign_recipients(40)
    # Campaign's exports are in, typed; the suppression list is not built yet.
    for name, data in sample.campaign_exports(recipients, quarantined=range(0, 3)).items():
        drop_campaign_export(tmp_path, name, data)
    for defs in (profiles_defs, non_deliverables_defs, preferences_defs):
        assert materialize(
            [defs.assets[0]], partition_key=PK, resources=resources, instance=instance
        ).success
    members = sample.audience_members(recipients, in_campaign=30)
    put(
        tmp_path,
        f"aep_destination/{FOLDER}",
        sample.export_files(members, destination=DEST, audience_id=AUD, when=T0),
    )
    instance.add_dynamic_partitions("audiences", [AUD])
    return resources, instance


def tick(monkeypatch, resources, instance, cursor, now):
    monkeypatch.setattr(job_and_sensor, "sensor_now", lambda: now)
    result = evaluate_sensor(SENSOR, resources, instance, cursor)
    assert isinstance(result, SensorResult)
    skip = result.skip_reason.skip_message if result.skip_reason else ""
    return list(result.run_requests or []), result.cursor, skip


def row_failed_at(instance, run_id):
    """When the run failed, as the sensor reads it (`failed_runs_after`)."""
    runs, _ = failed_runs_after(instance, None, None)
    return next(r.failed_at for r in runs if r.run_id == run_id)


def export_rows(resources):
    return [r for r in resources["file_ledger"].rows() if r.dataset == "segment_exports"]


def test_import_waiting_for_the_suppression_list_comes_back_and_succeeds(env, monkeypatch):
    resources, instance = env
    t0 = datetime.now(UTC)
    (request,), cursor, _ = tick(monkeypatch, resources, instance, None, t0)
    failed = run_audience_export(resources, instance, request)
    assert not failed.success

    # The case: the next ticks said "no new audience exports" and never asked again.
    # Now they say that a retry waits, and when it is due (no audience or export id).
    requests, cursor, skip = tick(monkeypatch, resources, instance, cursor, t0 + timedelta(0, 60))
    [row] = export_rows(resources)
    assert (row.status, row.attempts, row.failed_run_id) == ("pending", 1, failed.run_id)
    assert row.reason.startswith("run_failed: attempt 1 of 2 failed: step ")
    assert "suppression_list" in row.reason
    assert row.retry_after == row_failed_at(instance, failed.run_id) + timedelta(0, BACKOFF)
    waiting = (
        "1 audience export(s) waiting for a retry after a failed run, the first requested "
        f"again at {row.retry_after:%Y-%m-%d %H:%M:%S}Z"
    )
    assert requests == [] and skip == waiting

    assert materialize([suppression_list], resources=resources, instance=instance).success
    requests, cursor, skip = tick(monkeypatch, resources, instance, cursor, t0 + timedelta(0, 300))
    assert requests == [] and skip == waiting  # the back-off still runs
    (retry,), cursor, _ = tick(monkeypatch, resources, instance, cursor, t0 + timedelta(0, 700))
    assert retry.run_key.startswith(f"{request.run_key}#attempt2@")
    assert retry.tags == request.tags and retry.partition_key == AUD
    assert run_audience_export(resources, instance, retry).success

    requests, _, _ = tick(monkeypatch, resources, instance, cursor, t0 + timedelta(1))
    assert requests == []
    [row] = export_rows(resources)
    assert (row.status, row.attempts, row.retry_after) == ("processed", 1, None)


def test_import_without_the_suppression_list_is_failed_after_n_runs(env, monkeypatch):
    resources, instance = env
    t0 = datetime.now(UTC)
    (request,), cursor, _ = tick(monkeypatch, resources, instance, None, t0)
    assert not run_audience_export(resources, instance, request).success
    (retry,), cursor, _ = tick(monkeypatch, resources, instance, cursor, t0 + timedelta(0, 700))
    assert not run_audience_export(resources, instance, retry).success

    requests, cursor, _ = tick(monkeypatch, resources, instance, cursor, t0 + timedelta(1))
    assert requests == []
    [row] = export_rows(resources)
    assert (row.status, row.attempts, row.retry_after) == ("failed", 2, None)
    assert row.reason.startswith("run_failed: 2 of 2 attempts failed, last: step ")
    requests, _, _ = tick(monkeypatch, resources, instance, cursor, t0 + timedelta(2))
    assert requests == []
    assert len(instance.get_run_records(filters=None)) == 2 + 3  # 3 Campaign exports typed
