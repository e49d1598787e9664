"""Row rules that need the whole partition (or the file's name), applied after `ingest_file`.

`ingest_file` judges each row on its own values. Two rules need more context:

- `timestamp_in_future`: a timestamp later than the end of the 4-hour window the file's name
  puts it in, plus `settings.export_time_tolerance_seconds`. A file cannot hold an event that
  had not happened when it was written. Campaign workflows (and the sample data) name an export
  by a time inside its window, often the window start, while its rows run to the window end:
  so the bound is the window end, never the bare time in the name. Comparing with the name
  (never the wall clock) keeps re-runs identical. Every timestamp field counts (event,
  contact, creation and change dates all lie before the export). The name's time is read as
  UTC, as for the partition assignment.
- `duplicate_row`: a row whose canonical values (after typing; the extra columns a layout
  ignores do not count) equal those of an earlier row of the same partition, in file-name then
  line order. The first copy is kept; each later copy is rejected with the first one's file and
  line in `column`, so the order and result are the same on every re-run.

Memory: one 64-bit hash per row (8 bytes; 80 MB for ten million rows) and the rows that share a
hash with another one. Candidates are confirmed by grouping on the actual values, so a hash
collision can never reject a row. Files without future timestamps or duplicates are returned
unchanged after a single read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rtcdp_assets.ingest import LINE_NUMBER, REJECT_SCHEMA, SOURCE_FILE, ExportFormat

DUPLICATE_ROW = "duplicate_row"
TIMESTAMP_IN_FUTURE = "timestamp_in_future"
_BATCH_ROWS = 65536
_IDX = "__row_index"


def window_end_from_stamp(stamp: str | None) -> datetime | None:
    """`20261123_0930` (the time in an export's name) -> end of its 4-hour window, 12:00 UTC."""
    if not stamp:
        return None
    fmt = "%Y%m%d_%H%M%S" if len(stamp) == 15 else "%Y%m%d_%H%M"
    try:
        when = datetime.strptime(stamp, fmt).replace(tzinfo=UTC)
    except ValueError:
        return None
    start = when.replace(hour=when.hour - when.hour % 4, minute=0, second=0)
    return start + timedelta(hours=4)


def _future_mask(
    batch: pa.RecordBatch, fields: Sequence[str], limit: datetime | None
) -> np.ndarray:
    """Rows with any timestamp field later than `limit`, and the first such field per row."""
    out = np.zeros(batch.num_rows, dtype=bool)
    if limit is None:
        return out
    for name in fields:
        col = batch.column(name)
        late = pc.fill_null(pc.greater(col, pa.scalar(limit, col.type)), False)
        out |= late.to_numpy(zero_copy_only=False)
    return out


def _first_future_field(
    batch: pa.RecordBatch, fields: Sequence[str], limit: datetime, rows: np.ndarray
) -> list[str]:
    names: list[str | None] = [None] * len(rows)
    for name in fields:
        col = pc.take(batch.column(name), pa.array(rows, pa.int64()))
        late = pc.fill_null(pc.greater(col, pa.scalar(limit, col.type)), False).to_pylist()
        for i, is_late in enumerate(late):
            if is_late and names[i] is None:
                names[i] = name
    return [n or "" for n in names]


def _row_hashes(batch: pa.RecordBatch, columns: Sequence[str]) -> np.ndarray:
    frame = batch.select(list(columns)).to_pandas()
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)


def _raw_json(batch: pa.RecordBatch, columns: Sequence[str]) -> list[str]:
    """The typed values of a rejected row as JSON text (the CSV text is gone by now)."""
    rows = batch.select(list(columns)).to_pylist()
    return [json.dumps(r, ensure_ascii=False, default=str, sort_keys=False) for r in rows]


def apply_partition_rules(
    fmt: ExportFormat,
    good_parts: Sequence[Path],
    reject_parts: Sequence[Path],
    files: Sequence[dict[str, Any]],
    *,
    latest_time: Callable[[str], datetime | None],
    tolerance: timedelta,
) -> tuple[list[Path], list[Path]]:
    """Move future-dated and duplicate rows from the typed parts to the reject parts.

    `good_parts[i]` / `reject_parts[i]` are the Parquet outputs of `ingest_file` for the
    processed file whose manifest entry is `files[i]` (parts in the order the partition lists
    its files); `latest_time(file name)` is the latest time its rows may carry before the
    tolerance (None: no bound). The entries' `rows_out`, `rows_rejected` and `reasons` are
    updated in place, so rows in = rows out + rows rejected still holds per file. Returns the
    new part paths (unchanged paths for files no rule touched); rejects stay in line order.
    """
    canonical = [f.name for f in fmt.fields]
    ts_fields = [f.name for f in fmt.fields if f.kind == "timestamp"]
    limits = []
    for entry in files:
        when = latest_time(entry["source_file"])
        limits.append(None if when is None else when + tolerance)

    # Pass 1: one hash per row that survives the future rule, in partition order.
    hashes: list[np.ndarray] = []
    any_future = False
    for part, limit in zip(good_parts, limits, strict=True):
        for batch in pq.ParquetFile(part).iter_batches(batch_size=_BATCH_ROWS):
            future = _future_mask(batch, ts_fields, limit)
            any_future |= bool(future.any())
            if batch.num_rows:
                hashes.append(_row_hashes(batch, canonical)[~future])
    all_hashes = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
    del hashes
    all_hashes.sort()
    repeated = np.unique(all_hashes[1:][all_hashes[1:] == all_hashes[:-1]])
    del all_hashes
    if not any_future and repeated.size == 0:
        return list(good_parts), list(reject_parts)

    # Pass 2: the rows that share a hash, grouped on their actual values.
    duplicates_of: dict[tuple[int, int], tuple[str, int]] = {}
    if repeated.size:
        candidates: list[pa.Table] = []
        for p, (part, limit) in enumerate(zip(good_parts, limits, strict=True)):
            offset = 0
            for batch in pq.ParquetFile(part).iter_batches(batch_size=_BATCH_ROWS):
                keep = ~_future_mask(batch, ts_fields, limit)
                keep &= np.isin(_row_hashes(batch, canonical), repeated)
                rows = np.nonzero(keep)[0]
                if rows.size:
                    picked = pa.Table.from_batches([batch]).take(pa.array(rows, pa.int64()))
                    order = (p << 40) + offset + rows  # partition order as one int64
                    candidates.append(picked.append_column(_IDX, pa.array(order, pa.int64())))
                offset += batch.num_rows
        table = pa.concat_tables(candidates)
        groups = table.group_by(canonical, use_threads=False).aggregate([(_IDX, "list")])
        firsts_of: dict[int, int] = {}
        for members in groups.column(f"{_IDX}_list").to_pylist():
            if len(members) > 1:
                members.sort()
                for later in members[1:]:
                    firsts_of[later] = members[0]
        if firsts_of:
            lookup = dict(
                zip(
                    table.column(_IDX).to_pylist(),
                    zip(
                        table.column(SOURCE_FILE).to_pylist(),
                        table.column(LINE_NUMBER).to_pylist(),
                        strict=True,
                    ),
                    strict=True,
                )
            )
            for later, first in firsts_of.items():
                duplicates_of[(later >> 40, later & ((1 << 40) - 1))] = lookup[first]
        del table, candidates

    # Pass 3: rewrite only the parts a rule touched.
    new_good: list[Path] = []
    new_rejects: list[Path] = []
    typed_schema = fmt.typed_schema
    for p, (part, rejects, limit, entry) in enumerate(
        zip(good_parts, reject_parts, limits, files, strict=True)
    ):
        touched = any(key[0] == p for key in duplicates_of)
        if not touched and limit is not None:
            touched = any(
                _future_mask(b, ts_fields, limit).any()
                for b in pq.ParquetFile(part).iter_batches(batch_size=_BATCH_ROWS)
            )
        if not touched:
            new_good.append(part)
            new_rejects.append(rejects)
            continue
        good_out = part.with_name(f"{part.stem}-ruled.parquet")
        rejects_out = rejects.with_name(f"{rejects.stem}-ruled.parquet")
        moved: list[pa.RecordBatch] = []
        with pq.ParquetWriter(good_out, typed_schema, compression="zstd") as writer:
            offset = 0
            for batch in pq.ParquetFile(part).iter_batches(batch_size=_BATCH_ROWS):
                n = batch.num_rows
                future = _future_mask(batch, ts_fields, limit)
                dup_rows = [
                    i for i in range(n) if not future[i] and (p, offset + i) in duplicates_of
                ]
                reason: list[str] = []
                column: list[str] = []
                rows = np.nonzero(future)[0]
                if rows.size:
                    assert limit is not None
                    for name in _first_future_field(batch, ts_fields, limit, rows):
                        reason.append(TIMESTAMP_IN_FUTURE)
                        column.append(name)
                for i in dup_rows:
                    first_file, first_line = duplicates_of[(p, offset + i)]
                    reason.append(DUPLICATE_ROW)
                    column.append(f"duplicate of {first_file} line {first_line}")
                bad_rows = np.concatenate([rows, np.asarray(dup_rows, dtype=np.int64)])
                if bad_rows.size:
                    bad = pa.Table.from_batches([batch]).take(pa.array(bad_rows, pa.int64()))
                    bad_batch = bad.combine_chunks().to_batches()[0]
                    moved.append(
                        pa.RecordBatch.from_arrays(
                            [
                                bad_batch.column(SOURCE_FILE),
                                bad_batch.column(LINE_NUMBER),
                                pa.array(reason, pa.string()),
                                pa.array(column, pa.string()),
                                pa.array(_raw_json(bad_batch, canonical), pa.string()),
                            ],
                            schema=REJECT_SCHEMA,
                        )
                    )
                keep = np.ones(n, dtype=bool)
                keep[bad_rows] = False
                writer.write_table(pa.Table.from_batches([batch]).filter(pa.array(keep)))
                offset += n
        old = pq.read_table(rejects, schema=REJECT_SCHEMA)
        merged = pa.concat_tables([old, pa.Table.from_batches(moved, schema=REJECT_SCHEMA)])
        merged = merged.sort_by([("line_number", "ascending")])
        pq.write_table(merged, rejects_out, compression="zstd")
        n_moved = sum(b.num_rows for b in moved)
        entry["rows_out"] -= n_moved
        entry["rows_rejected"] += n_moved
        reasons = dict(entry.get("reasons") or {})
        for b in moved:
            for r in b.column("reason").to_pylist():
                reasons[r] = reasons.get(r, 0) + 1
        entry["reasons"] = dict(sorted(reasons.items()))
        new_good.append(good_out)
        new_rejects.append(rejects_out)
    return new_good, new_rejects
