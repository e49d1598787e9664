"""One row per identity value in each destination file (issue 22): two members sharing a phone
or an email are sent once, the smallest member key; the other is excluded as
`duplicate_identity`, in excluded.parquet, the metadata and the dry run, and never counted as
added by the ownership ledger.

The end-to-end case reuses the consent test's 20 Campaign recipients (0 quarantined, 1 opted out
of email, 2 of sms, 3 of everything, 4 without consent), with
- recipients 5 and 6 sharing one mobile phone, written "+33 6 12 34 56 78" and
  "0033 6.12.34.56.78" (the leading international 00 and dot separators normalise to the same
  E.164; a national "06…" has no country and is rejected as invalid_phone, never guessed);
- recipients 7 and 8 sharing one email differing only in case.

A shared value is sent only when no Campaign recipient holding it said "n" (exclusions.py
`consent_reasons`, the rule `consent_respected` checks): a family phone one of whose holders
opted out of sms is not texted, whoever of them is in the audience; and a member who never
gave a consent is not sent because another holder of the phone did.
"""

import hashlib

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import DagsterInstance

from asset_checks.aep_to_campaign.destination_checks import (
    duplicate_identity_values,
    unique_identities_result,
)
from resources.audience_settings import ActivationConsentOptions, AudienceSettings
from rtcdp_assets.aep_to_campaign.destinations.contracts import CONTRACTS_BY_NAME, apply_contract
from rtcdp_assets.aep_to_campaign.destinations.duplicates import drop_duplicate_identities
from rtcdp_assets.aep_to_campaign.destinations.exclusions import consent_reasons
from rtcdp_assets.aep_to_campaign.destinations.membership_ledger import (
    LEDGER_SCHEMA,
    plan_ownership,
)
from tests.aep_to_campaign.test_audience_exports import AUD
from tests.aep_to_campaign.test_destination_consent import (
    STAMP,
    campaign_side,
    env,
    excluded_by_reason,
    landed,
    recipients,
    rerun,
    run_destinations,
)

SMS = CONTRACTS_BY_NAME["sms"]
SOCIAL = CONTRACTS_BY_NAME["social_ads"]
PHONE = "+33612345678"


def sources(*rows: tuple[str, str, str | None]) -> pa.Table:
    return pa.table(
        {
            name: pa.array([row[i] for row in rows], pa.string())
            for i, name in enumerate(("key", "email", "mobile_phone"))
        }
    )


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_shared_identities_keep_the_smallest_key_and_exclude_the_others():
    members = sources(
        ("k3", "c@x.fr", "0033 6.12.34.56.78"),
        ("k1", "A@x.fr", "+33 6 12 34 56 78"),
        ("k2", " a@x.fr", "+33 7 00 00 00 01"),
        ("k4", "d@x.fr", "0612345678"),  # national form: rejected by the contract, no duplicate
    )
    sms = drop_duplicate_identities(SMS, members)
    assert sms.excluded.to_pylist() == [
        {"destination": "sms", "key": "k3", "reason": "duplicate_identity"}
    ]
    result = apply_contract(SMS, sms.sources)
    assert result.exported.column("phone_e164").to_pylist() == [PHONE, "+33700000001"]
    assert result.rejected_by_reason == {"invalid_phone": 1}
    social = drop_duplicate_identities(SOCIAL, members)
    # k2's email is k1's: excluded; k3 keeps its own email but not the phone k1 carries.
    assert social.excluded.column("key").to_pylist() == ["k2"]
    assert social.cleared == {"Phone_SHA256_E.164": 1}
    rows = apply_contract(SOCIAL, social.sources).exported.to_pylist()
    assert rows == [
        {"email_lc_sha256": sha("a@x.fr"), "phone_sha256_e164": sha(PHONE)},
        {"email_lc_sha256": sha("c@x.fr"), "phone_sha256_e164": ""},
    ]
    assert duplicate_identity_values(SOCIAL, apply_contract(SOCIAL, members).exported) == {
        "Email_LC_SHA256": 1,
        "Phone_SHA256_E.164": 1,
    }


def test_a_shared_phone_is_added_once_and_removed_only_when_nobody_carries_it():
    empty_state = pa.table({"phone_e164": pa.array([], pa.string())})

    def export(current: pa.Table, leavers: pa.Table, ledger: pa.Table, stamp: str):
        sent = apply_contract(SMS, drop_duplicate_identities(SMS, current).sources).exported
        gone = apply_contract(SMS, leavers).exported
        return plan_ownership(SMS, sent, ledger, empty_state, gone, stamp)

    both = sources(("k1", "a@x.fr", "+33 6 12 34 56 78"), ("k2", "b@x.fr", "0033612345678"))
    first = export(both, sources(), LEDGER_SCHEMA.empty_table(), "20261123_080500")
    assert first.counts()["added"] == 1 and first.ledger.num_rows == 1
    assert first.file_rows.num_rows == 1
    # The kept member leaves: the other still carries the phone, so it is neither removed nor
    # added again, and the ledger keeps the first export as the one that added it.
    second = export(both.slice(1), both.slice(0, 1), first.ledger, "20261123_200500")
    assert {k: second.counts()[k] for k in ("added", "removed", "not_ours")} == {
        "added": 0,
        "removed": 0,
        "not_ours": 0,
    }
    assert second.ledger.column("added_export").to_pylist() == ["20261123_080500"]
    third = export(both.slice(0, 0), both.slice(1), second.ledger, "20261124_080500")
    assert third.counts()["removed"] == 1 and third.ledger.num_rows == 0


def test_duplicates_are_excluded_shown_by_the_dry_run_and_a_rerun_is_identical(tmp_path):
    resources = env(tmp_path)
    instance = DagsterInstance.ephemeral()
    people = recipients()
    people[5]["mobile_phone"] = "+33 6 12 34 56 78"
    people[6]["mobile_phone"] = "0033 6.12.34.56.78"
    people[8]["email"] = people[7]["email"].replace("member", "Member").upper()
    campaign_side(tmp_path, resources, instance, people)
    request, run = run_destinations(tmp_path, resources, instance, people)
    assert run.success
    excluded = excluded_by_reason(run)
    assert excluded == {
        "email": {"duplicate_identity": 1, "missing_consent": 1, "opted_out": 2, "quarantine": 1},
        "sms": {"duplicate_identity": 1, "missing_consent": 1, "opted_out": 2},
        "social_ads": {
            "duplicate_identity": 1,
            "missing_consent": 1,
            "opted_out": 2,
            "quarantine": 1,
        },
    }
    sms = landed(tmp_path, "sms")["phone_e164"]
    assert len(sms) == 16 and sms.is_unique and list(sms).count(PHONE) == 1
    email = landed(tmp_path, "email")["email"]
    assert len(email) == 15 and email.is_unique
    assert people[7]["email"] in set(email)
    social = landed(tmp_path, "social_ads")
    assert len(social) == 15 and social["email_lc_sha256"].is_unique
    assert list(social["phone_sha256_e164"]).count(sha(PHONE)) == 1
    checks = {e.check_name: e for e in run.get_asset_check_evaluations()}
    assert checks["unique_identities"].passed
    assert checks["identity_contract"].passed  # written + rejected + excluded == members
    assert checks["consent_respected"].passed

    warehouse = resources["warehouse"]
    folder = f"{AUD}/{STAMP}"
    stored = warehouse.read_table("destination_exports", folder, "excluded.parquet")
    duplicates = stored.filter(pc.equal(stored.column("reason"), "duplicate_identity"))
    # The larger external ID of each pair (6 after 5, 8 after 7), per destination.
    assert sorted(duplicates.select(["destination", "key"]).to_pylist(), key=str) == sorted(
        [
            {"destination": "email", "key": people[8]["external_id"]},
            {"destination": "sms", "key": people[6]["external_id"]},
            {"destination": "social_ads", "key": people[8]["external_id"]},
        ],
        key=str,
    )
    manifest = warehouse.get_json("destination_exports", folder, "manifest.json")
    assert manifest["counts"]["social_ads"]["cleared_duplicates"] == {"Phone_SHA256_E.164": 1}
    assert manifest["counts"]["sms"]["ownership"]["added"] == 16
    with warehouse.local_copy("activation_dry_run", folder, "members.parquet") as local:
        dry_run = pq.read_table(local)
    shown = dry_run.filter(pc.equal(dry_run.column("reason"), "duplicate_identity"))
    assert sorted(shown.select(["destination", "key", "outcome"]).to_pylist(), key=str) == sorted(
        [
            {**d, "outcome": "excluded"}
            for d in duplicates.select(["destination", "key"]).to_pylist()
        ],
        key=str,
    )
    files = {
        name: warehouse.zone.read_bytes(warehouse.path("destination_exports", folder, name))
        for name in ("excluded.parquet", *(f"{d}_{AUD}_{STAMP}.csv" for d in excluded))
    }
    again = rerun(resources, instance, request)
    assert again.success
    for name, data in files.items():
        assert (
            warehouse.zone.read_bytes(warehouse.path("destination_exports", folder, name)) == data
        )
    assert unique_identities_result(warehouse, AUD, STAMP).metadata["duplicates"].value == 0


def test_a_shared_value_is_sent_only_when_no_recipient_holding_it_said_no(tmp_path):
    resources = env(tmp_path)
    instance = DagsterInstance.ephemeral()
    people = recipients()
    # A family phone: 5 (in the audience) consents to sms, 6 (not in it) opted out of sms.
    people[6]["mobile_phone"] = people[5]["mobile_phone"]
    # A family address: 7 (in the audience) consents to email, 8 (not in it) opted out of email;
    # 7's later preferences row is the address's latest, so the suppression list (latest state
    # per address) does not hold it: only the consent rule keeps 7 out.
    people[8]["email"] = people[7]["email"]
    # A phone shared by two consenting recipients, 9 in the audience: sent.
    people[10]["mobile_phone"] = people[9]["mobile_phone"]
    # 4 (in the audience) never gave a consent; 11 (not in it), holding the same phone, did:
    # consent is personal, so 4 stays out as missing_consent.
    people[11]["mobile_phone"] = people[4]["mobile_phone"]
    campaign_side(
        tmp_path,
        resources,
        instance,
        people,
        blacklist_mobile={6: "1"},
        blacklist_email={8: "1"},
        last_modified={7: "2026-11-23 08:30:00"},
    )
    audience = [i for i in range(len(people)) if i not in (6, 8, 10, 11)]
    _, run = run_destinations(tmp_path, resources, instance, people, in_audience=audience)
    assert run.success
    assert excluded_by_reason(run) == {
        # 0 quarantined; 1 and 3 opted out (suppression list), 7 by 8's "n"; 4 no consent
        "email": {"missing_consent": 1, "opted_out": 3, "quarantine": 1},
        # 2 and 3 opted out, 5 by 6's "n"; 4 no consent
        "sms": {"missing_consent": 1, "opted_out": 3},
        # the general consent: 8 said no to email only, so 7 is sent
        "social_ads": {"missing_consent": 1, "opted_out": 2, "quarantine": 1},
    }
    phone = {i: "+" + "".join(c for c in people[i]["mobile_phone"] if c.isdigit()) for i in (5, 9)}
    sms = landed(tmp_path, "sms")["phone_e164"]
    assert len(sms) == 16 - 4
    assert phone[5] not in set(sms) and list(sms).count(phone[9]) == 1
    email = landed(tmp_path, "email")["email"]
    assert len(email) == 16 - 5 and people[7]["email"] not in set(email)
    social = landed(tmp_path, "social_ads")["email_lc_sha256"]
    assert len(social) == 16 - 4 and sha(people[7]["email"]) in set(social)
    checks = {e.check_name: e for e in run.get_asset_check_evaluations()}
    assert checks["consent_respected"].passed
    assert checks["identity_contract"].passed

    warehouse = resources["warehouse"]
    folder = f"{AUD}/{STAMP}"
    stored = warehouse.read_table("destination_exports", folder, "excluded.parquet")
    key = {i: people[i]["external_id"] for i in (4, 5, 7, 9)}
    reasons = {(r["destination"], r["key"]): r["reason"] for r in stored.to_pylist()}
    assert reasons[("sms", key[5])] == "opted_out"
    assert reasons[("email", key[7])] == "opted_out"
    assert reasons[("sms", key[4])] == "missing_consent"
    assert ("social_ads", key[7]) not in reasons and ("sms", key[9]) not in reasons
    with warehouse.local_copy("activation_dry_run", folder, "members.parquet") as local:
        dry_run = pq.read_table(local).to_pylist()
    shown = {(r["destination"], r["key"]): (r["outcome"], r["reason"]) for r in dry_run}
    assert shown[("sms", key[5])] == ("excluded", "opted_out")
    assert shown[("email", key[7])] == ("excluded", "opted_out")
    assert shown[("sms", key[9])][0] == "added"


def test_the_consent_of_a_value_is_no_when_any_holder_said_no():
    people = pa.table(
        {
            "recipient_id": ["r1", "r2", "r3", "r4", "r5"],
            "email": ["a@x.fr", "a@x.fr", "b@x.fr", "b@x.fr", "c@x.fr"],
            "phone": [PHONE, PHONE, "+33700000001", "+33700000001", None],
        }
    )
    # r1 says no to sms and email, r2 yes; r3 has no preferences row, r4 yes; r5 an empty flag.
    preferences = pa.table(
        {
            "recipient_id": ["r1", "r2", "r4", "r5"],
            "blacklist": [False, False, False, False],
            "blacklist_email": [True, False, False, None],
            "blacklist_mobile": [True, False, False, None],
        }
    )
    phones = pa.array([PHONE, "+33700000001", "+33700000002", None], pa.string())
    settings = AudienceSettings()
    assert consent_reasons(SMS, phones, people, preferences, settings).to_pylist() == [
        "opted_out",  # r1's "n" wins over r2's "y"
        None,  # r3 unknown, r4 "y": the value has a known consent
        "missing_consent",  # nobody holds it
        None,  # no value: the contract rejects it
    ]
    lenient = AudienceSettings(
        activation_consents={"sms": ActivationConsentOptions(missing_consent="include")}
    )
    assert consent_reasons(SMS, phones, people, preferences, lenient).to_pylist() == [
        "opted_out",
        None,
        None,
        None,
    ]
    # social_ads: the file's form is the hash; the general consent ("any") is everyone's yes.
    hashes = pa.array([sha("a@x.fr"), sha("c@x.fr")], pa.string())
    assert consent_reasons(SOCIAL, hashes, people, preferences, settings).to_pylist() == [
        None,
        None,
    ]
    email = CONTRACTS_BY_NAME["email"]
    plain = pa.array(["a@x.fr", "c@x.fr"], pa.string())
    assert consent_reasons(email, plain, people, preferences, settings).to_pylist() == [
        "opted_out",
        "missing_consent",  # r5's empty email flag is not a consent
    ]
