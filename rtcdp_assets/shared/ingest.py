"""Streaming ingestion of Campaign CSV exports: parse, validate, split good rows from bad.

Every Campaign dataset (broadLog, trackingLog, non-deliverables, preferences, profiles) goes
through `ingest_file`: the file is streamed with pyarrow (never whole in memory), every value is
read as text and validated with compute kernels, and each row ends up in exactly one of two
places: the typed batches or the rejects, with a reason code and its CSV record number. A file
that cannot be read at all raises `UnreadableFile` with a reason, so the caller can quarantine
it. Nothing in this module touches Dagster; the benchmarks in `bench/` drive it directly.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from queue import Empty, Queue
from typing import BinaryIO, Literal
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from resources.byte_queue import ByteQueue

FieldKind = Literal["int", "string", "timestamp", "date", "email", "bool"]

ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
    "email": pa.string(),
    "bool": pa.bool_(),
}

SOURCE_FILE = "_source_file"
LINE_NUMBER = "_line_number"

REJECT_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("line_number", pa.int64()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("column", pa.string()),
        pa.field("raw", pa.string()),
    ]
)

_INT_RE = r"^[+-]?[0-9]{1,18}$"
# ISO 8601 date-times as Campaign writes them: `2026-11-23 08:00:00`, with an optional `T`,
# fraction and offset. A missing offset means the configured Campaign time zone.
_TS_RE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:?[0-9]{2})?$"
)
_TS_OFFSET_RE = r"(Z|[+-][0-9]{2}:?[0-9]{2})$"
_EMAIL_RE = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$"
_BOOL_TRUE = ["1", "true", "yes", "y"]
_BOOL_FALSE = ["0", "false", "no", "n", ""]


@dataclass(frozen=True)
class FieldSpec:
    """One canonical field of a dataset, whatever the source layout calls it."""

    name: str
    kind: FieldKind
    required: bool = False
    allowed: frozenset[str] | None = None  # allowed raw values (after trimming), e.g. codes
    personal: bool = False  # masked in every preview and metadata shown in the UI
    description: str = ""


@dataclass(frozen=True)
class Layout:
    """How one Campaign flavour names the columns: source header -> canonical field name."""

    name: str
    columns: Mapping[str, str]

    def matches(self, header: Sequence[str], required: set[str]) -> bool:
        present = {self.columns[h] for h in header if h in self.columns}
        return required <= present


@dataclass(frozen=True)
class CsvOptions:
    delimiter: str = ","
    quote_char: str = '"'
    encoding: str = "utf-8"
    # Campaign export workflows write one record per line. With True, quoted values may span
    # lines and line numbers become CSV record numbers.
    newlines_in_values: bool = True
    block_size: int = 2 << 20  # peak memory follows the block size (bench/README.md)


@dataclass(frozen=True)
class ExportFormat:
    """Everything needed to read one Campaign export dataset."""

    dataset: str
    fields: tuple[FieldSpec, ...]
    layouts: tuple[Layout, ...]
    csv: CsvOptions = field(default_factory=CsvOptions)

    @property
    def required(self) -> set[str]:
        return {f.name for f in self.fields if f.required}

    @property
    def personal_fields(self) -> set[str]:
        return {f.name for f in self.fields if f.personal}

    @property
    def typed_schema(self) -> pa.Schema:
        cols = [pa.field(f.name, ARROW_TYPES[f.kind], nullable=not f.required) for f in self.fields]
        cols += [
            pa.field(SOURCE_FILE, pa.string(), nullable=False),
            pa.field(LINE_NUMBER, pa.int64(), nullable=False),
        ]
        return pa.schema(cols)

    def field(self, name: str) -> FieldSpec:
        return next(f for f in self.fields if f.name == name)


class UnreadableFile(Exception):
    """The file as a whole cannot be ingested; `reason` is a stable code for the quarantine."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class FileResult:
    """What became of one file: the counts reconcile as rows_in == rows_out + rows_rejected."""

    source_file: str
    layout: str
    rows_in: int = 0
    rows_out: int = 0
    rows_rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    bytes_in: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "source_file": self.source_file,
            "layout": self.layout,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_rejected": self.rows_rejected,
            "reasons": dict(sorted(self.reasons.items())),
            "bytes_in": self.bytes_in,
        }


# --------------------------------------------------------------------------------------------
# Byte streams: decompression with a bomb guard, and a reader that replays a peeked header.
# --------------------------------------------------------------------------------------------
class _GuardedStream(io.RawIOBase):
    """Decompresses gzip on the fly (if asked), counts bytes and refuses a gzip bomb.

    What it has read but not handed out waits in a `ByteQueue`, in the pieces it came in.
    """

    def __init__(self, raw: BinaryIO, gzip: bool, max_bytes: int) -> None:
        self._raw = raw
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16) if gzip else None
        self._max = max_bytes
        self._pending = ByteQueue()
        self._eof = False
        self.bytes_out = 0
        self.bytes_in = 0

    def readable(self) -> bool:
        return True

    def _fill(self, want: int) -> None:
        while len(self._pending) < want and not self._eof:
            chunk = self._raw.read(max(want - len(self._pending), 1 << 20))
            self.bytes_in += len(chunk)
            if self._inflate is None:
                if not chunk:
                    self._eof = True
                self._pending.append(chunk)
                continue
            if chunk:
                # Bound the output of each step so one tiny compressed chunk cannot expand
                # into gigabytes in memory before the limit is checked.
                data = self._inflate.decompress(chunk, 1 << 24)
                while self._inflate.unconsumed_tail:
                    self._pending.append(data)
                    self._check()
                    data = self._inflate.decompress(self._inflate.unconsumed_tail, 1 << 24)
                self._pending.append(data)
            else:
                if not self._inflate.eof:
                    raise UnreadableFile(
                        "truncated_gzip", "the gzip stream ends before its end marker"
                    )
                self._eof = True
            if self._inflate.eof and self._inflate.unused_data:
                # A concatenated gzip member follows (gzip allows several): keep going.
                rest = self._inflate.unused_data
                self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
                self._pending.append(self._inflate.decompress(rest))
            self._check()

    def _check(self) -> None:
        if self.bytes_out + len(self._pending) > self._max:
            raise UnreadableFile(
                "decompressed_size_exceeded",
                f"the file inflates beyond {self._max} bytes (possible gzip bomb)",
            )

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while True:
                part = self.read(1 << 20)
                if not part:
                    return b"".join(chunks)
                chunks.append(part)
        try:
            self._fill(size)
        except zlib.error as exc:
            raise UnreadableFile("corrupt_gzip", str(exc)) from exc
        out = self._pending.take(size)
        self.bytes_out += len(out)
        return out

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Replay(io.RawIOBase):
    """Yields `prefix` first, then the rest of `stream`: lets us peek at the header."""

    def __init__(self, prefix: bytes, stream: _GuardedStream) -> None:
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size is None or size < 0:
                out, self._prefix = self._prefix + self._stream.read(), b""
                return out
            out, self._prefix = self._prefix[:size], self._prefix[size:]
            return out
        return self._stream.read(size)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _read_header(stream: _GuardedStream, opts: CsvOptions) -> tuple[list[str], bytes]:
    """Read up to the first line break; return the parsed header names and the bytes read."""
    buf = b""
    while b"\n" not in buf:
        chunk = stream.read(64 * 1024)
        if not chunk:
            break
        buf += chunk
        if len(buf) > 1 << 20:
            raise UnreadableFile("header_too_long", "no line break in the first MiB")
    if not buf.strip():
        raise UnreadableFile("empty_file", "the file has no header row")
    line = buf.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = line.decode(opts.encoding)
    except UnicodeDecodeError as exc:
        raise UnreadableFile("bad_encoding", f"header is not {opts.encoding}") from exc
    text = text.lstrip("\ufeff")  # a UTF-8 BOM is legal and common in exports from Windows tools
    import csv

    header = next(csv.reader([text], delimiter=opts.delimiter, quotechar=opts.quote_char))
    return [h.strip() for h in header], buf


def detect_layout(fmt: ExportFormat, header: Sequence[str]) -> Layout:
    for layout in fmt.layouts:
        if layout.matches(header, fmt.required):
            return layout
    names = ", ".join(layout.name for layout in fmt.layouts)
    missing = {
        layout.name: sorted(
            fmt.required - {layout.columns[h] for h in header if h in layout.columns}
        )
        for layout in fmt.layouts
    }
    raise UnreadableFile(
        "unknown_layout",
        f"header matches none of the {fmt.dataset} layouts ({names}); missing required "
        f"columns per layout: {json.dumps(missing)}",
    )


# --------------------------------------------------------------------------------------------
# Validation with compute kernels
# --------------------------------------------------------------------------------------------
Rule = tuple[pa.Array, str, str]  # (failed mask, reason code, source column)
# A dataset's own rules over its typed values, for what one field alone cannot tell (a push
# token's format depends on the platform column): (failed mask, reason code, canonical field).
# They run after the field rules, so a row keeps the reason of its first field-level fault.
RowRules = Callable[[pa.RecordBatch], Sequence[tuple[pa.Array, str, str]]]


def _first_reasons(rules: list[Rule], n: int) -> tuple[pa.Array, pa.Array]:
    """Reason and column of each row's first failing rule, in rule order.

    Almost every row is good, so the rules are OR-ed once and the first failing rule is only
    worked out for the few bad rows (an if_else per rule over every row cost more than the
    validation itself).
    """
    none = pa.nulls(n, pa.string())
    masks = [pc.fill_null(mask, False) for mask, _, _ in rules]
    if not masks:
        return none, none
    bad = masks[0]
    for mask in masks[1:]:
        bad = pc.or_(bad, mask)
    if not pc.any(bad).as_py():
        return none, none
    rows = pc.indices_nonzero(bad)
    reasons: list[str | None] = [None] * len(rows)
    columns: list[str | None] = [None] * len(rows)
    for mask, (_, code, src) in zip(masks, rules, strict=True):
        for i, failed in enumerate(pc.take(mask, rows).to_pylist()):
            if failed and reasons[i] is None:
                reasons[i], columns[i] = code, src
    return (
        pc.replace_with_mask(none, bad, pa.array(reasons, pa.string())),
        pc.replace_with_mask(none, bad, pa.array(columns, pa.string())),
    )


_NULL_STRING = pa.scalar(None, pa.string())


# Fast paths on the raw bytes of string arrays. Each gives exactly what the compute kernel it
# stands in for gives, and hands the batch to that kernel whenever its shortcut does not apply.
def _string_buffers(
    values: pa.Array, type_: pa.DataType | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Zero-copy views of the offsets and bytes of a `string` array (or of `type_`, which has
    the same layout: `binary`); None for other arrays."""
    if values.type != (type_ or pa.string()) or len(values) == 0:
        return None
    _, offsets_buf, data_buf = values.buffers()
    if offsets_buf is None:
        return None
    offsets = np.frombuffer(
        offsets_buf, dtype=np.int32, count=len(values) + 1, offset=values.offset * 4
    )
    data = np.empty(0, np.uint8) if data_buf is None else np.frombuffer(data_buf, dtype=np.uint8)
    return offsets, data


def _trimmed(values: pa.Array) -> pa.Array:
    """`utf8_trim_whitespace`, skipped when no value could change.

    Trimming copies every value, yet exports almost never pad them. Unicode whitespace is a
    control or space byte (<= 0x20) or a multi-byte sequence (>= 0x80), so a column whose values
    neither start nor end with such a byte is returned as is.
    """
    buffers = _string_buffers(values)
    if buffers is None or values.null_count:
        return pc.utf8_trim_whitespace(values)
    offsets, data = buffers
    if data.size == 0:
        return values
    # For an empty value these read a neighbour's byte (checked anyway) or, clipped at the
    # buffer's ends, some other byte: at worst a needless trim, never a missed one.
    first = data.take(offsets[:-1], mode="clip")
    last = data.take(offsets[1:] - 1, mode="clip")
    # uint8 arithmetic wraps: a byte passes only if it lies in 0x21..0x7F.
    plain = np.uint8(0x5F)
    if ((first - np.uint8(0x21)) >= plain).any() or ((last - np.uint8(0x21)) >= plain).any():
        return pc.utf8_trim_whitespace(values)
    return values


def _empty_mask(values: pa.Array) -> pa.Array | None:
    """`utf8_length(values) == 0`, or None when no value is empty (the usual case, which then
    costs one comparison of the offsets)."""
    buffers = _string_buffers(values)
    if buffers is None or values.null_count:
        empty = pc.equal(pc.utf8_length(values), 0)
        return empty if pc.any(empty).as_py() else None
    offsets = buffers[0]
    empty_np = offsets[1:] == offsets[:-1]
    return pa.array(empty_np) if empty_np.any() else None


_TS_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_TS_WIDTH = 19  # `YYYY-MM-DD hh:mm:ss`


def _timestamp_shape(values: pa.Array) -> pa.Array:
    """`match_substring_regex(values, _TS_RE)`, checked on the bytes for the form Campaign
    writes (`YYYY-MM-DD hh:mm:ss` or with `T`, always 19 bytes; a fraction or an offset makes
    a value longer). Columns holding any other length go to the regular expression.
    """
    buffers = _string_buffers(values)
    if buffers is None:
        return pc.match_substring_regex(values, _TS_RE)
    offsets, data = buffers
    valid = (
        np.ones(len(values), dtype=bool)
        if values.null_count == 0
        else np.asarray(pc.is_valid(values).to_numpy(zero_copy_only=False))
    )
    lengths = np.diff(offsets)
    if (lengths[valid] != _TS_WIDTH).any():
        return pc.match_substring_regex(values, _TS_RE)
    n_valid = int(valid.sum())
    start, end = int(offsets[0]), int(offsets[-1])
    if end - start == n_valid * _TS_WIDTH:
        # Null slots hold no bytes, so the values lie back to back: a view, no gather.
        chars = data[start:end].reshape(n_valid, _TS_WIDTH)
    else:
        chars = data[offsets[:-1][valid, None] + np.arange(_TS_WIDTH)]
    ok = (
        ((chars[:, _TS_DIGITS] - ord("0")) <= 9).all(axis=1)  # uint8: bytes below '0' wrap
        & (chars[:, 4] == ord("-"))
        & (chars[:, 7] == ord("-"))
        & ((chars[:, 10] == ord(" ")) | (chars[:, 10] == ord("T")))
        & (chars[:, 13] == ord(":"))
        & (chars[:, 16] == ord(":"))
    )
    out = np.zeros(len(values), dtype=bool)
    out[valid] = ok
    return pa.array(out, mask=None if values.null_count == 0 else ~valid)


def _lowered(values: pa.Array) -> pa.Array:
    """`utf8_lower`; the ASCII kernel (ten times faster) when every byte is ASCII."""
    buffers = _string_buffers(values)
    if buffers is not None and (buffers[1].size == 0 or buffers[1].max() < 0x80):
        return pc.ascii_lower(values)
    return pc.utf8_lower(values)


def _keep(values: pa.Array, ok: pa.Array) -> pa.Array:
    """`values` where `ok`, null elsewhere; no copy in the common case where all are ok."""
    if pc.all(pc.fill_null(ok, True)).as_py():
        return values
    return pc.if_else(ok, values, pa.scalar(None, values.type))


def _parse_timestamps(values: pa.Array, tz: str) -> pa.Array:
    """Strings already matching `_TS_RE` -> timestamp[us, UTC]; impossible dates -> null."""
    utc = pa.timestamp("us", tz="UTC")
    if (pc.max(pc.binary_length(values)).as_py() or 0) <= _TS_WIDTH:
        # The common form has neither fraction nor offset (those make a value longer), and
        # the cast reads its space separator as it is.
        has_offset = pa.repeat(pa.scalar(False), len(values))
        normalised = values
    else:
        # Only the tail can hold an offset; matching 6 characters beats scanning whole strings.
        has_offset = pc.match_substring_regex(pc.utf8_slice_codeunits(values, -6), _TS_OFFSET_RE)
        normalised = pc.replace_substring(values, " ", "T", max_replacements=1)
    try:
        # Campaign writes one form per export: usually all without offset, sometimes all with.
        if not pc.any(has_offset).as_py():
            naive = pc.cast(normalised, pa.timestamp("us"))
            if tz == "UTC":
                return pc.cast(naive, pa.timestamp("us")).cast(utc)
            local = pc.assume_timezone(
                naive, timezone=tz, ambiguous="earliest", nonexistent="earliest"
            )
            return pc.cast(local, utc)
        if pc.all(pc.fill_null(has_offset, True)).as_py():
            return pc.cast(normalised, utc)
        naive = pc.cast(_keep(normalised, pc.invert(has_offset)), pa.timestamp("us"))
        local = pc.assume_timezone(naive, timezone=tz, ambiguous="earliest", nonexistent="earliest")
        aware = pc.cast(_keep(normalised, has_offset), utc)
        return pc.coalesce(pc.cast(local, utc), aware)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Rare: a well-formed but impossible date (2026-02-30) fails the whole vectorised
        # cast; fall back to the strict per-value path for this batch only.
        zone = ZoneInfo(tz)
        out: list[datetime | None] = []
        for v in values.to_pylist():
            if v is None:
                out.append(None)
                continue
            try:
                d = datetime.fromisoformat(v.replace("Z", "+00:00"))
            except ValueError:
                out.append(None)
                continue
            out.append((d if d.tzinfo else d.replace(tzinfo=zone)).astimezone(UTC))
        return pa.array(out, type=pa.timestamp("us", tz="UTC"))


def validate_batch(
    batch: pa.RecordBatch,
    fmt: ExportFormat,
    layout: Layout,
    *,
    tz: str = "UTC",
    allowed_overrides: Mapping[str, frozenset[str]] | None = None,
    row_rules: RowRules | None = None,
) -> tuple[pa.RecordBatch, pa.Array, pa.Array]:
    """Type every canonical field; return (typed batch, reason per row, failing column per row).

    Rows with a null reason are good. The typed batch has a row for every input row (values of
    bad rows are undefined); the caller filters.
    """
    n = batch.num_rows
    by_canonical = {
        layout.columns[name]: name for name in batch.schema.names if name in layout.columns
    }
    rules: list[Rule] = []
    typed: list[pa.Array] = []
    overrides = allowed_overrides or {}
    for f in fmt.fields:
        src = by_canonical.get(f.name)
        if src is None:
            typed.append(pa.nulls(n, ARROW_TYPES[f.kind]))
            continue
        raw = _trimmed(batch.column(src))
        # Clean batches are the rule: a rule whose mask is all false is not kept, and a column
        # without empty values is not copied, which saves most of the kernel calls per batch.
        empty = _empty_mask(raw)
        any_empty = empty is not None
        if f.required and any_empty:
            rules.append((empty, "missing_required_value", src))
        allowed = overrides.get(f.name, f.allowed)
        if allowed is not None:
            known = pc.is_in(raw, value_set=pa.array(sorted(allowed)))
            if not pc.all(known).as_py():
                bad = pc.invert(known)
                rules.append(
                    (pc.and_not(bad, empty) if any_empty else bad, f"unknown_code:{f.name}", src)
                )
        nulled = _keep(raw, pc.invert(empty)) if any_empty else raw
        if f.kind == "int":
            try:  # fast path: a column of clean integers casts in one go
                values = pc.cast(nulled, pa.int64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                ok = pc.match_substring_regex(nulled, _INT_RE)
                rules.append((pc.invert(ok), "invalid_integer", src))
                # Arrow's cast refuses an explicit "+" sign that the rule above accepts.
                signless = pc.utf8_ltrim(_keep(nulled, ok), characters="+")
                values = pc.cast(signless, pa.int64())
        elif f.kind == "timestamp":
            ok = _timestamp_shape(nulled)
            shaped = pc.all(pc.fill_null(ok, True)).as_py()
            if not shaped:
                rules.append((pc.invert(ok), "invalid_timestamp", src))
            values = _parse_timestamps(nulled if shaped else _keep(nulled, ok), tz)
            if values.null_count != nulled.null_count or not shaped:
                impossible = pc.and_(ok, pc.is_null(values))
                rules.append((impossible, "invalid_timestamp", src))
        elif f.kind == "date":
            ok = pc.match_substring_regex(nulled, r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
            rules.append((pc.invert(ok), "invalid_date", src))
            values = pc.strptime(
                _keep(nulled, ok),
                format="%Y-%m-%d",
                unit="s",
                error_is_null=True,
            ).cast(pa.date32())
            # strptime rolls 2026-02-30 over to March; a round trip catches impossible dates.
            roundtrip = pc.strftime(values, format="%Y-%m-%d")
            impossible = pc.and_(ok, pc.invert(pc.fill_null(pc.equal(roundtrip, nulled), False)))
            rules.append((impossible, "invalid_date", src))
        elif f.kind == "email":
            lowered = _lowered(nulled)
            ok = pc.match_substring_regex(lowered, _EMAIL_RE)
            rules.append((pc.invert(ok), "invalid_email", src))
            values = lowered
        elif f.kind == "bool":
            low = pc.utf8_lower(raw)
            is_true = pc.is_in(low, value_set=pa.array(_BOOL_TRUE))
            ok = pc.or_(is_true, pc.is_in(low, value_set=pa.array(_BOOL_FALSE)))
            rules.append((pc.invert(ok), "invalid_boolean", src))
            values = is_true
        else:
            values = nulled
        typed.append(values)
    names = [f.name for f in fmt.fields]
    typed_batch = pa.RecordBatch.from_arrays(typed, names=names)
    if row_rules is not None:
        for mask, code, name in row_rules(typed_batch):
            rules.append((mask, code, by_canonical.get(name, name)))
    reason, column = _first_reasons(rules, n)
    return typed_batch, reason, column


# --------------------------------------------------------------------------------------------
# One file, end to end
# --------------------------------------------------------------------------------------------
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
) -> Iterator[IngestedBatch]:
    """Stream one export file; yields typed good rows and rejects batch by batch.

    `result` (filled while iterating) holds the counts when the iterator is exhausted.
    Raises `UnreadableFile` when the file as a whole cannot be read.
    """
    res = result if result is not None else FileResult(source_file=source_file, layout="")
    is_gzip = source_file.lower().endswith(".gz")
    stream = _GuardedStream(raw, gzip=is_gzip, max_bytes=max_decompressed_bytes)
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
        block_size=fmt.csv.block_size,
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
    try:
        reader = pacsv.open_csv(
            _Replay(peeked, stream),
            read_options=reader_opts,
            parse_options=parse_opts,
            convert_options=convert_opts,
        )
    except pa.ArrowInvalid as exc:
        raise _unreadable_from_arrow(exc) from exc

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
            raise _unreadable_from_arrow(exc) from exc
        # Malformed rows the handler saw so far: their record numbers are exact.
        new_bad = malformed[emitted_malformed:]
        emitted_malformed = len(malformed)
        for number, _text, _exp, _act in new_bad:
            if number is not None:
                invalid_numbers.append(number)
        bad_batch = _malformed_rejects(source_file, new_bad)
        if batch is None:
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
            batch, fmt, layout, tz=tz, allowed_overrides=allowed_overrides, row_rules=row_rules
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


def _unreadable_from_arrow(exc: pa.ArrowInvalid) -> UnreadableFile:
    text = str(exc)
    if "UTF8" in text or "UTF-8" in text or "decode" in text.lower():
        return UnreadableFile(
            "bad_encoding",
            "the file contains bytes that are not valid text in the configured encoding",
        )
    return UnreadableFile("csv_parse_error", text.splitlines()[0][:300])


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
