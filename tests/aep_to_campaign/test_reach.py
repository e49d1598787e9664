"""audience_reach: an audience export, staged and published on the embedded default, followed by
Campaign delivery and tracking logs ingested through the real broadlog / tracking_log assets."""

import os
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from dagster import DagsterInstance, build_sensor_context, materialize

from asset_checks.aep_to_campaign.reach_checks import funnel_problems, reach_funnel
from asset_checks.aep_to_campaign.wiring import audience_defs, reach_defs
from resources import PipelineSettings, embedded_resources
from resources.audience_settings import AudienceSettings
from rtcdp_assets.aep_to_campaign.reach import audience_reach, window_partitions
from rtcdp_assets.campaign_to_aep.broadlog import BROADLOG_FORMAT, broadlog_defs
from rtcdp_assets.campaign_to_aep.tracking_log import TRACKING_LOG_FORMAT, tracking_log_defs
from rtcdp_dev import sample_audiences as sample
from tests.aep_to_campaign.campaign_side import load_campaign_side, run_audience_export
from tests.drop_files import with_completion_markers

AUD = "ce5c5482-2813-4a80-99bc-57113f6acde2"
# Days in the past of any clock this runs on: partitions after "now" do not exist yet.
T0 = datetime(2026, 11, 20, 8, 5, 0, tzinfo=UTC)
PK = "2026-11-20-08:00"


def put(root, folder: str, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        past = time.time() - 600
        os.utime(path, (past, past))


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """One export of 35 rows, staged and uploaded; returns (root, resources, instance, targets)."""
    root = tmp_path_factory.mktemp("reach")
    resources = embedded_resources(root)
    resources["settings"] = PipelineSettings(file_settle_seconds=0)
    resources["audience_settings"] = AudienceSettings(destination_folder="exports")
    instance = DagsterInstance.ephemeral()
    recipients = sample.campaign_recipients(40, modified=datetime(2026, 11, 19, tzinfo=UTC))
    load_campaign_side(
        root,
        resources,
        instance,
        recipients,
        partition_key=PK,
        quarantined=[0, 1],
        opted_out=[2],
        stamp="20261120_0800",
    )
    members = sample.audience_members(
        recipients,
        in_campaign=30,
        not_in_campaign=4,
        exited=2,
        without_identity=1,
        qualified=datetime(2026, 11, 20, 6, 0, tzinfo=UTC),
    )
    put(
        root,
        "aep_destination/exports",
        sample.export_files(members, destination="Azure_Blob", audience_id=AUD, when=T0),
    )
    with build_sensor_context(instance=instance, resources=resources) as ctx:
        (request,) = audience_defs.sensors[0](ctx).run_requests
    instance.add_dynamic_partitions("audiences", [AUD])
    assert run_audience_export(resources, instance, request).success
    (import_file,) = (root / "campaign_sftp" / "import").glob("aep_audience_*.csv")
    targets = pd.read_csv(import_file, dtype=str, keep_default_na=False)
    return root, resources, instance, targets.to_dict("records"), members


def _campaign_logs(root, resources, instance, targets) -> None:
    """broadLog and trackingLog files around the export, ingested by the typed assets."""
    t = targets
    log_id = iter(range(1, 1000))

    def sent(who, when, status="1", failure="0", recipient_id=None, modified=None, bl_id=None):
        return {
            "broadlog_id": str(bl_id or next(log_id)),
            "delivery_id": "77",
            "recipient_id": recipient_id or who["recipient_id"],
            "external_id": who["external_id"],
            "address": who["email"],
            "status": status,
            "failure_type": failure,
            "failure_reason": "0",
            "event_date": when,
            "last_modified": modified or when,
        }

    day1 = [sent(t[i], "2026-11-20 09:00:00") for i in range(10)]  # ids 1..10: delivered
    day1 += [sent(t[i], "2026-11-20 09:00:00", "2", "2") for i in (10, 11)]  # hard bounces
    day1.append(sent(t[12], "2026-11-20 09:00:00", "2", "3"))  # ignored failure: never went out
    day1.append(sent(t[13], "2026-11-20 07:00:00"))  # before the export
    # Known to this log only by its external ID (the recipient key differs).
    day1.append(sent(t[14], "2026-11-20 09:30:00", recipient_id="999999"))
    # Suppressed, so not in the import: its send is no reach of the audience.
    day1.append(
        {
            **sent(t[0], "2026-11-20 09:00:00"),
            "recipient_id": "100000",
            "external_id": "CRM-00100000",
            "address": "member100000@example.com",
        }
    )
    # t[9]'s message bounced asynchronously: Campaign re-exports the log as failed.
    later = [sent(t[9], "2026-11-20 09:00:00", "2", "2", modified="2026-11-20 13:00:00", bl_id=10)]
    # Beyond a 24 h look-back, inside a 48 h one.
    late = [sent(t[15], "2026-11-21 12:30:00")]
    files = {
        "broadLog_20261120_0800.csv": day1,
        "broadLog_20261120_1200.csv": later,
        "broadLog_20261121_1200.csv": late,
    }
    for name, rows in files.items():
        put(
            root,
            "campaign_sftp/export",
            with_completion_markers({name: sample.campaign_csv(BROADLOG_FORMAT, rows)}),
        )

    def reaction(bl_id, who, url_type, when):
        return {
            "tracking_log_id": str(next(log_id)),
            "broadlog_id": str(bl_id),
            "delivery_id": "77",
            "recipient_id": who["recipient_id"],
            "external_id": who["external_id"],
            "url_type": url_type,
            "log_date": when,
        }

    clicks = [reaction(i + 1, t[i], "2", "2026-11-20 10:00:00") for i in range(5)]  # opens
    clicks += [reaction(i + 1, t[i], "1", "2026-11-20 10:05:00") for i in (0, 1)]  # clicks
    clicks.append(reaction(6, t[5], "3", "2026-11-20 11:00:00"))  # opt-out link: opened
    clicks.append(reaction(11, t[10], "2", "2026-11-20 11:00:00"))  # on a bounced message
    put(
        root,
        "campaign_sftp/export",
        with_completion_markers(
            {"trackingLog_20261120_0800.csv": sample.campaign_csv(TRACKING_LOG_FORMAT, clicks)}
        ),
    )
    # An open three days later, past any look-back used here.
    late_open = [reaction(7, t[6], "2", "2026-11-20 04:00:00")]
    put(
        root,
        "campaign_sftp/export",
        with_completion_markers(
            {"trackingLog_20261123_0400.csv": sample.campaign_csv(TRACKING_LOG_FORMAT, late_open)}
        ),
    )
    for flow, pk in (
        (broadlog_defs, PK),
        (broadlog_defs, "2026-11-20-12:00"),
        (broadlog_defs, "2026-11-21-12:00"),
        (tracking_log_defs, PK),
        (tracking_log_defs, "2026-11-23-04:00"),
    ):
        assert materialize(
            [flow.assets[0]], partition_key=pk, resources=resources, instance=instance
        ).success


def _reach(resources, instance, lookback_hours: int):
    result = materialize(
        [audience_reach, reach_funnel],
        partition_key=AUD,
        resources=resources,
        instance=instance,
        run_config={"ops": {"audience_reach": {"config": {"lookback_hours": lookback_hours}}}},
    )
    assert result.success
    (mat,) = result.asset_materializations_for_node("audience_reach")
    (check,) = result.get_asset_check_evaluations()
    return mat.metadata, check


def test_funnel_from_export_to_clicks(published):
    root, resources, instance, targets, members = published
    _campaign_logs(root, resources, instance, targets)
    excluded = resources["warehouse"].read_table(
        "campaign_audience_import", f"{AUD}/20261120_080500", "excluded.parquet"
    )
    reasons = pd.Series(excluded.column("reason").to_pylist()).value_counts().to_dict()

    meta, check = _reach(resources, instance, lookback_hours=24)
    assert check.passed, check.metadata
    (export,) = meta["reach_json"].value
    assert export["exported"] == 35
    assert export["matched"] == len(targets) + excluded.num_rows
    assert export["targeted"] == len(targets)
    assert export["excluded"] == {
        "quarantine": reasons.get("quarantine", 0),
        "denylisted": 0,
        "opted_out": reasons.get("opted_out", 0),
        "exited": 0,
    }
    # 10 sent + 2 hard bounces + 1 by external ID (t[9] sent, then bounced); not the ignored
    # failure, the send before the export, the suppressed recipient or the one past 24 h.
    assert (export["sent"], export["delivered"]) == (13, 10)
    # opens of t0..t4, the opt-out click of t5; not the reaction to a bounced message.
    assert (export["opened"], export["clicked"]) == (6, 2)
    assert meta["latest_clicked"].value == 2 and meta["dagster/row_count"].value == 1

    markdown = meta["reach"].value
    assert "| delivered" in markdown and "| excluded: opted_out" in markdown
    # Counts only: no address, external ID or recipient key reaches the metadata.
    for person in targets:
        for value in (person["email"], person["external_id"], person["recipient_id"]):
            assert value not in markdown and value not in str(meta["reach_json"].value)

    wider, _ = _reach(resources, instance, lookback_hours=48)
    (export48,) = wider["reach_json"].value
    assert (export48["sent"], export48["delivered"]) == (14, 11)
    assert export48["opened"] == 6  # the open three days later is still outside

    # The next day's full export: five members left, so they are in the file as exited.
    stayed = [m for m in members if m.status != "exited"][5:]
    day2 = T0 + timedelta(days=1)
    put(
        root,
        "aep_destination/exports",
        sample.export_files(stayed, destination="Azure_Blob", audience_id=AUD, when=day2),
    )
    with build_sensor_context(instance=instance, resources=resources) as ctx:
        requests = audience_defs.sensors[0](ctx).run_requests
    (request,) = [r for r in requests if r.tags["rtcdp/export_time"] == "20261121_080500"]
    assert run_audience_export(resources, instance, request).success
    day2_file = pd.read_csv(
        root / "campaign_sftp" / "import" / f"aep_audience_{AUD}_20261121_080500.csv",
        dtype=str,
        keep_default_na=False,
    )
    left = int((day2_file["membership_status"] == "exited").sum())
    assert left > 0
    meta, check = _reach(resources, instance, lookback_hours=24)
    assert check.passed, check.metadata
    newest, oldest = meta["reach_json"].value
    assert (newest["export_time"], oldest["export_time"]) == (
        "2026-11-21T08:05:00Z",
        "2026-11-20T08:05:00Z",
    )
    assert newest["excluded"]["exited"] == left
    assert newest["targeted"] == len(day2_file) - left
    # Only t[15]'s send (2026-11-21 12:30) falls after the second export.
    still_targeted = set(day2_file.loc[day2_file["membership_status"] != "exited", "recipient_id"])
    assert newest["sent"] == int(targets[15]["recipient_id"] in still_targeted)
    assert (oldest["sent"], oldest["delivered"]) == (13, 10)


def test_funnel_check_names_what_does_not_hold():
    good = {
        "matched": 10,
        "targeted": 8,
        "sent": 5,
        "delivered": 4,
        "opened": 2,
        "clicked": 1,
        "excluded": {"opted_out": 2},
    }
    assert funnel_problems(good) == []
    bad = {**good, "clicked": 3, "excluded": {"opted_out": 1}}
    assert funnel_problems(bad) == [
        "clicked (3) > opened (2)",
        "matched 10 != targeted + excluded 9",
    ]


def test_windows_cover_the_export_to_one_window_past_the_end():
    keys = window_partitions(T0, datetime(2026, 11, 20, 17, 0, tzinfo=UTC))
    assert keys == ["2026-11-20-08:00", "2026-11-20-12:00", "2026-11-20-16:00", "2026-11-20-20:00"]


def test_reach_definitions_load_with_the_audience_flow(tmp_path):
    from dagster import Definitions

    defs = Definitions(
        assets=[*audience_defs.assets, *reach_defs.assets],
        asset_checks=[*audience_defs.asset_checks, *reach_defs.asset_checks],
        jobs=[*audience_defs.jobs, *reach_defs.jobs],
        resources=embedded_resources(tmp_path),
    )
    job = defs.resolve_job_def("audience_reach_job")
    assert job.partitions_def is not None
