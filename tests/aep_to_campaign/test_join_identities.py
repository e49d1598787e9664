"""The join identities of AEP audience exports, on the embedded default: each export is joined
by the first of `join_identities` (external ID, email, phone) its columns carry, in either the
XDM path or the CSV form of the column; phone numbers are compared in E.164 on both sides; an
export carrying none is quarantined naming what was looked for.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pytest

from asset_checks.aep_to_campaign.wiring import audience_defs
from resources import PipelineSettings, production_resources
from resources.audience_settings import AepDestinationOptions, AudienceSettings
from rtcdp_assets.aep_to_campaign.audience_exports.join_identities import (
    choose_join_identity,
    normalise_keys,
)
from rtcdp_assets.shared.ingest import UnreadableFile
from rtcdp_dev import sample_audiences as sample
from tests.aep_to_campaign.campaign_side import load_campaign_side, run_audience_export
from tests.drop_files import write_settled
from tests.resources.test_zone_config import PRODUCTION
from tests.runs import evaluate_sensor

AUD = "ce5c5482-2813-4a80-99bc-57113f6acde2"
DEST = "Azure_Blob"
PK = "2026-11-23-08:00"
FOLDER = "exports"
SENSOR = audience_defs.sensors[0]
STATUS = f"segmentMembership_ups_{AUD}_status"
LOOKED_FOR = (
    "the export carries none of the join identities external_id (external_id); email "
    "(personalEmail.address or personalEmail_address); phone (mobilePhone.number or "
    "mobilePhone_number)"
)

# Campaign's mobile phones as people type them; the last one has no international prefix.
CAMPAIGN_PHONES = ["+33 6 12 34 56 01", "0033612345602", "+33-6-12-34-56-03", "06 12 34 56 04"]


# --------------------------------------------------------------------------------------------
# Choosing the identity
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "identities", "chosen"),
    [
        (["external_id", "personalEmail_address", "mobilePhone_number"], None, "external_id"),
        (["personalEmail_address", "mobilePhone_number"], None, "email"),
        (["personalEmail.address"], None, "email"),
        (["mobilePhone_number", "person_name_firstName"], None, "phone"),
        (["mobilePhone.number"], None, "phone"),
        (["external_id", "personalEmail_address"], ["email", "external_id"], "email"),
        (["external_id", "mobilePhone.number"], ["phone"], "phone"),
    ],
)
def test_the_first_identity_the_header_carries_is_chosen(header, identities, chosen):
    order = identities or AudienceSettings().join_identities
    assert choose_join_identity(header, AepDestinationOptions(), order) == chosen


def test_a_header_with_none_of_the_identities_names_what_was_looked_for():
    with pytest.raises(UnreadableFile) as raised:
        choose_join_identity(
            ["person_name_firstName", "crmId"],
            AepDestinationOptions(),
            ["external_id", "email", "phone"],
        )
    assert raised.value.reason == "unknown_layout"
    assert raised.value.detail == (f"{LOOKED_FOR}; its columns: person_name_firstName, crmId")


def test_phone_numbers_are_compared_in_e164():
    keys = normalise_keys(
        "phone",
        pa.array(
            [*CAMPAIGN_PHONES, "+1 (415) 555-0100", "612345", "+0612345678", None, "+33 6 12"]
        ),
    )
    assert keys.to_pylist() == [
        "+33612345601",
        "+33612345602",
        "+33612345603",
        None,  # national format: no country is guessed
        "+14155550100",
        None,
        None,
        None,
        None,  # too short for E.164 once the separators are gone
    ]
    emails = normalise_keys("email", pa.array([" Ann@Example.COM ", None]))
    assert emails.to_pylist() == ["ann@example.com", None]


def test_settings_accept_the_ordered_list_and_the_old_single_value(monkeypatch):
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RTCDP_AUDIENCE_JOIN_IDENTITIES", raising=False)
    monkeypatch.delenv("RTCDP_AUDIENCE_JOIN_IDENTITY", raising=False)
    default = production_resources()["audience_settings"].join_identities
    assert default == ["external_id", "email", "phone"]
    monkeypatch.setenv("RTCDP_AUDIENCE_JOIN_IDENTITY", "email")
    assert production_resources()["audience_settings"].join_identities == ["email"]
    monkeypatch.setenv("RTCDP_AUDIENCE_JOIN_IDENTITIES", "phone, email")
    assert production_resources()["audience_settings"].join_identities == ["phone", "email"]
    with pytest.raises(ValueError, match="join_identities must list each of"):
        AudienceSettings(join_identities=["external_id", "fax"])
    with pytest.raises(ValueError):
        AudienceSettings(join_identities=[])


# --------------------------------------------------------------------------------------------
# End to end: each identity and each fallback, with exact counts
# --------------------------------------------------------------------------------------------
@pytest.fixture
def env(embedded_env_with_instance):
    root, resources, instance = embedded_env_with_instance
    resources["settings"] = PipelineSettings(file_settle_seconds=0)
    resources["audience_settings"] = AudienceSettings(destination_folder=FOLDER)
    recipients = sample.campaign_recipients(30)
    for recipient, phone in zip(recipients, CAMPAIGN_PHONES, strict=False):
        recipient["mobile_phone"] = phone
    load_campaign_side(
        root, resources, instance, recipients, partition_key=PK, quarantined=[20], opted_out=[21]
    )
    return root, resources, instance, recipients


def _export(root, resources, instance, header: list[str], rows: list[list[str]], when: datetime):
    """One CSV export (no line end after the last row), the sensor's request and its run."""
    text = "\n".join(",".join(line) for line in [header, *rows])
    name = sample.export_file_name(DEST, AUD, when)
    write_settled(root / "aep_destination" / FOLDER / name, text, age_seconds=600)
    requests = evaluate_sensor(SENSOR, resources, instance).run_requests
    (request,) = [
        r for r in requests if r.tags["rtcdp/export_time"] == when.strftime("%Y%m%d_%H%M%S")
    ]
    instance.add_dynamic_partitions("audiences", [AUD])
    return run_audience_export(resources, instance, request)


def _outcome(root, resources, run, stamp: str):
    warehouse = resources["warehouse"]
    folder = f"{AUD}/{stamp}"
    record = warehouse.get_json("segment_exports", folder, "export.json")
    manifest = warehouse.get_json("campaign_audience_import", folder, "manifest.json")
    imported = pd.read_csv(
        root / "campaign_sftp" / "import" / f"aep_audience_{AUD}_{stamp}.csv",
        dtype=str,
        keep_default_na=False,
    )
    metadata = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in run.get_asset_materialization_events()
    }
    return record, manifest, imported, metadata


T1 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_an_export_with_email_but_no_external_id_is_joined_by_email(env):
    root, resources, instance, recipients = env
    # the XDM path form of the header; AEP's copy of an address may differ in case
    rows = [
        [r["email"].upper() if i % 2 else r["email"], "realized"]
        for i, r in enumerate(recipients[:10])
    ]
    rows += [[recipients[20]["email"], "realized"], [recipients[21]["email"], "existing"]]
    rows += [["someone@example.org", "realized"], ["not an address", "realized"], ["", "realized"]]
    run = _export(root, resources, instance, ["personalEmail.address", STATUS], rows, T1)
    assert run.success
    record, manifest, imported, metadata = _outcome(root, resources, run, "20261123_100000")
    assert record["join_identity"] == manifest["join_identity"] == "email"
    assert metadata["segment_exports"]["join_identity"].value == "email"
    assert metadata["audience_membership"]["join_identity"].value == "email"
    assert (record["rows_in"], record["rows_out"]) == (15, 13)
    assert record["reasons"] == {"invalid_email": 1, "missing_required_value": 1}
    assert sorted(imported["recipient_id"]) == sorted(r["recipient_id"] for r in recipients[:10])
    rec = manifest["reconciliation"]
    assert rec["balanced"] and rec["imported"] == 10
    assert rec["excluded"] == {"opted_out": 1, "quarantine": 1}
    assert rec["quarantined"] == {
        "invalid_email": 1,
        "missing_required_value": 1,
        "not_in_campaign": 1,
    }


def test_an_export_with_only_a_phone_is_joined_in_e164(env):
    root, resources, instance, recipients = env
    rows = [
        ["+33612345601", "realized"],  # Campaign: "+33 6 12 34 56 01"
        ["+33 6 12 34 56 02", "realized"],  # Campaign: "0033612345602"
        ["0033 6 12 34 56 03", "realized"],  # Campaign: "+33-6-12-34-56-03"
        ["+33612345604", "realized"],  # Campaign holds it without a country: no match
        ["+33699999999", "realized"],  # nobody in Campaign
        ["0612345601", "realized"],  # no international prefix: rejected
        ["", "realized"],
    ]
    run = _export(root, resources, instance, ["mobilePhone_number", STATUS], rows, T1)
    assert run.success
    record, manifest, imported, _ = _outcome(root, resources, run, "20261123_100000")
    assert record["join_identity"] == manifest["join_identity"] == "phone"
    assert (record["rows_in"], record["rows_out"], record["rows_rejected"]) == (7, 5, 2)
    assert record["reasons"] == {"invalid_phone": 1, "missing_required_value": 1}
    assert sorted(imported["recipient_id"]) == [r["recipient_id"] for r in recipients[:3]]
    assert list(imported["email"]) == [r["email"] for r in recipients[:3]]
    rec = manifest["reconciliation"]
    assert rec["balanced"] and rec["imported"] == 3
    assert rec["quarantined"] == {
        "invalid_phone": 1,
        "missing_required_value": 1,
        "not_in_campaign": 2,
    }
    rejects = resources["warehouse"].read_table(
        "segment_exports", f"{AUD}/20261123_100000", "rejects.parquet"
    )
    invalid = [r for r in rejects.to_pylist() if r["reason"] == "invalid_phone"]
    assert [(r["line_number"], r["column"]) for r in invalid] == [(7, "phone")]


def test_the_external_id_wins_when_the_export_carries_it(env):
    root, resources, instance, recipients = env
    header = ["personalEmail_address", "external_id", "mobilePhone.number", STATUS]
    # the emails point at other recipients: only the external ID may decide
    rows = [
        [recipients[i + 5]["email"], recipients[i]["external_id"], "", "realized"] for i in range(5)
    ]
    run = _export(root, resources, instance, header, rows, T1)
    assert run.success
    record, manifest, imported, _ = _outcome(root, resources, run, "20261123_100000")
    assert record["join_identity"] == manifest["join_identity"] == "external_id"
    assert sorted(imported["recipient_id"]) == [r["recipient_id"] for r in recipients[:5]]
    assert manifest["reconciliation"]["balanced"]


def test_the_configured_order_decides(env):
    root, resources, instance, recipients = env
    resources["audience_settings"] = AudienceSettings(
        destination_folder=FOLDER, join_identities=["email", "external_id"]
    )
    rows = [
        [recipients[i + 5]["email"], recipients[i]["external_id"], "realized"] for i in range(5)
    ]
    run = _export(
        root, resources, instance, ["personalEmail_address", "external_id", STATUS], rows, T1
    )
    assert run.success
    record, _, imported, _ = _outcome(root, resources, run, "20261123_100000")
    assert record["join_identity"] == "email"
    assert sorted(imported["recipient_id"]) == [r["recipient_id"] for r in recipients[5:10]]


def test_an_export_with_none_of_the_identities_is_quarantined_naming_them(env):
    root, resources, instance, recipients = env
    rows = [[r["first_name"].replace('"', ""), r["external_id"]] for r in recipients[:4]]
    run = _export(root, resources, instance, ["person_name_firstName", "crmId"], rows, T1)
    assert not run.success
    record = resources["warehouse"].get_json(
        "segment_exports", f"{AUD}/20261123_100000", "export.json"
    )
    assert record["status"] == "quarantined" and record["join_identity"] is None
    (reason,) = record["quarantine_reasons"]
    assert reason == (
        f"{sample.export_file_name(DEST, AUD, T1)}: unknown_layout: {LOOKED_FOR}; its columns: "
        "person_name_firstName, crmId"
    )
    checks = {e.check_name: e for e in run.get_asset_check_evaluations()}
    assert not checks["export_reconciliation"].passed
    materialized = {e.asset_key.to_user_string() for e in run.get_asset_materialization_events()}
    assert materialized == {"segment_exports"}


def test_an_export_joined_by_another_identity_than_the_membership_is_refused(env):
    root, resources, instance, recipients = env
    first = [[r["external_id"], r["email"], "realized"] for r in recipients[:5]]
    header = ["external_id", "personalEmail_address", STATUS]
    assert _export(root, resources, instance, header, first, T1).success
    later = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    second = [[r["email"], "realized"] for r in recipients[:5]]
    run = _export(root, resources, instance, ["personalEmail_address", STATUS], second, later)
    assert not run.success
    failure = next(
        e for e in run.all_events if e.event_type_value == "STEP_FAILURE"
    ).event_specific_data.error.message
    assert "is joined by email, the membership so far (export 20261123_100000) by external_id" in (
        failure
    )
