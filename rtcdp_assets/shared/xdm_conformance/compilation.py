"""Compilation for speed: same validation outcome, fewer subschemas for jsonschema to visit.

Every $ref and allOf branch costs jsonschema a descend (a validator "evolve") per record; for a
broadLog event that was ~90 descends and most of the time. Inlining the $refs and folding allOf
branches into one schema where the branches cannot interact leaves roughly one descend per field
present in the record.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urljoin

from referencing import Registry

from rtcdp_assets.shared.xdm_conformance.dataset_form import SCHEMA_KEYWORDS, SCHEMA_LIST_KEYWORDS


def inline_refs(schema: Any, base: str, registry: Registry[Any], active: frozenset[str]) -> Any:
    """``schema`` with every ``$ref`` replaced by its target, except recursive ones."""
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        target = urljoin(base, schema["$ref"])
        if target in active:
            return {"$ref": target}  # a recursive data type: left to the registry
        resolved = registry.resolver().lookup(target)
        return inline_refs(resolved.contents, target.split("#", 1)[0], registry, active | {target})
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("definitions", "$id", "$schema"):
            continue  # only reachable through $ref, which is inlined or made absolute
        if key in ("properties", "patternProperties"):
            out[key] = {
                name: inline_refs(sub, base, registry, active) for name, sub in value.items()
            }
        elif key in SCHEMA_LIST_KEYWORDS or (key == "items" and isinstance(value, list)):
            out[key] = [inline_refs(sub, base, registry, active) for sub in value]
        elif key in SCHEMA_KEYWORDS or key == "items":
            out[key] = inline_refs(value, base, registry, active)
        else:
            out[key] = value
    return out


_OBJECT_SHAPE: Final = ("properties", "patternProperties", "additionalProperties")
_ARRAY_SHAPE: Final = ("items", "additionalItems")


def _absorb(target: dict[str, Any], member: Any) -> bool:
    """Fold allOf ``member`` into ``target`` if that cannot change any outcome."""
    if member is True or member == {}:
        return True
    if not isinstance(member, dict) or "$ref" in member or "allOf" in member:
        return False
    for shape in (_OBJECT_SHAPE, _ARRAY_SHAPE):
        # additionalProperties/additionalItems depend on the names/items beside them.
        ours = [k for k in shape if k in target]
        theirs = [k for k in shape if k in member]
        if ours and theirs and (shape[-1] in ours or shape[-1] in theirs):
            return False
        if ours and theirs and shape is _ARRAY_SHAPE:
            return False
    for key, value in member.items():
        if key in ("properties", "patternProperties", "required") or key in _OBJECT_SHAPE:
            continue
        if key in target and target[key] != value:
            return False
    for key, value in member.items():
        if key in ("properties", "patternProperties"):
            merged = dict(target.get(key, {}))
            for name, sub in value.items():
                merged[name] = (
                    merge_all_of({"allOf": [merged[name], sub]}) if name in merged else sub
                )
            target[key] = merged
        elif key == "required":
            target[key] = list(dict.fromkeys([*target.get(key, []), *value]))
        else:
            target[key] = value
    return True


def merge_all_of(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: merge_all_of(sub) for name, sub in value.items()}
        elif key in SCHEMA_LIST_KEYWORDS or (key == "items" and isinstance(value, list)):
            out[key] = [merge_all_of(sub) for sub in value]
        elif key in SCHEMA_KEYWORDS or key == "items":
            out[key] = merge_all_of(value)
        else:
            out[key] = value
    if "allOf" not in out:
        return out
    members = out.pop("allOf")
    residual = [member for member in members if not _absorb(out, member)]
    if residual:
        out["allOf"] = residual
    return out
