"""AEP audience exports end to end over the real services, no mocks.

Azurite holds the AEP destination container (where AEP writes audience exports) and the
warehouse; the real OpenSSH sshd is the Campaign SFTP server, where the Campaign exports come
from (profiles, non-deliverables, preferences) and where the Campaign import file goes.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from dagster import DagsterInstance, SensorResult, materialize

from asset_checks.aep_to_campaign.wiring import audience_defs
from resources import FileLedger, PipelineSettings, Warehouse
from resources.audience_settings import (
    ActivationConsentOptions,
    AepDestinationOptions,
    AudienceSettings,
)
from rtcdp_assets.aep_to_campaign.destinations.membership_ledger import latest_ledger
from rtcdp_assets.campaign_to_aep.non_deliverables import non_deliverables_defs, suppression_list
from rtcdp_assets.campaign_to_aep.preferences import PREFERENCES_FORMAT, preferences_defs
from rtcdp_assets.campaign_to_aep.profiles import profiles_defs
from rtcdp_dev import sample_audiences as sample
from tests.aep_to_campaign import test_destination_consent as consent_side
from tests.aep_to_campaign.campaign_side import run_audience_export
from tests.runs import evaluate_sensor
from tests.zones import blob_zone, sftp_zone

pytestmark = pytest.mark.integration

AUD = "ce5c5482-2813-4a80-99bc-57113f6acde2"
DEST = "Azure_Blob"
FOLDER = "aep/exports"
PK = "2026-11-23-08:00"
T0 = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)
STAMP = "20261123_080000"
SENSOR = audience_defs.sensors[0]
QUARANTINED = range(0, 60)
OPTED_OUT = range(60, 120)


@pytest.fixture
def services(sshd, azurite, tmp_path):
    sftp = sftp_zone(sshd)
    resources = {
        "campaign_sftp": sftp,
        "file_ledger": FileLedger(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}"),
        "aep_destination": blob_zone(azurite),
        "aep_landing": blob_zone(azurite),
        "warehouse": Warehouse(zone=blob_zone(azurite)),
        "settings": PipelineSettings(file_settle_seconds=0, campaign_export_completion="rename"),
        "audience_settings": AudienceSettings(
            destination_folder=FOLDER,
            destinations={
                DEST: AepDestinationOptions(
                    export_mode="incremental", manifest_required=True, rows_per_file=1500
                )
            },
            audience_names={AUD: "Loyal buyers"},
        ),
    }
    yield resources
    sftp.close()


def tick(resources, instance, cursor=None):
    result = evaluate_sensor(SENSOR, resources, instance, cursor)
    assert isinstance(result, SensorResult)
    return result


def upload(resources, files):
    for name, data in files.items():
        resources["aep_destination"].write_bytes(f"{FOLDER}/{name}", data)


run_export = run_audience_export


def import_rows(sftp, stamp):
    names = sorted(e.name for e in sftp.list("import") if e.name.endswith(".csv"))
    mine = [n for n in names if stamp in n]
    frames = [
        pd.read_csv(io.BytesIO(sftp.read_bytes(f"import/{n}")), dtype=str, keep_default_na=False)
        for n in mine
    ]
    return pd.concat(frames, ignore_index=True), mine


def test_blob_export_becomes_the_campaign_import_on_sftp_and_reruns_identically(services):
    sftp, warehouse = services["campaign_sftp"], services["warehouse"]
    instance = DagsterInstance.ephemeral()

    # The Campaign side, through the existing flows: profiles, quarantine, opt-outs.
    recipients = sample.campaign_recipients(3000)
    for name, data in sample.campaign_exports(
        recipients, quarantined=QUARANTINED, opted_out=OPTED_OUT
    ).items():
        sftp.write_bytes(f"export/{name}", data)
    for defs in (profiles_defs, non_deliverables_defs, preferences_defs):
        assert materialize(
            [defs.assets[0]], partition_key=PK, resources=services, instance=instance
        ).success
    assert materialize([suppression_list], resources=services, instance=instance).success

    # AEP writes the backfill of an incremental export in two parts, then the manifest.
    members = sample.audience_members(
        recipients, in_campaign=2400, not_in_campaign=150, without_identity=30
    )
    files = sample.export_files(
        members, destination=DEST, audience_id=AUD, when=T0, rows_per_file=1500, compress=True
    )
    assert len(files) == 2
    upload(services, files)
    waiting = tick(services, instance)
    assert not waiting.run_requests
    assert "waiting for the manifest" in waiting.skip_reason.skip_message
    upload(services, dict([sample.manifest(files)]))
    ready = tick(services, instance, waiting.cursor)
    (request,) = ready.run_requests
    assert [r.partition_keys for r in ready.dynamic_partitions_requests] == [[AUD]]
    instance.add_dynamic_partitions("audiences", [AUD])

    run = run_export(services, instance, request)
    assert run.success
    checks = {e.check_name: e for e in run.get_asset_check_evaluations()}
    assert all(c.passed for c in checks.values()), {k: c.metadata for k, c in checks.items()}

    by_external = {r["external_id"]: r for r in recipients}
    suppressed = {recipients[i]["external_id"] for i in (*QUARANTINED, *OPTED_OUT)}
    in_campaign = [m for m in members if m.in_campaign]
    expected = sorted(
        by_external[m.external_id]["recipient_id"]
        for m in in_campaign
        if m.external_id not in suppressed
    )
    imported, names = import_rows(sftp, STAMP)
    assert names == [f"aep_audience_{AUD}_{STAMP}.csv"]
    assert sorted(imported["recipient_id"]) == expected
    assert (
        imported["email"] == imported["external_id"].map(lambda e: by_external[e]["email"])
    ).all()
    assert set(imported["membership_status"]) == {"realized"}
    assert set(imported["audience_name"]) == {"Loyal buyers"}

    # Everyone else is accounted for, with the expected reason.
    base = f"{AUD}/{STAMP}"
    quarantine = warehouse.read_table("campaign_audience_import", base, "quarantine.parquet")
    assert sorted(quarantine.column("reason").to_pylist()) == ["not_in_campaign"] * 150
    assert not set(quarantine.column("external_id").to_pylist()) & set(by_external)
    excluded = warehouse.read_table(
        "campaign_audience_import", base, "excluded.parquet"
    ).to_pylist()
    want_excluded = {
        by_external[m.external_id]["recipient_id"]: (
            "quarantine"
            if recipients.index(by_external[m.external_id]) in QUARANTINED
            else "opted_out"
        )
        for m in in_campaign
        if m.external_id in suppressed
    }
    assert {r["recipient_id"]: r["reason"] for r in excluded} == want_excluded
    rejects = warehouse.read_table("segment_exports", base, "rejects.parquet")
    assert rejects.column("reason").to_pylist() == ["missing_required_value"] * 30
    reconciliation = warehouse.get_json("campaign_audience_import", base, "manifest.json")[
        "reconciliation"
    ]
    assert reconciliation["balanced"] and reconciliation["rows_in"] == len(members)

    # The completion marker names the file, its row count and its SHA-256.
    name = names[0]
    data = sftp.read_bytes(f"import/{name}")
    marker = json.loads(sftp.read_bytes(f"import/{name}.done"))
    assert marker["rows"] == len(expected) and marker["parts"] == 1
    assert marker["sha256"] == hashlib.sha256(data).hexdigest()

    # A re-run of the same export writes the same bytes.
    assert run_export(services, instance, request).success
    assert sftp.read_bytes(f"import/{name}") == data
    assert json.loads(sftp.read_bytes(f"import/{name}.done")) == marker

    # Twelve hours later an incremental export: 200 members left, 40 joined.
    leaving = [m for m in in_campaign if m.external_id not in suppressed][:200]
    current = {m.external_id for m in members if m.external_id}
    joiners = [r for r in recipients[120:] if r["external_id"] not in current][:40]
    later = T0 + timedelta(hours=12)
    delta = [
        sample.AudienceMember(
            m.external_id, m.email, m.first_name, m.last_name, "exited", later, True
        )
        for m in leaving
    ] + [
        sample.AudienceMember(
            r["external_id"], r["email"], r["first_name"], r["last_name"], "realized", later, True
        )
        for r in joiners
    ]
    files2 = sample.export_files(delta, destination=DEST, audience_id=AUD, when=later)
    upload(services, files2)
    upload(
        services,
        dict([sample.manifest(files2, flow_run_id="1bd9f4d1-aaaa-4bbb-8ccc-0123456789ab")]),
    )
    (request2,) = tick(services, instance, ready.cursor).run_requests
    assert run_export(services, instance, request2).success
    second, _ = import_rows(sftp, "20261123_200000")
    status = second.groupby("membership_status")["recipient_id"].apply(set).to_dict()
    assert status["exited"] == {by_external[m.external_id]["recipient_id"] for m in leaving}
    assert status["realized"] == {r["recipient_id"] for r in joiners}
    assert len(status["existing"]) == len(expected) - 200
    diff = warehouse.read_table("audience_membership", f"{AUD}/20261123_200000", "diff.parquet")
    counts = pd.Series(diff.column("change").to_pylist()).value_counts().to_dict()
    assert counts["removed"] == 200 and counts["added"] == 40


def test_incomplete_split_export_waits_until_every_part_matches(services):
    instance = DagsterInstance.ephemeral()
    members = sample.audience_members(sample.campaign_recipients(100), in_campaign=80)
    files = sample.export_files(
        members, destination=DEST, audience_id=AUD, when=T0, rows_per_file=30
    )
    names = sorted(files)  # .csv, _2.csv, _3.csv
    manifest_name, manifest_data = sample.manifest(files)
    upload(services, {names[0]: files[names[0]], names[2]: files[names[2]]})
    upload(services, {manifest_name: manifest_data})
    first = tick(services, instance)
    assert not first.run_requests
    assert "waiting for split file(s) _2" in first.skip_reason.skip_message
    # the files that wait are in the file ledger, with why
    waiting = {r.version.name: r for r in services["file_ledger"].rows("segment_exports")}
    assert sorted(waiting) == [names[0], names[2]]
    assert {r.status for r in waiting.values()} == {"pending"}
    assert all("waiting for split file(s) _2" in (r.reason or "") for r in waiting.values())
    # _2 arrives cut short: its size disagrees with the manifest
    upload(services, {names[1]: files[names[1]][:-10]})
    second = tick(services, instance, first.cursor)
    assert not second.run_requests
    assert f"{names[1]} is {len(files[names[1]]) - 10} bytes" in second.skip_reason.skip_message
    upload(services, {names[1]: files[names[1]]})
    third = tick(services, instance, second.cursor)
    (request,) = third.run_requests
    assert [f["name"] for f in json.loads(request.tags["rtcdp/export_files"])] == names
    etags = {f["etag"] for f in json.loads(request.tags["rtcdp/export_files"])}
    assert len(etags) == 3 and all(etags)  # Blob ETags, not sizes


def test_destination_files_on_azurite_honour_suppression_consent_and_freshness(services):
    """Campaign exports uploaded to sshd, the audience export and the landing zone on Azurite:
    the quarantined address, the opted-out members and the member without a consent never
    reach a file (email excludes a missing consent, sms includes it), and publication waits
    while a later preferences partition is newer than the suppression list."""
    sftp, landing = services["campaign_sftp"], services["aep_landing"]
    services["audience_settings"] = AudienceSettings(
        destination_folder=FOLDER,
        destinations={DEST: AepDestinationOptions(manifest_required=True)},
        activation_consents={"sms": ActivationConsentOptions(missing_consent="include")},
    )
    instance = DagsterInstance.ephemeral()
    people = consent_side.recipients()
    exports = sample.campaign_exports(people, quarantined=[0], opted_out=[1])
    rows = consent_side.preference_rows(people, blacklist_mobile={2: "1"}, blacklist={3: "1"})
    exports["preferences_20261123_0801.csv"] = sample.campaign_csv(PREFERENCES_FORMAT, rows)
    for name, data in exports.items():
        sftp.write_bytes(f"export/{name}", data)
    for defs in (profiles_defs, non_deliverables_defs, preferences_defs):
        assert materialize(
            [defs.assets[0]], partition_key=PK, resources=services, instance=instance
        ).success
    # A later window's preferences arrive before the list is rebuilt: recipient 5 opts out.
    later = [{**rows[3], "blacklist": "1", "last_modified": "2026-11-23 12:00:00"}]
    sftp.write_bytes(
        "export/preferences_20261123_1200.csv", sample.campaign_csv(PREFERENCES_FORMAT, later)
    )
    assert materialize([suppression_list], resources=services, instance=instance).success
    assert materialize(
        [preferences_defs.assets[0]],
        partition_key="2026-11-23-12:00",
        resources=services,
        instance=instance,
    ).success

    # The ad platform already holds one member added elsewhere (its listing, in the warehouse
    # on Azurite): it stays in the replacement file and never enters our ledger.
    foreign = hashlib.sha256(b"someone.else@partner.example").hexdigest()
    services["warehouse"].zone.write_bytes(
        f"destination_state/social_ads/{AUD}/members.csv",
        f"email_lc_sha256,phone_sha256_e164\n{foreign},\n".encode(),
    )
    members = sample.audience_members(people, in_campaign=consent_side.N)
    files = sample.export_files(members, destination=DEST, audience_id=AUD, when=T0)
    upload(services, files)
    upload(services, dict([sample.manifest(files)]))
    (request,) = tick(services, instance).run_requests
    instance.add_dynamic_partitions("audiences", [AUD])
    waiting = consent_side.rerun(services, instance, request)
    assert waiting.success
    published = {e.asset_key.to_user_string() for e in waiting.get_asset_materialization_events()}
    assert "destination_exports_published" not in published
    assert not landing.list(f"destinations/email/{AUD}/{STAMP}")

    assert materialize([suppression_list], resources=services, instance=instance).success
    run = consent_side.rerun(services, instance, request, audience=False)
    assert run.success
    assert consent_side.excluded_by_reason(run) == {
        "email": {"missing_consent": 1, "opted_out": 3, "quarantine": 1},  # 4 | 1, 3, 5 | 0
        "sms": {"opted_out": 3},  # 2, 3, 5; 4 included
        "social_ads": {"missing_consent": 1, "opted_out": 3, "quarantine": 1},
    }
    counts = {}
    for destination in ("email", "sms", "social_ads"):
        (entry,) = [
            e
            for e in landing.list(f"destinations/{destination}/{AUD}/{STAMP}")
            if e.path.endswith(".csv")
        ]
        table = pd.read_csv(io.BytesIO(landing.read_bytes(entry.path)), dtype=str)
        counts[destination] = len(table)
    assert counts == {"email": 15, "sms": 17, "social_ads": 16}  # 15 ours + 1 foreign
    ledger = latest_ledger(services["warehouse"], "social_ads", AUD)
    assert ledger.num_rows == 15
    assert (
        hashlib.sha256(foreign.encode()).hexdigest() not in ledger.column("member_hash").to_pylist()
    )
    checks = {e.check_name: e for e in run.get_asset_check_evaluations()}
    assert checks["consent_respected"].passed
    assert checks["suppression_list_age"].passed
