"""XDM Parquet as AEP's cloud-storage sources read it (docs/formats.md §h3), from the stored XDM
partition, column by column.

The stored XDM Parquet is already nested as the schema; three things differ from what Adobe
documents for XDM types in Parquet, and only those columns are rebuilt (every other column is
passed through as stored):
- XDM maps (`identityMap`, `meta:xdmType: map`) are stored as a struct with one field per
  namespace; in Parquet an XDM map is a MAP-annotated group with string keys. The struct becomes
  a map of its non-null fields, in field order; a row left with no entry gets a null map (the
  JSON form drops such an object too).
- DateTime is INT64 TIMESTAMP_MILLIS: stored microseconds are truncated to milliseconds, as the
  JSON form's RFC 3339 text is.
- Date is INT32 DATE: a `format: date` field stored as `YYYY-MM-DD` text becomes a date.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rtcdp_assets.shared.xdm_conformance import XdmSchema

TIMESTAMP = pa.timestamp("ms", tz="UTC")
# XDM integer kinds (`meta:xdmType`) and the Parquet width Adobe gives each (§h3).
INTEGER_BITS = {"long": 64, "int": 32, "short": 16, "byte": 8}

Node = Mapping[str, Any]


def aep_parquet_batch(batch: pa.RecordBatch, schema: XdmSchema) -> pa.RecordBatch:
    """`batch` (a stored XDM partition's) with the columns AEP's XDM Parquet types differently
    converted; the others are the stored arrays themselves."""
    properties = schema.compiled_schema.get("properties", {})
    arrays = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        node = properties.get(name)
        arrays.append(column if node is None else _convert(column, _resolve(node, schema)))
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _convert(values: pa.Array, node: Node) -> pa.Array:
    kind = values.type
    if _is_map(node) and pa.types.is_struct(kind):
        return _struct_to_map(values, node)
    if pa.types.is_struct(kind):
        props = node.get("properties", {})
        children = values.flatten()  # the struct's own offset and nulls applied
        converted = [
            child if (sub := props.get(field.name)) is None else _convert(child, sub)
            for field, child in zip(kind, children, strict=True)
        ]
        if all(a is b for a, b in zip(converted, children, strict=True)):
            return values
        return pa.StructArray.from_arrays(
            converted, names=[f.name for f in kind], mask=_null_mask(values)
        )
    if pa.types.is_list(kind) and isinstance(node.get("items"), Mapping):
        items = values.values
        converted_items = _convert(items, node["items"])
        if converted_items is items:
            return values
        return pa.ListArray.from_arrays(values.offsets, converted_items, mask=_null_mask(values))
    if pa.types.is_timestamp(kind) and kind != TIMESTAMP:
        return pc.cast(values, TIMESTAMP, safe=False)  # truncation, as the JSON text
    if pa.types.is_string(kind) and node.get("format") == "date":
        return pc.cast(values, pa.date32())
    return values


def _struct_to_map(values: pa.StructArray, node: Node) -> pa.Array:
    """One map entry per non-null field of each row, keyed by the field's name."""
    n, kind = len(values), values.type
    value_node = node.get("additionalProperties")
    children = [
        c if not isinstance(value_node, Mapping) else _convert(c, value_node)
        for c in values.flatten()
    ]
    if not children:
        return pa.nulls(n, pa.map_(pa.string(), pa.null()))
    item_type = children[0].type
    if any(c.type != item_type for c in children):
        raise TypeError(f"map values of differing types: {[str(c.type) for c in children]}")
    present = np.column_stack(
        [c.is_valid().to_numpy(zero_copy_only=False) for c in children]
    ).reshape(n, len(children))
    # Row-major positions of the present (row, field) cells: the entries in row, field order.
    cells = np.flatnonzero(present.ravel())
    rows, fields = np.divmod(cells, len(children))
    names = pa.array([f.name for f in kind], pa.string())
    keys = names.take(pa.array(fields))
    items = pa.concat_arrays(children).take(pa.array(fields * n + rows))
    counts = present.sum(axis=1)
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    return pa.MapArray.from_arrays(offsets, keys, items, mask=pa.array(counts == 0))


def _null_mask(values: pa.Array) -> pa.Array | None:
    return values.is_null() if values.null_count else None


def _is_map(node: Node) -> bool:
    return node.get("meta:xdmType") == "map" or (
        "additionalProperties" in node
        and isinstance(node["additionalProperties"], Mapping)
        and not node.get("properties")
    )


def _resolve(node: Node, schema: XdmSchema) -> Node:
    ref = node.get("$ref")
    if isinstance(ref, str):
        return schema.registry.resolver().lookup(ref).contents  # type: ignore[no-any-return]
    return node


# -- the published columns against the schema -------------------------------------------------


def parquet_type_problems(arrow_schema: pa.Schema, schema: XdmSchema) -> list[str]:
    """`<path>: <problem>` for every column of `arrow_schema` that is not in `schema` or whose
    type is not the Parquet form of its XDM type (§h3). Empty = the columns are a subset of
    the dataset's schema, as AEP's batch ingestion requires of Parquet."""
    properties = schema.compiled_schema.get("properties", {})
    problems: list[str] = []
    for field in arrow_schema:
        node = properties.get(field.name)
        if node is None:
            problems.append(f"{field.name}: field is not defined in the schema")
        else:
            problems.extend(_type_problems(field.name, field.type, _resolve(node, schema), schema))
    return problems


def _type_problems(path: str, kind: pa.DataType, node: Node, schema: XdmSchema) -> Iterator[str]:
    expected = node.get("type")
    if _is_map(node):
        value_node = node.get("additionalProperties")
        if not pa.types.is_map(kind) or not pa.types.is_string(kind.key_type):
            yield f"{path}: XDM map expects a Parquet MAP with string keys, not {kind}"
        elif isinstance(value_node, Mapping):
            yield from _type_problems(
                f"{path}.*", kind.item_type, _resolve(value_node, schema), schema
            )
        return
    if expected == "object":
        if not pa.types.is_struct(kind):
            yield f"{path}: object expects a struct, not {kind}"
            return
        props = node.get("properties", {})
        for field in kind:
            sub = props.get(field.name)
            if sub is None:
                yield f"{path}.{field.name}: field is not defined in the schema"
            else:
                yield from _type_problems(
                    f"{path}.{field.name}", field.type, _resolve(sub, schema), schema
                )
        return
    if expected == "array":
        if not pa.types.is_list(kind):
            yield f"{path}: array expects a list, not {kind}"
        elif isinstance(node.get("items"), Mapping):
            yield from _type_problems(
                f"{path}[]", kind.value_type, _resolve(node["items"], schema), schema
            )
        return
    if not _scalar_matches(kind, node):
        yield (
            f"{path}: {expected} ({node.get('format') or node.get('meta:xdmType') or '-'}) "
            f"does not take {kind}"
        )


def _scalar_matches(kind: pa.DataType, node: Node) -> bool:
    expected, fmt = node.get("type"), node.get("format")
    if expected == "string":
        if fmt == "date-time":
            return kind == TIMESTAMP
        if fmt == "date":
            return pa.types.is_date32(kind)
        return pa.types.is_string(kind)
    if expected == "number":
        return pa.types.is_floating(kind) or pa.types.is_integer(kind)
    if expected == "integer":
        bits = INTEGER_BITS.get(str(node.get("meta:xdmType")), 64)
        return pa.types.is_integer(kind) and kind.bit_width <= bits
    if expected == "boolean":
        return pa.types.is_boolean(kind)
    return False
