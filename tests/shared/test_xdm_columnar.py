"""``XdmSchema.validate_table`` gives exactly ``validate_many(xdm.to_records(table))``'s report.

The columnar screen only decides which rows go through the per-record path, so the comparison
is run on tables where it matters: the XDM tables of every Campaign dataset built by the real
pipeline, the same tables with rows mutated at random (fixed seeds) and with Arrow-level defects
(unknown columns, wrong types, dropped required columns, ...), and Arrow tables built from
Adobe's documented XDM examples. Every report is compared with room for every message, and
with the default example budget.
"""

from __future__ import annotations

import copy
import io
import random
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from resources.settings import PipelineSettings
from rtcdp_assets.campaign_to_aep import (
    broadlog,
    non_deliverables,
    preferences,
    profiles,
    push_subscriptions,
    tracking_log,
)
from rtcdp_assets.campaign_to_aep.export_flow.description import CampaignExportDescription
from rtcdp_assets.shared import xdm
from rtcdp_assets.shared.ingest import ingest_file
from rtcdp_assets.shared.xdm_conformance import VENDORED_ROOT, XdmSchema, columnar, formats
from rtcdp_dev import sample_data
from tests.shared.test_xdm_conformance import (
    DATATYPE_AND_FIELD_GROUP_EXAMPLES,
    example,
    schema_id_of,
    to_dataset_form,
)

WINDOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 19, 46, 47, tzinfo=UTC)
FLOWS: dict[str, CampaignExportDescription] = {
    "broadlog": broadlog.broadlog_flow,
    "tracking_log": tracking_log.tracking_log_flow,
    "non_deliverables": non_deliverables.non_deliverables_flow,
    "preferences": preferences.preferences_flow,
    "profiles": profiles.profiles_flow,
    "push_subscriptions": push_subscriptions.push_subscriptions_flow,
}
# Text that breaks enums, formats (email, uri-reference, date, date-time), patterns and lengths.
BAD_TEXT = [
    "", "x" * 300, "no-at-sign", "has space", "a:b", "1a:b", "%zz", "x#y#z", "ok\n", "café",
    "AUTHENTICATED", "maybe", "France", "fr", "2024-02-30", "1960-02-29", "2024-02-30T09:15:27Z",
    "2024-05-02T09:15:27+24:00", "2024-05-02T09:15:27", "http://example.com/a b", "urn:x",
    "https://ex.com/p?q=1#f", "a@b", "[::1]", "\u00a0",
]  # fmt: skip
ODD_TIMES = [
    datetime(1, 1, 1, tzinfo=UTC), datetime(999, 12, 31, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, tzinfo=UTC), datetime(2024, 2, 29, tzinfo=UTC),
]  # fmt: skip


@cache
def pipeline_table(dataset: str, rows: int = 2000, seed: int = 7) -> pa.Table:
    """The XDM table the pipeline builds from a generated Campaign export."""
    flow = FLOWS[dataset]
    settings = PipelineSettings()
    generated = sample_data.generate_dataset(dataset, WINDOW, rows, seed=seed, now=NOW)
    parts = [
        flow.to_xdm(part.good, settings)
        for part in ingest_file(
            io.BytesIO(generated.content),
            source_file=generated.name,
            fmt=flow.fmt,
            allowed_overrides=flow.allowed_codes(settings),
        )
        if part.good.num_rows
    ]
    return pa.Table.from_batches(parts)


def assert_same_report(schema: XdmSchema, table: pa.Table | pa.RecordBatch) -> Any:
    every = schema.validate_many(xdm.to_records(table), max_examples=10**9)
    columnar_report = schema.validate_table(table, max_examples=10**9)
    assert columnar_report == every
    assert list(columnar_report.error_counts.items()) == list(every.error_counts.items())
    assert schema.validate_table(table) == schema.validate_many(xdm.to_records(table))
    return every


# --------------------------------------------------------------------------------------------
# Pipeline tables, valid


@pytest.mark.parametrize("dataset", sorted(FLOWS))
def test_pipeline_tables_are_cleared_column_by_column(dataset: str) -> None:
    table = pipeline_table(dataset)
    schema = FLOWS[dataset].xdm_schema()
    assert table.num_rows > 1500
    report = assert_same_report(schema, table)
    assert report.invalid == 0
    # No row needs the per-record path: the columnar screen really serves the pipeline.
    assert len(columnar.suspect_rows(schema, table)) == 0


@pytest.mark.parametrize("dataset", sorted(FLOWS))
def test_slices_chunks_batches_and_empty_tables(dataset: str) -> None:
    table = pipeline_table(dataset)
    schema = FLOWS[dataset].xdm_schema()
    rows = mutate_rows(table, random.Random(f"{dataset}-chunks"), 300)
    chunked = pa.concat_tables([rows.slice(0, 101), rows.slice(101, 7), rows.slice(108)])
    assert chunked.column(0).num_chunks == 3
    for variant in (chunked, rows.slice(37, 150), rows.slice(0, 0), rows.to_batches()[0]):
        assert_same_report(schema, variant)
    assert schema.validate_table(chunked).checked == rows.num_rows


# --------------------------------------------------------------------------------------------
# Random row mutations (fixed seeds), same Arrow schema


def positions(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if path else []
    if isinstance(value, dict):
        for key, sub in value.items():
            found.extend(positions(sub, (*path, key)))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            found.extend(positions(sub, (*path, index)))
    return found


def mutate_row(row: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One to three type-preserving defects: bad text, nulls, emptied objects and lists."""
    row = copy.deepcopy(row)
    for _ in range(rng.randint(1, 3)):
        *parents, last = rng.choice(positions(row))
        target: Any = row
        for part in parents:
            target = target[part]
        value = target[last]
        kind = rng.randrange(4)
        if kind == 0:
            target[last] = None  # a null field, required or not, an item or a whole object
        elif isinstance(value, str):
            target[last] = rng.choice(BAD_TEXT)
        elif isinstance(value, dict):
            target[last] = dict.fromkeys(value)  # every field null: the object is dropped
        elif isinstance(value, list):
            template = dict.fromkeys(value[0]) if value and isinstance(value[0], dict) else None
            target[last] = rng.choice([[], [*value, None], [*value, template], value + value])
        elif isinstance(value, bool):
            target[last] = not value
        elif isinstance(value, float):
            target[last] = rng.choice([float("nan"), 1.5, -1.0, 0.0, 1e300])
        elif isinstance(value, datetime):
            target[last] = rng.choice(ODD_TIMES)
    return row


def mutate_rows(table: pa.Table, rng: random.Random, count: int) -> pa.Table:
    rows = table.to_pylist()
    picked = [
        mutate_row(row, rng) if rng.random() < 0.6 else row for row in rng.sample(rows, count)
    ]
    return pa.Table.from_pylist(picked, schema=table.schema)


@pytest.mark.parametrize("dataset", sorted(FLOWS))
def test_randomly_mutated_rows_get_the_same_report(dataset: str) -> None:
    table = pipeline_table(dataset)
    schema = FLOWS[dataset].xdm_schema()
    mutated = mutate_rows(table, random.Random(f"{dataset}-rows"), 1500)
    report = assert_same_report(schema, mutated)
    assert report.invalid > 100
    # The screen is not "flag everything": the unchanged rows stay cleared.
    assert len(columnar.suspect_rows(schema, mutated)) < 0.8 * mutated.num_rows


# --------------------------------------------------------------------------------------------
# Arrow-level defects: unknown columns, wrong types, missing columns


def replace_field(
    table: pa.Table, dotted: str, change: Callable[[pa.Array], pa.Array | None]
) -> pa.Table:
    """``table`` with the struct path ``dotted`` replaced by ``change(old)`` (None drops it)."""
    top, *rest = dotted.split(".")
    column = table.column(top).combine_chunks()

    def rebuild(array: pa.Array, path: list[str]) -> pa.Array | None:
        if not path:
            return change(array)
        names = [array.type.field(i).name for i in range(array.type.num_fields)]
        children = {name: array.field(i) for i, name in enumerate(names)}
        new = rebuild(children[path[0]], path[1:]) if path[0] in children else change(None)
        if new is None:
            children.pop(path[0])
        else:
            children[path[0]] = new
        return pa.StructArray.from_arrays(
            list(children.values()), names=list(children), mask=pc.invert(array.is_valid())
        )

    new_column = rebuild(column, rest)
    index = table.schema.get_field_index(top)
    if new_column is None:
        return table.remove_column(index)
    return table.set_column(index, top, new_column)


def texts(n: int, rng: random.Random) -> pa.Array:
    return pa.array([rng.choice([*BAD_TEXT, None, "fine"]) for _ in range(n)], pa.string())


def arrow_defects(table: pa.Table, rng: random.Random) -> list[pa.Table]:
    """Tables of the same rows with one Arrow-level change each, where the dataset allows."""
    n = table.num_rows
    names = table.schema.names
    out = [
        table.append_column("unknownTopLevel", texts(n, rng)),
        table.append_column("_id", table.column("_id")),  # duplicate names
        table.remove_column(names.index("_id")),
        table.set_column(
            names.index("_id"), "_id", pc.cast(table.column("_id"), pa.large_string())
        ),
        table.set_column(names.index("_id"), "_id", pc.dictionary_encode(table.column("_id"))),
        table.set_column(names.index("_id"), "_id", pa.array(range(n), pa.int64())),
        table.set_column(names.index("_id"), "_id", texts(n, rng)),
    ]
    structs = [name for name in names if pa.types.is_struct(table.schema.field(name).type)]
    for name in structs:
        out.append(replace_field(table, f"{name}.unknownNested", lambda _: texts(n, rng)))
        out.append(replace_field(table, name, lambda a: pa.nulls(len(a), a.type)))
    if "timestamp" in names:
        ts = table.column("timestamp").combine_chunks()
        index = names.index("timestamp")
        in_ns_range = pc.and_(pc.greater(pc.year(ts), 1700), pc.less(pc.year(ts), 2200))
        as_text = pc.strftime(ts, "%Y-%m-%dT%H:%M:%S.000Z")
        mixed = pc.if_else(pa.array([rng.random() < 0.1 for _ in range(n)]), texts(n, rng), as_text)
        out += [
            table.remove_column(index),
            table.set_column(index, "timestamp", as_text),
            table.set_column(index, "timestamp", mixed),
            table.set_column(
                index,
                "timestamp",
                pc.cast(pc.if_else(in_ns_range, ts, None), pa.timestamp("ns", "UTC")),
            ),
            table.set_column(
                index, "timestamp", pc.cast(pc.if_else(in_ns_range, ts, None), pa.timestamp("us"))
            ),
            table.set_column(index, "timestamp", pc.cast(ts, pa.date32())),
        ]
    if "directMarketing" in names:
        first = table.schema.field("directMarketing").type.field(0).name
        path = f"directMarketing.{first}.value"
        out += [
            replace_field(table, path, lambda a: pc.cast(a, pa.int64(), safe=False)),
            replace_field(table, path, lambda a: pc.cast(a, pa.string())),
            replace_field(table, path, lambda a: None),  # the measure's required value
        ]
    if "_experience" in names:
        out += [
            replace_field(table, f"_experience.campaign.{leaf}", lambda a, t=to_type: pc.cast(a, t))
            for leaf, to_type in (("quarantine", pa.string()), ("channel", pa.binary()))
            if leaf in table.schema.field("_experience").type.field("campaign").type.names
        ]
    if "consents" in names and "push" in table.schema.field("consents").type.field(0).type.names:
        # consents.*.reason has maxLength 255.
        long_text = pa.array([rng.choice(["ok", "y" * 255, "z" * 256, None]) for _ in range(n)])
        out.append(replace_field(table, "consents.marketing.push.reason", lambda _: long_text))
    if "person" in names:
        out.append(replace_field(table, "person.birthDate", lambda _: texts(n, rng)))
        out.append(replace_field(table, "person.birthYear", lambda _: pa.array(
            [rng.choice([None, 0, 1, 1990, 32767, 40000]) for _ in range(n)], pa.int32())
        ))  # fmt: skip
    if "homeAddress" in names:
        out.append(replace_field(table, "homeAddress.countryCode", lambda _: texts(n, rng)))
    if "personalEmail" in names:
        out.append(replace_field(table, "personalEmail.address", lambda _: texts(n, rng)))
    identity = table.column("identityMap").type.field(0)
    out.append(
        replace_field(
            table,
            f"identityMap.{identity.name}",
            lambda a: pc.cast(a, pa.large_list(identity.type.value_type)),
        )
    )
    return out


@pytest.mark.parametrize("dataset", sorted(FLOWS))
def test_arrow_level_defects_get_the_same_report(dataset: str) -> None:
    rng = random.Random(f"{dataset}-arrow")
    table = mutate_rows(pipeline_table(dataset), rng, 400)
    schema = FLOWS[dataset].xdm_schema()
    defects = arrow_defects(table, rng)
    assert len(defects) >= 10
    invalid = [assert_same_report(schema, defect).invalid for defect in defects]
    assert any(count == table.num_rows for count in invalid)  # e.g. an integer _id


def test_targeted_value_defects_of_the_brief() -> None:
    """Enum, email, uri-reference, lengths, null required fields at root and nested."""
    table = pipeline_table("broadlog").slice(0, 200)
    schema = FLOWS["broadlog"].xdm_schema()
    n = table.num_rows
    ids = ["a b", "%zz", "1a:b", "x#y#z", "ok\n", None, "fine-1"]  # "ok\n": Python's $ allows it
    bad_ids = pa.array([ids[i % len(ids)] for i in range(n)])
    report = assert_same_report(
        schema, table.set_column(table.schema.get_field_index("_id"), "_id", bad_ids)
    )
    assert report.error_counts == {
        "_id: does not match format 'uri-reference'": sum(i % 7 < 4 for i in range(n)),
        "_id: required field is missing": sum(i % 7 == 5 for i in range(n)),
    }
    namespace = table.column("identityMap").type.field(0).name

    def bad_state(lists: pa.Array) -> pa.Array:
        items = lists.values
        state = pa.array(["AUTHENTICATED"] * len(items))
        fields = {items.type.field(i).name: items.field(i) for i in range(items.type.num_fields)}
        fields["authenticatedState"] = state
        new_items = pa.StructArray.from_arrays(list(fields.values()), names=list(fields))
        return pa.ListArray.from_arrays(lists.offsets, new_items, mask=pc.is_null(lists))

    report = assert_same_report(schema, replace_field(table, f"identityMap.{namespace}", bad_state))
    assert list(report.error_counts) == [
        "identityMap.*[].authenticatedState: value is not one of "
        "['ambiguous', 'authenticated', 'loggedOut']"
    ]


# --------------------------------------------------------------------------------------------
# Adobe's documented examples as Arrow tables


def example_table(record: dict[str, Any]) -> pa.Table:
    """The example, then one row per leaf with that leaf nulled (required fields...)."""
    rows = [record]
    for path in positions(record)[:40]:
        changed = copy.deepcopy(record)
        target: Any = changed
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = None
        rows.append(changed)
    first = pa.Table.from_pylist([record])
    return pa.Table.from_pylist(rows, schema=first.schema)


def test_adobe_examples_as_arrow_tables() -> None:
    built = 0
    for relative in DATATYPE_AND_FIELD_GROUP_EXAMPLES:
        schema = XdmSchema.compose(schema_id_of(relative), root=VENDORED_ROOT)
        record = to_dataset_form(example(relative))
        try:
            table = example_table(record)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            continue  # mixed-type JSON arrays have no Arrow type
        assert_same_report(schema, table)
        built += 1
    assert built >= 20


def test_adobe_shaped_event_and_profile_tables() -> None:
    event = {
        "_id": "4ab7e6e6-campaign-1",
        "timestamp": datetime(2024, 5, 2, 9, 15, 27, tzinfo=UTC),
        "eventType": "directMarketing.emailSent",
        "identityMap": {"Email": [{"id": "a@example.com", "authenticatedState": "ambiguous",
                                   "primary": True}]},
        "directMarketing": {"sends": {"value": 1.0}},
        "_experience": {"campaign": {"broadlogID": "102", "quarantine": False}},
    }  # fmt: skip
    profile = {
        "_id": "https://example.com/profile/1",
        "person": {"name": {"firstName": "Ana"}, "gender": "female", "birthDate": "1990-02-28",
                   "birthYear": 1990},
        "personalEmail": {"address": "ana@example.com", "status": "active"},
        "homeAddress": {"countryCode": "FR", "city": "Lyon"},
        "consents": {"marketing": {"email": {"val": "y", "time": "2024-05-02T09:15:27+02:00"}}},
        "segmentMembership": {"ups": {"seg-1": {"status": "realized"}}},
    }  # fmt: skip
    for flow, record in ((FLOWS["broadlog"], event), (FLOWS["profiles"], profile)):
        schema = (
            flow.xdm_schema()
            if flow is FLOWS["broadlog"]
            else XdmSchema.compose(
                "https://ns.adobe.com/xdm/context/profile",
                [
                    "https://ns.adobe.com/xdm/context/profile-person-details",
                    "https://ns.adobe.com/xdm/context/profile-personal-details",
                    "https://ns.adobe.com/xdm/mixins/profile-consents",
                    "https://ns.adobe.com/xdm/context/profile-segmentation",
                ],
            )
        )
        table = example_table(record)
        report = assert_same_report(schema, table)
        assert report.invalid < table.num_rows  # the documented record itself is valid
        assert 0 not in {index for index, _ in report.examples}


# --------------------------------------------------------------------------------------------
# The RE2 screens accept only values formats.py accepts


TRICKY = [
    "", "a", "campaign-broadlog-123-1-2024", "a b", "%", "%2", "%zz", "%20", "a:b", "1a:b",
    "a+b.c-d:x", ":x", "/a:b", "?a:b", "#a:b", "a#b#c", "a#b:c", "ok\n", "ok\n\n", "\nok", "é",
    "[::1]", "http://[::1]:80/", "urn:isbn:0451450523", "mailto:a@b", "//host/path",
    "1990-02-28", "1990-02-29", "2000-02-29", "0000-01-01", "0001-01-01", "1990-13-01",
    "1990-02-28T09:15:27Z", "1990-02-28t09:15:27z", "1990-02-28T24:00:00Z",
    "1990-02-28T09:15:60Z", "1990-02-28T09:15:27.123456789+23:59", "1990-02-28T09:15:27+24:00",
    "1990-02-28T09:15:27", "1990-02-28 09:15:27Z", "١٩٩٠-02-28", "1990-02-28T09:15:27Z\n",
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("uri-reference", formats._is_uri_reference),
        ("date", formats._is_date),
        ("date-time", formats._is_date_time),
    ],
)
def test_sure_format_screens_are_subsets(name: str, check: Callable[[object], bool]) -> None:
    passed = pc.match_substring_regex(pa.array(TRICKY), columnar._SURE_FORMATS[name]).to_pylist()
    cleared = [value for value, ok in zip(TRICKY, passed, strict=True) if ok]
    assert cleared and all(check(value) for value in cleared)


def test_timestamps_outside_four_digit_years_are_checked_per_record() -> None:
    schema = FLOWS["broadlog"].xdm_schema()
    table = pipeline_table("broadlog").slice(0, len(ODD_TIMES))
    times = pa.array(ODD_TIMES, pa.timestamp("us", "UTC"))
    report = assert_same_report(schema, table.set_column(1, "timestamp", times))
    assert report.error_counts == {"timestamp: does not match format 'date-time'": 2}


EDGE_TIMES = [
    datetime(1000, 12, 31, 23, 59, 59, 999999, UTC), datetime(1001, 1, 1, tzinfo=UTC),
    datetime(9998, 12, 31, 23, 59, 59, 999999, UTC), datetime(9999, 1, 1, tzinfo=UTC),
    datetime(1677, 9, 22, tzinfo=UTC), datetime(2262, 4, 11, tzinfo=UTC), None,
]  # fmt: skip


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "Pacific/Kiritimati", None])
def test_timestamp_screen_compares_ticks_as_the_year_would(unit: str, zone: str | None) -> None:
    """The date-time screen compares ticks with the first and last instants of the sure
    years: it clears exactly the values whose year (UTC, or the wall clock of naive
    timestamps) lies in them, at every unit, and nanoseconds (years 1677-2262) all."""
    fits = [t for t in EDGE_TIMES if t is None or unit != "ns" or 1678 <= t.year <= 2261]
    values = pa.array(fits, pa.timestamp(unit, "UTC")).cast(pa.timestamp(unit, zone))
    cleared = columnar._sure_year_ticks(values).to_pylist()
    low, high = columnar._SURE_YEARS
    years = [None if t is None else t.year for t in fits]
    assert cleared == [None if y is None else low <= y <= high for y in years]
    if unit == "us" and zone is not None:
        schema = FLOWS["broadlog"].xdm_schema()
        table = pipeline_table("broadlog").slice(0, len(fits))
        assert_same_report(schema, table.set_column(1, "timestamp", values))


def test_plain_uri_characters_clear_a_column_and_any_other_byte_uses_the_regex() -> None:
    """`_id`s made only of URI_CHAR's single characters are cleared by one pass over the
    column's text; one value with any other byte (even in a null's slot) sends the column
    through the regex, and every value it clears is a valid uri-reference."""
    screen = columnar._fast_pass("string", "format", "uri-reference")
    assert screen is not None
    plain = pa.array(["campaign-broadlog-1-1-2024", "a/b?c@d!$&'()*+,;=~_.", "", None])
    assert screen(plain).to_pylist() == [True] * 4
    assert columnar._only_plain_uri_bytes(plain)
    for other in ["a:b", "a#b", "%20", "a b", "é", "ok\n", "[::1]", "a%zz"]:
        column = pa.array([*plain.to_pylist(), other])
        assert not columnar._only_plain_uri_bytes(column)
        cleared = screen(column).to_pylist()
        assert cleared[:3] == [True] * 3
        assert not cleared[-1] or formats._is_uri_reference(other)
    # A null's slot holding bytes the text says nothing about: the regex decides.
    hidden = pa.StringArray.from_buffers(
        2,
        pa.py_buffer(bytes([0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0])),
        pa.py_buffer(b"ab%z"),
        pa.py_buffer(bytes([0b01])),
    )
    assert hidden.to_pylist() == ["ab", None] and not columnar._only_plain_uri_bytes(hidden)
    assert columnar._only_plain_uri_bytes(hidden.slice(0, 1))
    schema = FLOWS["broadlog"].xdm_schema()
    table = pipeline_table("broadlog").slice(0, 12)
    ids = [f"id-{i}" for i in range(10)] + ["a b", "urn:x:y"]
    assert_same_report(schema, table.set_column(0, "_id", pa.array(ids)))
    report = assert_same_report(schema, table.set_column(0, "_id", pa.array([*ids[:10], "x", ""])))
    assert report.invalid == 0
