"""Columnar path of ``XdmSchema.validate_table``: which rows of an Arrow table MAY be invalid.

``validate_table`` must give exactly ``validate_many(xdm.to_records(table))``'s report, and
building a dict per row is most of that cost. So the table is first screened column by column
and only the rows the screen cannot clear go through the per-record path. The screen is SOUND,
never exact: every row the per-record path would reject is flagged (a flagged row may still
turn out valid); it decides nothing itself, so its imprecision costs time, never a verdict.

Once per (schema, Arrow schema), cached, the Arrow schema is walked against the compiled
schema and the field tree (``_plan``): every struct must meet an object schema, every list an
array schema with an item schema, every leaf a compatible type (string/large_string and
timestamp -> ``string``, integers -> ``integer``/``number``, floats -> ``number``, bool ->
``boolean``), and each node may only carry keywords the screen understands. Anything else
(an unknown name, an incompatible or unusual type, a keyword outside those sets, a map or
pattern-keyed object) becomes a FLAG node: every row where it is present goes to the per-record
path.

Per batch, with numpy masks (``_evaluate``), following ``xdm.to_records``'s cleaning: a leaf
or a list is present where it and its ancestors are non-null; a struct is present where it is
non-null and one of its children is present (null fields and objects left empty are dropped),
except as a list item or the record itself, which stay even when empty (``{}``). Flagged:

* a required name absent where its object exists;
* list items that are null, lists outside minItems/maxItems;
* value keywords (enum, const, format, pattern, lengths, bounds) that a value may fail. Where an
  exact or conservative Arrow kernel exists it clears values first (``is_in`` for enum,
  ``utf8_length`` for lengths, an RE2 regex accepting a SUBSET of what ``formats`` accepts
  (for uri-reference first one pass over the column's text: plain URI characters only), a
  year range for timestamps as ticks, which ``to_records`` always writes in RFC 3339); the values it
  does not clear are checked with jsonschema's own keyword function on their distinct values
  (``dictionary_encode``), converted to Python by ``to_records`` itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rtcdp_assets.shared import xdm
from rtcdp_assets.shared.xdm_conformance.field_tree import Field


class TableSchemaInternals(Protocol):
    """What the columnar screen uses of an ``XdmSchema`` (validator.py)."""

    compiled_schema: dict[str, Any]
    _fields: Field
    _validator: Any  # Draft6Validator with the project's format checker


# Keywords each node kind understands; any other keyword makes the node a FLAG node.
_VALUE_KEYWORDS: Final = frozenset(
    {
        "format", "enum", "const", "pattern", "minLength", "maxLength", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    }
)  # fmt: skip
_LEAF_KEYWORDS: Final = _VALUE_KEYWORDS | {"type", "meta:xdmType"}
_OBJECT_KEYWORDS: Final = frozenset(
    {"type", "properties", "required", "additionalProperties", "meta:xdmType", "$schema"}
)
_LIST_KEYWORDS: Final = frozenset({"type", "items", "minItems", "maxItems", "meta:xdmType"})

# Subsets of what formats.py accepts (ASCII only, no colon after a scheme, days up to 28):
# a value they match is valid for sure; the others get the exact Python check.
_URI_CHAR: Final = r"(?:[A-Za-z0-9\-._~/?@!$&'()*+,;=]|%[0-9A-Fa-f]{2})"
_SURE_URI_REFERENCE: Final = (
    rf"^(?:[A-Za-z][A-Za-z0-9+.\-]*:)?{_URI_CHAR}*(?:#(?:{_URI_CHAR}|:)*)?$"
)
_SURE_DAY: Final = (
    r"(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
    r"-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
)
_SURE_DATE: Final = rf"^{_SURE_DAY}$"
_SURE_DATE_TIME: Final = (
    rf"^{_SURE_DAY}[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
# URI_CHAR's single characters: a text made of these alone matches _SURE_URI_REFERENCE (no
# scheme, no fragment). Checked over a column's whole text buffer at once, several times
# faster than the regex per value.
_PLAIN_URI_BYTES: Final = (
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/?@!$&'()*+,;="
)
_SURE_FORMATS: Final = {
    "uri-reference": _SURE_URI_REFERENCE,
    "date": _SURE_DATE,
    "date-time": _SURE_DATE_TIME,
}
# to_records writes timestamps as YYYY-MM-DDTHH:MM:SS.mmmZ (UTC); years with four digits, away
# from datetime's limits (a shift to UTC moves a day), always give a valid date-time.
_SURE_YEARS: Final = (1001, 9998)
_TICKS_PER_SECOND: Final = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}

FastPass = Callable[[pa.Array], pa.Array]  # True where the value surely passes


@dataclass(frozen=True)
class _Check:
    keyword: str
    expected: Any
    subschema: dict[str, Any]
    fast_pass: FastPass | None


@dataclass(frozen=True)
class _Node:
    kind: str  # "flag", "leaf", "object" or "list"
    checks: tuple[_Check, ...] = ()  # leaf
    children: tuple[_Node, ...] = ()  # object: one per Arrow child, in order
    required: tuple[int | None, ...] = ()  # object: Arrow child of each required name
    items: _Node | None = None  # list
    min_items: int | None = None
    max_items: int | None = None


_FLAG: Final = _Node("flag")


def _leaf_kind(arrow_type: pa.DataType) -> str | None:
    """JSON type of the values ``to_records`` gives for a column, None when not plain JSON."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"  # an RFC 3339 string once cleaned
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type):
        return "number"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    return None  # dates, decimals, binary, dictionaries, maps...: the per-record path decides


def _types(schema: dict[str, Any]) -> set[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    return {kind} if isinstance(kind, str) else set(kind)


def _fast_pass(kind: str, keyword: str, expected: Any) -> FastPass | None:
    if kind == "timestamp":
        if keyword == "format" and expected == "date-time":
            return _sure_year_ticks
        return None
    if kind != "string":
        return None  # numbers and booleans: distinct values, checked exactly
    if keyword == "enum" and isinstance(expected, list):
        allowed = [value for value in expected if isinstance(value, str)]
        return lambda a: pc.is_in(a, value_set=pa.array(allowed, a.type))
    if keyword == "const" and isinstance(expected, str):
        return lambda a: pc.equal(a, pa.scalar(expected, a.type))
    if keyword == "minLength" and isinstance(expected, int):
        return lambda a: pc.greater_equal(pc.utf8_length(a), expected)
    if keyword == "maxLength" and isinstance(expected, int):
        return lambda a: pc.less_equal(pc.utf8_length(a), expected)
    if keyword == "format" and expected == "email":
        return lambda a: pc.match_substring(a, "@")  # jsonschema's own email check
    if keyword == "format" and expected in _SURE_FORMATS:
        regex = _SURE_FORMATS[expected]
        if expected == "uri-reference":
            return lambda a: (
                pa.array(np.ones(len(a), dtype=bool))
                if _only_plain_uri_bytes(a)
                else pc.match_substring_regex(a, regex)
            )
        return lambda a: pc.match_substring_regex(a, regex)
    return None


def _sure_year_ticks(array: pa.Array) -> pa.Array:
    """True where the instant (UTC; the wall clock for naive timestamps) lies in a year of
    `_SURE_YEARS`: compared as ticks, as `pc.year` would say but without calendar work."""
    kind = array.type
    per_second = _TICKS_PER_SECOND[kind.unit]
    low_year, high_year = _SURE_YEARS
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    low = (datetime(low_year, 1, 1, tzinfo=UTC) - epoch) // timedelta(seconds=1) * per_second
    high = (datetime(high_year + 1, 1, 1, tzinfo=UTC) - epoch) // timedelta(seconds=1)
    high *= per_second
    # Nanosecond ticks cannot leave years 1677-2262: clamped bounds hold every value.
    low, high = max(low, -(2**63)), min(high, 2**63 - 1)
    ticks = array.view(pa.int64())
    return pc.and_(pc.greater_equal(ticks, low), pc.less(ticks, high))


def _only_plain_uri_bytes(array: pa.Array) -> bool:
    """Whether the bytes of every value (nulls' slots included) are `_PLAIN_URI_BYTES`."""
    data = array.buffers()[2]
    if data is None or not len(array):
        return True
    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets = np.frombuffer(array.buffers()[1], dtype=width)
    start, end = int(offsets[array.offset]), int(offsets[array.offset + len(array)])
    return not memoryview(data)[start:end].tobytes().translate(None, _PLAIN_URI_BYTES)


def _plan(arrow_type: pa.DataType, schema: Any, node: Field | None) -> _Node:
    """What to screen for values of ``arrow_type`` at the position of ``schema``/``node``."""
    if not isinstance(schema, dict) or node is None:
        return _FLAG  # an unknown field, or a position no schema describes
    types = _types(schema)
    if pa.types.is_struct(arrow_type):
        return _plan_object(arrow_type, schema, node, types)
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        bounds = (schema.get("minItems"), schema.get("maxItems"))
        if (
            types is None
            or "array" not in types
            or set(schema) - _LIST_KEYWORDS
            or not isinstance(schema.get("items"), dict)
            or node.items is None
            or any(b is not None and type(b) is not int for b in bounds)
        ):
            return _FLAG
        items = _plan(arrow_type.value_type, schema["items"], node.items)
        return _Node("list", items=items, min_items=bounds[0], max_items=bounds[1])
    kind = _leaf_kind(arrow_type)
    if kind is None or set(schema) - _LEAF_KEYWORDS:
        return _FLAG
    checks: list[_Check] = []
    json_kind = "string" if kind == "timestamp" else kind
    if (
        types is not None
        and json_kind not in types
        and not (json_kind == "integer" and "number" in types)
    ):
        if json_kind != "number" or "integer" not in types:
            return _FLAG  # a type error wherever the field is present
        # A float is an "integer" when integral: decided per distinct value.
        checks.append(_Check("type", schema["type"], schema, None))
    for keyword in sorted(_VALUE_KEYWORDS & schema.keys()):
        expected = schema[keyword]
        checks.append(_Check(keyword, expected, schema, _fast_pass(kind, keyword, expected)))
    return _Node("leaf", checks=tuple(checks))


def _plan_object(
    arrow_type: pa.DataType, schema: dict[str, Any], node: Field, types: set[str] | None
) -> _Node:
    names = [arrow_type.field(i).name for i in range(arrow_type.num_fields)]
    additional = schema.get("additionalProperties")
    if (
        types is None
        or "object" not in types
        or set(schema) - _OBJECT_KEYWORDS
        or not node.is_object
        or node.any_key
        or node.patterns
        or len(set(names)) != len(names)  # to_pylist would keep one of them
        or (additional is not None and not isinstance(additional, dict))
    ):
        return _FLAG
    properties = schema.get("properties", {})
    children = tuple(
        _plan(arrow_type.field(i).type, properties.get(name, additional), node.child(name))
        for i, name in enumerate(names)
    )
    required = tuple(
        names.index(name) if name in names else None for name in schema.get("required", ())
    )
    return _Node("object", children=children, required=required)


@functools.lru_cache(maxsize=256)
def _root_plan(schema: TableSchemaInternals, arrow_schema: pa.Schema) -> _Node:
    return _plan(pa.struct(list(arrow_schema)), schema.compiled_schema, schema._fields)


# --------------------------------------------------------------------------------------------
# Per batch


def _valid(array: pa.Array) -> np.ndarray:
    if array.null_count == 0:
        return np.ones(len(array), dtype=bool)
    return np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _presence(array: pa.Array, nonnull: np.ndarray, keep_empty: bool) -> np.ndarray:
    """Where ``to_records`` keeps a value of any type (used for FLAG nodes)."""
    if keep_empty or not pa.types.is_struct(array.type):
        return nonnull
    present = np.zeros(len(array), dtype=bool)
    for i in range(array.type.num_fields):
        child = array.field(i)
        present |= _presence(child, nonnull & _valid(child), False)
    return present


class _Screen:
    def __init__(self, schema: TableSchemaInternals) -> None:
        self._validator = schema._validator

    def evaluate(
        self,
        node: _Node,
        array: pa.Array,
        context: np.ndarray,
        flags: np.ndarray,
        keep_empty: bool,
    ) -> np.ndarray:
        """Flag rows (into ``flags``) and return where the value is present after cleaning.

        ``context``: positions where the parent object (or list item) exists.
        """
        nonnull = context & _valid(array)
        if node.kind == "flag":
            present = _presence(array, nonnull, keep_empty)
            flags |= present
            return present
        if node.kind == "leaf":
            if node.checks and nonnull.any():
                flags |= self._leaf_failures(node.checks, array, nonnull)
            return nonnull
        if node.kind == "list":
            self._list(node, array, nonnull, flags)
            return nonnull
        child_present = [
            self.evaluate(child, array.field(i), nonnull, flags, False)
            for i, child in enumerate(node.children)
        ]
        exists = nonnull.copy() if keep_empty else np.zeros(len(array), dtype=bool)
        if not keep_empty:
            for present in child_present:
                exists |= present
            exists &= nonnull
        for index in node.required:
            flags |= exists if index is None else exists & ~child_present[index]
        return exists

    def _list(self, node: _Node, array: pa.Array, present: np.ndarray, flags: np.ndarray) -> None:
        if node.min_items is not None or node.max_items is not None:
            lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False)
            if node.min_items is not None:
                flags |= present & (lengths < node.min_items)
            if node.max_items is not None:
                flags |= present & (lengths > node.max_items)
        if node.items is None or not present.any():
            return
        # Every item in the offsets' range, those under null lists included (their context is
        # False): list_parent_indices emits one entry per such item, list_flatten would not.
        offsets = array.offsets
        first, last = offsets[0].as_py(), offsets[-1].as_py()
        items = array.values.slice(first, last - first)
        parents = pc.list_parent_indices(array).to_numpy(zero_copy_only=False)
        if len(parents) != len(items):  # not expected; stay sound whatever the layout
            flags |= present
            return
        item_context = present[parents]
        item_flags = item_context & ~_valid(items)  # null items: rarely valid, let jsonschema say
        self.evaluate(node.items, items, item_context, item_flags, True)
        flags[parents[item_flags]] = True

    def _leaf_failures(
        self, checks: tuple[_Check, ...], array: pa.Array, present: np.ndarray
    ) -> np.ndarray:
        fails = np.zeros(len(array), dtype=bool)
        for check in checks:
            suspect = present & ~fails
            if check.fast_pass is not None:
                passed = pc.fill_null(check.fast_pass(array), False)
                suspect &= ~np.asarray(passed.to_numpy(zero_copy_only=False), dtype=bool)
            if suspect.any():
                fails |= self._exact(check, array, suspect)
        return fails

    def _exact(self, check: _Check, array: pa.Array, suspect: np.ndarray) -> np.ndarray:
        """jsonschema's keyword function on each distinct suspect value, as to_records gives it."""
        rows = np.flatnonzero(suspect)
        values = array.take(pa.array(rows))
        try:
            encoded = pc.dictionary_encode(values)
        except pa.ArrowNotImplementedError:
            return suspect  # a type without a hash kernel: every suspect goes per record
        distinct = xdm.to_records(pa.table({"v": encoded.dictionary}))
        keyword_check = self._validator.VALIDATORS[check.keyword]
        bad = np.array(
            [
                next(
                    iter(keyword_check(self._validator, check.expected, r["v"], check.subschema)),
                    None,
                )
                is not None
                for r in distinct
            ],
            dtype=bool,
        )
        out = np.zeros(len(array), dtype=bool)
        out[rows] = bad[encoded.indices.to_numpy(zero_copy_only=False)]
        return out


def suspect_rows(schema: TableSchemaInternals, table: pa.Table | pa.RecordBatch) -> np.ndarray:
    """Sorted indices of the rows that may be invalid (a superset of the invalid ones)."""
    batches = table.to_batches() if isinstance(table, pa.Table) else [table]
    plan = _root_plan(schema, table.schema)
    screen = _Screen(schema)
    found: list[np.ndarray] = []
    offset = 0
    for batch in batches:
        flags = np.zeros(batch.num_rows, dtype=bool)
        if batch.num_columns == 0:
            flags[:] = True  # {} records: let the per-record path name what is missing
        else:
            root = pa.StructArray.from_arrays(batch.columns, fields=list(batch.schema))
            screen.evaluate(plan, root, np.ones(batch.num_rows, dtype=bool), flags, True)
        found.append(np.flatnonzero(flags) + offset)
        offset += batch.num_rows
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
