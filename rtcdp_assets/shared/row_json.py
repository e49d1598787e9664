"""Typed rows as JSON text, vectorised: how rejects keep the values of rows the rules drop."""

from __future__ import annotations

import json
from collections.abc import Sequence

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
