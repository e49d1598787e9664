"""Typed rows and nested values as JSON text, vectorised: how rejects keep the values of rows the
rules drop, and how list columns of audience exports are kept as text."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def json_text(col: pa.Array) -> pa.Array:
    """Each value as JSON text, vectorised (json.dumps per row took most of the time)."""
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        text = pc.cast(col, pa.string())
    elif pa.types.is_boolean(col.type):
        text = pc.if_else(col, "true", "false")
    else:
        text = pc.cast(col, pa.string())
        for char, escaped in (
            ("\\", "\\\\"),
            ('"', '\\"'),
            ("\n", "\\n"),
            ("\r", "\\r"),
            ("\t", "\\t"),
        ):
            text = pc.replace_substring(text, char, escaped)
        text = pc.binary_join_element_wise('"', text, '"', "")
    return pc.fill_null(text, "null")


def raw_json(batch: pa.RecordBatch, columns: Sequence[str]) -> pa.Array:
    """The typed values of rejected rows as JSON objects (the CSV text is gone by now)."""
    parts: list[pa.Array | str] = []
    for i, name in enumerate(columns):
        parts.append(("{" if i == 0 else ", ") + json.dumps(name) + ": ")
        parts.append(json_text(batch.column(name)))
    parts.append("}")
    text = pc.binary_join_element_wise(*parts, "")
    # Other control characters need \\u escapes: the rare rows holding one go through json.
    odd = pc.match_substring_regex(text, "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f]")
    if not pc.any(odd).as_py():
        return text
    # Only those rows leave Arrow; the others keep their vectorised text.
    odd_rows = batch.select(list(columns)).filter(odd).to_pylist()
    fixed = pa.array(
        [json.dumps(row, ensure_ascii=False, default=str) for row in odd_rows], pa.string()
    )
    if isinstance(text, pa.ChunkedArray):  # a Table rather than a RecordBatch
        text, odd = text.combine_chunks(), odd.combine_chunks()
    return pc.replace_with_mask(text, odd, fixed)


# Anything but printable ASCII: json.dumps escapes it (`\uXXXX`, `\n`), so such rows go to json.
_NOT_PLAIN_ASCII = "[^\\x20-\\x7e]"


def _row_flags(parents: np.ndarray, child_flags: np.ndarray, n: int) -> np.ndarray:
    """A row is flagged when any of its children is."""
    if not len(parents):
        return np.zeros(n, dtype=bool)
    return np.bincount(parents, weights=child_flags, minlength=n) > 0


def _joined_lists(
    values: pa.Array, item_text: pa.Array, item_odd: np.ndarray
) -> tuple[pa.Array, np.ndarray]:
    """`[item, item]` per list of `values` (a list or map array) from the text of its
    flattened items."""
    n = len(values)
    lengths = pc.fill_null(pc.list_value_length(values), 0).to_numpy()
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, item_text), ", ")
    parents = pc.list_parent_indices(values).to_numpy()
    return pc.binary_join_element_wise("[", joined, "]", ""), _row_flags(parents, item_odd, n)


def _json_values(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Each value as `json.dumps` writes it once read into Python (null → `null`), and the rows
    where the text may differ from json's: not plain ASCII, or a type json writes otherwise
    (floats, dates, bytes). Those rows are for json itself."""
    n = len(values)
    kind = values.type
    odd = np.zeros(n, dtype=bool)
    if pa.types.is_dictionary(kind):
        return _json_values(values.dictionary_decode())
    if pa.types.is_struct(kind):
        parts: list[pa.Array | str] = []
        for i in range(kind.num_fields):
            field_text, field_odd = _json_values(pc.struct_field(values, [i]))
            parts += [("{" if i == 0 else ", ") + json.dumps(kind.field(i).name) + ": ", field_text]
            odd |= field_odd
        text = pc.binary_join_element_wise(*parts, "}", "") if parts else pa.repeat("{}", n)
    elif pa.types.is_map(kind):
        # Python reads a map as (key, value) pairs, which json writes as two-item lists.
        values = values.cast(pa.list_(pa.struct([kind.key_field, kind.item_field])))
        entries = pc.list_flatten(values)
        key_text, key_odd = _json_values(pc.struct_field(entries, [0]))
        item_text, item_odd = _json_values(pc.struct_field(entries, [1]))
        pairs = pc.binary_join_element_wise("[", key_text, ", ", item_text, "]", "")
        text, odd = _joined_lists(values, pairs, key_odd | item_odd)
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        text, odd = _joined_lists(values, *_json_values(pc.list_flatten(values)))
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        plain = pc.fill_null(pc.match_substring_regex(values, _NOT_PLAIN_ASCII), False)
        odd = plain.to_numpy(zero_copy_only=False).astype(bool)
        escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '\\"')
        text = pc.binary_join_element_wise('"', escaped, '"', "")
    elif pa.types.is_integer(kind):
        text = pc.cast(values, pa.string())
    elif pa.types.is_boolean(kind):
        text = pc.if_else(values, "true", "false")
    elif pa.types.is_null(kind):
        text = pa.nulls(n, pa.string())
    else:
        text, odd = pa.nulls(n, pa.string()), np.ones(n, dtype=bool)
    # A null struct or list may still have children; its text is `null` whatever they hold.
    text = pc.if_else(pc.is_valid(values), text, pa.scalar(None, pa.string()))
    return pc.fill_null(text, "null"), odd


def nested_json(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Lists, maps and structs as `json.dumps(value)` writes them (a null stays null), built
    with Arrow kernels; only the rare rows json writes differently go through json."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    text, odd = _json_values(values)
    if odd.any():
        rows = values.filter(pa.array(odd)).to_pylist()
        fixed = pa.array([json.dumps(v) for v in rows], pa.string())
        text = pc.replace_with_mask(text, pa.array(odd), fixed)
    return pc.if_else(pc.is_valid(values), text, pa.scalar(None, pa.string()))
