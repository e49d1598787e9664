"""Building XDM records with Arrow: nested structs column by column, never a dict per row.

The XDM datasets are stored as Parquet with the nested XDM shape; `to_records` turns a batch
into the JSON-ready dicts AEP ingests (null fields dropped, timestamps as RFC 3339), and it is
the one function both the conformance check and the publication use, so what is checked is
exactly what is published.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

IDENTITY_ITEM = pa.struct(
    [
        pa.field("id", pa.string()),
        pa.field("authenticatedState", pa.string()),
        pa.field("primary", pa.bool_()),
    ]
)
MEASURE = pa.struct([pa.field("value", pa.float64())])


def struct(fields: Mapping[str, pa.Array], mask: pa.Array | None = None) -> pa.StructArray:
    """A struct array from named child arrays; `mask` (True = null) nulls whole rows."""
    names = list(fields)
    return pa.StructArray.from_arrays(list(fields.values()), names=names, mask=mask)


def identities(values: pa.Array, *, primary: bool, state: str = "ambiguous") -> pa.Array:
    """identityMap entry for one namespace: a one-item list per row, null where no value."""
    n = len(values)
    items = struct(
        {
            "id": values,
            "authenticatedState": constant(state, n),
            "primary": constant(primary, n, pa.bool_()),
        }
    )
    offsets = _one_per_row(n)
    # A validity mask instead of if_else: if_else on nested lists is orders of magnitude slower.
    return pa.ListArray.from_arrays(offsets, items, mask=pc.is_null(values))


# Constant columns are sliced from one cached array per value: every batch of a file needs the
# same ones, and repeating a string a million times costs as much as a real column.
_CONSTANTS: dict[tuple[object, type, pa.DataType | None], pa.Array] = {}
_CONSTANTS_MAX = 64
_CACHED_ROWS = 1 << 16


def constant(value: object, n: int, type_: pa.DataType | None = None) -> pa.Array:
    """`value` repeated n times, without building a Python list of n items."""
    key = (value, type(value), type_)  # True == 1 == 1.0, so the Python type is part of it
    try:
        cached = _CONSTANTS.get(key)
    except TypeError:  # an unhashable value (a list, a dict) is simply not cached
        return pa.repeat(pa.scalar(value, type_), n)
    if cached is None or len(cached) < n:
        cached = pa.repeat(pa.scalar(value, type_), max(n, _CACHED_ROWS))
        if len(_CONSTANTS) >= _CONSTANTS_MAX:
            _CONSTANTS.clear()
        _CONSTANTS[key] = cached
    return cached.slice(0, n)


def _one_per_row(n: int) -> pa.Array:
    """List offsets 0, 1, …, n: one item per row, sliced from a cached range."""
    key = ("offsets", int, pa.int32())
    cached = _CONSTANTS.get(key)
    if cached is None or len(cached) <= n:
        cached = pa.array(np.arange(max(n + 1, _CACHED_ROWS), dtype=np.int32))
        _CONSTANTS[key] = cached
    return cached.slice(0, n + 1)


def measure(flag: pa.Array) -> pa.Array:
    """`{value: 1}` where flag is true, null elsewhere (an absent measure, not a zero)."""
    ones = constant(1.0, len(flag), pa.float64())
    return pa.StructArray.from_arrays(
        [ones], names=["value"], mask=pc.invert(pc.fill_null(flag, False))
    )


def as_text(values: pa.Array) -> pa.Array:
    return pc.cast(values, pa.string())


def event_ids(prefix: str, *columns: pa.Array) -> pa.Array:
    """Deterministic `_id`s from source keys only, never personal data: the same event always
    gets the same `_id`, so re-runs and AEP's de-duplication agree.

    Adobe suggests concatenating what makes the event unique, without `:` (the field is a
    uri-reference), then hashing. The readable concatenation (`campaign-broadlog-123-1-…`) is
    kept instead of a hash: equally unique and deterministic, traceable to the Campaign row by
    an analyst, and vectorised (hashing row by row cost more than the rest of the mapping).
    """
    parts = [_without_colons(c) for c in columns]
    return pc.binary_join_element_wise(constant(prefix, len(columns[0])), *parts, "-")


def _without_colons(values: pa.Array) -> pa.Array:
    """The text of `values` with every `:` removed; no copy when there is none to remove."""
    if pa.types.is_integer(values.type):
        return as_text(values)  # digits and a sign only
    text = as_text(values)
    if text.type == pa.string() and len(text) and text.buffers()[2] is not None:
        data = np.frombuffer(text.buffers()[2], dtype=np.uint8)
        if not (data == ord(":")).any():
            return text
    return pc.replace_substring(text, ":", "")


def lookup(codes: pa.Array, mapping: Mapping[str, str]) -> pa.Array:
    """Map code values (as text) to labels; unknown codes give null."""
    labels = pa.array(list(mapping.values()), pa.string())
    if pa.types.is_integer(codes.type) and all(_is_canonical_int(k) for k in mapping):
        # Integer codes compare as integers when every key is an integer written plainly
        # ("7", not "07" or "+7"): the same matches without turning each code into text.
        try:
            keys = pa.array([int(k) for k in mapping], codes.type)
        except (OverflowError, pa.ArrowInvalid):
            keys = None  # a key out of the codes' range can match nothing: compare as text
        if keys is not None:
            return pc.take(labels, pc.index_in(codes, value_set=keys))
    keys = pa.array(list(mapping.keys()), pa.string())
    idx = pc.index_in(as_text(codes), value_set=keys)
    return pc.take(labels, idx)


def _is_canonical_int(text: str) -> bool:
    try:
        return str(int(text)) == text
    except ValueError:
        return False


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        # Drop nulls and objects left empty by them: AEP treats absent and null alike, and an
        # empty object would only add bytes.
        cleaned = {k: _clean(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in cleaned.items() if v != {}}
    if isinstance(value, list):
        if value and isinstance(value[0], tuple):  # Arrow map<> comes back as pairs
            return {k: _clean(v) for k, v in value if v is not None}
        return [_clean(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return value


def to_records(batch: pa.RecordBatch | pa.Table) -> list[dict[str, Any]]:
    """JSON-ready XDM records (the Experience Platform dataset form)."""
    return [_clean(row) for row in batch.to_pylist()]


def dumps(record: Mapping[str, Any]) -> str:
    """Canonical JSON: sorted keys, no spaces, so a re-run gives byte-identical output."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
