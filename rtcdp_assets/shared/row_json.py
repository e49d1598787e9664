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
    rows = batch.select(list(columns)).to_pylist()
    fixed = [
        json.dumps(row, ensure_ascii=False, default=str) if bad else value
        for row, bad, value in zip(rows, odd.to_pylist(), text.to_pylist(), strict=True)
    ]
    return pa.array(fixed, pa.string())
