"""The columnar XDM JSON encoder writes exactly the reference's bytes (`xdm.to_records` then
`xdm.dumps` per record), and `record_lengths` gives exactly their lengths: on the XDM of every
Campaign dataset built by the real pipeline, and on hand-written tables with every awkward value.
"""

from __future__ import annotations

import json
import random
import struct
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from rtcdp_assets.shared import xdm
from rtcdp_assets.shared.xdm_json import json_line_chunks, json_lines, record_lengths
from tests.campaign_to_aep.xdm_partitions import FLOWS, real_xdm


def reference(batch: pa.RecordBatch | pa.Table) -> bytes:
    return "".join(xdm.dumps(r) + "\n" for r in xdm.to_records(batch)).encode()


def assert_same_as_reference(table: pa.Table | pa.RecordBatch) -> None:
    expected = reference(table)
    assert json_lines(table) == expected
    assert b"".join(json_line_chunks(table)) == expected
    lengths = record_lengths(table)
    assert lengths.type == pa.int64()
    assert lengths.to_pylist() == [len(line) for line in expected.splitlines()]


@pytest.mark.parametrize("dataset", sorted(FLOWS))
def test_every_campaign_dataset_encodes_as_the_reference(tmp_path, dataset):
    table = real_xdm(tmp_path, dataset)
    assert table.num_rows > 2000
    assert_same_as_reference(table)
    # Batches as the checks read them, and a slice not starting at row 0.
    assert_same_as_reference(table.slice(17, 1234).combine_chunks())
    for batch in table.to_batches(max_chunksize=500)[:3]:
        assert_same_as_reference(batch)


AWKWARD_TEXT = [
    'say "hi"',
    "back\\slash",
    "line\nbreak\r\n",
    "tab\tbell\x07nul\x00esc\x1b\x1f",
    "\b\f",
    "café Zoë Novák",
    "日本語",
    "emoji 🎉👍🏽",
    "",
    "\x7f del",
    "plain",
    None,
    "</script>",
    "\u2028 line separator",
]
ID_ITEM = pa.struct(
    [("id", pa.string()), ("authenticatedState", pa.string()), ("primary", pa.bool_())]
)


def awkward_table() -> pa.Table:
    n = len(AWKWARD_TEXT)
    rows = range(n)
    floats = [
        1.0,
        0.5,
        1e-05,
        1e16,
        -0.0,
        2.0**60,
        123456789012345.6,
        0.1,
        1e15,
        -3.25,
        1 / 3,
        float("nan"),
        float("inf"),
        None,
    ]
    stamps = [
        datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        None,
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1000, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 30, 23, 59, 59, 999, UTC),
        *[datetime(2026, 11, 23, 8, 0, 0, i * 1001, tzinfo=UTC) for i in range(n - 5)],
    ]
    identity = [
        None,
        [],
        [None],
        [{"id": 'a"b', "authenticatedState": None, "primary": None}],
        [{"id": None, "authenticatedState": None, "primary": None}],
        [{"id": "x", "authenticatedState": "ambiguous", "primary": True}] * 3,
        *[
            [{"id": f"id{i}", "authenticatedState": "authenticated", "primary": False}]
            for i in range(n - 6)
        ],
    ]
    nested = [
        None,
        {"a": None, "b": None},
        {"a": {"x": None}, "b": None},
        {"a": {"x": 1}, "b": []},
        {"a": None, "b": [None, 2]},
        *[{"a": {"x": i}, "b": [i, i + 1]} for i in range(n - 5)],
    ]
    return pa.table(
        {
            "zText": pa.array(AWKWARD_TEXT, pa.string()),
            "large": pa.array(AWKWARD_TEXT[::-1], pa.large_string()),
            "count": pa.array([None if i == 3 else (-1) ** i * 10**i for i in rows], pa.int64()),
            "small": pa.array([i % 3 if i % 4 else None for i in rows], pa.int8()),
            "flag": pa.array([[True, False, None][i % 3] for i in rows]),
            "value": pa.array(floats, pa.float64()),
            "single": pa.array([0.1, 1.5, None, *[float(i) for i in range(n - 3)]], pa.float32()),
            "timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
            "paris": pa.array(stamps, pa.timestamp("ms", tz="Europe/Paris")),
            "seconds": pa.array(stamps, pa.timestamp("s", tz="UTC")),
            "naive": pa.array([s and s.replace(tzinfo=None) for s in stamps], pa.timestamp("us")),
            "ancient": pa.array(
                [
                    datetime(999, 5, 6, 7, 8, 9, 5000, UTC),
                    datetime(1, 1, 1, tzinfo=UTC),
                    *stamps[2:],
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "identityMap": pa.array(
                [{"Email": identity[i], "Phone": identity[-1 - i]} for i in rows],
                pa.struct([("Email", pa.list_(ID_ITEM)), ("Phone", pa.list_(ID_ITEM))]),
            ),
            "nested": pa.array(
                nested,
                pa.struct([("b", pa.list_(pa.int64())), ("a", pa.struct([("x", pa.int64())]))]),
            ),
            "words": pa.array(
                [None, [], [None], ["a", None, 'q"'], *[[t] for t in AWKWARD_TEXT[: n - 4]]],
                pa.list_(pa.string()),
            ),
            "tags": pa.array(
                [
                    None,
                    [],
                    [("k", None)],
                    [("b", "2"), ("a", "1")],
                    *[[("z", t)] for t in AWKWARD_TEXT[: n - 4]],
                ],
                pa.map_(pa.string(), pa.string()),
            ),
            "allNull": pa.nulls(n, pa.struct([("x", pa.string())])),
            "nothing": pa.nulls(n),
            "dict": pa.array(AWKWARD_TEXT).dictionary_encode(),
        }
    )


def test_awkward_values_encode_as_the_reference():
    table = awkward_table()
    assert_same_as_reference(table)
    for i in range(table.num_rows):  # every row alone, sliced out of the batch
        assert_same_as_reference(table.slice(i, 1))


def test_records_left_empty_and_items_left_empty():
    kind = pa.struct([("a", pa.struct([("b", pa.string())])), ("c", pa.list_(ID_ITEM))])
    column = pa.array(
        [
            None,
            {"a": None, "c": None},
            {"a": {"b": None}, "c": [None, {}]},
            {"a": {"b": ""}, "c": []},
        ],
        kind,
    )
    table = pa.table({"x": column, "y": pa.nulls(4, pa.string())})
    assert json_lines(table) == b'{}\n{}\n{"x":{"c":[null,{}]}}\n{"x":{"a":{"b":""},"c":[]}}\n'
    assert_same_as_reference(table)


def test_random_floats_match_python_repr():
    rng = random.Random(20)
    values = [struct.unpack("<d", rng.randbytes(8))[0] for _ in range(20_000)]
    values += [rng.uniform(-1e6, 1e6) for _ in range(20_000)]
    values += [float(rng.randint(-(2**62), 2**62)) for _ in range(5_000)]
    values += [rng.choice([1.0, 0.5, 1e-4, 9.999e-5, 1e16 - 2, 1e16, 1e-7]) for _ in range(100)]
    table = pa.table({"v": pa.array(values, pa.float64())})
    got = json_lines(table).decode().splitlines()
    assert got == [json.dumps({"v": v}, separators=(",", ":")) for v in values]
    assert_same_as_reference(table)


def test_integral_floats_and_integers_measure_as_their_text():
    """`record_lengths` counts the digits of integral floats and of integers instead of
    formatting them: each mix below (integral values around the 1e16 switch to exponents,
    -0.0, halves, NaN, infinities, nulls, the integer types' extremes) measures exactly as the
    reference writes it, columns all integral and columns where only some rows are."""
    mixed = [1.0, 2.0, 0.0, -0.0, -1.0, 9.0, 10.0, 99.0, 100.0, 1e15, -1e15, 1e16 - 2, 1e16]
    mixed += [-1e16, 1e17, 9007199254740993.0, 0.5, -0.5, 1e-5, float("nan"), float("inf")]
    mixed += [float("-inf"), None, 123456789012345.0, 2.5e-7]
    columns = {
        "mixed": pa.array(mixed, pa.float64()),
        "ones": pa.array([1.0] * len(mixed), pa.float64()),
        "ones_and_nulls": pa.array([None if i % 3 else 1.0 for i in range(len(mixed))]),
        "only_nulls": pa.nulls(len(mixed), pa.float64()),
        "single": pa.array([None if v is None else v for v in mixed], pa.float32()),
    }
    extremes = {
        pa.int8(): [-(2**7), 2**7 - 1],
        pa.int64(): [-(2**63), 2**63 - 1],
        pa.uint64(): [0, 2**64 - 1],
        pa.uint8(): [0, 255],
    }
    for kind, (low, high) in extremes.items():
        values = [low, high, 0, None, 9, 10, 11, low + 1, high - 1, 1]
        values += [None] * (len(mixed) - len(values))
        columns[f"int_{kind}"] = pa.array(values, kind)
    table = pa.table(columns)
    assert_same_as_reference(table)
    for name in columns:  # each column alone: all-integral columns take the fast path whole
        assert_same_as_reference(table.select([name]))
    for i in range(table.num_rows):
        assert_same_as_reference(table.slice(i, 1))


def test_random_text_matches_json_dumps():
    rng = random.Random(21)
    alphabet = [chr(c) for c in range(0x30)] + ["é", "€", "😀", "\\", '"', "\u2028", "a"]
    values = ["".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(5_000)]
    table = pa.table({"s": values, "t": pa.array(values[::-1], pa.large_string())})
    assert_same_as_reference(table)


def test_an_empty_batch_and_a_table_of_chunks():
    table = awkward_table()
    assert json_lines(table.slice(0, 0)) == b""
    assert record_lengths(table.slice(0, 0)).to_pylist() == []
    chunked = pa.concat_tables([table, table.slice(3, 5), table])
    assert chunked.column(0).num_chunks == 3
    assert_same_as_reference(chunked)
