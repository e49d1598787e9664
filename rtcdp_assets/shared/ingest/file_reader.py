"""One file, end to end: stream, decode, validate, and split good rows from rejects."""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from queue import Empty, Queue
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from rtcdp_assets.shared.ingest.limits import StreamLimits, row_too_large
from rtcdp_assets.shared.ingest.model import (
    LINE_NUMBER,
    REJECT_SCHEMA,
    SOURCE_FILE,
    ExportFormat,
    FileResult,
    UnreadableFile,
    detect_layout,
)
from rtcdp_assets.shared.ingest.streams import _GuardedStream, _read_header, _Replay
from rtcdp_assets.shared.ingest.tail import TailKeeper
from rtcdp_assets.shared.ingest.validation import (
    RowRules,
    RowValues,
    _string_buffers,
    validate_batch,
)
from rtcdp_assets.shared.masking import mask_parse_error


@dataclass
class IngestedBatch:
    good: pa.RecordBatch  # typed_schema
    rejects: pa.RecordBatch  # REJECT_SCHEMA


def _record_numbers(valid_index: np.ndarray, invalid_sorted: np.ndarray) -> np.ndarray:
    """CSV record numbers (header = 1) of well-formed rows, given the malformed ones.

    The j-th well-formed row (0-based) sits at record r = j + 2 + #{i : w_i <= j + 2} with
    w_i = v_i - i for the sorted malformed record numbers v_i.
    """
    base = valid_index + 2
    if invalid_sorted.size == 0:
        return base
    w = invalid_sorted - np.arange(invalid_sorted.size)
    return base + np.searchsorted(w, base, side="right")


def ingest_file(
    raw: BinaryIO,
    *,
    source_file: str,
    fmt: ExportFormat,
    tz: str = "UTC",
    allowed_overrides: Mapping[str, frozenset[str]] | None = None,
    max_decompressed_bytes: int = 20 * 1024**3,
    result: FileResult | None = None,
    row_rules: RowRules | None = None,
    row_values: RowValues | None = None,
    limits: StreamLimits | None = None,
) -> Iterator[IngestedBatch]:
    """Stream one export file; yields typed good rows and rejects batch by batch.

    `result` (filled while iterating) holds the counts when the iterator is exhausted.
    Raises `UnreadableFile` when the file as a whole cannot be read. `limits` (row size,
    decompression ratio) default to `StreamLimits()`'s.
    """
    res = result if result is not None else FileResult(source_file=source_file, layout="")
    is_gzip = source_file.lower().endswith(".gz")
    limits = limits or StreamLimits()
    stream = _GuardedStream(raw, gzip=is_gzip, max_bytes=max_decompressed_bytes, limits=limits)
    try:
        header, peeked = _read_header(stream, fmt.csv)
    except zlib.error as exc:
        raise UnreadableFile("corrupt_gzip", str(exc)) from exc
    if len(set(header)) != len(header):
        dupes = sorted(h for h, c in Counter(header).items() if c > 1)
        raise UnreadableFile("duplicate_columns", f"header repeats {dupes}")
    layout = detect_layout(fmt, header)
    res.layout = layout.name

    malformed: list[tuple[int | None, str, int, int]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        malformed.append((row.number, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    reader_opts = pacsv.ReadOptions(
        # pyarrow parses a row only if it fits in one block: every row max_row_bytes allows must.
        block_size=max(fmt.csv.block_size, limits.max_row_bytes + 2),
        encoding=fmt.csv.encoding,
        use_threads=False,  # keeps row numbers known to the malformed-row handler
        column_names=header,
        skip_rows=1,
    )
    parse_opts = pacsv.ParseOptions(
        delimiter=fmt.csv.delimiter,
        quote_char=fmt.csv.quote_char,
        newlines_in_values=fmt.csv.newlines_in_values,
        invalid_row_handler=on_invalid,
    )
    # UTF-8 files are read as bytes and decoded batch by batch, so one value with stray bytes
    # (Latin-1 written into a UTF-8 export) rejects its row as `bad_encoding`, not the file.
    # Other encodings are transcoded by pyarrow and always yield valid text.
    as_bytes = fmt.csv.encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    convert_opts = pacsv.ConvertOptions(
        column_types=dict.fromkeys(header, pa.binary() if as_bytes else pa.string()),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    source = TailKeeper(_Replay(peeked, stream))
    try:
        reader = pacsv.open_csv(
            source,
            read_options=reader_opts,
            parse_options=parse_opts,
            convert_options=convert_opts,
        )
    except pa.ArrowInvalid as exc:
        raise _unreadable_from_arrow(exc, reader_opts.block_size) from exc

    valid_seen = 0
    invalid_numbers: list[int] = []
    emitted_malformed = 0
    typed_schema = fmt.typed_schema
    batches = _prefetch(reader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            batch = None
        except pa.ArrowInvalid as exc:
            raise _unreadable_from_arrow(exc, reader_opts.block_size) from exc
        # Malformed rows the handler saw so far: their record numbers are exact.
        new_bad = malformed[emitted_malformed:]
        emitted_malformed = len(malformed)
        for number, _text, _exp, _act in new_bad:
            if number is not None:
                invalid_numbers.append(number)
        bad_batch = _malformed_rejects(source_file, new_bad)
        if batch is None:
            if malformed:
                _n, text, expected, actual = malformed[-1]
                res.cut_last_line = source.ends_in_cut_row(text, expected, actual, fmt.csv.encoding)
            if bad_batch.num_rows:
                res.rows_in += bad_batch.num_rows
                res.rows_rejected += bad_batch.num_rows
                res.reasons.update(bad_batch.column("reason").to_pylist())
                yield IngestedBatch(good=empty_batch(typed_schema), rejects=bad_batch)
            break
        n = batch.num_rows
        numbers = _record_numbers(
            np.arange(valid_seen, valid_seen + n, dtype=np.int64),
            np.asarray(sorted(invalid_numbers), dtype=np.int64),
        )
        valid_seen += n
        enc_reason: pa.Array | None = None
        if as_bytes:
            batch, enc_reason, enc_column = _decode_utf8(batch)
        typed, reason, column = validate_batch(
            batch,
            fmt,
            layout,
            tz=tz,
            allowed_overrides=allowed_overrides,
            row_rules=row_rules,
            row_values=row_values,
        )
        if enc_reason is not None:  # bad bytes come first: the other rules saw mangled text
            column = pc.if_else(pc.is_valid(enc_reason), enc_column, column)
            reason = pc.coalesce(enc_reason, reason)
        good_mask = pc.is_null(reason)
        line_numbers = pa.array(numbers, pa.int64())
        good = typed.append_column(SOURCE_FILE, pa.repeat(pa.scalar(source_file, pa.string()), n))
        good = good.append_column(LINE_NUMBER, line_numbers)
        n_bad = n - reason.null_count
        if n_bad:  # filtering copies every column, so only batches with bad rows pay for it
            good = good.filter(good_mask)
            bad_mask = pc.invert(good_mask)
            raw_json = _rows_as_json(batch.filter(bad_mask))
            invalid = pa.RecordBatch.from_arrays(
                [
                    pa.array([source_file] * n_bad, pa.string()),
                    line_numbers.filter(bad_mask),
                    reason.filter(bad_mask),
                    column.filter(bad_mask),
                    raw_json,
                ],
                schema=REJECT_SCHEMA,
            )
            bad_batch = pa.concat_batches([bad_batch, invalid]) if bad_batch.num_rows else invalid
        res.rows_in += n + len(new_bad)
        res.rows_out += good.num_rows
        res.rows_rejected += bad_batch.num_rows
        if bad_batch.num_rows:
            res.reasons.update(bad_batch.column("reason").to_pylist())
        yield IngestedBatch(good=good.cast(typed_schema), rejects=bad_batch)
    res.bytes_in = stream.bytes_in


def _prefetch(reader: pacsv.CSVStreamingReader, depth: int = 2) -> Iterator[pa.RecordBatch]:
    """Parse the next blocks in a background thread while the caller validates and writes.

    The reader itself parses serially (so malformed rows keep their numbers); Arrow releases
    the GIL while parsing, so on two cores reading and processing overlap.
    """
    done = object()
    queue: Queue[object] = Queue(maxsize=depth)

    def produce() -> None:
        try:
            for batch in reader:
                queue.put(batch)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            queue.put(exc)
        finally:
            queue.put(done)

    thread = threading.Thread(target=produce, name="csv-prefetch", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        # Unblock the producer if the consumer stops early, then wait for it.
        while thread.is_alive():
            with contextlib.suppress(Empty):
                queue.get(timeout=0.1)
        thread.join()


def _all_ascii(values: pa.Array) -> bool:
    """Whether every byte of a `binary` array's values is below 0x80 (a scan of its bytes,
    several times faster than the cast's UTF-8 check)."""
    buffers = _string_buffers(values, pa.binary())
    if buffers is None:
        return False
    offsets, data = buffers
    start, end = int(offsets[0]), int(offsets[-1])
    return start == end or bool(data[start:end].max() < 0x80)


def _decode_utf8(
    batch: pa.RecordBatch,
) -> tuple[pa.RecordBatch, pa.Array | None, pa.Array | None]:
    """Binary CSV columns -> text; rows holding bytes that are not UTF-8 get `bad_encoding`.

    The common case is a column of ASCII bytes, which is valid UTF-8 as it is and becomes text
    without a copy; then one vectorised cast per column (it checks every byte); only a column
    that fails it is decoded value by value, with the bad bytes kept as `\\xNN` escapes so the
    raw row can be replayed.
    """
    columns: list[pa.Array] = []
    bad: dict[int, str] = {}
    for name, col in zip(batch.schema.names, batch.columns, strict=True):
        if _all_ascii(col):
            columns.append(col.view(pa.string()))
            continue
        try:
            columns.append(col.cast(pa.string()))
            continue
        except pa.ArrowInvalid:
            pass
        values: list[str | None] = []
        for i, v in enumerate(col.to_pylist()):
            if v is None:
                values.append(None)
                continue
            try:
                values.append(v.decode("utf-8"))
            except UnicodeDecodeError:
                values.append(v.decode("utf-8", errors="backslashreplace"))
                bad.setdefault(i, name)
        columns.append(pa.array(values, pa.string()))
    text = pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
    if not bad:
        return text, None, None
    reasons = ["bad_encoding" if i in bad else None for i in range(batch.num_rows)]
    cols = [bad.get(i) for i in range(batch.num_rows)]
    return text, pa.array(reasons, pa.string()), pa.array(cols, pa.string())


def _unreadable_from_arrow(exc: pa.ArrowInvalid, block_size: int) -> UnreadableFile:
    text = str(exc)
    if "straddling object" in text:
        # Lines are short (the stream checked them), so a quoted value runs over line ends:
        # one record outgrew the parser's block.
        return row_too_large(
            block_size,
            "a record whose quoted values span line ends outgrew the parser's block (often a "
            "quote that is never closed)",
            "the parser's block size, which grows with the setting max_row_bytes",
        )
    if "UTF8" in text or "UTF-8" in text or "decode" in text.lower():
        return UnreadableFile(
            "bad_encoding",
            "the file contains bytes that are not valid text in the configured encoding",
        )
    return UnreadableFile("csv_parse_error", mask_parse_error(text.splitlines()[0])[:300])


@functools.cache
def empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    # Built once per schema: from_pylist took a millisecond, once per parser block.
    return pa.RecordBatch.from_pylist([], schema=schema)


def _malformed_rejects(
    source_file: str, rows: list[tuple[int | None, str, int, int]]
) -> pa.RecordBatch:
    if not rows:
        return empty_batch(REJECT_SCHEMA)
    return pa.RecordBatch.from_pydict(
        {
            "source_file": [source_file] * len(rows),
            "line_number": [r[0] for r in rows],
            "reason": ["wrong_column_count"] * len(rows),
            "column": [f"expected {r[2]} columns, found {r[3]}" for r in rows],
            "raw": [r[1] for r in rows],
        },
        schema=REJECT_SCHEMA,
    )


def _rows_as_json(batch: pa.RecordBatch) -> pa.Array:
    """The original text values of rejected rows, so they can be corrected and replayed."""
    names = batch.schema.names
    cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
    return pa.array(
        [
            json.dumps(dict(zip(names, values, strict=True)), ensure_ascii=False)
            for values in zip(*cols, strict=True)
        ],
        pa.string(),
    )
