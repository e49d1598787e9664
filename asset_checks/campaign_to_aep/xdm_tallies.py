"""Columnar counts behind the XDM checks of a Campaign dataset (`export_checks.evaluate_xdm`):
record sizes from column lengths, identities per record from list lengths, duplicate `_id`s
from 64-bit hashes. Each gives exactly what counting the records of `xdm.to_records` gives.

`_id` uniqueness keeps 8 bytes per row (a uint64 hash of each id), not a set of strings, so a
5 M-row partition costs 40 MB. Rows whose hash is shared are re-read and compared by value,
so a hash collision never counts as a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rtcdp_assets.shared import xdm
from rtcdp_assets.shared.xdm_json import record_lengths

_MULTIPLIER = np.uint64(0x100000001B3)  # FNV-1a 64-bit prime (odd): the polynomial's base
_LENGTH_SALT = np.uint64(0x9E3779B97F4A7C15)
_WORD = 8  # bytes hashed per step


def record_sizes(batch: pa.RecordBatch) -> np.ndarray:
    """UTF-8 bytes of each record's canonical JSON (what AEP receives), from column lengths."""
    return record_lengths(batch).to_numpy()


def identity_counts(batch: pa.RecordBatch) -> np.ndarray:
    """Identities per record: the items of every namespace of `identityMap` (null namespaces
    count none; null items inside a namespace's list count, as `len` of the list does)."""
    n = batch.num_rows
    if "identityMap" not in batch.schema.names:
        return np.zeros(n, dtype=np.int64)
    column = batch.column("identityMap")
    kind = column.type
    if pa.types.is_struct(kind) and all(
        pa.types.is_list(kind.field(i).type) or pa.types.is_large_list(kind.field(i).type)
        for i in range(kind.num_fields)
    ):
        counts = np.zeros(n, dtype=np.int64)
        for namespace in column.flatten():  # flatten: a null identityMap nulls its lists
            lengths = pc.fill_null(pc.list_value_length(namespace), 0)
            counts += lengths.to_numpy(zero_copy_only=False).astype(np.int64)
        return counts
    # Any other shape (a map): count as the cleaned record does, this column's values only.
    return np.array([_identities_of(v) for v in column.to_pylist()], dtype=np.int64)


def _identities_of(value: object) -> int:
    cleaned = xdm._clean(value) if value is not None else None
    return sum(len(items) for items in (cleaned or {}).values())  # type: ignore[union-attr]


def string_hashes(values: pa.Array) -> np.ndarray:
    """A 64-bit hash of each non-null string (nulls dropped), over Arrow's buffers with numpy:
    a polynomial over the strings' 8-byte words, salted with the length and mixed (splitmix64
    finalizer). Any hash is sound here (equal hashes are compared by value); this one costs
    a few numpy passes per 8 bytes of the longest string."""
    text = pc.drop_null(values)
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        text = pc.cast(text, pa.string())
    n = len(text)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    offsets = np.frombuffer(text.buffers()[1], dtype=width)[text.offset : text.offset + n + 1]
    offsets = offsets.astype(np.int64)
    lengths = np.diff(offsets)
    sums = np.zeros(n, dtype=np.uint64)
    total = int(offsets[-1] - offsets[0])
    if total:
        _add_words(sums, text.buffers()[2], offsets, lengths, total)
    mixed = sums ^ (lengths.astype(np.uint64) * _LENGTH_SALT)
    mixed ^= mixed >> np.uint64(30)
    mixed *= np.uint64(0xBF58476D1CE4E5B9)
    mixed ^= mixed >> np.uint64(27)
    mixed *= np.uint64(0x94D049BB133111EB)
    mixed ^= mixed >> np.uint64(31)
    return mixed


def _add_words(
    sums: np.ndarray, data: pa.Buffer, offsets: np.ndarray, lengths: np.ndarray, total: int
) -> None:
    """`sums = sums * M + word` for each 8-byte word of each string, the last word of a
    string cut to its bytes (wraps mod 2**64, as intended)."""
    padded = np.zeros(total + _WORD, dtype=np.uint8)  # the last word may read past the end
    padded[:total] = np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]]
    # Every byte position as the start of an unaligned little-endian 8-byte word: no copy.
    words = np.ndarray((total,), dtype="<u8", buffer=padded, strides=(1,))
    starts = offsets[:-1] - offsets[0]
    rows = np.flatnonzero(lengths > 0)
    first = 0
    while len(rows):
        every = len(rows) == len(sums)  # the common case: no gather, no scatter
        remaining = (lengths if every else lengths[rows]) - first
        word = words[(starts if every else starts[rows]) + first]
        short = remaining < _WORD
        if short.any():
            bits = remaining[short].astype(np.uint64) * np.uint64(8)
            word[short] &= (np.uint64(1) << bits) - np.uint64(1)
        if every:
            sums *= _MULTIPLIER
            sums += word
        else:
            sums[rows] = sums[rows] * _MULTIPLIER + word
        first += _WORD
        rows = rows[lengths[rows] > first]


class DuplicateCounter:
    """Counts values seen before, over batches, as `duplicates += v in seen; seen.add(v)`
    does (a null is a value: every null after the first is a duplicate)."""

    def __init__(self) -> None:
        self.rows = 0
        self.nulls = 0
        self._hashes: list[np.ndarray] = []

    def add(self, values: pa.Array) -> None:
        self.rows += len(values)
        self.nulls += values.null_count
        self._hashes.append(string_hashes(values))

    def duplicates(self, reread: Callable[[], Iterable[pa.Array]]) -> int:
        """The count; `reread` gives the same values again, read only when hashes collide."""
        hashes = np.concatenate(self._hashes) if self._hashes else np.zeros(0, np.uint64)
        self._hashes = []  # the parts go before the sort, which works in place: 8 bytes a row
        hashes.sort()
        shared = hashes[1:][hashes[1:] == hashes[:-1]]
        distinct_hashes = len(hashes) - len(shared)
        distinct = distinct_hashes + (self.nulls > 0)
        if len(shared):
            # The rows of shared hashes, compared by value: equal ids or a collision.
            colliding = np.unique(shared)
            candidates = []
            for values in reread():
                text = pc.drop_null(values)
                picked = np.isin(string_hashes(text), colliding)
                candidates.append(pc.filter(text, pa.array(picked)))
            exact = pc.count_distinct(pa.chunked_array(candidates, pa.string())).as_py()
            distinct += exact - len(colliding)
        return self.rows - distinct
