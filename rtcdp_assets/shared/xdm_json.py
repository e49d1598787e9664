"""Canonical XDM JSON Lines with Arrow compute: the bytes of `xdm.dumps(r)` for every record of
`xdm.to_records(batch)`, without a Python object per record.

Each record is one `binary_join_element_wise` over "pieces": column texts (quoted strings,
numbers, timestamps) and constant punctuation (`{`, `,`, `"key":`, `}`) whose validity says in
which rows they appear. Which rows hold a field, an object or a comma is decided with numpy
masks, so null fields and objects left empty drop out as in `xdm._clean`, and every byte of a
value is copied once. Lists are joined per list (`binary_join`) from their items' texts.

The same pieces give `record_lengths` by adding byte lengths instead of joining: string lengths
plus their escapes, constants times their masks.

Values Arrow cannot format like Python are formatted by Python one value at a time, those
values only: floats that need an exponent or are not finite, -0.0, timestamps without a time
zone or outside years 1000-9999, maps (their keys are sorted per row) and types XDM does not
use (dates, decimals...).

pyarrow 26's `binary_join_element_wise(null_handling="skip")` drops the rows where every input
is null (its output is shorter than its input), so joins here use "replace" with "".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rtcdp_assets.shared import xdm

_SLICE_ROWS = 1 << 16  # rows joined at once: bounded memory, 32-bit offsets never overflow
_FIXED_MIN, _FIXED_MAX = 1e-4, 1e16  # Python's repr writes floats in this range without exponent
_TIMESTAMP_CHARS = len('"2026-01-01T00:00:00.000Z"')

# Bytes a JSON string needs beyond its UTF-8 (ensure_ascii=False): `"` and `\` one backslash,
# the short control escapes one, the other control characters `\u00XX` five.
_SHORT_ESCAPES = {
    ord(c): e
    for c, e in (
        ("\\", "\\\\"),
        ('"', '\\"'),
        ("\n", "\\n"),
        ("\r", "\\r"),
        ("\t", "\\t"),
        ("\b", "\\b"),
        ("\f", "\\f"),
    )
}
_EXTRA_BYTES = np.zeros(256, dtype=np.int64)
_EXTRA_BYTES[:0x20] = 5
for _code in _SHORT_ESCAPES:
    _EXTRA_BYTES[_code] = 1


@dataclass
class _Piece:
    """One argument of a record's join: constant `text` in the rows of `mask` (None: every
    row), or a text column `values` (null: nothing), or, when only lengths are wanted, the
    byte `lengths` of what would be written."""

    text: str | None = None
    mask: np.ndarray | None = None
    values: pa.Array | None = None
    lengths: np.ndarray | None = None


def json_lines(batch: pa.RecordBatch | pa.Table) -> bytes:
    """`"".join(xdm.dumps(r) + "\\n" for r in xdm.to_records(batch)).encode()`, columnar."""
    return b"".join(json_line_chunks(batch))


def json_line_chunks(batch: pa.RecordBatch | pa.Table) -> Iterator[bytes]:
    """The bytes of `json_lines`, a slice of rows at a time (for streaming writes)."""
    for part in _slices(batch, _SLICE_ROWS):
        encoder = _Encoder(lengths_only=False)
        lines = encoder.join(encoder.record(part, "}\n"), part.num_rows)
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset :]
        data = lines.buffers()[2]
        start, end = int(offsets[0]), int(offsets[len(lines)])
        yield data[start:end].to_pybytes() if data is not None else b""


def record_lengths(batch: pa.RecordBatch | pa.Table) -> pa.Array:
    """UTF-8 byte length of each record's canonical JSON (without the newline), from column
    lengths: no record text is built."""
    parts = []
    for part in _slices(batch, None):
        encoder = _Encoder(lengths_only=True)
        parts.append(encoder.total(encoder.record(part, "}"), part.num_rows))
    return pa.array(np.concatenate(parts) if parts else np.zeros(0, np.int64), pa.int64())


def _slices(batch: pa.RecordBatch | pa.Table, rows: int | None) -> Iterator[pa.RecordBatch]:
    batches = batch.to_batches() if isinstance(batch, pa.Table) else [batch]
    for b in batches:
        step = rows or max(b.num_rows, 1)
        for start in range(0, b.num_rows, step):
            yield b.slice(start, step)


def _valid(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return arr.is_valid().to_numpy(zero_copy_only=False)


class _Encoder:
    def __init__(self, *, lengths_only: bool) -> None:
        self.lengths_only = lengths_only

    # -- assembling ------------------------------------------------------------------------
    def record(self, batch: pa.RecordBatch, close: str) -> list[_Piece]:
        pieces = [_Piece("{")]
        self._members(
            list(zip(batch.schema.names, batch.columns, strict=True)), batch.num_rows, pieces
        )
        pieces.append(_Piece(close))
        return pieces

    def join(self, pieces: list[_Piece], n: int) -> pa.Array:
        args: list[Any] = [self._column(p, n) for p in _merged(pieces)]
        if not any(isinstance(a, pa.Array) for a in args):
            args[0] = xdm.constant(args[0], n, pa.string())
        joined = pc.binary_join_element_wise(
            *args, "", null_handling="replace", null_replacement=""
        )
        return joined

    @staticmethod
    def _column(piece: _Piece, n: int) -> pa.Array | str:
        if piece.values is not None:
            return piece.values
        assert piece.text is not None
        if piece.mask is None:
            return piece.text
        # The cached constant's buffers with this piece's rows as validity: no copy of text.
        base = xdm.constant(piece.text, n, pa.string())
        validity = pa.py_buffer(np.packbits(piece.mask, bitorder="little"))
        return pa.StringArray.from_buffers(n, base.buffers()[1], base.buffers()[2], validity)

    @staticmethod
    def total(pieces: list[_Piece], n: int) -> np.ndarray:
        total = np.zeros(n, dtype=np.int64)
        for p in pieces:
            if p.lengths is not None:
                total += p.lengths
            elif p.values is not None:
                lengths = pc.fill_null(pc.binary_length(p.values), 0)
                total += lengths.to_numpy(zero_copy_only=False).astype(np.int64)
            else:
                size = len((p.text or "").encode())
                np.add(total, size, out=total, where=True if p.mask is None else p.mask)
        return total

    # -- objects ---------------------------------------------------------------------------
    def _members(self, fields: list[tuple[str, pa.Array]], n: int, out: list[_Piece]) -> np.ndarray:
        """Pieces of an object's members in key order; returns the rows with any member."""
        any_member = np.zeros(n, dtype=bool)
        for name, child in sorted(fields, key=lambda f: f[0]):
            pieces: list[_Piece] = []
            present = self._value(child, pieces, in_object=True)
            if not present.any():
                continue
            comma = present & any_member
            if comma.any():
                out.append(_Piece(",", comma))
            out.append(_Piece(json.dumps(name, ensure_ascii=False) + ":", present))
            out.extend(pieces)
            any_member |= present
        return any_member

    def _value(self, arr: pa.Array, out: list[_Piece], *, in_object: bool) -> np.ndarray:
        """Pieces of each value of `arr`; returns the rows where one is written. In an object
        a null, or an object left empty, is not written (the field is dropped)."""
        kind = arr.type
        if pa.types.is_dictionary(kind):
            return self._value(arr.dictionary_decode(), out, in_object=in_object)
        if pa.types.is_struct(kind):
            members: list[_Piece] = []
            names = [kind.field(i).name for i in range(kind.num_fields)]
            any_member = self._members(
                list(zip(names, arr.flatten(), strict=True)), len(arr), members
            )
            present = any_member if in_object else _valid(arr)
            out.extend([_Piece("{", present), *members, _Piece("}", present)])
            return present
        if pa.types.is_null(kind):
            return np.zeros(len(arr), dtype=bool)
        if pa.types.is_large_string(kind):  # a slice's text fits 32-bit offsets
            return self._string(arr.cast(pa.string()), out)
        if pa.types.is_string(kind):
            return self._string(arr, out)
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            return self._list(arr, out)
        if pa.types.is_boolean(kind):
            is_true = pc.fill_null(arr, False).to_numpy(zero_copy_only=False)
            valid = _valid(arr)
            out.extend([_Piece("true", valid & is_true), _Piece("false", valid & ~is_true)])
            return valid
        if pa.types.is_integer(kind):
            if self.lengths_only:
                out.append(_Piece(lengths=_integer_lengths(arr)))
            else:
                out.append(_Piece(values=pc.cast(arr, pa.string())))
            return _valid(arr)
        if pa.types.is_floating(kind):
            numbers = pc.cast(arr, pa.float64())
            if self.lengths_only:
                out.append(_Piece(lengths=_float_lengths(numbers)))
            else:
                out.append(_Piece(values=_floats(numbers)))
            return _valid(arr)
        if pa.types.is_timestamp(kind) and kind.tz is not None and kind.unit != "ns":
            return self._timestamps(arr, out)
        return _python_values(arr, out, in_object=in_object)

    # -- leaves ----------------------------------------------------------------------------
    def _string(self, arr: pa.Array, out: list[_Piece]) -> np.ndarray:
        valid = _valid(arr)
        special = _needs_escapes(arr)
        if self.lengths_only:
            extra = _escape_bytes(arr) if special else 0
            size = np.diff(_offsets(arr))  # a null's slot may hold bytes: masked below
            out.append(_Piece(lengths=np.where(valid, size + 2 + extra, 0)))
            return valid
        text = _escaped(arr) if special else arr
        out.extend([_Piece('"', valid), _Piece(values=text), _Piece('"', valid)])
        return valid

    def _timestamps(self, arr: pa.Array, out: list[_Piece]) -> np.ndarray:
        kind = arr.type
        utc = arr.cast(pa.timestamp(kind.unit, tz="UTC"))
        ticks = utc.cast(pa.int64()).to_numpy(zero_copy_only=False)
        per_second = {"s": 1, "ms": 1_000, "us": 1_000_000}[kind.unit]
        # strftime writes years before 1000 unpadded; those (and after 9999) go to Python.
        low, high = -30_610_224_000 * per_second, 253_402_300_800 * per_second
        valid = _valid(arr)
        if (valid & ((ticks < low) | (ticks >= high))).any():
            return _python_values(arr, out, in_object=True)
        if self.lengths_only:
            out.append(_Piece(lengths=valid * _TIMESTAMP_CHARS))
            return valid
        millis = ticks // (per_second // 1000) if per_second >= 1000 else ticks * 1000
        out.append(_Piece(values=_timestamp_text(millis, valid)))
        return valid

    def _list(self, arr: pa.Array, out: list[_Piece]) -> np.ndarray:
        valid = _valid(arr)
        offsets = np.asarray(arr.offsets)
        start, end = int(offsets[0]), int(offsets[-1])
        items = arr.values.slice(start, end - start)
        pieces: list[_Piece] = []
        present = self._value(items, pieces, in_object=False)
        pieces.append(_Piece("null", ~present))
        rebased = offsets - start
        counts = np.diff(rebased)
        if self.lengths_only:
            per_item = self.total(pieces, len(items))
            sums = np.concatenate([[0], np.cumsum(per_item)])
            body = sums[rebased[1:]] - sums[rebased[:-1]] + np.maximum(counts - 1, 0)
            out.append(_Piece(lengths=np.where(valid, body + 2, 0)))
            return valid
        texts = self.join(pieces, len(items)) if len(items) else pa.array([], pa.string())
        mask = pa.array(~valid) if not valid.all() else None
        lists = pa.LargeListArray.from_arrays(pa.array(rebased, pa.int64()), texts, mask=mask)
        out.extend(
            [_Piece("[", valid), _Piece(values=pc.binary_join(lists, ",")), _Piece("]", valid)]
        )
        return valid


def _merged(pieces: list[_Piece]) -> list[_Piece]:
    """Adjacent constants written in the same rows as one piece: the join's cost grows with
    its number of arguments (`,"key":"` rather than `,` `"key":` `"`)."""
    merged: list[_Piece] = []
    for piece in pieces:
        last = merged[-1] if merged else None
        if (
            last is not None
            and last.text is not None
            and piece.text is not None
            and (
                (last.mask is None and piece.mask is None)
                or (
                    last.mask is not None
                    and piece.mask is not None
                    and np.array_equal(last.mask, piece.mask)
                )
            )
        ):
            merged[-1] = _Piece(last.text + piece.text, last.mask)
        else:
            merged.append(piece)
    return merged


def _needs_escapes(arr: pa.Array) -> bool:
    """Whether any byte of the column needs an escape (comparisons: faster than a lookup)."""
    buffer = arr.buffers()[2]
    if buffer is None:
        return False
    data = np.frombuffer(buffer, dtype=np.uint8)
    # Three reductions and no combined mask: two passes fewer over the bytes than `|`.
    return bool((data < 0x20).any() or (data == ord('"')).any() or (data == ord("\\")).any())


def _escape_bytes(arr: pa.Array) -> np.ndarray:
    """Per row, the bytes its escapes add (zeros when the column needs none)."""
    n = len(arr)
    data_buffer = arr.buffers()[2]
    if data_buffer is None or n == 0:
        return np.zeros(n, dtype=np.int64)
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=width)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
    extra = _EXTRA_BYTES[data]
    if not extra.any():
        return np.zeros(n, dtype=np.int64)
    sums = np.concatenate([[0], np.cumsum(extra)])
    rebased = (offsets - offsets[0]).astype(np.int64)
    return sums[rebased[1:]] - sums[rebased[:-1]]


def _escaped(arr: pa.Array) -> pa.Array:
    """JSON string escapes (as json.dumps with ensure_ascii=False), for the characters present."""
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    present = np.bincount(data, minlength=256)
    text = pc.replace_substring(arr, "\\", "\\\\") if present[ord("\\")] else arr
    for code in [ord('"'), *range(0x20)]:
        if present[code]:
            escape = _SHORT_ESCAPES.get(code) or f"\\u{code:04x}"
            text = pc.replace_substring(text, chr(code), escape)
    return text


def _timestamp_text(millis: np.ndarray, valid: np.ndarray) -> pa.Array:
    """`"YYYY-MM-DDTHH:MM:SS.mmmZ"` (quoted) from milliseconds since the epoch, written digit
    by digit with numpy into fixed-width rows (strftime cost more than the rest of a record)."""
    n = len(millis)
    moment = millis.astype("datetime64[ms]")
    days = moment.astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    year = months.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (days - months).astype(np.int64) + 1
    in_day = (moment - days).astype(np.int64)  # floor: the milliseconds Python keeps
    text = np.frombuffer(b'"0000-00-00T00:00:00.000Z"' * n, dtype=np.uint8).reshape(n, 26).copy()
    for value, first, width in (
        (year, 1, 4), (month, 6, 2), (day, 9, 2), (in_day // 3_600_000, 12, 2),
        (in_day // 60_000 % 60, 15, 2), (in_day // 1000 % 60, 18, 2), (in_day % 1000, 21, 3),
    ):  # fmt: skip
        for place in range(width):
            digit = value // 10 ** (width - 1 - place) % 10
            text[:, first + place] = (digit + 48).astype(np.uint8)
    offsets = pa.py_buffer(np.arange(0, 26 * (n + 1), 26, dtype=np.int32))
    validity = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(n, offsets, pa.py_buffer(text), validity)


def _floats(values: pa.Array) -> pa.Array:
    """Python's float repr: integers as `1.0`, shortest digits, exponents as Python writes them."""
    numbers = pc.fill_null(values, 0.0).to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(numbers) & (numbers == np.floor(numbers))
    magnitude = np.abs(numbers)
    integral &= (magnitude < _FIXED_MAX) & ~((numbers == 0) & np.signbit(numbers))
    whole = pc.cast(pa.array(np.where(integral, numbers, 0).astype(np.int64)), pa.string())
    whole = pc.binary_join_element_wise(whole, ".0", "")
    if integral.all():
        text = whole
    else:
        shortest = pc.cast(pa.array(numbers), pa.string())
        text = pc.if_else(pa.array(integral), whole, shortest)
        has_exponent = pc.match_substring(shortest, "e").to_numpy(zero_copy_only=False)
        fixed = (magnitude >= _FIXED_MIN) & (magnitude < _FIXED_MAX) & ~has_exponent
        python = ~integral & ~fixed & _valid(values)
        if python.any():
            rows = np.flatnonzero(python)
            formatted = [json.dumps(float(v)) for v in numbers[rows]]
            text = pc.replace_with_mask(text, pa.array(python), pa.array(formatted, pa.string()))
    if values.null_count:
        text = pc.if_else(values.is_valid(), text, pa.scalar(None, pa.string()))
    return text


_POWERS_OF_TEN = np.array([10**k for k in range(1, 20)], dtype=np.uint64)


def _integer_lengths(arr: pa.Array) -> np.ndarray:
    """Characters of each integer's decimal text (minus sign included), 0 for nulls."""
    numbers = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False)
    if np.issubdtype(numbers.dtype, np.unsignedinteger):
        return np.where(_valid(arr), _digits(numbers.astype(np.uint64)), 0)
    return np.where(_valid(arr), _signed_digits(numbers.astype(np.int64)), 0)


def _signed_digits(numbers: np.ndarray) -> np.ndarray:
    negative = numbers < 0
    # |v| as uint64 via ~v + 1 for negatives: no overflow at the int64 minimum.
    magnitude = np.where(negative, (~numbers).astype(np.uint64) + np.uint64(1), numbers)
    return _digits(magnitude.astype(np.uint64)) + negative


def _digits(magnitude: np.ndarray) -> np.ndarray:
    """Decimal digits of each value: one comparison per power of ten up to the largest value
    (measures are mostly single digits: no comparison at all)."""
    digits = np.ones(len(magnitude), dtype=np.int64)
    top = magnitude.max() if len(magnitude) else 0
    for power in _POWERS_OF_TEN:
        if power > top:
            break
        digits += magnitude >= power
    return digits


def _float_lengths(values: pa.Array) -> np.ndarray:
    """Characters of `_floats(values)` per row (0 for nulls): integral values below 1e16 are
    their integer's digits and `.0` (measures are mostly counts); the others, those rows
    only, are formatted by `_floats` and measured."""
    if values.null_count == len(values):
        return np.zeros(len(values), dtype=np.int64)
    numbers = pc.fill_null(values, 0.0).to_numpy(zero_copy_only=False)
    valid = _valid(values)
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(numbers) & (numbers == np.floor(numbers))
    integral &= (np.abs(numbers) < _FIXED_MAX) & ~((numbers == 0) & np.signbit(numbers))
    lengths = _signed_digits(np.where(integral, numbers, 0).astype(np.int64)) + 2
    others = np.flatnonzero(valid & ~integral)
    if len(others):
        text = _floats(values.take(pa.array(others)))
        lengths[others] = np.diff(_offsets(text))
    return np.where(valid, lengths, 0)


def _offsets(arr: pa.Array) -> np.ndarray:
    """The n + 1 value offsets of a string or binary array, as int64."""
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=width)[arr.offset : arr.offset + len(arr) + 1]
    return offsets.astype(np.int64)


def _python_values(arr: pa.Array, out: list[_Piece], *, in_object: bool) -> np.ndarray:
    """Values Arrow does not format like the reference, formatted by the reference's own
    cleaning and `json.dumps`, one value at a time."""
    texts: list[str | None] = []
    for value in arr.to_pylist():
        cleaned = None if value is None else xdm._clean(value)
        absent = cleaned is None or (in_object and cleaned == {})
        texts.append(None if absent else _dumps(cleaned))
    out.append(_Piece(values=pa.array(texts, pa.string())))
    return np.array([t is not None for t in texts], dtype=bool)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
