"""Activation wired and dry-run first (issue 22, points 1 and 3), end to end on the embedded
default with the Campaign side of test_destination_consent.py (20 recipients: 0 quarantined,
1 opted out of email, 2 of SMS, 3 of everything, 4 without a preferences row).

- after an audience import, `destination_export_sensor` asks for one destination run for that
  export, a re-tick for none; `audience_reach_schedule` asks for the audience's reach;
- `activation_dry_run` of a two-export audience counts who each destination gains, keeps,
  loses and excludes;
- a `review_first` destination waits for the approval of the dry run, then publishes; the
  others publish at once;
- with `campaign_import_review_first`, nothing reaches the Campaign import folder before the
  approval, the file and its `.done` after; off (the default), the import publishes at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow.compute as pc
from dagster import (
    AssetKey,
    DagsterInstance,
    build_schedule_context,
    instance_for_test,
    materialize,
)

from asset_checks.aep_to_campaign.wiring import audience_defs, destination_defs
from resources.audience_settings import ActivationConsentOptions, AudienceSettings
from rtcdp_assets.aep_to_campaign.activation_triggers import (
    build_destination_export_sensor,
    build_reach_schedule,
)
from rtcdp_assets.aep_to_campaign.destinations.dry_run import (
    ACTIVATION_DRY_RUN,
    TAG_APPROVED_DRY_RUN,
    approval,
)
from rtcdp_assets.aep_to_campaign.reach import audience_reach_job
from rtcdp_dev import sample_audiences as sample
from tests.aep_to_campaign.campaign_side import run_audience_export
from tests.aep_to_campaign.test_audience_exports import AUD, DEST, FOLDER, T0, put, tick
from tests.aep_to_campaign.test_destination_consent import (
    STAMP,
    campaign_side,
    env,
    recipients,
)
from tests.runs import evaluate_sensor

SENSOR = build_destination_export_sensor(destination_defs.jobs[0], audience_defs.jobs[0])
SCHEDULE = build_reach_schedule(audience_reach_job)
T1 = T0 + timedelta(days=1)
STAMP1 = T1.strftime("%Y%m%d_%H%M%S")


def import_export(root, resources, instance, people, when=T0):
    """AEP writes a full export of `people`; the audience sensor's run imports it."""
    members = sample.audience_members(people, in_campaign=len(people))
    put(
        root,
        f"aep_destination/{FOLDER}",
        sample.export_files(members, destination=DEST, audience_id=AUD, when=when),
    )
    requests = tick(resources, instance).run_requests
    instance.add_dynamic_partitions("audiences", [AUD])
    (request,) = [
        r for r in requests if r.tags["rtcdp/export_time"] == when.strftime("%Y%m%d_%H%M%S")
    ]
    run = run_audience_export(resources, instance, request)
    assert run.success
    return run


def run_request(resources, instance, request):
    """The destination run a sensor request asks for (job, partition, tags, selection)."""
    return materialize(
        [*destination_defs.assets, *destination_defs.asset_checks],
        partition_key=request.partition_key,
        tags=request.tags,
        selection=request.asset_selection,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def landed(root, destination: str) -> bool:
    folder = root / "aep_landing" / "destinations" / destination / AUD / STAMP
    return (folder / f"{destination}_{AUD}_{STAMP}.csv").exists()


def test_an_import_requests_one_destination_run_and_the_schedule_reach(tmp_path):
    # A schedule's context opens the instance from its reference: a stored instance.
    with instance_for_test() as instance:
        check_import_requests_and_reach(tmp_path, instance)


def check_import_requests_and_reach(tmp_path, instance):
    resources = env(tmp_path)
    people = recipients()
    campaign_side(tmp_path, resources, instance, people)
    import_export(tmp_path, resources, instance, people)

    result = evaluate_sensor(SENSOR, resources, instance)
    (request,) = result.run_requests
    assert request.job_name == "destination_export_job"
    assert request.partition_key == AUD
    assert request.run_key == f"destination_exports:{AUD}@{STAMP}"
    assert request.tags == {"rtcdp/audience_id": AUD, "rtcdp/export_time": STAMP}
    assert evaluate_sensor(SENSOR, resources, instance, result.cursor).run_requests == []

    run = run_request(resources, instance, request)
    assert run.success
    assert all(landed(tmp_path, d) for d in ("email", "sms", "social_ads"))

    at = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
    with build_schedule_context(instance=instance, scheduled_execution_time=at) as context:
        (reach,) = SCHEDULE(context)
    assert reach.partition_key == AUD
    assert reach.run_key == f"audience_reach:{AUD}@20261123_1230"


def test_dry_run_counts_of_a_two_export_audience(tmp_path):
    resources = env(tmp_path)
    instance = DagsterInstance.ephemeral()
    people = recipients()
    campaign_side(tmp_path, resources, instance, people)
    import_export(tmp_path, resources, instance, people[:10])  # recipients 0-9
    # The first export's destination files: what each destination's ledger holds afterwards.
    (first,) = evaluate_sensor(SENSOR, resources, instance).run_requests
    assert run_request(resources, instance, first).success
    run = import_export(tmp_path, resources, instance, people[3:], when=T1)  # 3-19
    (event,) = [
        e
        for e in run.get_asset_materialization_events()
        if e.asset_key.to_user_string() == ACTIVATION_DRY_RUN
    ]
    counts = event.materialization.metadata["counts"].value

    # 0, 1, 2 left; 10-19 joined; 3-9 stayed. 3 opted out of everything, 4 has no consent.
    # Only members the first export sent (each destination's ledger) are removed: 0's email is
    # quarantined and 1 opted out of email (never sent to email or social_ads), 2 opted out of
    # SMS (never sent to sms); the others who left are `not_ours`.
    def channel(removed: int, not_ours: int) -> dict:
        return {
            "added": {"joined": 10},
            "kept": {"still_member": 5},
            "removed": {"left_audience": removed},
            "excluded": {"missing_consent": 1, "opted_out": 1},
            "not_ours": {"left_audience": not_ours},
            "kept_foreign": {},
        }

    assert counts == {
        # The Campaign import checks no consent: only 3's email is suppressed (opted out).
        "campaign": {
            "added": {"joined": 10},
            "kept": {"still_member": 6},
            "removed": {"left_audience": 3},
            "excluded": {"opted_out": 1},
            "not_ours": {},
            "kept_foreign": {},
        },
        "email": channel(removed=1, not_ours=2),
        "sms": channel(removed=2, not_ours=1),
        "social_ads": channel(removed=1, not_ours=2),
    }
    # Who, by key, is in the warehouse only; the metadata carries no key or address.
    table = resources["warehouse"].read_table(
        ACTIVATION_DRY_RUN, f"{AUD}/{STAMP1}", "members.parquet"
    )
    email = table.filter(pc.equal(table.column("destination"), "email"))

    def keys(outcome: str) -> list[str]:
        return sorted(
            email.filter(pc.equal(email.column("outcome"), outcome)).column("key").to_pylist()
        )

    assert keys("removed") == [people[2]["external_id"]]
    assert keys("not_ours") == sorted(p["external_id"] for p in people[:2])
    assert not any(p["email"] in str(event.materialization.metadata) for p in people)


def test_review_first_destination_waits_for_approval_then_publishes(tmp_path):
    resources = env(tmp_path, email=ActivationConsentOptions(review_first=True))
    instance = DagsterInstance.ephemeral()
    people = recipients()
    campaign_side(tmp_path, resources, instance, people)
    import_export(tmp_path, resources, instance, people)
    first = evaluate_sensor(SENSOR, resources, instance)
    (request,) = first.run_requests
    run = run_request(resources, instance, request)
    assert run.success
    # sms and social_ads at once; email waits, with the reason recorded.
    assert (landed(tmp_path, "sms"), landed(tmp_path, "social_ads")) == (True, True)
    assert not landed(tmp_path, "email")
    (waiting,) = [
        e.asset_observation_data.asset_observation
        for e in run.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]
    assert waiting.metadata["waiting_for_review"].value == ["email"]
    assert "not approved" in waiting.metadata["waiting"].value
    assert evaluate_sensor(SENSOR, resources, instance, first.cursor).run_requests == []

    # Approved by a small file in the warehouse: the sensor asks for the publication again.
    warehouse = resources["warehouse"]
    warehouse.put_json(ACTIVATION_DRY_RUN, f"{AUD}/{STAMP}", "approved", {"by": "reviewer"})
    (again,) = evaluate_sensor(SENSOR, resources, instance, first.cursor).run_requests
    assert again.run_key == f"destination_exports_published:{AUD}@{STAMP}:approved"
    assert [k.to_user_string() for k in again.asset_selection] == ["destination_exports_published"]
    assert run_request(resources, instance, again).success
    assert landed(tmp_path, "email")
    assert evaluate_sensor(SENSOR, resources, instance, first.cursor).run_requests == []


def test_approval_by_run_tag_names_the_dry_run(tmp_path):
    resources = env(tmp_path)
    warehouse = resources["warehouse"]
    assert approval(warehouse, {TAG_APPROVED_DRY_RUN: f"{AUD}@{STAMP}"}, AUD, STAMP) == "run_tag"
    # Another export's dry run approves nothing here.
    assert approval(warehouse, {TAG_APPROVED_DRY_RUN: f"{AUD}@{STAMP1}"}, AUD, STAMP) is None


IMPORT_FILE = f"aep_audience_{AUD}_{STAMP}.csv"


def import_folder_files(root) -> list[str]:
    folder = root / "campaign_sftp" / "import"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def observations(run, asset: str) -> list:
    return [
        e.asset_observation_data.asset_observation
        for e in run.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
        and e.asset_observation_data.asset_observation.asset_key.to_user_string() == asset
    ]


def test_campaign_import_review_first_waits_for_approval_then_publishes(tmp_path):
    resources = env(tmp_path)
    resources["audience_settings"] = AudienceSettings(
        destination_folder=FOLDER, campaign_import_review_first=True
    )
    instance = DagsterInstance.ephemeral()
    people = recipients()
    campaign_side(tmp_path, resources, instance, people)
    run = import_export(tmp_path, resources, instance, people)
    # Nothing reaches the Campaign import folder; the wait and its reason are observed.
    assert import_folder_files(tmp_path) == []
    assert not instance.get_materialized_partitions(AssetKey("campaign_audience_import_published"))
    (waiting,) = observations(run, "campaign_audience_import_published")
    assert waiting.metadata["waiting_for_review"].value == ["campaign"]
    assert waiting.metadata["dry_run_id"].value == f"{AUD}@{STAMP}"
    assert "not approved" in waiting.metadata["waiting"].value
    # The destination files do not wait: only the Campaign import is review_first.
    first = evaluate_sensor(SENSOR, resources, instance)
    (destinations,) = first.run_requests
    assert destinations.job_name == "destination_export_job"
    assert run_request(resources, instance, destinations).success
    assert all(landed(tmp_path, d) for d in ("email", "sms", "social_ads"))
    assert evaluate_sensor(SENSOR, resources, instance, first.cursor).run_requests == []
    assert import_folder_files(tmp_path) == []

    # Approved by the file: the sensor asks for the Campaign publication alone, once.
    warehouse = resources["warehouse"]
    warehouse.put_json(ACTIVATION_DRY_RUN, f"{AUD}/{STAMP}", "approved", {"by": "reviewer"})
    (again,) = evaluate_sensor(SENSOR, resources, instance, first.cursor).run_requests
    assert again.job_name == "audience_import_job"
    assert again.run_key == f"campaign_audience_import_published:{AUD}@{STAMP}:approved"
    assert [k.to_user_string() for k in again.asset_selection] == [
        "campaign_audience_import_published"
    ]
    assert again.tags == {"rtcdp/audience_id": AUD, "rtcdp/export_time": STAMP}
    published = materialize(
        [*audience_defs.assets, *audience_defs.asset_checks],
        partition_key=again.partition_key,
        tags=again.tags,
        selection=again.asset_selection,
        resources=resources,
        instance=instance,
    )
    assert published.success
    assert import_folder_files(tmp_path) == [IMPORT_FILE, f"{IMPORT_FILE}.done"]
    (event,) = published.get_asset_materialization_events()
    assert event.materialization.metadata["dry_run_approved_by"].value == "approval_file"
    assert evaluate_sensor(SENSOR, resources, instance, first.cursor).run_requests == []


def test_campaign_import_publishes_at_once_by_default(tmp_path):
    resources = env(tmp_path)
    assert resources["audience_settings"].campaign_import_review_first is False
    instance = DagsterInstance.ephemeral()
    people = recipients()
    campaign_side(tmp_path, resources, instance, people)
    run = import_export(tmp_path, resources, instance, people)
    assert import_folder_files(tmp_path) == [IMPORT_FILE, f"{IMPORT_FILE}.done"]
    assert observations(run, "campaign_audience_import_published") == []
    (request,) = evaluate_sensor(SENSOR, resources, instance).run_requests
    assert request.job_name == "destination_export_job"
