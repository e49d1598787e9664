"""Declarative mapping of a customer's offline file (orders, loyalty, CRM) to XDM records.

A mapping file (YAML, e.g. ``mappings/offline_orders.yaml``) says, per source column, the XDM
path it fills, the type its values must have and, for identity columns, the identity namespace
and whether it is primary::

    dataset: offline_orders
    record: event                 # event -> ExperienceEvent, profile -> Profile
    field_groups: [commerce]      # names of FIELD_GROUPS below
    event_type: commerce.purchases
    group_by: order_id            # rows sharing it are one record (one row per order line)
    columns:
      order_id: {path: commerce.order.purchaseID, type: string, required: true}
      email: {identity: {namespace: Email, primary: true}}
      crm_id: {identity: {namespace: "{campaign}"}}  # the settings' Campaign namespace
      sku: {path: "productListItems[].SKU", type: string}
    constants: {commerce.purchases.value: 1}
    ignore: [internal_note]       # columns of the file that are known but not sent
    folder: offline/orders        # in the customer_source zone (default offline/<dataset>)
    file_prefix: orders           # orders_20261123.csv (default: the dataset name)
    timezone: Europe/Paris        # of times written without an offset (default UTC)

Paths are dotted XDM paths (``commerce.order.priceTotal``). ``[]`` marks an array, two ways:

* ``productListItems[].SKU``: a field of the items of an array of objects, filled once per
  source row, the rows of a ``group_by`` key making the record's items (one array per mapping);
* ``loyalty.loyaltyID[]`` (``[]`` at the end, an array of strings, numbers, ...): the record's
  list holding the column's value, ``["L-0001"]``; the items' type is checked like any field.

The mapping is checked when it is loaded, against the official schemas the records will be
validated with (``shared/xdm_conformance``): every target path must exist in the composed
schema with a type the column's type can fill, so a typo fails the load with a message naming
the column and path, never a run half way through a file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from rtcdp_assets.shared.xdm_conformance import (
    EXPERIENCE_EVENT,
    FG_COMMERCE,
    FG_IDENTITY_MAP,
    FG_PROFILE_LOYALTY,
    FG_PROFILE_PERSONAL_DETAILS,
    PROFILE,
    XdmSchema,
)

ColumnType = Literal["string", "integer", "number", "date", "datetime", "boolean"]
RecordKind = Literal["event", "profile"]

CLASSES: Final = {"event": EXPERIENCE_EVENT, "profile": PROFILE}
FIELD_GROUPS: Final = {
    "commerce": FG_COMMERCE,
    "loyalty": FG_PROFILE_LOYALTY,
    "personal_details": FG_PROFILE_PERSONAL_DETAILS,
}
# XDM JSON type (and format) each column type may fill.
_COMPATIBLE: Final[dict[str, tuple[tuple[str, str | None], ...]]] = {
    "string": (("string", None),),
    "integer": (("integer", None), ("number", None)),
    "number": (("number", None),),
    "date": (("string", "date"),),
    "datetime": (("string", "date-time"),),
    "boolean": (("boolean", None),),
}
_DATES: Final = ("date", "date-time")
ITEMS: Final = "[]"
# Namespace placeholders a mapping may name, filled from the settings at run time
# (`OfflineMapping.with_namespaces`): `{campaign}` is `campaign_identity_namespace`, the
# namespace the Campaign profiles are published with, for a column holding that same id.
NAMESPACE_PLACEHOLDERS: Final = frozenset({"campaign"})
_PLACEHOLDER: Final = re.compile(r"\{(\w+)\}")


class MappingError(ValueError):
    """A mapping file that cannot be used: the message names the file, column and path."""


@dataclass(frozen=True)
class Identity:
    namespace: str
    primary: bool = False


@dataclass(frozen=True)
class ColumnMapping:
    column: str
    type: ColumnType = "string"
    path: str | None = None  # None for an identity-only column
    required: bool = False
    identity: Identity | None = None

    @property
    def per_item(self) -> bool:
        """Filled once per source row, in the item array (``productListItems[].SKU``)."""
        return self.path is not None and f"{ITEMS}." in self.path

    @property
    def list_leaf(self) -> bool:
        """A list of scalars holding the value (``loyalty.loyaltyID[]`` -> ``["L-1"]``)."""
        return self.path is not None and self.path.endswith(ITEMS)

    @property
    def target(self) -> str | None:
        """The path the value is written at: a list leaf without its ``[]``."""
        if self.path is None or not self.list_leaf:
            return self.path
        return self.path[: -len(ITEMS)]


@dataclass(frozen=True)
class OfflineMapping:
    dataset: str
    record: RecordKind
    field_groups: tuple[str, ...]
    columns: tuple[ColumnMapping, ...]
    event_type: str | None = None
    group_by: str | None = None
    constants: Mapping[str, Any] = field(default_factory=dict)
    ignore: frozenset[str] = frozenset()
    source: str = ""
    # Where the files arrive in the customer_source zone, what their names start with, and the
    # zone of times written without an offset.
    folder: str = ""
    file_prefix: str = ""
    timezone: str = "UTC"

    @property
    def by_column(self) -> dict[str, ColumnMapping]:
        return {c.column: c for c in self.columns}

    @property
    def identity_columns(self) -> tuple[ColumnMapping, ...]:
        return tuple(c for c in self.columns if c.identity is not None)

    @property
    def item_array(self) -> str | None:
        """The array path the per-row items go to (``productListItems``), if any."""
        paths = {c.path.split(ITEMS, 1)[0] for c in self.columns if c.per_item and c.path}
        return next(iter(paths), None)

    @property
    def namespace_placeholders(self) -> tuple[str, ...]:
        """The placeholders its identity namespaces still name (``{campaign}``)."""
        return tuple(
            c.identity.namespace
            for c in self.identity_columns
            if c.identity is not None and _PLACEHOLDER.fullmatch(c.identity.namespace)
        )

    def with_namespaces(self, names: Mapping[str, str]) -> OfflineMapping:
        """The mapping with its namespace placeholders filled (``{campaign}`` -> ``names``)."""
        columns = tuple(
            c
            if c.identity is None
            else replace(
                c, identity=Identity(c.identity.namespace.format_map(names), c.identity.primary)
            )
            for c in self.columns
        )
        return replace(self, columns=columns)

    def xdm_schema(self) -> XdmSchema:
        groups = [FIELD_GROUPS[g] for g in self.field_groups]
        return XdmSchema.compose(CLASSES[self.record], [*groups, FG_IDENTITY_MAP])


def load_mapping(path: str | Path) -> OfflineMapping:
    """Read and check a mapping file; raises ``MappingError`` naming what is wrong."""
    source = str(path)
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"{source}: cannot read the mapping ({exc})") from exc
    return parse_mapping(document, source)


def parse_mapping(document: Any, source: str = "<mapping>") -> OfflineMapping:
    if not isinstance(document, dict):
        raise MappingError(f"{source}: a mapping is a YAML object")
    record = document.get("record", "event")
    if record not in CLASSES:
        raise MappingError(f"{source}: record must be one of {sorted(CLASSES)}, not {record!r}")
    groups = tuple(document.get("field_groups") or ())
    unknown_groups = [g for g in groups if g not in FIELD_GROUPS]
    if unknown_groups:
        raise MappingError(
            f"{source}: unknown field group(s) {unknown_groups}; known: {sorted(FIELD_GROUPS)}"
        )
    columns = tuple(_column(name, spec, source) for name, spec in _items(document, source))
    mapping = OfflineMapping(
        dataset=str(document.get("dataset") or ""),
        record=record,
        field_groups=groups,
        columns=columns,
        event_type=document.get("event_type"),
        group_by=document.get("group_by"),
        constants=dict(document.get("constants") or {}),
        ignore=frozenset(document.get("ignore") or ()),
        source=source,
        folder=str(document.get("folder") or f"offline/{document.get('dataset')}"),
        file_prefix=str(document.get("file_prefix") or document.get("dataset") or ""),
        timezone=str(document.get("timezone") or "UTC"),
    )
    _check(mapping)
    return mapping


def _items(document: dict[str, Any], source: str) -> list[tuple[str, Any]]:
    columns = document.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise MappingError(f"{source}: 'columns' must map each source column to its target")
    return list(columns.items())


def _column(name: str, spec: Any, source: str) -> ColumnMapping:
    if not isinstance(spec, dict):
        raise MappingError(f"{source}: column {name!r}: expected an object with path/type")
    unknown_keys = set(spec) - {"path", "type", "required", "identity"}
    if unknown_keys:
        raise MappingError(f"{source}: column {name!r}: unknown key(s) {sorted(unknown_keys)}")
    kind = spec.get("type", "string")
    if kind not in _COMPATIBLE:
        raise MappingError(
            f"{source}: column {name!r}: type {kind!r} is not one of {sorted(_COMPATIBLE)}"
        )
    identity = spec.get("identity")
    if identity is not None:
        if not isinstance(identity, dict) or not identity.get("namespace"):
            raise MappingError(f"{source}: column {name!r}: identity needs a namespace")
        identity = Identity(str(identity["namespace"]), bool(identity.get("primary", False)))
        placeholder = _PLACEHOLDER.fullmatch(identity.namespace)
        if ("{" in identity.namespace or "}" in identity.namespace) and (
            placeholder is None or placeholder.group(1) not in NAMESPACE_PLACEHOLDERS
        ):
            raise MappingError(
                f"{source}: column {name!r}: namespace {identity.namespace!r} is neither a code "
                f"nor one of {sorted('{' + p + '}' for p in NAMESPACE_PLACEHOLDERS)}"
            )
    if spec.get("path") is None and identity is None:
        raise MappingError(f"{source}: column {name!r}: give a path, an identity or both")
    return ColumnMapping(
        column=name,
        type=kind,
        path=spec.get("path"),
        required=bool(spec.get("required", False)),
        identity=identity,
    )


def _check(mapping: OfflineMapping) -> None:
    src = mapping.source
    if not mapping.dataset.isidentifier():
        raise MappingError(f"{src}: dataset must be a Python-style name, not {mapping.dataset!r}")
    try:
        ZoneInfo(mapping.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MappingError(f"{src}: unknown timezone {mapping.timezone!r}") from exc
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", mapping.file_prefix):
        raise MappingError(f"{src}: file_prefix must be letters, digits, '_' and '-'")
    if not mapping.identity_columns:
        raise MappingError(f"{src}: no identity column; AEP cannot attach records to a profile")
    if sum(c.identity.primary for c in mapping.identity_columns if c.identity) > 1:
        raise MappingError(f"{src}: more than one primary identity")
    if mapping.group_by is not None and mapping.group_by not in mapping.by_column:
        raise MappingError(f"{src}: group_by {mapping.group_by!r} is not a mapped column")
    arrays = {c.path.split(ITEMS, 1)[0] for c in mapping.columns if c.per_item and c.path}
    if len(arrays) > 1:
        raise MappingError(f"{src}: per-row items go to one array only, not {sorted(arrays)}")
    if arrays and mapping.group_by is None:
        raise MappingError(f"{src}: items ({next(iter(arrays))}[]) need group_by")
    if mapping.record == "event" and not mapping.event_type:
        raise MappingError(f"{src}: an ExperienceEvent mapping needs event_type")
    schema = mapping.xdm_schema().compiled_schema
    targets: dict[str, str] = {}
    for column in mapping.columns:
        if column.path is None:
            continue
        if column.path in targets:
            raise MappingError(
                f"{src}: column {column.column!r}: {column.path} is already filled by "
                f"column {targets[column.path]!r}"
            )
        targets[column.path] = column.column
        where = f"{src}: column {column.column!r}"
        if column.list_leaf:
            _check_list_leaf(schema, column.path, where)
        _check_path(schema, column.path, column.type, where)
    for path, value in mapping.constants.items():
        _check_path(schema, path, _constant_type(value), f"{src}: constant {path}")


def _constant_type(value: Any) -> ColumnType:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def leaf_schema(schema: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    """The (compiled) schema of a dotted path (``productListItems[].SKU``), or None."""
    node: Mapping[str, Any] = schema
    for part in path.split("."):
        name, items = (part[: -len(ITEMS)], True) if part.endswith(ITEMS) else (part, False)
        child = (node.get("properties") or {}).get(name)
        if child is None:
            return None
        if items:
            if child.get("type") != "array" or not isinstance(child.get("items"), dict):
                return None
            child = child["items"]
        node = child
    return node


def _check_list_leaf(schema: Mapping[str, Any], path: str, where: str) -> None:
    """``a.b[]`` is a list of scalars at a fixed place: not inside items, not of objects."""
    if path.count(ITEMS) > 1:
        raise MappingError(f"{where}: {path}: a list of values cannot sit inside array items")
    leaf = leaf_schema(schema, path)
    if leaf is not None and leaf.get("type") in ("object", "array"):
        raise MappingError(
            f"{where}: {path} holds objects: map their fields ({path}.<field>) with group_by"
        )


def _check_path(schema: Mapping[str, Any], path: str, kind: str, where: str) -> None:
    leaf = leaf_schema(schema, path)
    if leaf is None:
        raise MappingError(f"{where}: {path} is not a field of the XDM schema")
    xdm_type, xdm_format = leaf.get("type"), leaf.get("format")
    # A plain string may fill a string of any format but the two dates (uri, email: the
    # record check catches a value that breaks the format).
    plain_string = kind == "string" and xdm_type == "string" and xdm_format not in _DATES
    if not plain_string and (xdm_type, xdm_format) not in _COMPATIBLE[kind]:
        shown = f"{xdm_type}" + (f" ({xdm_format})" if xdm_format else "")
        raise MappingError(f"{where}: type {kind} cannot fill {path}, which is {shown}")
