"""Consent and suppression on the destination files (issue 23, points 1 and 3), end to end on
the embedded default: Campaign-shaped profiles / non-deliverables / preferences exports, an
Adobe-shaped audience export, then the destination files as they reach the landing zone.

The recipients: 20, each with an international mobile phone; the audience holds all of them.
- recipient 0: email quarantined by Campaign (nonDeliverables, status 3);
- recipient 1: opted out of email (iBlackListEmail = 1, the sample's opt-out);
- recipient 2: opted out of SMS only (iBlackListMobile = 1);
- recipient 3: opted out of everything (iBlackList = 1);
- recipient 4: no preferences row (missing consent);
- the others: consent to every channel.
"""

from __future__ import annotations

import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from asset_checks.aep_to_campaign.audience_checks import PARTITIONED_AUDIENCE_CHECKS
from asset_checks.aep_to_campaign.consent_checks import consent_respected_result
from asset_checks.aep_to_campaign.wiring import audience_defs, destination_defs
from resources import PipelineSettings, embedded_resources
from resources.audience_settings import ActivationConsentOptions, AudienceSettings
from rtcdp_assets.campaign_to_aep.non_deliverables import suppression_list
from rtcdp_assets.campaign_to_aep.preferences import PREFERENCES_FORMAT, preferences_defs
from rtcdp_dev import sample_audiences as sample
from tests.aep_to_campaign.campaign_side import load_campaign_side
from tests.aep_to_campaign.test_audience_exports import AUD, DEST, FOLDER, PK, T0, put, tick
from tests.drop_files import drop_campaign_export

STAMP = "20261123_080500"
N = 20


def recipients() -> list[dict[str, str]]:
    return [
        {**r, "mobile_phone": f"+33 6 12 34 {i:02d} 00"}
        for i, r in enumerate(sample.campaign_recipients(N))
    ]


def preference_rows(people: list[dict[str, str]], **flags: dict[int, str]) -> list[dict]:
    """One Campaign preferences row per recipient but 1 (the sample's opt-out row) and 4 (no
    consent known): every flag 0, except `flags` (flag -> {recipient index: value})."""
    rows = []
    for i, r in enumerate(people):
        if i in (1, 4):
            continue
        row = {
            "recipient_id": r["recipient_id"],
            "external_id": r["external_id"],
            "email": r["email"],
            "blacklist": "0",
            **dict.fromkeys(
                ("blacklist_email", "blacklist_mobile", "blacklist_phone", "blacklist_push"), "0"
            ),
            "last_modified": "2026-11-23 08:00:00",
        }
        for flag, by_index in flags.items():
            row[flag] = by_index.get(i, row.get(flag, "0"))
        rows.append(row)
    return rows


def campaign_side(root, resources, instance, people, **flags: dict[int, str]) -> None:
    """`flags`: more preferences values (flag -> {recipient index: value}) than 2's and 3's."""
    load_campaign_side(
        root, resources, instance, people, partition_key=PK, quarantined=[0], opted_out=[1]
    )
    # The sample's preferences file holds the opt-out of recipient 1; Campaign's next export of
    # the same window adds everyone else's flags (a second file of the partition).
    base: dict[str, dict[int, str]] = {"blacklist_mobile": {2: "1"}, "blacklist": {3: "1"}}
    merged = {f: {**base.get(f, {}), **flags.get(f, {})} for f in {*base, *flags}}
    rows = preference_rows(people, **merged)
    drop_campaign_export(
        root, "preferences_20261123_0801.csv", sample.campaign_csv(PREFERENCES_FORMAT, rows)
    )
    assert materialize(
        [preferences_defs.assets[0]], partition_key=PK, resources=resources, instance=instance
    ).success
    assert materialize([suppression_list], resources=resources, instance=instance).success


def run_destinations(root, resources, instance, people, in_audience=None):
    """The audience holds every recipient, or only those of `in_audience`."""
    chosen = people if in_audience is None else [people[i] for i in in_audience]
    members = sample.audience_members(chosen, in_campaign=len(chosen))
    put(
        root,
        f"aep_destination/{FOLDER}",
        sample.export_files(members, destination=DEST, audience_id=AUD, when=T0),
    )
    (request,) = tick(resources, instance).run_requests
    instance.add_dynamic_partitions("audiences", [AUD])
    return request, rerun(resources, instance, request)


def rerun(resources, instance, request, audience=True):
    selection = [*destination_defs.assets, *destination_defs.asset_checks]
    if audience:
        selection = [*audience_defs.assets, *PARTITIONED_AUDIENCE_CHECKS, *selection]
    return materialize(
        selection,
        partition_key=request.partition_key,
        tags=request.tags,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def landed(root, destination: str) -> pd.DataFrame:
    folder = root / "aep_landing" / "destinations" / destination / AUD / STAMP
    return pd.read_csv(
        folder / f"{destination}_{AUD}_{STAMP}.csv", dtype=str, keep_default_na=False
    )


def env(tmp_path, **consents: ActivationConsentOptions):
    resources = embedded_resources(tmp_path)
    resources["settings"] = PipelineSettings(file_settle_seconds=0)
    resources["audience_settings"] = AudienceSettings(
        destination_folder=FOLDER, activation_consents=consents
    )
    return resources


def excluded_by_reason(run) -> dict:
    (event,) = [
        e
        for e in run.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "destination_exports"
    ]
    return event.materialization.metadata["excluded_by_reason"].value


@pytest.mark.parametrize("missing", ["exclude", "include"])
def test_opt_outs_quarantine_and_missing_consent_never_reach_a_file(tmp_path, missing):
    options = ActivationConsentOptions(missing_consent=missing)
    resources = env(tmp_path, email=options, sms=options, social_ads=options)
    instance = DagsterInstance.ephemeral()
    people = recipients()
    campaign_side(tmp_path, resources, instance, people)
    _, run = run_destinations(tmp_path, resources, instance, people)
    assert run.success
    missing_reason = {"missing_consent": 1} if missing == "exclude" else {}
    assert excluded_by_reason(run) == {
        # 0 quarantined address, 1 opted out of email (suppression list), 3 opted out of all
        "email": {"opted_out": 2, "quarantine": 1, **missing_reason},
        # 2 opted out of sms, 3 of everything; 1 opted out of email only
        "sms": {"opted_out": 2, **missing_reason},
        # the general marketing consent: only 3 said no; 0 and 1 are suppressed on email
        "social_ads": {"opted_out": 2, "quarantine": 1, **missing_reason},
    }
    kept = 1 if missing == "include" else 0
    assert len(landed(tmp_path, "email")) == N - 3 - 1 + kept
    assert len(landed(tmp_path, "sms")) == N - 2 - 1 + kept
    assert len(landed(tmp_path, "social_ads")) == N - 3 - 1 + kept
    emails = set(landed(tmp_path, "email")["email"])
    assert {people[i]["email"] for i in (0, 1, 3)}.isdisjoint(emails)
    assert (people[4]["email"] in emails) == (missing == "include")
    (check,) = [e for e in run.get_asset_check_evaluations() if e.check_name == "consent_respected"]
    assert check.passed and check.metadata["violations"].value == 0


def test_consent_check_finds_an_opted_out_member_slipped_into_a_file(tmp_path):
    resources = env(tmp_path)
    instance = DagsterInstance.ephemeral()
    people = recipients()
    campaign_side(tmp_path, resources, instance, people)
    _, run = run_destinations(tmp_path, resources, instance, people)
    assert run.success
    warehouse = resources["warehouse"]
    name = f"email_{AUD}_{STAMP}.csv"
    staged = warehouse.path("destination_exports", f"{AUD}/{STAMP}", name)
    data = warehouse.zone.read_bytes(staged)
    # the quarantined, the email opt-out, the global opt-out, the one without consent
    extra = "".join(f"{people[i]['email']}\n" for i in (0, 1, 3, 4)).encode()
    warehouse.zone.write_bytes(staged, data + extra)
    result = consent_respected_result(
        warehouse, instance, resources["audience_settings"], AUD, STAMP
    )
    assert not result.passed
    by_destination = result.metadata["destinations"].value
    assert by_destination["email"]["violations"] == {
        "missing_consent": 1,
        "opted_out": 2,
        "quarantine": 1,
    }
    assert by_destination["sms"]["violations"] == {}
    assert "@" not in str(result.metadata)  # counts only, never an address


def test_social_ads_consent_named_by_the_settings(tmp_path):
    # social_ads asks for the sms consent here: 2 and 3 said no; 1 and 4 have none.
    resources = env(tmp_path, social_ads=ActivationConsentOptions(consent="sms"))
    instance = DagsterInstance.ephemeral()
    people = recipients()
    campaign_side(tmp_path, resources, instance, people)
    _, run = run_destinations(tmp_path, resources, instance, people)
    assert run.success
    assert excluded_by_reason(run)["social_ads"] == {
        "missing_consent": 1,  # 4
        "opted_out": 3,  # 1 by the suppression list, 2 and 3 by their sms consent
        "quarantine": 1,
    }


def test_publication_waits_for_a_fresh_suppression_list(tmp_path):
    resources = env(tmp_path)
    instance = DagsterInstance.ephemeral()
    people = recipients()
    campaign_side(tmp_path, resources, instance, people)
    # A later window's preferences land after the list was built: recipient 5 opts out.
    later = [
        {**preference_rows(people)[3], "blacklist": "1", "last_modified": "2026-11-23 12:00:00"}
    ]
    assert later[0]["recipient_id"] == people[5]["recipient_id"]
    drop_campaign_export(
        tmp_path, "preferences_20261123_1200.csv", sample.campaign_csv(PREFERENCES_FORMAT, later)
    )
    assert materialize(
        [preferences_defs.assets[0]],
        partition_key="2026-11-23-12:00",
        resources=resources,
        instance=instance,
    ).success
    request, run = run_destinations(tmp_path, resources, instance, people)
    assert run.success  # waiting is not a failure
    materialized = {e.asset_key.to_user_string() for e in run.get_asset_materialization_events()}
    assert "destination_exports_published" not in materialized
    assert not (tmp_path / "aep_landing" / "destinations").exists()
    (waiting,) = [
        e.asset_observation_data.asset_observation
        for e in run.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]
    reason = waiting.metadata["waiting"].value
    assert "older than the newest preferences partition" in reason
    assert waiting.metadata["suppression_list_stale"].value is True

    # The list is rebuilt (the daemon's automation does it): the re-run publishes, without 5.
    assert materialize([suppression_list], resources=resources, instance=instance).success
    again = rerun(resources, instance, request, audience=False)
    assert again.success
    assert len(landed(tmp_path, "email")) == N - 5  # 0, 1, 3, 4 and now 5
    assert people[5]["email"] not in set(landed(tmp_path, "email")["email"])
    (age,) = [
        e for e in again.get_asset_check_evaluations() if e.check_name == "suppression_list_age"
    ]
    assert age.passed
    assert age.metadata["suppression_list_stale"].value is False
    assert age.metadata["suppression_list_age_seconds"].value >= 0
