"""`raw_json` gives the per-record reference's text for every row, odd rows included.

Rejected rows as the ingest rules see them: typed columns (text, integers, floats, booleans,
timestamps, nulls), values with quotes, backslashes, tabs, line ends, non-ASCII text, and the
rare control characters that need json's `\\u` escapes (those rows alone go through json).
"""

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from rtcdp_assets.shared.row_json import raw_json
from tests import per_record_reference as reference

TEXTS = [
    "plain",
    'say "hi"',
    "back\\slash",
    "tab\tand\nline\r",
    "Zoë – 東京",
    None,
    "bell\x07",
    "unit\x1fsep",
    "nul\x00byte",
    "",
]


def rejected_rows(texts: list[str | None]) -> pa.Table:
    n = len(texts)
    return pa.table(
        {
            "broadlog_id": pa.array(range(n), pa.int64()),
            "recipient_id": pa.array(texts, pa.string()),
            "status": pa.array([i % 3 if i % 4 else None for i in range(n)], pa.int32()),
            "cost": pa.array([i / 8 for i in range(n)], pa.float64()),
            "opened": pa.array([i % 2 == 0 for i in range(n)], pa.bool_()),
            "event_date": pa.array(
                [datetime(2026, 11, 30, i % 24, tzinfo=UTC) for i in range(n)],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )


@pytest.mark.parametrize("odd", [True, False], ids=["control characters", "none"])
def test_raw_json_equals_the_reference(odd: bool) -> None:
    texts = TEXTS if odd else [t for t in TEXTS if t is None or t.isprintable() or "\t" in t]
    table = rejected_rows(texts * 50)
    columns = ["recipient_id", "broadlog_id", "status", "cost", "opened", "event_date"]
    for batch in table.to_batches(max_chunksize=128):
        assert raw_json(batch, columns).equals(reference.raw_json(batch, columns))
    # A Table of several chunks, as `reject_invalid_phones` may pass, gives the same text.
    chunked = pa.concat_tables([table.slice(0, 100), table.slice(100)])
    got = raw_json(chunked, columns)
    assert got.to_pylist() == reference.raw_json(chunked, columns).to_pylist()
    assert len(got) == table.num_rows
    assert ("\\u0007" in "".join(got.to_pylist())) is odd
