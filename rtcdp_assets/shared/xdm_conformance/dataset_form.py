"""Source-form XDM schemas rewritten to the Experience Platform dataset form (see the package)."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

DRAFT6_URI: Final = "http://json-schema.org/draft-06/schema#"
_EXTENSIBLE_ID: Final = "https://ns.adobe.com/xdm/common/extensible"

_PREFIXED = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*):([^/].*)$")
_ADOBE_NS_URI = re.compile(r"^https?://ns\.adobe\.com/(.+)$")


def dataset_form_path(name: str) -> tuple[str, ...]:
    """Field path in the AEP dataset form of a source-form property name.

    >>> dataset_form_path("https://ns.adobe.com/experience/campaign/broadlogID")
    ('_experience', 'campaign', 'broadlogID')
    """
    if name.startswith("@"):
        return ("_" + name[1:],)
    uri = _ADOBE_NS_URI.match(name)
    if uri:
        segments = uri.group(1).split("/")
        if segments[0] == "xdm":
            segments = segments[1:]
        if len(segments) < 2 or not all(segments):
            raise ValueError(f"no dataset-form mapping for property name {name!r}")
        return ("_" + segments[0], *segments[1:])
    if "://" in name:
        raise ValueError(
            f"no dataset-form mapping for property name {name!r}: AEP only documents "
            "https://ns.adobe.com/... URIs"
        )
    prefixed = _PREFIXED.match(name)
    if prefixed:
        prefix, local = prefixed.groups()
        return (local,) if prefix == "xdm" else ("_" + prefix, local)
    return (name,)


# Keywords that affect validation under draft-06 (plus meta:xdmType, read by the field walk);
# everything else is annotation and only slows jsonschema down.
SCHEMA_MAP_KEYWORDS: Final = frozenset({"properties", "patternProperties", "definitions"})
SCHEMA_LIST_KEYWORDS: Final = frozenset({"allOf", "anyOf", "oneOf"})
SCHEMA_KEYWORDS: Final = frozenset({"additionalProperties", "additionalItems", "contains", "not"})
_VALUE_KEYWORDS: Final = frozenset(
    {
        "$id", "$schema", "$ref", "type", "enum", "const", "required", "format", "pattern",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
        "minLength", "maxLength", "minItems", "maxItems", "uniqueItems",
        "minProperties", "maxProperties", "meta:xdmType",
    }
)  # fmt: skip


@dataclass
class _Slot:
    """One dataset-form name while a `properties` object is being rebuilt."""

    schemas: list[dict[str, Any]] = field(default_factory=list)
    required: bool = False
    children: dict[str, _Slot] = field(default_factory=dict)


def _slot_at(slots: dict[str, _Slot], path: tuple[str, ...]) -> _Slot:
    slot = slots.setdefault(path[0], _Slot())
    for part in path[1:]:
        slot = slot.children.setdefault(part, _Slot())
    return slot


def _emit(slots: dict[str, _Slot]) -> tuple[dict[str, Any], list[str]]:
    properties: dict[str, Any] = {}
    required = [name for name, slot in slots.items() if slot.required]
    for name, slot in slots.items():
        parts = list(slot.schemas)
        if slot.children:
            child_properties, child_required = _emit(slot.children)
            container: dict[str, Any] = {"type": "object", "properties": child_properties}
            if child_required:
                container["required"] = child_required
            parts.append(container)
        if parts:
            # Two sources for one name (a real property and a renamed URI container) must both
            # hold, which is exactly allOf; the field walk follows allOf too.
            properties[name] = parts[0] if len(parts) == 1 else {"allOf": parts}
    return properties, required


def _to_dataset_form(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema  # booleans are valid draft-06 schemas
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in SCHEMA_MAP_KEYWORDS and key != "properties":
            # definitions keys are pointer targets and patternProperties keys are regexes
            # over map keys (data), not field names: both stay as they are.
            out[key] = {name: _to_dataset_form(sub) for name, sub in value.items()}
        elif key in SCHEMA_LIST_KEYWORDS:
            out[key] = [_to_dataset_form(sub) for sub in value]
        elif key in SCHEMA_KEYWORDS:
            out[key] = _to_dataset_form(value)
        elif key == "items":
            out[key] = (
                [_to_dataset_form(sub) for sub in value]
                if isinstance(value, list)
                else _to_dataset_form(value)
            )
        elif key in ("dependencies", "propertyNames"):
            # They name fields too, so they would need renaming; no XDM schema uses them.
            raise ValueError(f"{key!r} is not supported in XDM schemas")
        elif key in _VALUE_KEYWORDS and key != "required":
            out[key] = value
    if "properties" in schema or "required" in schema:
        slots: dict[str, _Slot] = {}
        for name, sub in schema.get("properties", {}).items():
            _slot_at(slots, dataset_form_path(name)).schemas.append(_to_dataset_form(sub))
        for name in schema.get("required", []):
            path = dataset_form_path(name)
            for depth in range(1, len(path) + 1):
                _slot_at(slots, path[:depth]).required = True
        properties, required = _emit(slots)
        if "properties" in schema:
            out["properties"] = properties
        if required:
            out["required"] = required
    return out


def _load_dataset_form(document: dict[str, Any]) -> dict[str, Any]:
    if document.get("$schema", DRAFT6_URI) != DRAFT6_URI:
        raise ValueError(f"{document.get('$id')}: expected a draft-06 schema")
    if document.get("$id") == _EXTENSIBLE_ID:
        document = {**document, "definitions": {**document["definitions"]}}
        document["definitions"]["@context"] = {"type": "object"}
    return _to_dataset_form(document)


# --------------------------------------------------------------------------------------------
# Schema files: index by $id and closure (shared with scripts/vendor_xdm.py)


@functools.lru_cache(maxsize=1024)
def dataset_form_document(path: Path) -> dict[str, Any]:
    return _load_dataset_form(json.loads(path.read_text(encoding="utf-8")))
