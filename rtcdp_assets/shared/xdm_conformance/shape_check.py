"""Fast path of ``XdmSchema.validate_many``: validate each record SHAPE once, then only the
constrained values.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeAlias

from jsonschema import Draft6Validator, validators
from jsonschema.exceptions import ValidationError

from rtcdp_assets.shared.xdm_conformance.field_tree import Field, unknown_fields


class SchemaInternals(Protocol):
    """What the fast path uses of an ``XdmSchema`` (validator.py)."""

    _validator: Draft6Validator
    _probe_validator: Draft6Validator
    _fields: Field

    def _path(self, path: Iterable[str | int], include_values: bool) -> str: ...

    def _message(self, error: ValidationError, include_values: bool) -> str: ...

    def _describe(
        self,
        path: list[str | int],
        keyword: Any,
        expected: Any,
        instance: Any,
        raw_message: str,
        include_values: bool,
    ) -> str: ...


# Records of one dataset come from one vectorised mapping, so they share a handful of shapes
# (keys, array lengths, JSON type of every leaf) and differ in leaf values. Without
# anyOf/oneOf/not/contains, jsonschema's errors for a record are the union, over every
# (instance position, subschema) pair its descent visits, of each keyword's own errors; and the
# descent (properties, patternProperties, additionalProperties, items, allOf, $ref) depends on
# the shape only. So one jsonschema pass over a stand-in of the shape (every leaf replaced by a
# fixed value of the same JSON type) gives the shape errors, which are the record's, and, through
# "probe" keywords that always fail, every (path, value keyword, subschema) the record's values
# must pass. Each record then costs a shape walk plus one cheap check per probe, memoised by
# value (enums and most codes repeat). Messages of value keywords name only the path and the
# schema value (see _describe), so a probe's message is fixed once per shape.

# Keywords whose verdict depends on a value beyond its JSON type (or, for uniqueItems, on the
# items' values).
_VALUE_CHECK_KEYWORDS: Final = frozenset(
    {
        "format", "enum", "const", "pattern", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "uniqueItems",
    }
)  # fmt: skip
# Keywords that swallow or invert the errors of their subschemas: a probe inside them would
# change the shape verdict. None occurs in the vendored closure; schemas with one take the
# plain path.
OPAQUE_KEYWORDS: Final = frozenset({"anyOf", "oneOf", "not", "contains"})
_PROBE_MESSAGE: Final = "<value probe>"


def _probe(validator: Any, expected: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    yield ValidationError(_PROBE_MESSAGE)


ProbeValidator: Final = validators.extend(
    Draft6Validator, dict.fromkeys(_VALUE_CHECK_KEYWORDS, _probe)
)


def has_key(node: Any, keys: frozenset[str]) -> bool:
    if isinstance(node, dict):
        return any(key in keys or has_key(value, keys) for key, value in node.items())
    if isinstance(node, list):
        return any(has_key(item, keys) for item in node)
    return False


class _Unsupported(Exception):
    """A value outside plain JSON types: the record takes the plain path."""


# Leaf shape token -> stand-in value. The token keeps what jsonschema's type checks and the
# type messages can see: bool is not a number, and a float is an "integer" iff it is integral.
_STAND_IN: Final[dict[str, Any]] = {
    "str": "", "bool": False, "int": 0, "null": None, "float.0": 0.0, "float.5": 0.5,
}  # fmt: skip
_LEAF_TOKENS: Final[dict[type, str]] = {str: "str", bool: "bool", int: "int", type(None): "null"}

# A shape is a leaf token, (True, ((key, shape), ...)) for an object or (False, (shape, ...))
# for an array; keys stay because they decide descent and unknown-field errors.
_Shape: TypeAlias = "str | tuple[bool, tuple[Any, ...]]"


def _shape(value: Any) -> _Shape:
    kind = type(value)
    token = _LEAF_TOKENS.get(kind)
    if token is not None:
        return token
    if kind is dict:
        items = []
        for key, sub in value.items():
            if type(key) is not str:
                raise _Unsupported
            # Leaves inline: the shape walk is most of the fast path's time per record.
            items.append((key, _LEAF_TOKENS.get(type(sub)) or _shape(sub)))
        return (True, tuple(items))
    if kind is list:
        return (False, tuple([_LEAF_TOKENS.get(type(sub)) or _shape(sub) for sub in value]))
    if kind is float:
        return "float.0" if value.is_integer() else "float.5"
    # datetime, Decimal, tuple, dict/str subclasses...: jsonschema's view of them is not a
    # plain JSON type, so no stand-in is safe.
    raise _Unsupported


def _stand_in(shape: _Shape) -> Any:
    if isinstance(shape, str):
        return _STAND_IN[shape]
    is_object, parts = shape
    if is_object:
        return {key: _stand_in(sub) for key, sub in parts}
    return [_stand_in(sub) for sub in parts]


@dataclass(frozen=True)
class _Probe:
    """A value keyword a record's value at ``path`` must pass, and its message if it fails."""

    path: tuple[str | int, ...]
    check: Any  # jsonschema's keyword function
    expected: Any
    schema: Any
    key: tuple[int, str]  # memo key part: the subschema (kept alive by the schema) + keyword
    message: str


@dataclass(frozen=True)
class _ShapeVerdict:
    messages: tuple[str, ...]  # shape errors, unknown fields included
    probes: tuple[_Probe, ...]


class ShapeCheck:
    """Per-call memo of shape verdicts and value checks; bounded, so a batch of odd records
    costs time, never unbounded memory."""

    MAX_SHAPES: Final = 10_000
    MAX_VALUES: Final = 200_000

    def __init__(self, schema: SchemaInternals) -> None:
        self._schema = schema
        self._shapes: dict[_Shape, _ShapeVerdict] = {}
        self._values: dict[tuple[Any, ...], bool] = {}

    def messages(self, record: Any) -> list[str] | None:
        """Sorted messages as ``XdmSchema.errors`` gives them, or None for the plain path."""
        try:
            shape = _shape(record)
        except (_Unsupported, RecursionError):
            return None
        verdict = self._shapes.get(shape)
        if verdict is None:
            verdict = self._verdict(shape)
            if len(self._shapes) < self.MAX_SHAPES:
                self._shapes[shape] = verdict
        failed = [probe.message for probe in verdict.probes if self._fails(probe, record)]
        if not failed:
            return list(verdict.messages)
        return sorted([*verdict.messages, *failed])

    def _verdict(self, shape: _Shape) -> _ShapeVerdict:
        schema = self._schema
        stand_in = _stand_in(shape)
        messages: list[str] = []
        probes: list[_Probe] = []
        keyword_checks = schema._validator.VALIDATORS
        for error in schema._probe_validator.iter_errors(stand_in):
            path = list(error.absolute_path)
            if error.message == _PROBE_MESSAGE and error.validator in _VALUE_CHECK_KEYWORDS:
                probes.append(
                    _Probe(
                        path=tuple(path),
                        check=keyword_checks[error.validator],
                        expected=error.validator_value,
                        schema=error.schema,
                        key=(id(error.schema), str(error.validator)),
                        # Value-keyword messages never use the instance (see _describe).
                        message=schema._describe(
                            path, error.validator, error.validator_value, None, "", False
                        ),
                    )
                )
            else:
                messages.append(schema._message(error, False))
        messages.extend(
            f"{schema._path(path, False)}: field is not defined in the schema"
            for path in unknown_fields(stand_in, schema._fields, ())
        )
        return _ShapeVerdict(tuple(sorted(messages)), tuple(probes))

    def _fails(self, probe: _Probe, record: Any) -> bool:
        value = record
        for part in probe.path:
            value = value[part]
        if isinstance(value, (dict, list)):  # uniqueItems, or enum/const on a container
            return self._run(probe, value)
        # type() is part of the key: 1, 1.0 and True are equal dict keys but not equal to
        # jsonschema's enum/const or type-aware keywords.
        key = (probe.key, type(value), value)
        known = self._values.get(key)
        if known is None:
            known = self._run(probe, value)
            if len(self._values) < self.MAX_VALUES:
                self._values[key] = known
        return known

    def _run(self, probe: _Probe, value: Any) -> bool:
        errors = probe.check(self._schema._validator, probe.expected, value, probe.schema)
        return next(iter(errors), None) is not None
