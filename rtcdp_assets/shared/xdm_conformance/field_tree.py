"""Field tree: which field paths a composed schema defines, and a record's unknown fields."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from rtcdp_assets.shared.xdm_conformance.dataset_form import SCHEMA_LIST_KEYWORDS

if TYPE_CHECKING:
    # referencing exports Resolver only from its private module; annotations need no import.
    from referencing._core import Resolver

    Part: TypeAlias = tuple[dict[str, Any], Resolver[Any]]


class Field:
    """Fields allowed at one position of a record."""

    __slots__ = ("any_key", "children", "is_object", "items", "patterns", "values")

    def __init__(self) -> None:
        self.children: dict[str, Field] = {}
        self.values: Field | None = None  # map: any key, values described by this node
        self.patterns: list[tuple[re.Pattern[str], Field]] = []
        self.items: Field | None = None
        self.is_object = False
        self.any_key = False  # open object without a value schema: nothing below is checked

    def child(self, key: str) -> Field | None:
        found = self.children.get(key)
        if found is not None:
            return found
        for pattern, node in self.patterns:
            if pattern.search(key):
                return node
        return self.values


def _flatten(schema: Any, resolver: Resolver[Any], out: list[Part], seen: set[int]) -> None:
    """Collect the subschemas that apply to the same instance (through $ref and *Of)."""
    if not isinstance(schema, dict) or id(schema) in seen:
        return
    seen.add(id(schema))
    if "$ref" in schema:
        # Draft-06: keywords beside $ref are ignored; jsonschema does the same.
        resolved = resolver.lookup(schema["$ref"])
        _flatten(resolved.contents, resolved.resolver, out, seen)
        return
    out.append((schema, resolver))
    for keyword in SCHEMA_LIST_KEYWORDS:
        for sub in schema.get(keyword, ()):
            _flatten(sub, resolver, out, seen)


class FieldTreeBuilder:
    def __init__(self) -> None:
        # Keyed by the identities of the flattened parts so recursive schemas terminate.
        self._memo: dict[frozenset[int], Field] = {}

    def build(self, schemas: Sequence[Part]) -> Field:
        parts: list[Part] = []
        seen: set[int] = set()
        for schema, resolver in schemas:
            _flatten(schema, resolver, parts, seen)
        key = frozenset(id(schema) for schema, _ in parts)
        if key in self._memo:
            return self._memo[key]
        node = self._memo[key] = Field()
        children: dict[str, list[Part]] = {}
        values: list[Part] = []
        items: list[Part] = []
        patterns: dict[str, list[Part]] = {}
        for schema, resolver in parts:
            kind = schema.get("type")
            if kind == "object" or any(
                k in schema for k in ("properties", "additionalProperties", "patternProperties")
            ):
                node.is_object = True
            for name, sub in schema.get("properties", {}).items():
                children.setdefault(name, []).append((sub, resolver))
            for pattern, sub in schema.get("patternProperties", {}).items():
                patterns.setdefault(pattern, []).append((sub, resolver))
            additional = schema.get("additionalProperties")
            if isinstance(additional, dict):
                values.append((additional, resolver))
            elif additional is True or (schema.get("meta:xdmType") == "map" and additional is None):
                node.any_key = True
            if isinstance(schema.get("items"), dict):
                items.append((schema["items"], resolver))
        node.children = {name: self.build(subs) for name, subs in children.items()}
        node.patterns = [(re.compile(p), self.build(subs)) for p, subs in patterns.items()]
        node.values = self.build(values) if values else None
        node.items = self.build(items) if items else None
        return node


def unknown_fields(
    value: Any, node: Field, path: tuple[str | int, ...]
) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, dict):
        if not node.is_object or node.any_key:
            return  # not an object in the schema: the type error is jsonschema's to report
        for key, sub in value.items():
            child = node.child(key)
            if child is None:
                yield (*path, key)
            else:
                yield from unknown_fields(sub, child, (*path, key))
    elif isinstance(value, list) and node.items is not None:
        for index, sub in enumerate(value):
            yield from unknown_fields(sub, node.items, (*path, index))
