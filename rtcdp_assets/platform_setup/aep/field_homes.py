"""Where each published XDM field lives in Adobe's standard components.

For a dataset, every leaf of the Arrow schema its XDM mapping writes is looked up in the
vendored official schemas (`rtcdp_assets/shared/xdm_schemas`): first the class, then every
standard field group that may extend the class (`meta:intendedToExtend`; deprecated ones are
never chosen). The field groups are chosen greedily, the one defining most of the remaining
leaves first, so the schema gets the fewest groups that hold every field. A leaf that no
standard component defines has no standard home: it would need a tenant field group, and it is
listed as such (`Composition.homeless`); today there is none (tests/platform_setup).

Paths are in the form of `XdmSchema.field_paths()`: dotted, `[]` for array items, `*` for a map
key (identityMap namespaces).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from rtcdp_assets.shared.xdm_conformance import XdmSchema
from rtcdp_assets.shared.xdm_conformance.catalog import resolve_root, schema_index

# identityMap is a map: its keys are namespace codes (settings), not field names.
MAP_FIELDS = frozenset({"identityMap"})


@dataclass(frozen=True)
class Composition:
    """A dataset's schema: class, standard field groups, and where each leaf comes from."""

    class_id: str
    field_groups: tuple[str, ...]
    homes: dict[str, str]  # leaf path -> the class or field group $id that defines it
    homeless: tuple[str, ...]  # leaves with no standard home (a tenant field group's fields)


def published_leaves(schema: pa.Schema) -> list[str]:
    """Every leaf field of an XDM Arrow schema, in the schema-path form, in schema order."""
    leaves: list[str] = []

    def walk(path: str, type_: pa.DataType, in_map: bool) -> None:
        if in_map:
            # a map value: the namespace's identity items
            walk(f"{path}.*", type_, in_map=False)
            return
        if pa.types.is_list(type_):
            walk(f"{path}[]", type_.value_type, in_map=False)
            return
        if pa.types.is_struct(type_):
            for child in type_:
                walk(f"{path}.{child.name}" if path else child.name, child.type, False)
            return
        leaves.append(path)

    for field in schema:
        if field.name in MAP_FIELDS and pa.types.is_struct(field.type):
            # identityMap is stored as a struct of namespaces; every namespace is one map key
            for namespace in field.type:
                walk(field.name, namespace.type, in_map=True)
        else:
            walk(field.name, field.type, False)
    return list(dict.fromkeys(leaves))


@functools.lru_cache(maxsize=32)
def _paths(class_id: str, field_group_id: str | None) -> frozenset[str]:
    groups = [field_group_id] if field_group_id else []
    return frozenset(XdmSchema.compose(class_id, groups).field_paths())


@functools.lru_cache(maxsize=8)
def standard_field_groups(class_id: str) -> tuple[str, ...]:
    """The vendored standard field groups that may extend `class_id`, deprecated ones left
    out, in $id order (a stable tie-break)."""
    found: list[str] = []
    for schema_id, path in sorted(schema_index(resolve_root(None)).items()):
        document = json.loads(path.read_text(encoding="utf-8"))
        if "meta:intendedToExtend" not in document or document.get("meta:status") == "deprecated":
            continue
        intended = document["meta:intendedToExtend"]
        if not intended or class_id in intended:  # [] = any class (identitymap)
            found.append(schema_id)
    return tuple(found)


def compose_for(
    class_id: str, leaves: Sequence[str], candidates: Iterable[str] | None = None
) -> Composition:
    """The class plus the fewest standard field groups that define every leaf."""
    homes: dict[str, str] = {}
    class_paths = _paths(class_id, None)
    remaining = []
    for leaf in leaves:
        if leaf in class_paths:
            homes[leaf] = class_id
        else:
            remaining.append(leaf)
    pool = list(candidates if candidates is not None else standard_field_groups(class_id))
    added = {group: _paths(class_id, group) - class_paths for group in pool}
    chosen: list[str] = []
    while remaining:
        best = max(pool, key=lambda g: sum(leaf in added[g] for leaf in remaining), default="")
        covered = [leaf for leaf in remaining if best and leaf in added[best]]
        if not covered:
            break
        chosen.append(best)
        pool.remove(best)
        for leaf in covered:
            homes[leaf] = best
        remaining = [leaf for leaf in remaining if leaf not in homes]
    return Composition(class_id, tuple(chosen), homes, tuple(remaining))


@functools.lru_cache(maxsize=64)
def component_title(schema_id: str) -> str:
    """The title of a vendored class or field group ("Direct Marketing Details")."""
    path = schema_index(resolve_root(None))[schema_id]
    return str(json.loads(path.read_text(encoding="utf-8")).get("title", schema_id))
