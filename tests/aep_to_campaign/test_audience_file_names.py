"""AEP audience export names as AEP has documented them (docs/formats.md §a1), the warnings for
names, manifests and part clashes that cannot be processed, and Adobe's own sample export
(`sample_export_file_segment<id>_<YYYYMMDDHHMMSS>.csv`, its columns, no line end after the last
row) through to the Campaign import file on the embedded default.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pandas as pd
import pytest
from dagster import SensorResult, materialize

from asset_checks.aep_to_campaign.wiring import audience_defs
from resources import PipelineSettings
from resources.audience_settings import AepDestinationOptions, AudienceSettings
from resources.drop_zones import Entry
from rtcdp_assets.aep_to_campaign.audience_exports.file_names import read_export_name
from rtcdp_assets.aep_to_campaign.audience_exports.tick_plan import plan_audience_tick
from rtcdp_dev import sample_audiences as sample
from tests.aep_to_campaign.campaign_side import (
    export_entry,
    load_campaign_side,
    run_audience_export,
)
from tests.drop_files import write_settled
from tests.runs import evaluate_sensor

SAMPLE_NAME = "sample_export_file_segment12341e18-abcd-49c2-836d-123c88e76c39_20200408061804.csv"
SAMPLE_AUD = "12341e18-abcd-49c2-836d-123c88e76c39"
AUD = "ce5c5482-2813-4a80-99bc-57113f6acde2"
DEST_ID = "7b891e5f-025a-4f0d-9e73-1919e71da3b0"
T0 = datetime(2026, 11, 23, 8, 5, 0, tzinfo=UTC)
PK = "2026-11-23-08:00"
FOLDER = "exports"
SENSOR = audience_defs.sensors[0]


# --------------------------------------------------------------------------------------------
# Every documented name form
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "destination", "audience", "stamp", "form", "part", "kind"),
    [
        # Adobe's sample export and the 2020 Campaign destination (AC-OLD, CSV-SAMPLE)
        (
            SAMPLE_NAME,
            "sample_export_file",
            SAMPLE_AUD,
            "20200408_061804",
            "YYYYMMDDHHMMSS",
            1,
            "csv",
        ),
        (
            f"Adobe_Campaign_segment{SAMPLE_AUD}_20200408061804.csv",
            "Adobe_Campaign",
            SAMPLE_AUD,
            "20200408_061804",
            "YYYYMMDDHHMMSS",
            1,
            "csv",
        ),
        # the old Campaign card's TAB_DELIMITED files
        (
            f"Adobe_Campaign_segment{SAMPLE_AUD}_20200408061804.txt",
            "Adobe_Campaign",
            SAMPLE_AUD,
            "20200408_061804",
            "YYYYMMDDHHMMSS",
            1,
            "csv",
        ),
        # the default name with each date/time form (ACT, BATCH-SDK)
        (
            f"Azure_Blob_{AUD}_20261123_080500.csv",
            "Azure_Blob",
            AUD,
            "20261123_080500",
            "YYYYMMDD_HHMMSS",
            1,
            "csv",
        ),
        (
            f"Azure_Blob_{AUD}_11232026_080500_2.csv.gz",
            "Azure_Blob",
            AUD,
            "20261123_080500",
            "MMDDYYYY_HHMMSS",
            2,
            "csv",
        ),
        (
            f"amazon-s3_{AUD}_1795421100.json",
            "amazon-s3",
            AUD,
            "20261123_080500",
            "unix",
            1,
            "json",
        ),
        # `segment` before the ID in a current name, upper-case ID and extension
        (
            f"SFTP_segment{AUD.upper()}_20261123_080500_3.CSV",
            "SFTP",
            AUD,
            "20261123_080500",
            "YYYYMMDD_HHMMSS",
            3,
            "csv",
        ),
        # every optional part in the UI's fixed order, custom text after the date/time
        (
            f"My_Dest_{AUD}_Loyal_Buyers_{DEST_ID}_Prod_Flow_Acme_prod_20261123_080500_"
            "weekly_2.parquet",
            "My_Dest",
            AUD,
            "20261123_080500",
            "YYYYMMDD_HHMMSS",
            2,
            "parquet",
        ),
        # a template that starts with the audience ID
        (f"{AUD}_1795421100_campaign.json.gz", "", AUD, "20261123_080500", "unix", 1, "json"),
    ],
)
def test_every_documented_name_form(name, destination, audience, stamp, form, part, kind):
    parsed = read_export_name(name)
    assert not isinstance(parsed, str), parsed
    assert (parsed.destination, parsed.audience_id, parsed.stamp) == (destination, audience, stamp)
    assert (parsed.stamp_form, parsed.part, parsed.kind) == (form, part, kind)
    assert parsed.export_id == f"{destination}_{audience}_{stamp}"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("sample_export_file_segment_20200408061804.csv", "no audience ID (UUID) in the name"),
        (
            f"sample_export_file_segment{SAMPLE_AUD}_20201308061804.csv",
            "timestamp 20201308061804 is not a valid date as YYYYMMDDHHMMSS (month must be in "
            "1..12)",
        ),
        (
            f"Azure_Blob_{AUD}_20201308_061804.csv",
            "timestamp 20201308_061804 is not a valid date as YYYYMMDD_HHMMSS (month must be in "
            "1..12)",
        ),
        (
            f"Azure_Blob_{AUD}_02302026_080500.csv",
            "timestamp 02302026_080500 is not a valid date as MMDDYYYY_HHMMSS (day is out of "
            "range for month)",
        ),
        (
            f"Azure_Blob_{AUD}.csv",
            "no date/time part (YYYYMMDD_HHMMSS, MMDDYYYY_HHMMSS, YYYYMMDDHHMMSS or a 10-digit "
            "Unix time) after the audience ID",
        ),
        (
            f"Azure_Blob_{AUD}_20261123_080500.xlsx",
            "extension .xlsx is not one of .csv, .csv.gz, .txt, .json, .json.gz, .parquet",
        ),
    ],
)
def test_a_name_that_fails_says_which_part(name, problem):
    assert read_export_name(name) == problem


def _entry(name: str, size: int = 100, age: float = 600, now: float | None = None) -> Entry:
    return export_entry(FOLDER, name, size, age, now)


def test_names_that_fail_are_warnings_naming_the_part_hidden_and_temporary_are_silent():
    now = time.time()
    bad = f"Azure_Blob_{AUD}_20201308_061804.csv"
    entries = [
        _entry(n, now=now)
        for n in (bad, "readme.md", f".{SAMPLE_NAME}", f"{SAMPLE_NAME}.part", SAMPLE_NAME)
    ]
    plan = plan_audience_tick(
        entries, None, now, AudienceSettings(destination_folder=FOLDER), 0, set(), lambda e: b""
    )
    assert [r.partition_key for r in plan.run_requests] == [SAMPLE_AUD]
    assert len(plan.warnings) == 2
    assert plan.warnings[0].startswith(
        f"{bad}: left alone, not an AEP audience export name: timestamp 20201308_061804 is not "
        "a valid date as YYYYMMDD_HHMMSS"
    )
    assert plan.warnings[1].startswith(
        "readme.md: left alone, not an AEP audience export name: extension .md is not one of"
    )
    assert not any("part" in n or n.startswith(".") for n in plan.notes)


def test_two_files_naming_one_part_make_the_export_wait_with_a_warning():
    now = time.time()
    first, clash = f"D_{AUD}_20261123_080500.csv", f"D_{AUD}_20261123_080500_1.csv"
    plan = plan_audience_tick(
        [_entry(first, now=now), _entry(clash, now=now)],
        None,
        now,
        AudienceSettings(destination_folder=FOLDER),
        0,
        set(),
        lambda e: b"",
    )
    assert not plan.run_requests and plan.waiting == 1
    (warning,) = plan.warnings
    assert warning == (
        f"D_{AUD}_20261123_080500: two files name the same part of one export ({clash} claims "
        f"part 1, held by {first}); remove one"
    )


# --------------------------------------------------------------------------------------------
# The sensor: warnings in its log, waiting files and manifests in the file ledger
# --------------------------------------------------------------------------------------------
@pytest.fixture
def env(embedded_env_with_instance):
    root, resources, instance = embedded_env_with_instance
    resources["settings"] = PipelineSettings(file_settle_seconds=0)
    resources["audience_settings"] = AudienceSettings(destination_folder=FOLDER)
    return root, resources, instance


def _drop(root, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        write_settled(root / "aep_destination" / FOLDER / name, data, age_seconds=600)


class _SensorLog:
    """The sensor's log lines at WARNING, as Dagster's console logger writes them to stderr."""

    def __init__(self, capfd: pytest.CaptureFixture[str]) -> None:
        self._capfd = capfd

    def warnings(self) -> list[str]:
        err = self._capfd.readouterr().err
        marker = " - dagster - WARNING - "
        return [line.split(marker, 1)[1] for line in err.splitlines() if marker in line]


@pytest.fixture
def dagster_log(capfd):
    return _SensorLog(capfd)


def _ledger(resources) -> dict[str, tuple[str, str | None]]:
    return {
        r.version.name: (r.status, r.reason)
        for r in resources["file_ledger"].rows("segment_exports")
    }


def test_sensor_warns_about_a_bad_name_in_its_log(env, dagster_log):
    root, resources, instance = env
    bad = f"sample_export_file_segment{SAMPLE_AUD}_20201308061804.csv"
    _drop(root, {bad: b"personalEmail_address\na@example.com"})
    result = evaluate_sensor(SENSOR, resources, instance)
    assert isinstance(result, SensorResult) and not result.run_requests
    (warned,) = dagster_log.warnings()
    assert warned.startswith(
        f"{bad}: left alone, not an AEP audience export name: timestamp 20201308061804 is not a "
        "valid date as YYYYMMDDHHMMSS (month must be in 1..12)"
    )
    assert bad in result.skip_reason.skip_message
    assert _ledger(resources) == {}  # a name that is no export is not a file of the dataset


def test_a_manifest_listing_a_missing_part_is_warned_and_in_the_ledger(env, dagster_log):
    root, resources, instance = env
    members = sample.audience_members(sample.campaign_recipients(30), in_campaign=20)
    files = sample.export_files(
        members, destination="Azure_Blob", audience_id=AUD, when=T0, rows_per_file=15
    )
    first, second = sorted(files)
    manifest_name, manifest_data = sample.manifest(files)
    _drop(root, {first: files[first], manifest_name: manifest_data})
    resources["audience_settings"] = AudienceSettings(
        destination_folder=FOLDER, default_destination=AepDestinationOptions(rows_per_file=15)
    )
    waiting = evaluate_sensor(SENSOR, resources, instance)
    assert not waiting.run_requests
    reason = f"waiting for {second}: listed in {manifest_name} but not in the folder"
    (warned,) = dagster_log.warnings()
    assert warned.endswith(f"Azure_Blob_{AUD}_20261123_080500: {reason}")
    assert _ledger(resources) == {first: ("pending", reason)}

    # the part arrives: the run is requested, and processing it settles the ledger
    _drop(root, {second: files[second]})
    ready = evaluate_sensor(SENSOR, resources, instance, waiting.cursor)
    (request,) = ready.run_requests
    instance.add_dynamic_partitions("audiences", [AUD])
    assert materialize(
        [audience_defs.assets[0]],
        partition_key=AUD,
        tags=request.tags,
        resources=resources,
        instance=instance,
    ).success
    assert _ledger(resources) == {first: ("processed", None), second: ("processed", None)}


def test_a_manifest_whose_files_are_all_missing_is_warned_and_in_the_ledger(env):
    root, resources, instance = env
    members = sample.audience_members(sample.campaign_recipients(30), in_campaign=12)
    files = sample.export_files(members, destination="Azure_Blob", audience_id=AUD, when=T0)
    (name,) = files
    manifest_name, manifest_data = sample.manifest(files)
    _drop(root, {manifest_name: manifest_data})

    first = evaluate_sensor(SENSOR, resources, instance)
    said = f"{manifest_name} lists {name}, not in the folder"
    assert not first.run_requests and said in first.skip_reason.skip_message
    assert _ledger(resources) == {manifest_name: ("pending", said)}
    again = evaluate_sensor(SENSOR, resources, instance, first.cursor)
    assert said in again.skip_reason.skip_message  # still said, not written twice
    assert _ledger(resources) == {manifest_name: ("pending", said)}

    _drop(root, {name: files[name]})
    ready = evaluate_sensor(SENSOR, resources, instance, again.cursor)
    assert [r.partition_key for r in ready.run_requests] == [AUD]
    assert _ledger(resources) == {manifest_name: ("processed", None)}


def test_a_waiting_file_that_leaves_the_folder_unread_stays_pending_and_is_marked_gone(env):
    root, resources, instance = env
    members = sample.audience_members(sample.campaign_recipients(30), in_campaign=20)
    files = sample.export_files(
        members, destination="Azure_Blob", audience_id=AUD, when=T0, rows_per_file=15
    )
    first, second = sorted(files)
    manifest_name, manifest_data = sample.manifest(files)
    _drop(root, {first: files[first], manifest_name: manifest_data})
    waiting = evaluate_sensor(SENSOR, resources, instance)
    (root / "aep_destination" / FOLDER / first).unlink()
    gone = evaluate_sensor(SENSOR, resources, instance, waiting.cursor)
    rows = {r.version.name: r for r in resources["file_ledger"].rows("segment_exports")}
    row = rows[first]
    assert (row.status, row.in_folder) == ("pending", False)
    assert row.reason == f"waiting for {second}: listed in {manifest_name} but not in the folder"
    # the manifest now lists two files that are nowhere: said, and in the ledger
    said = f"{manifest_name} lists {first}, {second}, not in the folder"
    assert said in gone.skip_reason.skip_message
    assert (rows[manifest_name].status, rows[manifest_name].reason) == ("pending", said)


# --------------------------------------------------------------------------------------------
# Adobe's sample export, end to end
# --------------------------------------------------------------------------------------------
SAMPLE_HEADER = (
    "person_name_firstName,person_name_lastName,person_gender,person_birthYear,"
    "personalEmail_address"
)


def _sample_rows(recipients, status_header: str | None) -> tuple[bytes, dict[str, str]]:
    """A file shaped like Adobe's sample: its header (plus a status column when given), no
    quoting, no line end after the last row. Returns the bytes and email -> expected fate."""
    lines = [SAMPLE_HEADER + (f",{status_header}" if status_header else "")]
    fate: dict[str, str] = {}
    for i, r in enumerate(recipients[:12]):
        # AEP's copy of the address may differ in case from Campaign's
        email = r["email"].upper() if i % 4 == 0 else r["email"]
        status = "exited" if i == 11 else ("existing" if i % 3 == 0 else "realized")
        row = f"Ann,Lee,female,198{i % 10},{email}"
        lines.append(row + (f",{status}" if status_header else ""))
        fate[r["email"]] = (
            "suppressed"
            if i < 2
            else ("exited_non_member" if status_header and i == 11 else "imported")
        )
    for i in range(3):
        lines.append(
            f"Pat,Doe,male,1990,prospect{i}@example.org" + (",realized" if status_header else "")
        )
        fate[f"prospect{i}@example.org"] = "not_in_campaign"
    lines.append("Sam,Roe,unknown,1991," + (",realized" if status_header else ""))
    return "\n".join(lines).encode(), fate


@pytest.mark.parametrize(
    "status_header",
    [
        None,
        f"segmentMembership_ups_{SAMPLE_AUD}_status",
        f"segmentMembership.ups.{SAMPLE_AUD}.status",
        "segmentMembershipStatus",
    ],
)
def test_adobe_sample_export_becomes_the_campaign_import(env, status_header):
    root, resources, instance = env
    recipients = sample.campaign_recipients(40)
    load_campaign_side(
        root, resources, instance, recipients, partition_key=PK, quarantined=[0], opted_out=[1]
    )
    data, fate = _sample_rows(recipients, status_header)
    assert not data.endswith(b"\n")
    _drop(root, {SAMPLE_NAME: data})

    tick = evaluate_sensor(SENSOR, resources, instance)
    (request,) = tick.run_requests
    assert request.partition_key == SAMPLE_AUD
    assert request.tags["rtcdp/export_time"] == "20200408_061804"
    instance.add_dynamic_partitions("audiences", [SAMPLE_AUD])
    run = run_audience_export(resources, instance, request)
    assert run.success
    checks = {e.check_name: e for e in run.get_asset_check_evaluations()}
    blocking = (
        "export_reconciliation",
        "source_of_truth",
        "suppression",
        "import_reconciliation",
    )
    assert all(checks[c].passed for c in blocking), {c: checks[c].metadata for c in blocking}

    by_email = {r["email"]: r for r in recipients}
    imported = pd.read_csv(
        root / "campaign_sftp" / "import" / f"aep_audience_{SAMPLE_AUD}_20200408_061804.csv",
        dtype=str,
        keep_default_na=False,
    )
    want = sorted(by_email[e]["recipient_id"] for e, f in fate.items() if f == "imported")
    assert sorted(imported["recipient_id"]) == want and len(want) == (9 if status_header else 10)
    assert set(imported["email"]) == {
        by_email[e]["email"] for e, f in fate.items() if f == "imported"
    }
    assert set(imported["membership_status"]) == {"realized"}  # a first export: all entered

    warehouse = resources["warehouse"]
    folder = f"{SAMPLE_AUD}/20200408_061804"
    record = warehouse.get_json("segment_exports", folder, "export.json")
    assert record["join_identity"] == "email"
    assert (record["rows_in"], record["rows_out"], record["reasons"]) == (
        16,
        15,
        {"missing_required_value": 1},
    )
    manifest = warehouse.get_json("campaign_audience_import", folder, "manifest.json")
    assert manifest["join_identity"] == "email"
    rec = manifest["reconciliation"]
    assert rec["balanced"] and rec["rows_in"] == 16
    assert rec["quarantined"] == {"missing_required_value": 1, "not_in_campaign": 3}
    assert sum(rec["excluded"].values()) == 2 + (1 if status_header else 0)
    metadata = next(
        e.materialization.metadata
        for e in run.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "segment_exports"
    )
    assert metadata["join_identity"].value == "email"
    ledger = {r.version.name: r.status for r in resources["file_ledger"].rows("segment_exports")}
    assert ledger == {SAMPLE_NAME: "processed"}
    assert json.loads(request.tags["rtcdp/export_files"])[0]["name"] == SAMPLE_NAME
