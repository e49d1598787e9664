"""The validator: ``XdmSchema`` (class + field groups) and its ``ValidationReport``."""

from __future__ import annotations

import functools
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
from jsonschema import Draft6Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT6

from rtcdp_assets.shared import xdm
from rtcdp_assets.shared.xdm_conformance.catalog import resolve_root, schema_closure
from rtcdp_assets.shared.xdm_conformance.columnar import suspect_rows
from rtcdp_assets.shared.xdm_conformance.compilation import inline_refs, merge_all_of
from rtcdp_assets.shared.xdm_conformance.dataset_form import DRAFT6_URI, dataset_form_document
from rtcdp_assets.shared.xdm_conformance.field_tree import Field, FieldTreeBuilder, unknown_fields
from rtcdp_assets.shared.xdm_conformance.formats import FORMAT_CHECKER
from rtcdp_assets.shared.xdm_conformance.shape_check import (
    OPAQUE_KEYWORDS,
    ProbeValidator,
    ShapeCheck,
    has_key,
)

# --------------------------------------------------------------------------------------------
# Messages without values

_JSON_TYPES: Final = (
    (bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
    (list, "array"), (dict, "object"), (type(None), "null"),
)  # fmt: skip

_BOUND_PHRASES: Final = {
    "minLength": "is shorter than {} characters",
    "maxLength": "is longer than {} characters",
    "minimum": "is less than the minimum of {}",
    "maximum": "is greater than the maximum of {}",
    "exclusiveMinimum": "is less than or equal to the exclusive minimum of {}",
    "exclusiveMaximum": "is greater than or equal to the exclusive maximum of {}",
    "multipleOf": "is not a multiple of {}",
    "minItems": "has fewer than {} items",
    "maxItems": "has more than {} items",
    "minProperties": "has fewer than {} properties",
    "maxProperties": "has more than {} properties",
}
_INDEX = re.compile(r"\[\d+\]")


def _json_type(value: object) -> str:
    for python_type, name in _JSON_TYPES:
        if isinstance(value, python_type):
            return name
    return type(value).__name__


def _short(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class ValidationReport:
    """Outcome of ``XdmSchema.validate_many``; safe to publish (no record values)."""

    checked: int = 0
    invalid: int = 0
    # (record index, message); at most max_examples entries.
    examples: list[tuple[int, str]] = field(default_factory=list)
    # Message kind (array indices collapsed to "[]") -> number of records showing it.
    error_counts: dict[str, int] = field(default_factory=dict)

    @property
    def valid(self) -> int:
        return self.checked - self.invalid


class XdmSchema:
    """An XDM class plus field groups, validating records in the AEP dataset form."""

    def __init__(self, class_id: str, field_group_ids: Sequence[str], root: Path) -> None:
        """Use ``compose``: it caches, and building a schema is the expensive part."""
        self.class_id = class_id
        self.field_group_ids = tuple(field_group_ids)
        self.root = root
        closure = schema_closure(root, (class_id, *self.field_group_ids))
        documents = {sid: dataset_form_document(path) for sid, path in closure.items()}
        for group_id in self.field_group_ids:
            intended = json.loads(closure[group_id].read_text(encoding="utf-8")).get(
                "meta:intendedToExtend"
            )
            # AEP refuses such a composition; failing here beats validating against a schema
            # no dataset can have.
            if intended and class_id not in intended:
                raise ValueError(f"field group {group_id} does not extend {class_id}")
        self.registry: Registry[Any] = Registry().with_resources(
            (sid, DRAFT6.create_resource(doc)) for sid, doc in documents.items()
        )
        self.schema: dict[str, Any] = {
            "$schema": DRAFT6_URI,
            "allOf": [{"$ref": sid} for sid in (class_id, *self.field_group_ids)],
        }
        # What jsonschema runs: equivalent to self.schema, see inline_refs and merge_all_of.
        self.compiled_schema: dict[str, Any] = {
            "$schema": DRAFT6_URI,
            **merge_all_of(inline_refs(self.schema, "", self.registry, frozenset())),
        }
        self._validator = Draft6Validator(
            self.compiled_schema, registry=self.registry, format_checker=FORMAT_CHECKER
        )
        self._probe_validator = ProbeValidator(self.compiled_schema, registry=self.registry)
        # The shape/value split is only sound where every error of a subschema reaches the
        # output; a $ref into the registry could lead to an opaque keyword, so look there too.
        reachable: list[Any] = [self.compiled_schema]
        if has_key(self.compiled_schema, frozenset({"$ref"})):
            reachable.extend(documents.values())
        self._shape_split_ok = not any(has_key(node, OPAQUE_KEYWORDS) for node in reachable)
        resolver = self.registry.resolver()
        self._fields = FieldTreeBuilder().build([(self.schema, resolver)])

    @classmethod
    def compose(
        cls,
        class_id: str,
        field_group_ids: Iterable[str] = (),
        root: str | os.PathLike[str] | None = None,
    ) -> XdmSchema:
        """Schema of a dataset built on ``class_id`` with ``field_group_ids``.

        ``class_id`` is normally an XDM class; a data type $id also works, to check a fragment.
        ``root`` defaults to ``$RTCDP_XDM_ROOT``, else the vendored ``xdm_schemas`` folder.
        """
        return _compose(class_id, tuple(field_group_ids), resolve_root(root))

    def field_paths(self) -> list[str]:
        """Dotted paths of all defined fields (``*`` for map keys, ``[]`` for array items)."""
        paths: list[str] = []

        def walk(node: Field, prefix: str, seen: frozenset[int]) -> None:
            if id(node) in seen:
                return  # recursive data type
            seen = seen | {id(node)}
            for name, child in node.children.items():
                path = f"{prefix}.{name}" if prefix else name
                paths.append(path)
                walk(child, path, seen)
            for map_node in [node.values, *(n for _, n in node.patterns)]:
                if map_node is not None:
                    walk(map_node, f"{prefix}.*", seen)
            if node.items is not None:
                walk(node.items, f"{prefix}[]", seen)

        walk(self._fields, "", frozenset())
        return sorted(paths)

    def is_valid(self, record: Mapping[str, Any]) -> bool:
        if not self._validator.is_valid(record):
            return False
        return next(unknown_fields(record, self._fields, ()), None) is None

    def errors(self, record: Mapping[str, Any], *, include_values: bool = False) -> list[str]:
        """Sorted messages ``<dotted.path>: <problem>``, without record values.

        ``include_values=True`` adds jsonschema's own wording (with values) and real map keys:
        for a developer's terminal only, never for logs or Dagster metadata.
        """
        messages = [
            self._message(error, include_values) for error in self._validator.iter_errors(record)
        ]
        messages.extend(
            f"{self._path(path, include_values)}: field is not defined in the schema"
            for path in unknown_fields(record, self._fields, ())
        )
        return sorted(messages)

    def validate_many(
        self, records: Iterable[Mapping[str, Any]], max_examples: int = 20, *, fast: bool = True
    ) -> ValidationReport:
        """Counts, example messages and message kinds for ``records``.

        ``fast=False`` validates every record with jsonschema (the reference the fast path is
        tested against); both give the same report, see ``ShapeCheck``.
        """
        report = ValidationReport()
        kinds: Counter[str] = Counter()
        check = ShapeCheck(self) if fast and self._shape_split_ok else None
        for index, record in enumerate(records):
            report.checked += 1
            messages = check.messages(record) if check is not None else None
            if messages is None:  # the plain path, or a record the fast path does not take
                if self.is_valid(record):
                    continue  # no messages are built for valid records
                messages = self.errors(record)
            elif not messages:
                continue
            report.invalid += 1
            kinds.update({_INDEX.sub("[]", message) for message in messages})
            room = max_examples - len(report.examples)
            report.examples.extend((index, message) for message in messages[: max(room, 0)])
        report.error_counts = dict(kinds.most_common())
        return report

    def validate_table(
        self, table: pa.Table | pa.RecordBatch, max_examples: int = 20
    ) -> ValidationReport:
        """``validate_many(xdm.to_records(table), max_examples)``'s report, without a record
        per row: a columnar screen (``columnar``) picks the rows that may be invalid, and only
        those are validated record by record (indices are the table's).
        """
        rows = suspect_rows(self, table)
        if not len(rows):  # the common case: nothing to look at record by record
            return ValidationReport(checked=table.num_rows)
        report = self.validate_many(xdm.to_records(table.take(pa.array(rows))), max_examples)
        report.checked = table.num_rows
        report.examples = [(int(rows[index]), message) for index, message in report.examples]
        return report

    def _path(self, path: Iterable[str | int], include_values: bool) -> str:
        """Dotted path; map keys are record data, so they are masked unless asked for."""
        text = ""
        node: Field | None = self._fields
        for part in path:
            if isinstance(part, int):
                text += f"[{part}]"
                node = node.items if node is not None else None
                continue
            name = part
            if node is not None:
                if (
                    part not in node.children
                    and node.child(part) is not None
                    and not (include_values)
                ):
                    name = "*"  # a map key (or patterned name): record data
                node = node.child(part)
            text = f"{text}.{name}" if text else name
        return text or "<record>"

    def _message(self, error: ValidationError, include_values: bool) -> str:
        return self._describe(
            list(error.absolute_path),
            error.validator,
            error.validator_value,
            error.instance,
            error.message,
            include_values,
        )

    def _describe(
        self,
        path: list[str | int],
        keyword: Any,
        expected: Any,
        instance: Any,
        raw_message: str,
        include_values: bool,
    ) -> str:
        if keyword == "required":
            # One error per missing name; the name comes from the schema, never the record.
            missing = next(
                (n for n in expected if f"{n!r} is a required property" == raw_message),
                None,
            )
            if missing is not None:
                return f"{self._path([*path, missing], include_values)}: required field is missing"
        where = self._path(path, include_values)
        if include_values:
            return f"{where}: {raw_message}"
        if keyword == "type":
            return f"{where}: expected type {_short(expected)}, got {_json_type(instance)}"
        if keyword == "format":
            return f"{where}: does not match format {expected!r}"
        if keyword == "enum":
            return f"{where}: value is not one of {_short(expected)}"
        if keyword == "const":
            return f"{where}: value is not the expected constant"
        if keyword == "pattern":
            return f"{where}: does not match pattern {_short(expected)}"
        if keyword == "uniqueItems":
            return f"{where}: has non-unique items"
        if keyword in _BOUND_PHRASES:
            return f"{where}: {_BOUND_PHRASES[keyword].format(expected)}"
        return f"{where}: fails the {keyword!r} constraint"


@functools.lru_cache(maxsize=64)
def _compose(class_id: str, field_group_ids: tuple[str, ...], root: Path) -> XdmSchema:
    return XdmSchema(class_id, field_group_ids, root)
