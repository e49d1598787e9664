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

Memory: the hashes (8 bytes a row) and late flags wait on disk, and repeats are found one
sixteenth of the hash space at a time, so memory stays flat as files grow; then the rows that
share a hash with another one. Candidates are confirmed by grouping on the actual values, so
a hash collision can never reject a row. The hashes are taken while the file streams in
(`RowDigests`), so files without future timestamps or duplicates are returned unchanged
without being read again; only a partition a rule touches is read back.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rtcdp_assets.shared.ingest import LINE_NUMBER, REJECT_SCHEMA, SOURCE_FILE, ExportFormat
from rtcdp_assets.shared.row_json import raw_json

DUPLICATE_ROW = "duplicate_row"
TIMESTAMP_IN_FUTURE = "timestamp_in_future"
_BATCH_ROWS = 65536
_IDX = "__row_index"
_HASH = "__row_hash"
# About 2 candidate rows per repeated hash and ~1 KB per candidate row while confirming:
# this bounds that stage near 0.5 GB whatever the number of duplicates.
_MAX_HASHES_PER_PASS = 250_000
_PART_SHIFT = 40  # partition order = part number << 40 | row in part (a trillion rows a part)


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
    batch: pa.RecordBatch, fields: Sequence[str], limit: datetime | None, rows: np.ndarray
) -> pa.Array:
    """The first timestamp field (in field order) that is late, for each of `rows`."""
    names = np.full(rows.size, "", dtype=object)
    if limit is None or not rows.size:
        return pa.array(names.tolist(), pa.string())
    taken = pa.array(rows, pa.int64())
    for name in reversed(fields):  # earlier fields overwrite later ones
        col = pc.take(batch.column(name), taken)
        late = pc.fill_null(pc.greater(col, pa.scalar(limit, col.type)), False)
        names[late.to_numpy(zero_copy_only=False)] = name
    return pa.array(names.tolist(), pa.string())


def _in_sorted(values: np.ndarray, sorted_unique: np.ndarray) -> np.ndarray:
    """`np.isin` for a sorted lookup array; np.isin re-hashed the whole lookup on every call."""
    at = np.minimum(np.searchsorted(sorted_unique, values), sorted_unique.size - 1)
    return sorted_unique[at] == values


def _later_copies(table: pa.Table, canonical: Sequence[str]) -> tuple[np.ndarray, pa.Array]:
    """Partition order of every row equal to an earlier one, and that earlier row's place."""
    n = table.num_rows
    if n < 2:
        return np.empty(0, np.int64), pa.array([], pa.string())
    keys = [(_HASH, "ascending"), *[(c, "ascending") for c in canonical], (_IDX, "ascending")]
    table = table.take(pc.sort_indices(table, sort_keys=keys)).combine_chunks()
    same = np.ones(n - 1, dtype=bool)
    for name in [_HASH, *canonical]:
        col = table.column(name).chunk(0) if table.column(name).num_chunks else None
        if col is None:
            continue
        a, b = col.slice(1), col.slice(0, n - 1)
        equal = pc.fill_null(pc.equal(a, b), False).to_numpy(zero_copy_only=False)
        both_null = pc.and_(pc.is_null(a), pc.is_null(b)).to_numpy(zero_copy_only=False)
        same &= equal | both_null
    starts = np.concatenate([[True], ~same])
    group_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    later = np.nonzero(~starts)[0]
    if not later.size:
        return np.empty(0, np.int64), pa.array([], pa.string())
    firsts = pa.array(group_start[later], pa.int64())
    detail = pc.binary_join_element_wise(
        "duplicate of ",
        pc.take(table.column(SOURCE_FILE), firsts),
        " line ",
        pc.cast(pc.take(table.column(LINE_NUMBER), firsts), pa.string()),
        "",
    )
    order = table.column(_IDX).to_numpy()[later]
    by_order = np.argsort(order, kind="stable")
    return order[by_order], pc.take(detail, pa.array(by_order, pa.int64())).combine_chunks()


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_NULL = np.uint64(0xD6E8FEB86659FD93)


def _mix(h: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Fold one uint64 component per row into the running row hashes (splitmix64 finaliser)."""
    h = (h ^ values) * _MIX_1
    h ^= h >> np.uint64(31)
    h *= _MIX_2
    return h ^ (h >> np.uint64(29))


def _text_components(col: pa.Array) -> list[np.ndarray]:
    """A text column as uint64 components: its byte length, first 8 and last 8 bytes.

    Not the whole value: the hash only picks candidate rows, which are then compared on every
    value (`_later_copies`), so two texts that differ only in their middle bytes cost a
    comparison, never a wrong reject. Reading two 8-byte words a value straight from the
    Arrow buffers is what makes this cheap: pandas turned every value into a Python object,
    most of the rules' time.
    """
    n = len(col)
    if n == 0:
        return [np.empty(0, np.uint64)] * 3
    wide = pa.types.is_large_string(col.type)
    offsets = np.frombuffer(col.buffers()[1], dtype=np.int64 if wide else np.int32)
    offsets = offsets[col.offset : col.offset + n + 1].astype(np.int64)
    data_buffer = col.buffers()[2]
    data = (
        np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.empty(0, np.uint8)
    )
    # Only this array's bytes (a slice shares its parent's whole buffer), then 8 zero bytes.
    padded = np.concatenate([data[offsets[0] : offsets[-1]], np.zeros(8, np.uint8)])
    offsets -= offsets[0]
    # Every byte position as the start of a little-endian 8-byte word (unaligned, no copy).
    words = np.ndarray((padded.size - 7,), dtype="<u8", buffer=padded, strides=(1,))
    starts, ends = offsets[:-1], offsets[1:]
    lengths = ends - starts
    short = lengths < 8
    # Bytes past a short value's end belong to the next value: masked off.
    keep = np.where(
        short,
        (np.uint64(1) << (8 * np.minimum(lengths, 7)).astype(np.uint64)) - 1,
        np.uint64(0xFFFFFFFFFFFFFFFF),
    )
    head = words[starts] & keep
    tail = np.where(short, np.uint64(0), words[np.maximum(ends - 8, 0)])
    return [lengths.astype(np.uint64), head.astype(np.uint64), tail.astype(np.uint64)]


def _row_hashes(batch: pa.RecordBatch, columns: Sequence[str]) -> np.ndarray:
    """One 64-bit hash per row of `columns`, from that row's values alone.

    Numbers, timestamps, dates and booleans enter as their 64-bit values, text as length and
    first and last bytes (`_text_components`); a null enters as a constant folded into the
    first component, so it differs from 0 or "" (mostly: equal hashes are only candidates),
    and a row hashes alike whatever batch it is read in (streamed blocks and re-read batches
    are cut at different rows).
    """
    h = np.full(batch.num_rows, _GOLDEN, dtype=np.uint64)
    for name in columns:
        col = batch.column(name)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        nulls = col.is_null().to_numpy(zero_copy_only=False).astype(np.uint64)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            parts = _text_components(col)
        else:
            if pa.types.is_temporal(col.type):  # dates, timestamps: their stored integers
                col = col.view(pa.int32() if col.type.bit_width == 32 else pa.int64())
            as_int = col if pa.types.is_int64(col.type) else col.cast(pa.int64())
            parts = [pc.fill_null(as_int, 0).to_numpy().view(np.uint64)]
        parts[0] = parts[0] ^ (nulls * _NULL)
        for part in parts:
            h = _mix(h, part)
    return h


class RowDigests:
    """What the partition rules need of each row, collected while a file streams in.

    One 64-bit hash of the canonical values and a "has a timestamp past the limit" flag per
    row, in the order the rows are written to the file's typed part. Taking them from the
    batches in memory saves reading the whole part back after the file (the end of the run,
    when nothing else overlaps), which was most of the rules' time.

    The 9 bytes a row go to two files in `spill_dir`, not memory, so memory stays flat however
    long the file (180 MB at 20 M rows held in memory).
    """

    def __init__(self, fmt: ExportFormat, limit: datetime | None, spill_dir: Path) -> None:
        self._canonical = [f.name for f in fmt.fields]
        self._ts_fields = [f.name for f in fmt.fields if f.kind == "timestamp"]
        self._limit = limit
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_rows = 0
        spill = Path(tempfile.mkdtemp(prefix="digests-", dir=spill_dir))
        self._files = (spill / "hashes.u64", spill / "future.bool")
        for path in self._files:
            path.touch()

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            # A row's hash does not depend on its batch: each batch is hashed as it comes.
            hashes = _row_hashes(batch, self._canonical)
            self._pending.append((hashes, _future_mask(batch, self._ts_fields, self._limit)))
            self._pending_rows += batch.num_rows
            if self._pending_rows >= _BATCH_ROWS:
                self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        for k, path in enumerate(self._files):
            with path.open("ab") as fh:
                np.concatenate([block[k] for block in self._pending]).tofile(fh)
        self._pending, self._pending_rows = [], 0

    def drain(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(hashes, future flags) of the rows added, in order, `_BATCH_ROWS` at a time."""
        self._flush()
        hashes_path, future_path = self._files
        with hashes_path.open("rb") as hashes_fh, future_path.open("rb") as future_fh:
            while (hashes := np.fromfile(hashes_fh, np.uint64, _BATCH_ROWS)).size:
                yield hashes, np.fromfile(future_fh, np.bool_, hashes.size)


class _HashBuckets:
    """Row hashes spread over files by their top bits, to find repeats one bucket at a time.

    Sorting every hash of the partition at once held 8 bytes a row (160 MB at 20 M rows);
    a bucket holds a sixteenth of that.
    """

    _BITS = 4

    def __init__(self, folder: Path) -> None:
        self._paths = [folder / f"bucket-{b:02d}.u64" for b in range(1 << self._BITS)]
        for path in self._paths:
            path.touch()

    def add(self, hashes: np.ndarray) -> None:
        bucket = (hashes >> np.uint64(64 - self._BITS)).astype(np.intp)
        order = np.argsort(bucket, kind="stable")
        bounds = np.searchsorted(bucket[order], np.arange(len(self._paths) + 1))
        for b, path in enumerate(self._paths):
            if bounds[b + 1] > bounds[b]:
                with path.open("ab") as fh:
                    hashes[order[bounds[b] : bounds[b + 1]]].tofile(fh)

    def repeated(self) -> np.ndarray:
        """Every hash seen more than once, sorted, each once."""
        found: list[np.ndarray] = []
        for path in self._paths:  # bucket order is hash order
            hashes = np.fromfile(path, np.uint64)
            hashes.sort()
            twice = hashes[1:][hashes[1:] == hashes[:-1]]
            if twice.size:
                found.append(twice[np.concatenate([[True], twice[1:] != twice[:-1]])])
        return np.concatenate(found) if found else np.empty(0, np.uint64)


def apply_partition_rules(
    fmt: ExportFormat,
    good_parts: Sequence[Path],
    reject_parts: Sequence[Path],
    files: Sequence[dict[str, Any]],
    *,
    latest_time: Callable[[str], datetime | None],
    tolerance: timedelta,
    digests: Sequence[RowDigests] | None = None,
) -> tuple[list[Path], list[Path]]:
    """Move future-dated and duplicate rows from the typed parts to the reject parts.

    `good_parts[i]` / `reject_parts[i]` are the Parquet outputs of `ingest_file` for the
    processed file whose manifest entry is `files[i]` (parts in the order the partition lists
    its files); `latest_time(file name)` is the latest time its rows may carry before the
    tolerance (None: no bound). The entries' `rows_out`, `rows_rejected` and `reasons` are
    updated in place, so rows in = rows out + rows rejected still holds per file. Returns the
    new part paths (unchanged paths for files no rule touched); rejects stay in line order.
    `digests[i]`, when given, holds the hashes and future flags of `good_parts[i]`, taken while
    it was written (the limit it was built with must be `latest_time` + `tolerance`).
    """
    canonical = [f.name for f in fmt.fields]
    ts_fields = [f.name for f in fmt.fields if f.kind == "timestamp"]
    limits = []
    for entry in files:
        when = latest_time(entry["source_file"])
        limits.append(None if when is None else when + tolerance)

    # Pass 1: the hash of every row that survives the future rule, bucketed on disk, and the
    # hashes seen more than once.
    if not good_parts:
        return list(good_parts), list(reject_parts)
    any_future = False
    with tempfile.TemporaryDirectory(prefix="rules-", dir=good_parts[0].parent) as tmp:
        buckets = _HashBuckets(Path(tmp))
        for i, (part, limit) in enumerate(zip(good_parts, limits, strict=True)):
            if digests is not None:
                blocks = digests[i].drain()
            else:
                blocks = (
                    (_row_hashes(batch, canonical), _future_mask(batch, ts_fields, limit))
                    for batch in pq.ParquetFile(part).iter_batches(batch_size=_BATCH_ROWS)
                )
            for part_hashes, future in blocks:
                late = bool(future.any())
                any_future |= late
                buckets.add(part_hashes[~future] if late else part_hashes)
        repeated = buckets.repeated()
    if not any_future and repeated.size == 0:
        return list(good_parts), list(reject_parts)

    # Pass 2: the rows that share a hash, sorted so that equal rows sit together (hash first,
    # then every value, then partition order), confirmed on their values.
    dup_order = np.empty(0, np.int64)  # partition order of every later copy, ascending
    dup_detail = pa.array([], pa.string())  # "duplicate of <file> line <n>", same order
    if repeated.size:
        # Candidates are held as rows, so a partition with many duplicates (a whole file
        # delivered twice) is confirmed in slices of the hash space, one read of the parts each.
        slices = -(-repeated.size // _MAX_HASHES_PER_PASS)
        orders: list[np.ndarray] = []
        details: list[pa.Array] = []
        for wanted in np.array_split(repeated, slices):
            candidates: list[pa.Table] = []
            for p, (part, limit) in enumerate(zip(good_parts, limits, strict=True)):
                offset = 0
                for batch in pq.ParquetFile(part).iter_batches(batch_size=_BATCH_ROWS):
                    hashes = _row_hashes(batch, canonical)
                    keep = ~_future_mask(batch, ts_fields, limit) & _in_sorted(hashes, wanted)
                    rows = np.nonzero(keep)[0]
                    if rows.size:
                        picked = pa.Table.from_batches([batch]).take(pa.array(rows, pa.int64()))
                        order = (p << _PART_SHIFT) + offset + rows  # partition order, one int64
                        picked = picked.append_column(_HASH, pa.array(hashes[rows], pa.uint64()))
                        candidates.append(picked.append_column(_IDX, pa.array(order, pa.int64())))
                    offset += batch.num_rows
            order_part, detail_part = _later_copies(pa.concat_tables(candidates), canonical)
            del candidates
            orders.append(order_part)
            details.append(detail_part)
        dup_order = np.concatenate(orders)
        by_order = np.argsort(dup_order, kind="stable")
        dup_order = dup_order[by_order]
        dup_detail = pc.take(pa.concat_arrays(details), pa.array(by_order, pa.int64()))

    # Pass 3: rewrite only the parts a rule touched.
    new_good: list[Path] = []
    new_rejects: list[Path] = []
    typed_schema = fmt.typed_schema
    for p, (part, rejects, limit, entry) in enumerate(
        zip(good_parts, reject_parts, limits, files, strict=True)
    ):
        base = p << _PART_SHIFT
        lo, hi = np.searchsorted(dup_order, [base, base + (1 << _PART_SHIFT)])
        touched = bool(hi > lo)
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
        counts = {TIMESTAMP_IN_FUTURE: 0, DUPLICATE_ROW: 0}
        # The file's earlier rejects (sorted by line) are merged with the moved rows as these
        # stream out, so memory holds one batch of them, not all of them.
        old = pq.read_table(rejects, schema=REJECT_SCHEMA)
        old_lines = pc.fill_null(old.column("line_number"), np.iinfo(np.int64).max).to_numpy()
        emitted = 0
        with (
            pq.ParquetWriter(good_out, typed_schema, compression="zstd") as writer,
            pq.ParquetWriter(rejects_out, REJECT_SCHEMA, compression="zstd") as reject_writer,
        ):
            offset = 0
            for batch in pq.ParquetFile(part).iter_batches(batch_size=_BATCH_ROWS):
                n = batch.num_rows
                future_rows = np.nonzero(_future_mask(batch, ts_fields, limit))[0]
                b_lo, b_hi = np.searchsorted(dup_order, [base + offset, base + offset + n])
                dup_rows = dup_order[b_lo:b_hi] - (base + offset)
                bad_rows = np.concatenate([future_rows, dup_rows]).astype(np.int64)
                if bad_rows.size:
                    assert limit is not None or not future_rows.size
                    columns = pa.concat_arrays(
                        [
                            _first_future_field(batch, ts_fields, limit, future_rows),
                            dup_detail.slice(b_lo, b_hi - b_lo),
                        ]
                    )
                    reasons = [TIMESTAMP_IN_FUTURE] * future_rows.size + [DUPLICATE_ROW] * (
                        dup_rows.size
                    )
                    counts[TIMESTAMP_IN_FUTURE] += int(future_rows.size)
                    counts[DUPLICATE_ROW] += int(dup_rows.size)
                    bad = pa.Table.from_batches([batch]).take(pa.array(bad_rows, pa.int64()))
                    bad_batch = bad.combine_chunks().to_batches()[0]
                    moved = pa.Table.from_batches(
                        [
                            pa.RecordBatch.from_arrays(
                                [
                                    bad_batch.column(SOURCE_FILE),
                                    bad_batch.column(LINE_NUMBER),
                                    pa.array(reasons, pa.string()),
                                    columns,
                                    raw_json(bad_batch, canonical),
                                ],
                                schema=REJECT_SCHEMA,
                            )
                        ]
                    )
                    upto = int(
                        np.searchsorted(
                            old_lines, int(pc.max(moved["line_number"]).as_py()), side="right"
                        )
                    )
                    chunk = pa.concat_tables([old.slice(emitted, upto - emitted), moved])
                    reject_writer.write_table(chunk.sort_by([("line_number", "ascending")]))
                    emitted = upto
                keep = np.ones(n, dtype=bool)
                keep[bad_rows] = False
                writer.write_table(pa.Table.from_batches([batch]).filter(pa.array(keep)))
                offset += n
            reject_writer.write_table(old.slice(emitted))
        n_moved = sum(counts.values())
        entry["rows_out"] -= n_moved
        entry["rows_rejected"] += n_moved
        reasons_by_code = dict(entry.get("reasons") or {})
        for code, count in counts.items():
            if count:
                reasons_by_code[code] = reasons_by_code.get(code, 0) + count
        entry["reasons"] = dict(sorted(reasons_by_code.items()))
        new_good.append(good_out)
        new_rejects.append(rejects_out)
    return new_good, new_rejects
