"""Late suppression on the audience side, embedded default: a quarantine, an SMS denylist and an
opt-out arriving after an audience's Campaign import was uploaded and its destination files
written. The sensor asks once for the destination files and the still-waiting import (exact
row counts in the tags), the import is rebuilt without the suppressed members, and once
Campaign has taken the import only the destination files are asked for again."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime

import pandas as pd
import pytest
from dagster import DagsterInstance

from asset_checks.aep_to_campaign.wiring import audience_defs
from resources import PipelineSettings, embedded_resources
from resources.audience_settings import AepDestinationOptions, AudienceSettings
from rtcdp_assets.aep_to_campaign.late_suppression import plan_rebuilds
from rtcdp_assets.campaign_to_aep.non_deliverables import non_deliverables_defs
from rtcdp_assets.campaign_to_aep.preferences import preferences_defs
from rtcdp_assets.shared.late_suppression import REASON, TAG_AFFECTED, TAG_TRIGGER
from rtcdp_dev import sample_audiences as sample
from tests.aep_to_campaign.late_suppression_steps import (
    failed_checks,
    late_exports,
    load_campaign_partitions,
    recipients,
    run_audience_export,
    run_request,
    tick,
)
from tests.drop_files import drop_campaign_export
from tests.results import materialization
from tests.runs import evaluate_sensor

AUD = "ce5c5482-2813-4a80-99bc-57113f6acde2"
STAMP = "20261123_080500"
FOLDER = "exports"
DEST = "Azure_Blob"
T0 = datetime(2026, 11, 23, 8, 5, 0, tzinfo=UTC)
IMPORT_BASE = f"aep_audience_{AUD}_{STAMP}"


@pytest.fixture
def env(tmp_path):
    resources = embedded_resources(tmp_path)
    resources["settings"] = PipelineSettings(file_settle_seconds=0)
    resources["audience_settings"] = AudienceSettings(
        destination_folder=FOLDER,
        default_destination=AepDestinationOptions(rows_per_file=60),
        max_rows_per_file=1000,
    )
    return tmp_path, resources


def landing_rows(root, destination: str) -> pd.DataFrame:
    path = root / "aep_landing" / "destinations" / destination / AUD / STAMP
    data = (path / f"{destination}_{AUD}_{STAMP}.csv").read_bytes()
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)


def destination_rows_holding(root, emails: set[str], phones: set[str]) -> int:
    """Rows of the three published destination files carrying one of the addresses, computed
    here independently of the module."""
    email_hashes = {hashlib.sha256(e.encode()).hexdigest() for e in emails}
    phone_hashes = {hashlib.sha256(p.encode()).hexdigest() for p in phones}
    email, sms, social = (landing_rows(root, d) for d in ("email", "sms", "social_ads"))
    return (
        int(email["email"].isin(emails).sum())
        + int(sms["phone_e164"].isin(phones).sum())
        + int(
            (
                social["email_lc_sha256"].isin(email_hashes)
                | social["phone_sha256_e164"].isin(phone_hashes)
            ).sum()
        )
    )


def test_late_suppression_rebuilds_destination_files_and_the_waiting_import(env):
    root, resources = env
    instance = DagsterInstance.ephemeral()
    people = recipients(60)
    for name, data in sample.campaign_exports(
        people, consenting=range(len(people)), stamp="20261123_0800"
    ).items():
        drop_campaign_export(root, name, data)
    load_campaign_partitions(resources, instance, "2026-11-23-08:00")
    members = sample.audience_members(people, in_campaign=40, not_in_campaign=5, exited=3)
    files = sample.export_files(members, destination=DEST, audience_id=AUD, when=T0)
    for name, data in files.items():
        path = root / "aep_destination" / FOLDER / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (export_request,) = evaluate_sensor(audience_defs.sensors[0], resources, instance).run_requests
    instance.add_dynamic_partitions("audiences", [AUD])
    first = run_audience_export(resources, instance, export_request)
    assert first.success and failed_checks(first) == {}
    imported = pd.read_csv(root / "campaign_sftp" / "import" / f"{IMPORT_BASE}.csv", dtype=str)
    requests, cursor = tick(resources, instance, None)
    assert requests == []  # nothing suppressed yet

    # Late: an imported member's email quarantined, another one's opt-out, and an SMS
    # denylist of a third member's phone (in the sms and social_ads files, not the import).
    by_id = {p["external_id"]: (i, p) for i, p in enumerate(people)}
    current = [by_id[m.external_id] for m in members if m.in_campaign and m.status != "exited"]
    in_import = [(i, p) for i, p in current if p["recipient_id"] in set(imported["recipient_id"])]
    (_, quarantined), (_, opted_out) = in_import[0], in_import[1]
    with_phone = next(p for i, p in current[2:] if i % 3 == 0)
    drop = late_exports(
        "20261123_1200",
        quarantined_emails=[quarantined["email"]],
        denylisted_phones=[with_phone["mobile_phone"]],
        opted_out=[opted_out],
    )
    for name, data in drop.items():
        drop_campaign_export(root, name, data)
    load_campaign_partitions(
        resources, instance, "2026-11-23-12:00", (non_deliverables_defs, preferences_defs)
    )
    emails = {quarantined["email"], opted_out["email"]}
    phones = {with_phone["mobile_phone"].replace(" ", "")}
    expected_destination_rows = destination_rows_holding(root, emails, phones)
    assert expected_destination_rows >= 5  # 2 email + 1 sms + social rows of all three

    requests, cursor = tick(resources, instance, cursor)
    by_job = {r.job_name: r for r in requests}
    assert len(requests) == 2 and set(by_job) == {"destination_export_job", "audience_import_job"}
    destinations, rebuild = by_job["destination_export_job"], by_job["audience_import_job"]
    assert destinations.partition_key == rebuild.partition_key == AUD
    assert destinations.tags["rtcdp/export_time"] == rebuild.tags["rtcdp/export_time"] == STAMP
    assert destinations.tags[TAG_AFFECTED] == str(expected_destination_rows)
    assert rebuild.tags[TAG_AFFECTED] == "2"
    assert rebuild.tags[TAG_TRIGGER].startswith("suppression_list:")
    assert tick(resources, instance, cursor)[0] == []  # a re-tick asks for nothing again

    result = run_request(resources, instance, rebuild)
    assert result.success and failed_checks(result) == {}
    after = pd.read_csv(root / "campaign_sftp" / "import" / f"{IMPORT_BASE}.csv", dtype=str)
    assert len(after) == len(imported) - 2
    assert not set(after["email"]) & emails
    assert (root / "campaign_sftp" / "import" / f"{IMPORT_BASE}.csv.done").exists()
    meta = materialization(result, "campaign_audience_import").metadata
    assert meta["late_suppression"].value["reason"] == REASON
    assert meta["late_suppression"].value["affected"] == 2
    assert meta["excluded_by_reason"].value.get("opted_out") == 1
    assert meta["excluded_by_reason"].value.get("quarantine") == 1

    rebuilt = run_request(resources, instance, destinations)
    assert rebuilt.success and failed_checks(rebuilt) == {}
    meta = materialization(rebuilt, "destination_exports").metadata
    assert meta["export_stamp"].value == STAMP
    assert meta["late_suppression"].value["affected"] == expected_destination_rows
    # The rebuilt files, filtered by the suppression list and the consents, hold none of them.
    assert destination_rows_holding(root, emails, phones) == 0

    # The rebuilt import holds no suppressed address any more: it is not asked for again.
    warehouse, sftp = resources["warehouse"], resources["campaign_sftp"]
    plan = plan_rebuilds(instance, warehouse, sftp, [AUD])
    assert "campaign_audience_import" not in {p.asset for p in plan}

    # Campaign takes the import (its workflow moves the file and marker away); a later
    # opt-out asks for the destination files only.
    for name in (f"{IMPORT_BASE}.csv", f"{IMPORT_BASE}.csv.done"):
        (root / "campaign_sftp" / "import" / name).rename(root / "campaign_sftp" / name)
    _, another = in_import[2]
    for name, data in late_exports("20261123_1600", opted_out=[another]).items():
        drop_campaign_export(root, name, data)
    load_campaign_partitions(resources, instance, "2026-11-23-16:00", (preferences_defs,))
    requests, cursor = tick(resources, instance, cursor)
    assert [r.job_name for r in requests] == ["destination_export_job"]
    assert tick(resources, instance, cursor)[0] == []
