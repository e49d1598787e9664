"""ParquetSink: what is written is what was given, whatever the row groups and threads."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources.warehouse import ROW_GROUP_ROWS, ParquetSink, dictionary_columns

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("status", pa.string()),
        pa.field(
            "identity",
            pa.list_(pa.struct([pa.field("id", pa.string()), pa.field("primary", pa.bool_())])),
        ),
    ]
)


def _batch(start: int, n: int) -> pa.RecordBatch:
    ids = list(range(start, start + n))
    return pa.RecordBatch.from_pydict(
        {
            "id": ids,
            "status": [("sent", "failed", None)[i % 3] for i in ids],
            "identity": [None if i % 5 == 0 else [{"id": f"u{i}", "primary": True}] for i in ids],
        },
        schema=SCHEMA,
    )


@pytest.mark.parametrize("background", [True, False])
def test_rows_come_back_in_order_across_row_groups(tmp_path: Path, background: bool) -> None:
    path = tmp_path / "data.parquet"
    sizes = [7_001] * 20 + [3, 0, 1]
    batches, start = [], 0
    for n in sizes:
        batches.append(_batch(start, n))
        start += n
    with ParquetSink(path, SCHEMA, background=background) as sink:
        for b in batches:
            sink.write(b)
    assert sink.rows == start
    table = pq.read_table(path)
    assert table.schema.equals(SCHEMA)
    assert table.equals(pa.Table.from_batches(batches, schema=SCHEMA).combine_chunks())
    groups = pq.ParquetFile(path).metadata.num_row_groups
    assert groups == -(-start // ROW_GROUP_ROWS)  # buffered into full groups, not one per batch


def test_nothing_written_still_gives_an_empty_typed_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    with ParquetSink(path, SCHEMA) as sink:
        sink.write(_batch(0, 0))
    table = pq.read_table(path)
    assert table.num_rows == 0 and table.schema.equals(SCHEMA)


def test_a_batch_that_does_not_fit_the_schema_raises(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path / "bad.parquet", SCHEMA)
    with pytest.raises(ValueError, match="non-nullable"):
        sink.write(
            pa.RecordBatch.from_pydict(
                {"id": [1, None], "status": ["a", "b"], "identity": [None, None]}
            )
        )
    sink.close()


def test_dictionaries_only_on_columns_with_few_distinct_values() -> None:
    table = pa.Table.from_batches([_batch(0, 1_000)])
    assert dictionary_columns(table) == ["status"]
