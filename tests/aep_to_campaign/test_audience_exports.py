"""AEP audience exports → membership → Campaign import, on the embedded default.

File names in all three timestamp forms, split files and manifests, the sensor's dynamic
partitions (registered once, tested with `partition_loading_context`), the destination CSV
options, membership diffs for full and incremental exports, every guardrail check failing and
passing on crafted input, and a whole export materialized end to end with LocalDropZone.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterInstance,
    Definitions,
    Failure,
    SensorResult,
    SkipReason,
    build_sensor_context,
    materialize,
    partition_loading_context,
)

from asset_checks.aep_to_campaign.audience_checks.audience_count_check import (
    audience_count_outcome,
)
from asset_checks.aep_to_campaign.audience_checks.campaign_import_checks import (
    file_row_limit_result,
    source_of_truth_result,
    suppression_result,
)
from asset_checks.aep_to_campaign.audience_checks.segment_export_checks import (
    cadence_result,
    field_count_result,
)
from asset_checks.aep_to_campaign.wiring import audience_defs
from resources import PipelineSettings, embedded_resources
from resources.audience_settings import AepDestinationOptions, AudienceSettings
from resources.drop_zones import Entry
from rtcdp_assets.aep_to_campaign.audience_exports.aep_csv_stream import AepCsvStream
from rtcdp_assets.aep_to_campaign.audience_exports.completeness import (
    assess_export,
    group_listing,
    load_manifests,
)
from rtcdp_assets.aep_to_campaign.audience_exports.file_names import (
    ManifestError,
    parse_export_name,
    parse_manifest,
    read_export_name,
)
from rtcdp_assets.aep_to_campaign.audience_exports.membership import (
    MEMBERS_SCHEMA,
    apply_export,
    compute_membership,
)
from rtcdp_assets.aep_to_campaign.audience_exports.segment_exports import (
    ingest_export,
    resolve_export,
)
from rtcdp_assets.aep_to_campaign.audience_exports.tick_plan import plan_audience_tick
from rtcdp_assets.aep_to_campaign.campaign_audience_import.csv_writer import csv_bytes
from rtcdp_assets.aep_to_campaign.campaign_audience_import.import_file import IMPORT_COLUMNS
from rtcdp_dev import sample_audiences as sample
from tests.aep_to_campaign.campaign_side import (
    export_entry,
    load_campaign_side,
    run_audience_export,
)
from tests.runs import evaluate_sensor

AUD = "ce5c5482-2813-4a80-99bc-57113f6acde2"
AUD2 = "0f1e2d3c-4b5a-4678-9abc-def012345678"
DEST = "Azure_Blob"
PK = "2026-11-23-08:00"
T0 = datetime(2026, 11, 23, 8, 5, 0, tzinfo=UTC)
FOLDER = "exports"
SENSOR = audience_defs.sensors[0]


def entry(name: str, size: int = 100, age: float = 600, now: float | None = None) -> Entry:
    return export_entry(FOLDER, name, size, age, now)


def put(root, folder: str, files: dict[str, bytes], age: float = 600) -> None:
    for name, data in files.items():
        path = root / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        past = time.time() - age
        os.utime(path, (past, past))


# --------------------------------------------------------------------------------------------
# File names and manifests
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", sample.TIMESTAMP_FORMS)
def test_export_names_in_all_three_timestamp_forms(form):
    name = sample.export_file_name(DEST, AUD, T0, form=form)
    parsed = parse_export_name(name)
    assert parsed is not None
    assert parsed.stamp_form == form
    assert parsed.exported_at == T0
    assert parsed.stamp == "20261123_080500"
    assert parsed.export_id == f"{DEST}_{AUD}_20261123_080500"
    assert (parsed.destination, parsed.audience_id, parsed.part) == (DEST, AUD, 1)
    second = parse_export_name(sample.export_file_name(DEST, AUD, T0, form=form, part=2))
    assert second is not None and second.part == 2 and second.export_id == parsed.export_id


def test_export_name_forms_written_by_hand():
    # the SDK form, the UI form and Unix time name the same instant
    for stamp in ("20261123_080500", "11232026_080500", str(int(T0.timestamp()))):
        parsed = parse_export_name(f"amazon-s3_{AUD}_{stamp}.csv")
        assert parsed is not None and parsed.exported_at == T0, stamp


@pytest.mark.parametrize(
    ("suffix", "kind", "compressed"),
    [
        (".csv.gz", "csv", True),
        (".json", "json", False),
        (".json.gz", "json", True),
        (".parquet", "parquet", False),
        ("_3.CSV", "csv", False),
    ],
)
def test_extensions_and_split_suffixes(suffix, kind, compressed):
    parsed = parse_export_name(f"{DEST}_{AUD}_20261123_080500{suffix}")
    assert parsed is not None
    assert (parsed.kind, parsed.compressed) == (kind, compressed)
    assert parsed.part == (3 if suffix.startswith("_3") else 1)


def test_optional_name_parts_between_audience_and_time():
    parsed = parse_export_name(f"My_Dest_{AUD}_Loyal_Buyers_2026_20261123_080500_2.csv")
    assert parsed is not None
    assert (parsed.destination, parsed.audience_id, parsed.part) == ("My_Dest", AUD, 2)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (f"{DEST}_{AUD}_20261332_080500.csv", "timestamp 20261332_080500 is not a valid date"),
        (f"{DEST}_{AUD}_13232026_080500.csv", "timestamp 13232026_080500 is not a valid date"),
        (f"{DEST}_{AUD}_20261123_0805.csv", "no date/time part"),  # no seconds
        (f"{DEST}_{AUD}_20261123_080500.xlsx", "extension .xlsx is not one of"),
        (f"{DEST}_not-a-uuid_20261123_080500.csv", "no audience ID (UUID) in the name"),
        ("broadLog_20261123_0800.csv", "no audience ID (UUID) in the name"),
    ],
)
def test_names_that_are_not_audience_exports(name, problem):
    assert parse_export_name(name) is None
    said = read_export_name(name)
    assert isinstance(said, str) and said.startswith(problem), said


def test_manifest_parsing():
    files = {sample.export_file_name(DEST, AUD, T0): b"abc"}
    name, data = sample.manifest(files)
    manifest = parse_manifest(name, data)
    assert manifest.sizes == {sample.export_file_name(DEST, AUD, T0): 3}
    assert manifest.flow_run_id and manifest.scheduled_time.endswith("Z")
    with pytest.raises(ManifestError):
        parse_manifest(name, b'{"flowRunId": "x"}')
    with pytest.raises(ManifestError):
        parse_manifest(name, b"not json")


# --------------------------------------------------------------------------------------------
# Completeness
# --------------------------------------------------------------------------------------------
def _export(entries, manifests=None, options=None, settle=0.0, now=None):
    listing = group_listing(entries)
    (export,) = listing.exports.values()
    by_file = load_manifests(listing.manifests, lambda e: manifests[e.name])
    return assess_export(
        export, options or AepDestinationOptions(), by_file, now or time.time(), settle
    )


def test_split_files_wait_until_every_part_is_there():
    names = [sample.export_file_name(DEST, AUD, T0, part=p) for p in (1, 2, 3)]
    reason = _export([entry(names[0]), entry(names[2])])
    assert reason is not None and "waiting for split file(s) _2" in reason
    reason = _export([entry(names[1])])
    assert reason is not None and "the first file" in reason
    assert _export([entry(n) for n in names]) is None


def test_manifest_sizes_must_match():
    names = [sample.export_file_name(DEST, AUD, T0, part=p) for p in (1, 2)]
    files = {names[0]: b"x" * 100, names[1]: b"y" * 50}
    mname, mdata = sample.manifest(files)
    required = AepDestinationOptions(manifest_required=True)
    complete = [entry(names[0], 100), entry(names[1], 50)]
    reason = _export(complete, options=required)
    assert reason is not None and "waiting for the manifest" in reason
    assert _export(complete) is None  # no manifest expected, none present: complete
    with_manifest = [*complete, entry(mname, len(mdata))]
    assert _export(with_manifest, {mname: mdata}, required) is None
    short = [entry(names[0], 100), entry(names[1], 49), entry(mname)]
    reason = _export(short, {mname: mdata})  # a manifest present is always honoured
    assert reason is not None and f"{names[1]} is 49 bytes, {mname} says 50" in reason
    reason = _export([entry(names[0], 100), entry(mname)], {mname: mdata}, required)
    assert reason is not None
    assert f"waiting for {names[1]}: listed in {mname} but not in the folder" in reason


def test_files_still_being_written_wait():
    name = sample.export_file_name(DEST, AUD, T0)
    reason = _export([entry(name, age=1)], settle=30)
    assert reason is not None and "still being written" in reason


# --------------------------------------------------------------------------------------------
# The sensor
# --------------------------------------------------------------------------------------------
@pytest.fixture
def env(tmp_path):
    resources = embedded_resources(tmp_path)
    resources["settings"] = PipelineSettings(file_settle_seconds=0)
    resources["audience_settings"] = AudienceSettings(
        destination_folder=FOLDER,
        default_destination=AepDestinationOptions(rows_per_file=60),
        audience_names={AUD: "Loyal buyers, EU"},
        max_rows_per_file=100,
    )
    return tmp_path, resources


def tick(resources, instance, cursor=None):
    return evaluate_sensor(SENSOR, resources, instance, cursor)


def _two_audiences(root):
    recipients = sample.campaign_recipients(30)
    for aud in (AUD, AUD2):
        members = sample.audience_members(recipients, in_campaign=10, seed=hash(aud) % 100)
        put(
            root,
            f"aep_destination/{FOLDER}",
            sample.export_files(members, destination=DEST, audience_id=aud, when=T0),
        )


def test_sensor_registers_unseen_audiences_once_and_runs_each_export_once(env):
    root, resources = env
    _two_audiences(root)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("audiences", [AUD])  # already known from earlier ticks

    first = tick(resources, instance)
    assert isinstance(first, SensorResult)
    assert sorted(r.partition_key for r in first.run_requests) == sorted([AUD, AUD2])
    (add,) = first.dynamic_partitions_requests
    assert add.partition_keys == [AUD2]  # only the audience the instance did not know
    (count,) = first.asset_events
    assert count.check_name == "audience_count" and count.passed
    instance.report_runless_asset_event(count)  # what the daemon does with it
    key = AssetCheckKey(AssetKey("segment_exports"), "audience_count")
    assert instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    request = next(r for r in first.run_requests if r.partition_key == AUD)
    assert request.tags["rtcdp/export_time"] == "20261123_080500"
    files = json.loads(request.tags["rtcdp/export_files"])
    assert [f["name"] for f in files] == [sample.export_file_name(DEST, AUD, T0)]
    assert request.run_key.startswith(f"aep-export:{DEST}_{AUD}_20261123_080500@")

    # What the daemon does with the request, then the run requests validate against the
    # instance's partitions (evaluate_tick needs partition_loading_context in 1.13).
    instance.add_dynamic_partitions("audiences", add.partition_keys)
    definitions = Definitions(
        assets=audience_defs.assets,
        asset_checks=audience_defs.asset_checks,
        sensors=audience_defs.sensors,
        jobs=audience_defs.jobs,
        resources=resources,
    )
    with (
        build_sensor_context(
            instance=instance, resources=resources, definitions=definitions
        ) as ctx,
        partition_loading_context(dynamic_partitions_store=instance),
    ):
        evaluated = SENSOR.evaluate_tick(ctx)
    assert sorted(r.partition_key for r in evaluated.run_requests) == sorted([AUD, AUD2])
    assert set(instance.get_dynamic_partitions("audiences")) == {AUD, AUD2}

    # Next tick: nothing new, nothing re-requested, no partition re-added.
    second = tick(resources, instance, first.cursor)
    assert isinstance(second, SensorResult) and not second.run_requests
    assert not second.dynamic_partitions_requests

    # A new export of a known audience: one run, no partition request.
    later = sample.export_files(
        sample.audience_members(sample.campaign_recipients(30), in_campaign=5),
        destination=DEST,
        audience_id=AUD,
        when=T0 + timedelta(days=1),
    )
    put(root, f"aep_destination/{FOLDER}", later, age=300)
    third = tick(resources, instance, second.cursor)
    assert [r.partition_key for r in third.run_requests] == [AUD]
    assert not third.dynamic_partitions_requests and not third.asset_events


def test_incomplete_export_waits_and_says_why(env):
    root, resources = env
    resources["audience_settings"] = AudienceSettings(
        destination_folder=FOLDER, default_destination=AepDestinationOptions(rows_per_file=4)
    )
    members = sample.audience_members(sample.campaign_recipients(20), in_campaign=10)
    files = sample.export_files(
        members, destination=DEST, audience_id=AUD, when=T0, rows_per_file=4
    )
    names = sorted(files)  # x.csv, x_2.csv, x_3.csv
    put(root, f"aep_destination/{FOLDER}", {n: files[n] for n in (names[0], names[2])})
    instance = DagsterInstance.ephemeral()
    waiting = tick(resources, instance)
    assert isinstance(waiting, SensorResult) and not waiting.run_requests
    assert "waiting for split file(s) _2" in waiting.skip_reason.skip_message
    assert list(json.loads(waiting.cursor)["pending"]) == [f"{DEST}_{AUD}_20261123_080500"]
    # still waiting on the next tick, even though no file is newer than the cursor
    again = tick(resources, instance, waiting.cursor)
    assert "waiting for split file(s) _2" in again.skip_reason.skip_message
    put(root, f"aep_destination/{FOLDER}", {names[1]: files[names[1]]}, age=650)
    done = tick(resources, instance, again.cursor)
    assert [r.partition_key for r in done.run_requests] == [AUD]
    assert len(json.loads(done.run_requests[0].tags["rtcdp/export_files"])) == 3
    assert json.loads(done.cursor)["pending"] == {}


def test_rewritten_export_gets_a_new_run_key(env):
    root, resources = env
    members = sample.audience_members(sample.campaign_recipients(20), in_campaign=10)
    files = sample.export_files(members, destination=DEST, audience_id=AUD, when=T0)
    put(root, f"aep_destination/{FOLDER}", files, age=900)
    instance = DagsterInstance.ephemeral()
    first = tick(resources, instance)
    (name,) = files
    put(root, f"aep_destination/{FOLDER}", {name: files[name] + b"\n"}, age=100)
    second = tick(resources, instance, first.cursor)
    assert len(second.run_requests) == 1
    assert second.run_requests[0].run_key != first.run_requests[0].run_key


def test_sensor_plan_stays_cheap_with_4000_audiences():
    """4,000 audiences with two exports each: every export requested exactly once, each
    audience registered once, a cursor that does not grow with the audiences."""
    now = time.time()
    audiences = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(4000)]
    entries = [
        entry(
            sample.export_file_name(DEST, a, T0 + timedelta(hours=6 * k)),
            age=7200 - k * 3600,
            now=now,
        )
        for k in (0, 1)
        for a in audiences
    ]
    settings = AudienceSettings(destination_folder=FOLDER, max_runs_per_tick=1000)
    known: set[str] = set()
    cursor = None
    run_keys: list[str] = []
    registered: list[str] = []
    for _ in range(20):
        plan = plan_audience_tick(entries, cursor, now, settings, 0, known, lambda e: b"")
        run_keys += [r.run_key for r in plan.run_requests]
        registered += plan.new_audiences
        known |= set(plan.new_audiences)
        assert len(plan.cursor) < 100_000  # worst case: all 4,000 in the same second
        cursor = plan.cursor
        if not plan.run_requests:
            break
    assert len(run_keys) == len(set(run_keys)) == 8000
    assert sorted(registered) == sorted(audiences)  # each registered exactly once
    # Once drained, a tick with nothing new requests nothing and keeps its cursor (its speed
    # is measured in bench/bench_audiences.py, not asserted here).
    idle = plan_audience_tick(entries, cursor, now, settings, 0, known, lambda e: b"")
    assert not idle.run_requests and idle.cursor == cursor


# --------------------------------------------------------------------------------------------
# Reading the destination's CSV options, JSON and Parquet
# --------------------------------------------------------------------------------------------
OPTION_CASES = {
    "aep_defaults": (AepDestinationOptions(), False),
    "semicolon_no_quotes": (AepDestinationOptions(delimiter=";", quote_char=""), False),
    "pipe_single_quote_escape": (AepDestinationOptions(delimiter="|", escape_char="'"), False),
    "null_as_NULL": (AepDestinationOptions(null_value="NULL", empty_value='""'), False),
    "tab_utf16": (AepDestinationOptions(delimiter="\t", encoding="utf-16"), False),
    "no_header_gzip": (
        AepDestinationOptions(header=False, columns=sample.columns_for(AUD)),
        True,
    ),
}


def _ingest(resources, files, options=None, identities=("external_id", "email", "phone")):
    zone = resources["aep_destination"]
    for name, data in files.items():
        zone.write_bytes(f"{FOLDER}/{name}", data)
    audience_settings = AudienceSettings(
        destination_folder=FOLDER,
        default_destination=options or AepDestinationOptions(),
        join_identities=list(identities),
    )
    (export,) = group_listing(zone.list(FOLDER)).exports.values()
    record = ingest_export(
        zone, resources["warehouse"], audience_settings, resources["settings"], export
    )
    return record, audience_settings


@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_destination_csv_options(env, case):
    _root, resources = env
    options, compress = OPTION_CASES[case]
    recipients = sample.campaign_recipients(60)
    members = sample.audience_members(
        recipients, in_campaign=40, not_in_campaign=5, exited=3, without_identity=4
    )
    writer = options.model_copy(update={"header": True}) if not options.header else options
    files = sample.export_files(
        members, destination=DEST, audience_id=AUD, when=T0, opts=writer, compress=compress
    )
    if not options.header:  # AEP without a header row: drop it from what we "received"
        files = {
            n: gzip.compress(gzip.decompress(d).split(b"\n", 1)[1], mtime=0)
            for n, d in files.items()
        }
    record, _ = _ingest(resources, files, options)
    assert record["status"] == "processed", record
    assert record["rows_in"] == len(members)
    assert record["reasons"] == {"missing_required_value": 4}
    assert record["columns"] == sample.columns_for(AUD)
    data = resources["warehouse"].read_table("segment_exports", f"{AUD}/20261123_080500")
    got = sorted(
        zip(
            data.column("external_id").to_pylist(),
            data.column("email").to_pylist(),
            data.column("status").to_pylist(),
            strict=True,
        )
    )
    want = sorted((m.external_id, m.email, m.status) for m in members if m.external_id)
    assert got == want
    assert data.column("last_qualification_time").null_count == 0


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 20])
def test_aep_csv_stream_rewrites_escapes_and_nulls_across_block_edges(block):
    raw = (
        b"a,b,c\n"
        b'"x \\"y\\"",NULL,plain\n'  # escaped quotes inside a quoted value; a null
        b'"ends with \\\\",C:\\dir,"NULL"\n'  # escaped backslash; a literal backslash; quoted NULL
        b'"multi\nline, quoted",,NULL\n'
    )
    options = AepDestinationOptions(null_value="NULL")
    stream = AepCsvStream(io.BytesIO(raw), options, block=block)
    text = stream.read().decode()
    assert stream.header == ["a", "b", "c"]
    assert list(csv.reader(io.StringIO(text))) == [
        ["a", "b", "c"],
        ['x "y"', "", "plain"],
        ["ends with \\", "C:\\dir", "NULL"],
        ["multi\nline, quoted", "", ""],
    ]


@pytest.mark.parametrize("file_format", ["json", "parquet"])
def test_json_and_parquet_exports(env, file_format):
    _root, resources = env
    members = sample.audience_members(sample.campaign_recipients(30), in_campaign=20, exited=2)
    files = sample.export_files(
        members, destination=DEST, audience_id=AUD, when=T0, file_format=file_format
    )
    record, _ = _ingest(resources, files)
    assert record["status"] == "processed" and record["rows_out"] == 20
    assert f"segmentMembership_ups_{AUD}_status" in record["columns"]
    data = resources["warehouse"].read_table("segment_exports", f"{AUD}/20261123_080500")
    assert sorted(data.column("status").to_pylist()).count("exited") == 2


def _gz_export(members, **kwargs):
    return sample.export_files(
        members, destination=DEST, audience_id=AUD, when=T0, compress=True, **kwargs
    )


@pytest.mark.parametrize(
    ("defect", "reason"),
    [
        ("truncated", "truncated_gzip"),
        ("corrupt", "corrupt_gzip"),
        ("short_part", "inconsistent_split"),
        ("no_identity_column", "unknown_layout"),
    ],
)
def test_unreadable_export_is_quarantined_with_a_reason(env, defect, reason):
    _root, resources = env
    members = sample.audience_members(sample.campaign_recipients(40), in_campaign=30)
    options = AepDestinationOptions(rows_per_file=20)
    identities = ["external_id", "email", "phone"]
    files = _gz_export(members, rows_per_file=20)
    first = sorted(files)[0]
    if defect == "truncated":
        files[first] = files[first][: len(files[first]) // 2]
    elif defect == "corrupt":
        files[first] = files[first][:20] + b"\x00garbage\xff" * 10 + files[first][-8:]
    elif defect == "short_part":
        options = AepDestinationOptions(rows_per_file=25)  # part 1 holds 20 rows, not 25
    else:
        # joined by external ID only, which the export does not carry under this name
        options = AepDestinationOptions(rows_per_file=20, external_id_column="crmId")
        identities = ["external_id"]
    record, _ = _ingest(resources, files, options, identities)
    assert record["status"] == "quarantined"
    assert any(reason in r for r in record["quarantine_reasons"]), record["quarantine_reasons"]


# --------------------------------------------------------------------------------------------
# Membership: full and incremental
# --------------------------------------------------------------------------------------------
def rows(*items: tuple[str | None, str, str | None]) -> pa.Table:
    """(external_id, status, qualification iso) -> segment_exports rows."""
    return pa.table(
        {
            "external_id": [i[0] for i in items],
            "email": [f"{i[0]}@example.com".lower() if i[0] else None for i in items],
            "status": [i[1] for i in items],
            "last_qualification_time": pa.array(
                [datetime.fromisoformat(i[2]) if i[2] else None for i in items],
                pa.timestamp("us", tz="UTC"),
            ),
            "_line_number": list(range(2, 2 + len(items))),
        }
    )


def by_key(result):
    return {r["key"]: r["status"] for r in result.members.to_pylist()}


def changes(result):
    return {r["key"]: r["change"] for r in result.diff.to_pylist()}


def test_full_export_replaces_the_membership():
    first = compute_membership(
        rows(("A", "realized", None), ("B", "realized", None), ("C", "realized", None)),
        None,
        "full",
        "20261123_080000",
        "external_id",
    )
    assert by_key(first) == {"A": "realized", "B": "realized", "C": "realized"}
    second = compute_membership(
        rows(("B", "existing", None), ("C", "realized", None), ("D", "realized", None)),
        first.members,
        "full",
        "20261124_080000",
        "external_id",
    )
    assert by_key(second) == {"A": "exited", "B": "existing", "C": "existing", "D": "realized"}
    assert changes(second) == {"A": "removed", "B": "unchanged", "C": "unchanged", "D": "added"}
    want = {"added": 1, "removed": 1, "unchanged": 2, "members": 3}
    assert {k: second.counts[k] for k in want} == want
    member_since = {r["key"]: r["member_since"] for r in second.members.to_pylist()}
    assert member_since["B"] == "20261123_080000" and member_since["D"] == "20261124_080000"


def test_incremental_exports_apply_changes_and_the_first_is_a_backfill():
    backfill = compute_membership(
        rows(("A", "realized", None), ("B", "realized", None), ("X", "exited", None)),
        None,
        "incremental",
        "20261123_060000",
        "external_id",
    )
    assert by_key(backfill) == {"A": "realized", "B": "realized"}
    assert backfill.counts["exited_non_member"] == 1
    delta = compute_membership(
        rows(("A", "exited", None), ("C", "realized", None), ("Z", "exited", None)),
        backfill.members,
        "incremental",
        "20261123_120000",
        "external_id",
    )
    # B is carried over untouched; A left; C entered; Z was never a member
    assert by_key(delta) == {"A": "exited", "B": "existing", "C": "realized"}
    assert changes(delta) == {"A": "removed", "B": "unchanged", "C": "added"}
    in_export = {r["key"]: r["in_export"] for r in delta.members.to_pylist()}
    assert in_export == {"A": True, "B": False, "C": True}
    assert delta.counts["exited_non_member"] == 1 and delta.counts["members"] == 2


def test_duplicate_rows_keep_the_latest_qualification():
    result = compute_membership(
        rows(
            ("A", "realized", "2026-11-23T06:00:00+00:00"),
            ("A", "exited", "2026-11-23T07:00:00+00:00"),
            ("B", "realized", None),
        ),
        pa.Table.from_pylist(
            [
                {
                    "key": "A",
                    "external_id": "A",
                    "email": None,
                    "status": "realized",
                    "aep_status": "realized",
                    "last_qualification_time": None,
                    "member_since": "20261122_000000",
                    "in_export": True,
                }
            ],
            schema=MEMBERS_SCHEMA,
        ),
        "incremental",
        "20261123_080000",
        "external_id",
    )
    assert by_key(result) == {"A": "exited", "B": "realized"}
    assert result.counts["duplicate_member"] == 1


def test_membership_by_email_is_case_insensitive():
    table = rows(("A", "realized", None))
    table = table.set_column(1, "email", pa.array(["Ann.Lee@Example.COM"]))
    result = compute_membership(table, None, "full", "20261123_080000", "email")
    assert list(by_key(result)) == ["ann.lee@example.com"]


# --------------------------------------------------------------------------------------------
# Checks on crafted input
# --------------------------------------------------------------------------------------------
def test_field_count_warns_above_twenty_fields():
    settings = AudienceSettings()
    ok = field_count_result({"columns": [f"c{i}" for i in range(20)]}, settings)
    assert ok.passed
    over = field_count_result({"columns": [f"c{i}" for i in range(21)]}, settings)
    assert not over.passed and over.severity.value == "WARN"
    assert over.metadata["fields"].value == 21


def _exports(hours: list[float], mode: str) -> dict[str, dict]:
    out = {}
    when = T0
    for h in [0.0, *hours]:
        when = when + timedelta(hours=h)
        out[when.strftime("%Y%m%d_%H%M%S")] = {
            "export_time": when.isoformat().replace("+00:00", "Z"),
            "mode": mode,
        }
    return out


@pytest.mark.parametrize(
    ("hours", "mode", "passed", "flag"),
    [
        ([6, 6, 6], "incremental", True, None),
        ([3, 3], "incremental", True, None),
        ([24, 24], "full", True, None),
        ([6, 6, 18], "incremental", False, "gaps"),
        ([6, 6, 1], "incremental", False, "bursts"),
        ([24, 6], "full", False, "bursts"),
        ([24, 72], "full", False, "gaps"),
    ],
)
def test_activation_cadence(hours, mode, passed, flag):
    exports = _exports(hours, mode)
    result = cadence_result(exports, AudienceSettings(), max(exports))
    assert result.passed is passed, result.metadata
    assert result.severity.value == "WARN"
    if flag:
        assert result.metadata[flag].value >= 1


def test_audience_count_limits():
    settings = AudienceSettings(
        destinations={"Adobe_Campaign": AepDestinationOptions(kind="campaign_managed_services")}
    )
    auds = {f"a{i}" for i in range(26)}
    ok, _ = audience_count_outcome(set(), {"Adobe_Campaign": set(list(auds)[:25])}, settings)
    assert ok
    over, meta = audience_count_outcome(set(), {"Adobe_Campaign": auds}, settings)
    assert not over and meta["campaign_destinations_over_limit"].value == {"Adobe_Campaign": 26}
    # the same number on a plain batch destination is fine
    assert audience_count_outcome(set(), {DEST: auds}, settings)[0]
    sandbox = {f"s{i}" for i in range(4001)}
    full, meta = audience_count_outcome(sandbox, {}, settings)
    assert not full and meta["audiences_in_sandbox"] == 4001
    assert audience_count_outcome(set(list(sandbox)[:4000]), {}, settings)[0]


def _staged(*rows_: dict[str, str]) -> pa.Table:
    return pa.Table.from_pylist(
        [{c: r.get(c, "") for c in IMPORT_COLUMNS} for r in rows_],
        schema=pa.schema([(c, pa.string()) for c in IMPORT_COLUMNS]),
    )


RECIPIENTS = pd.DataFrame(
    {"recipient_id": ["1", "2"], "external_id": ["E1", "E2"], "email": ["a@x.com", "b@x.com"]}
)


def test_source_of_truth_fails_on_a_row_without_a_campaign_profile():
    good = _staged({"recipient_id": "1", "external_id": "E1", "email": "a@x.com"})
    assert source_of_truth_result([good], RECIPIENTS, "external_id").passed
    unknown = _staged({"recipient_id": "9", "external_id": "E9", "email": "z@x.com"})
    wrong_email = _staged({"recipient_id": "2", "external_id": "E2", "email": "a@x.com"})
    result = source_of_truth_result([good, unknown, wrong_email], RECIPIENTS, "external_id")
    assert not result.passed
    assert result.metadata["rows_without_campaign_profile"].value == 2
    assert "z@x.com" not in json.dumps(result.metadata["examples"].value)  # masked


def test_suppression_fails_on_a_quarantined_or_opted_out_address():
    suppressed = pd.Series({"b@x.com": "opted_out", "q@x.com": "quarantine"})
    clean = _staged({"email": "a@x.com"})
    assert suppression_result([clean], suppressed).passed
    result = suppression_result(
        [clean, _staged({"email": "B@x.com"}, {"email": "q@x.com"})], suppressed
    )
    assert not result.passed
    assert result.metadata["by_reason"].value == {"opted_out": 1, "quarantine": 1}


def test_file_row_limit():
    settings = AudienceSettings(max_rows_per_file=2)
    two = _staged({}, {})
    manifest = {"files": [{"name": "a.csv", "rows": 2}]}
    assert file_row_limit_result([two], manifest, settings).passed
    three = _staged({}, {}, {})
    manifest = {"files": [{"name": "a.csv", "rows": 3}]}
    assert not file_row_limit_result([three], manifest, settings).passed
    lying = {"files": [{"name": "a.csv", "rows": 1}]}
    assert not file_row_limit_result([two], lying, settings).passed


def test_import_csv_quotes_only_what_needs_it():
    table = _staged(
        {"recipient_id": "1", "audience_name": "Loyal, EU", "email": "a@x.com"},
        {"recipient_id": "2", "audience_name": 'The "best"', "email": "b@x.com"},
    )
    text = csv_bytes(table).decode()
    lines = text.splitlines()
    assert lines[0] == ",".join(IMPORT_COLUMNS)
    assert lines[1] == '1,,a@x.com,,"Loyal, EU",,,'
    assert lines[2] == '2,,b@x.com,,"The ""best""",,,'
    assert text.endswith("\n")
    assert pd.read_csv(io.StringIO(text), dtype=str).shape == (2, len(IMPORT_COLUMNS))


# --------------------------------------------------------------------------------------------
# End to end on the embedded default
# --------------------------------------------------------------------------------------------
def _campaign_side(root, resources, instance, recipients, quarantined, opted_out):
    load_campaign_side(
        root,
        resources,
        instance,
        recipients,
        partition_key=PK,
        quarantined=quarantined,
        opted_out=opted_out,
    )


run_export = run_audience_export


def read_import(root, name):
    return pd.read_csv(root / "campaign_sftp" / "import" / name, dtype=str, keep_default_na=False)


def test_embedded_export_becomes_a_campaign_import_and_reruns_identically(env):
    root, resources = env
    instance = DagsterInstance.ephemeral()
    recipients = sample.campaign_recipients(200)
    _campaign_side(
        root, resources, instance, recipients, quarantined=range(0, 15), opted_out=range(15, 30)
    )
    members = sample.audience_members(
        recipients, in_campaign=150, not_in_campaign=20, exited=5, without_identity=3
    )
    files = sample.export_files(
        members, destination=DEST, audience_id=AUD, when=T0, rows_per_file=60
    )
    manifest_name, manifest_data = sample.manifest(files)
    put(root, f"aep_destination/{FOLDER}", {**files, manifest_name: manifest_data})

    result = tick(resources, instance)
    (request,) = result.run_requests
    assert request.tags["rtcdp/export_manifest"] == manifest_name
    instance.add_dynamic_partitions("audiences", [AUD])
    run = run_export(resources, instance, request)
    assert run.success
    checks = {e.check_name: e for e in run.get_asset_check_evaluations()}
    assert all(c.passed for c in checks.values()), {k: c.metadata for k, c in checks.items()}

    by_id = {r["external_id"]: r for r in recipients}
    suppressed = {recipients[i]["external_id"] for i in range(30)}
    expected = sorted(
        by_id[m.external_id]["recipient_id"]
        for m in members
        if m.in_campaign and m.status != "exited" and m.external_id not in suppressed
    )
    base = f"aep_audience_{AUD}_20261123_080500"
    part1, part2 = read_import(root, f"{base}.csv"), read_import(root, f"{base}_2.csv")
    assert len(part1) == 100  # max_rows_per_file in the fixture
    imported = pd.concat([part1, part2])
    assert sorted(imported["recipient_id"]) == expected
    assert list(imported.columns) == list(IMPORT_COLUMNS)
    assert set(imported["membership_status"]) == {"realized"}
    assert set(imported["audience_name"]) == {"Loyal buyers, EU"}
    row = imported.iloc[0]
    assert row["email"] == by_id[row["external_id"]]["email"]  # Campaign's address, not AEP's
    marker = json.loads((root / "campaign_sftp" / "import" / f"{base}_2.csv.done").read_text())
    assert (marker["rows"], marker["part"], marker["parts"]) == (len(part2), 2, 2)
    data2 = (root / "campaign_sftp" / "import" / f"{base}_2.csv").read_bytes()
    assert marker["sha256"] == hashlib.sha256(data2).hexdigest()

    warehouse = resources["warehouse"]
    quarantine = warehouse.read_table(
        "campaign_audience_import", f"{AUD}/20261123_080500", "quarantine.parquet"
    )
    assert quarantine.column("reason").to_pylist() == ["not_in_campaign"] * 20
    excluded = warehouse.read_table(
        "campaign_audience_import", f"{AUD}/20261123_080500", "excluded.parquet"
    )
    in_campaign_suppressed = [
        m for m in members if m.in_campaign and m.status != "exited" and m.external_id in suppressed
    ]
    assert excluded.num_rows == len(in_campaign_suppressed)
    assert set(excluded.column("reason").to_pylist()) <= {"quarantine", "opted_out"}
    staged = warehouse.get_json(
        "campaign_audience_import", f"{AUD}/20261123_080500", "manifest.json"
    )
    rec = staged["reconciliation"]
    assert rec["balanced"] and rec["rows_in"] == len(members)
    assert rec["quarantined"] == {"missing_required_value": 3, "not_in_campaign": 20}
    assert rec["excluded"]["exited_non_member"] == 5

    before = {p.name: p.read_bytes() for p in (root / "campaign_sftp" / "import").iterdir()}
    rerun = run_export(resources, instance, request)
    assert rerun.success
    after = {p.name: p.read_bytes() for p in (root / "campaign_sftp" / "import").iterdir()}
    assert after == before

    # The next day's full export: 10 members left, 3 joined.
    stayed = [m for m in members if m.status != "exited"][10:]
    joined = sample.audience_members(recipients[150:], in_campaign=3, seed=99)
    day2 = sample.export_files(
        [*stayed, *joined],
        destination=DEST,
        audience_id=AUD,
        when=T0 + timedelta(days=1),
        rows_per_file=60,
    )
    put(root, f"aep_destination/{FOLDER}", day2, age=300)
    (request2,) = tick(resources, instance, result.cursor).run_requests
    assert run_export(resources, instance, request2).success
    diff = warehouse.read_table("audience_membership", f"{AUD}/20261124_080500", "diff.parquet")
    counts = pd.Series(diff.column("change").to_pylist()).value_counts().to_dict()
    new_keys = {m.external_id for m in joined}
    assert counts["added"] == len(
        new_keys - {m.external_id for m in members if m.status != "exited"}
    )
    assert counts["removed"] == 10
    day2_file = pd.concat(
        read_import(root, n)
        for n in (
            f"aep_audience_{AUD}_20261124_080500.csv",
            f"aep_audience_{AUD}_20261124_080500_2.csv",
        )
        if (root / "campaign_sftp" / "import" / n).exists()
    )
    statuses = day2_file["membership_status"].value_counts().to_dict()
    assert statuses.get("exited", 0) >= 1 and statuses.get("existing", 0) >= 1


def test_quarantined_export_blocks_membership_and_import(env):
    root, resources = env
    instance = DagsterInstance.ephemeral()
    recipients = sample.campaign_recipients(50)
    _campaign_side(root, resources, instance, recipients, quarantined=(), opted_out=())
    members = sample.audience_members(recipients, in_campaign=30)
    files = _gz_export(members)
    (name,) = files
    files[name] = files[name][:-30]  # truncated upload
    put(root, f"aep_destination/{FOLDER}", files)
    (request,) = tick(resources, instance).run_requests
    instance.add_dynamic_partitions("audiences", [AUD])
    run = run_export(resources, instance, request)
    checks = {e.check_name: e for e in run.get_asset_check_evaluations()}
    assert not checks["export_reconciliation"].passed
    assert "truncated_gzip" in json.dumps(
        checks["export_reconciliation"].metadata["files_quarantined"].value
    )
    materialized = {e.asset_key.to_user_string() for e in run.get_asset_materialization_events()}
    assert materialized == {"segment_exports"}
    # the file ledger knows the export's fate, and nothing was moved or deleted
    (entry,) = [r for r in resources["file_ledger"].rows() if r.dataset == "segment_exports"]
    assert (entry.version.name, entry.status) == (name, "quarantined")
    assert entry.reason == "truncated_gzip"
    assert (root / "aep_destination" / entry.location).read_bytes() == files[name]
    assert not (root / "campaign_sftp" / "import").exists() or not list(
        (root / "campaign_sftp" / "import").iterdir()
    )


def test_incremental_exports_must_be_applied_in_order(env):
    _root, resources = env
    options = AepDestinationOptions(export_mode="incremental")
    recipients = sample.campaign_recipients(20)
    zone, warehouse = resources["aep_destination"], resources["warehouse"]
    settings = AudienceSettings(destination_folder=FOLDER, default_destination=options)
    records = []
    for day in (0, 1, 2):
        members = sample.audience_members(recipients, in_campaign=5, seed=day)
        files = sample.export_files(
            members, destination=DEST, audience_id=AUD, when=T0 + timedelta(days=day)
        )
        for n, d in files.items():
            zone.write_bytes(f"{FOLDER}/{n}", d)
    listing = group_listing(zone.list(FOLDER))
    for export in sorted(listing.exports.values(), key=lambda x: x.exported_at):
        records.append(ingest_export(zone, warehouse, settings, resources["settings"], export))
    stamps = [r["stamp"] for r in records]
    apply_export(warehouse, settings, AUD, stamps[0])
    with pytest.raises(Failure, match="earlier export"):
        apply_export(warehouse, settings, AUD, stamps[2])  # day 1 was never applied
    apply_export(warehouse, settings, AUD, stamps[1])
    apply_export(warehouse, settings, AUD, stamps[2])
    # re-applying an export already applied gives the same state
    again = apply_export(warehouse, settings, AUD, stamps[1])
    assert again["previous"] == stamps[0]


def test_a_new_export_older_than_the_applied_one_is_refused(env):
    _root, resources = env
    recipients = sample.campaign_recipients(20)
    zone, warehouse = resources["aep_destination"], resources["warehouse"]
    settings = AudienceSettings(destination_folder=FOLDER)
    for day in (0, 1):
        files = sample.export_files(
            sample.audience_members(recipients, in_campaign=5, seed=day),
            destination=DEST,
            audience_id=AUD,
            when=T0 + timedelta(days=day),
        )
        for n, d in files.items():
            zone.write_bytes(f"{FOLDER}/{n}", d)
    exports = sorted(group_listing(zone.list(FOLDER)).exports.values(), key=lambda x: x.exported_at)
    for export in exports:
        ingest_export(zone, warehouse, settings, resources["settings"], export)
    apply_export(warehouse, settings, AUD, exports[1].stamp)
    with pytest.raises(Failure, match="roll the membership back"):
        apply_export(warehouse, settings, AUD, exports[0].stamp)


def test_sensor_skips_when_the_container_is_empty(env):
    _root, resources = env
    result = tick(resources, DagsterInstance.ephemeral())
    assert isinstance(result, SensorResult) and not result.run_requests
    assert isinstance(result.skip_reason, SkipReason)


def test_a_run_without_tags_picks_the_next_incremental_export_or_the_latest_full_one(env):
    _root, resources = env
    zone, warehouse = resources["aep_destination"], resources["warehouse"]
    recipients = sample.campaign_recipients(20)
    for day in (0, 1, 2):
        files = sample.export_files(
            sample.audience_members(recipients, in_campaign=5, seed=day),
            destination=DEST,
            audience_id=AUD,
            when=T0 + timedelta(days=day),
        )
        for n, d in files.items():
            zone.write_bytes(f"{FOLDER}/{n}", d)

    def pick(mode):
        settings = AudienceSettings(
            destination_folder=FOLDER, default_destination=AepDestinationOptions(export_mode=mode)
        )
        found = resolve_export(
            zone, warehouse, settings, resources["settings"], AUD, {}, time.time()
        )
        assert found.export is not None, found.reason
        return settings, found.export

    assert pick("full")[1].stamp == "20261125_080500"
    settings, first = pick("incremental")
    assert first.stamp == "20261123_080500"  # nothing applied yet: the backfill comes first
    ingest_export(zone, warehouse, settings, resources["settings"], first)
    assert pick("incremental")[1].stamp == "20261124_080500"


def test_rerun_after_aep_removed_the_files_keeps_the_stored_rows(env):
    root, resources = env
    instance = DagsterInstance.ephemeral()
    files = sample.export_files(
        sample.audience_members(sample.campaign_recipients(20), in_campaign=8),
        destination=DEST,
        audience_id=AUD,
        when=T0,
    )
    put(root, f"aep_destination/{FOLDER}", files)
    (request,) = tick(resources, instance).run_requests
    instance.add_dynamic_partitions("audiences", [AUD])
    segment_exports = audience_defs.assets[0]

    def run():
        return materialize(
            [segment_exports],
            partition_key=AUD,
            tags=request.tags,
            resources=resources,
            instance=instance,
        )

    first = run().asset_materializations_for_node("segment_exports")[0]
    for name in files:  # AEP's retention ran
        (root / "aep_destination" / FOLDER / name).unlink()
    again = run().asset_materializations_for_node("segment_exports")[0]
    assert (
        again.metadata["dagster/row_count"].value == first.metadata["dagster/row_count"].value == 8
    )
    assert again.metadata["export_id"] == first.metadata["export_id"]


def test_audience_definitions_load_with_the_code_location(monkeypatch, tmp_path):
    monkeypatch.setenv("RTCDP_DATA_DIR", str(tmp_path))
    from rtcdp_assets.definitions import defs

    combined = Definitions(
        assets=[*defs.assets, *audience_defs.assets],
        asset_checks=[*defs.asset_checks, *audience_defs.asset_checks],
        sensors=[*defs.sensors, *audience_defs.sensors],
        jobs=[*defs.jobs, *audience_defs.jobs],
        schedules=defs.schedules,
        resources={**defs.resources, "audience_settings": AudienceSettings()},
    )
    Definitions.validate_loadable(combined)
    assert combined.resolve_job_def("audience_import_job")
    assert combined.resolve_sensor_def("aep_audience_export_sensor")
    checks = {
        (k.asset_key.to_user_string(), k.name)
        for k in combined.resolve_asset_graph().asset_check_keys
    }
    assert {
        ("segment_exports", "export_reconciliation"),
        ("segment_exports", "audience_count"),
        ("campaign_audience_import", "source_of_truth"),
        ("campaign_audience_import", "suppression"),
    } <= checks
    for check in audience_defs.asset_checks:
        for spec in check.check_specs:
            assert spec.metadata["guardrail/source"] and spec.metadata["guardrail/limit"]


def test_audience_count_check_runs_from_the_guardrails_job(env):
    root, resources = env
    _two_audiences(root)
    resources["audience_settings"] = AudienceSettings(
        destination_folder=FOLDER,
        destinations={DEST: AepDestinationOptions(kind="campaign_managed_services")},
        max_audiences_campaign_destination=1,
    )
    definitions = Definitions(
        assets=audience_defs.assets,
        asset_checks=audience_defs.asset_checks,
        jobs=audience_defs.jobs,
        resources=resources,
    )
    result = definitions.resolve_job_def("audience_guardrails_job").execute_in_process(
        instance=DagsterInstance.ephemeral(), raise_on_error=False
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "audience_count" and not evaluation.passed
    assert evaluation.severity.value == "WARN"
    assert evaluation.metadata["campaign_destinations_over_limit"].value == {DEST: 2}


def test_export_rewritten_within_the_same_second_is_not_missed():
    now = time.time()
    name = sample.export_file_name(DEST, AUD, T0)
    v1 = entry(name, size=100, age=60, now=now)
    v2 = Entry(path=v1.path, size=101, modified=v1.modified, identity="etag-2")
    settings = AudienceSettings(destination_folder=FOLDER)
    first = plan_audience_tick([v1], None, now, settings, 0, set(), lambda e: b"")
    idle = plan_audience_tick([v1], first.cursor, now, settings, 0, {AUD}, lambda e: b"")
    assert not idle.run_requests
    again = plan_audience_tick([v2], first.cursor, now, settings, 0, {AUD}, lambda e: b"")
    assert len(again.run_requests) == 1
    assert again.run_requests[0].run_key != first.run_requests[0].run_key
