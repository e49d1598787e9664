"""`stored_value_counts` (reconciliation and single_org_unit): text read as dictionaries counts
as the plain column does, whatever each row group's dictionary, nulls and non-text included."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from asset_checks.partition_reconciliation import stored_value_counts


def test_counts_equal_the_plain_columns_value_counts(tmp_path: Path) -> None:
    schema = pa.schema([("file", pa.string()), ("unit", pa.large_string()), ("n", pa.int64())])
    path = tmp_path / "data.parquet"
    groups = [
        {
            "file": ["a.csv", "b.csv", "a.csv", None],
            "unit": ["x", None, "y", "x"],
            "n": [1, 2, 2, None],
        },
        {"file": ["c.csv"] * 3 + ["a.csv"], "unit": ["ü", "x", "x", "x"], "n": [3, 3, 3, 1]},
        {"file": [None] * 4, "unit": [None] * 4, "n": [None] * 4},
    ]
    with pq.ParquetWriter(path, schema) as writer:  # one dictionary per row group
        for group in groups:
            writer.write_table(pa.table(group, schema=schema))
    plain = pq.read_table(path)
    for column in schema.names:
        expected = {
            item["values"]: item["counts"]
            for item in pc.value_counts(plain.column(column)).to_pylist()
        }
        assert stored_value_counts(path, column) == expected
    assert stored_value_counts(path, "file") == {"a.csv": 3, "b.csv": 1, "c.csv": 3, None: 5}
