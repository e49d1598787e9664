"""XDM conformance of records in the Experience Platform dataset form.

One validator for every dataset of the project: compose a schema from an XDM class and field
groups, then check records the way Experience Platform (AEP) would before ingesting them::

    schema = XdmSchema.compose(EXPERIENCE_EVENT, [FG_DIRECT_MARKETING, FG_CAMPAIGN_DELIVERY_LOG])
    report = schema.validate_many(records)

Source of truth
    Adobe's official XDM JSON schemas (adobe/xdm, CC BY 4.0), vendored unchanged into
    ``rtcdp_assets/shared/xdm_schemas/`` by ``scripts/vendor_xdm.py`` (the closure of
    ``VENDORED_ROOTS``). ``RTCDP_XDM_ROOT`` points the validator at another copy of the tree,
    e.g. the full ``../shared/xdm``.

Source form versus dataset form
    The schemas use JSON-LD names (``xdm:eventType``, ``@id``,
    ``https://ns.adobe.com/experience/campaign/broadlogID``); datasets use AEP's "compatibility
    mode" names. The SCHEMAS are rewritten once at load time (records are never rewritten), see
    ``dataset_form_path``:

    * ``xdm:name`` -> ``name``; ``@id`` -> ``_id`` (any JSON-LD keyword ``@x`` -> ``_x``, e.g.
      the channel data type's ``@type`` -> ``_type``);
    * ``prefix:name`` (other namespaces: ``repo:``, ``schema:``, ``dc:``, vendors, tenants) ->
      ``_prefix.name``, as AEP documents for ``repo:createdDate`` -> ``_repo.createdDate``. In
      the vendored closure: ``_repo.createDate``/``_repo.modifyDate`` (Profile, addresses) and
      ``homeAddress._schema.latitude`` etc. (geo coordinates);
    * ``https://ns.adobe.com/<ns>/<seg>/.../<name>`` -> ``_<ns>.<seg>...<name>``, e.g.
      ``https://ns.adobe.com/experience/campaign/broadlogID`` -> ``_experience.campaign.broadlogID``
      and a vendor ``https://ns.adobe.com/vendorA/product/stockNumber`` ->
      ``_vendorA.product.stockNumber``;
    * ``https://ns.adobe.com/xdm/<seg>/.../<name>`` drops ``xdm`` like the ``xdm:`` prefix:
      ``https://ns.adobe.com/xdm/channels/application`` -> ``_channels.application`` (AEP's own
      example). Such property names do not occur in the vendored closure (there the only URI
      names are ``https://ns.adobe.com/experience/campaign/*``);
    * any other URI raises ``ValueError`` at load time: AEP documents no mapping for it and the
      XDM tree contains none, so guessing would only hide a mistake.

    Names that end up in the same container (``_experience``) are merged into one nested object
    schema; ``required`` entries are moved to the level that holds the renamed name.
    Keys of ``definitions`` and ``$ref`` pointers are left alone: they are not field names.

Strictness
    * Types, ``required``, ``enum``, ``const``, numeric/length bounds, ``pattern`` and ``format``
      are checked by jsonschema's draft-06 validator (the schemas' ``$schema``).
    * Formats: ``email`` (jsonschema's own check: contains ``@``), ``ipv4``/``ipv6`` (stdlib) and,
      implemented here because jsonschema needs extra packages (rfc3339-validator, rfc3987) for
      them: ``date-time`` (RFC 3339, timezone required, calendar-valid), ``date`` (not a draft-06
      format, but XDM uses it and AEP enforces it), ``uri`` and ``uri-reference`` (RFC 3986
      character set, percent-encoding and scheme syntax; host syntax is not parsed). ``url`` is
      not a JSON Schema format and is ignored.
    * Unknown fields: ``allOf`` composition cannot forbid them, but AEP rejects fields that are not
      in the dataset schema. Every field path of a record is therefore checked against the paths
      defined by the composed schema. Maps (``meta:xdmType: map`` / ``additionalProperties``
      schemas, e.g. ``identityMap``, ``segmentMembership``) accept any key and check the values.
    * ``meta:enum`` is NOT enforced: in XDM it is an extensible list of suggested values (e.g.
      ``eventType`` accepts custom event types); only ``enum`` restricts values.
    * The JSON-LD ``@context`` envelope of the source form (``xdm/common/extensible``, which
      allows only namespaced names) does not exist in the dataset form; it is replaced by
      ``{"type": "object"}`` and unknown names are caught by the field-path check instead.
    * Annotations (titles, descriptions, ``meta:*`` except ``meta:xdmType``, examples) are dropped
      from the loaded schemas: jsonschema would otherwise walk them on every record.

Records
    JSON values as they would be sent to AEP (dict, list, str, int, float, bool, None).
    Serialise datetimes and pandas values (``Timestamp``, ``NaT``) first: a ``datetime`` is not a
    ``date-time`` string and is reported as a type error; a float NaN passes ``number`` checks
    although JSON cannot carry it.

Privacy
    Messages never contain record values: they name the dotted path, the violated constraint and
    at most the JSON type of the value (``personalEmail.address: does not match format 'email'``).
    Keys inside maps are record data too (``segmentMembership.Email.<an address>``, consent
    ``idSpecific``), so they are shown as ``*``. ``errors(record, include_values=True)`` exists for
    local debugging only; ``validate_many`` never uses it, so its output can go into metadata.

Speed
    Everything is built once per (class, field groups, root) and cached by ``compose``. The
    $refs are inlined and ``allOf`` branches folded where that cannot change a verdict (see
    ``_merge_all_of``), which leaves jsonschema about one subschema per field present instead of
    ~90 per broadLog record (7x faster). Measured on a typical broadLog ExperienceEvent record
    (``_id``, ``timestamp``, ``eventType``, ``identityMap`` with two identities,
    ``directMarketing.sends.value``, nine ``_experience.campaign.*`` fields) against
    ExperienceEvent + directMarketing + delivery log + tracking log, Python 3.11, jsonschema
    4.26, one core of a 2-core VM: ``is_valid`` checks 3,000-4,000 valid records/s and ``errors``
    builds the messages of ~1,700 invalid records/s; jsonschema's per-subschema overhead is ~95%
    of that time, the unknown-field walk the rest.

    ``validate_many`` avoids most of it (see ``_ShapeCheck``): records of a batch share a few
    shapes (keys, array lengths, JSON type of each leaf), so jsonschema and the unknown-field
    walk run once per shape, and each record only gets its value-constrained leaves (formats,
    enums, patterns, bounds) checked, memoised by value. On 20,000 broadLog records from the
    real pipeline (``generate_dataset`` -> ``ingest_file`` -> ``broadlog_to_xdm`` ->
    ``to_records``; ExperienceEvent + directMarketing + delivery log), same machine, best of 3:

    ==========================================  ==============  ===============  ========
    batch                                       plain (rec/s)   fast (rec/s)     speed-up
    ==========================================  ==============  ===============  ========
    all valid                                   4,184           53,115           12.7x
    all invalid (bad timestamp and quarantine)  2,148           24,547           11.4x
    ==========================================  ==============  ===============  ========

    i.e. about 20 s per million records instead of 4 minutes. The report is identical to
    ``validate_many(..., fast=False)``, which validates every record with jsonschema; the unit
    tests compare both on thousands of pipeline records of every dataset and mutated copies.
    Records holding non-JSON values (``datetime``, tuples, ``dict``/``str`` subclasses,
    non-string keys) and schemas with ``anyOf``/``oneOf``/``not``/``contains`` (none in the
    vendored closure) take the plain path.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeAlias
from urllib.parse import urljoin

from jsonschema import Draft6Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT6

__all__ = [
    "EXPERIENCE_EVENT",
    "FG_CAMPAIGN_DELIVERY_LOG",
    "FG_CAMPAIGN_TRACKING_LOG",
    "FG_DIRECT_MARKETING",
    "FG_IDENTITY_MAP",
    "FG_PROFILE_CONSENTS",
    "FG_PROFILE_PERSONAL_DETAILS",
    "FG_PROFILE_PERSON_DETAILS",
    "FG_PROFILE_PUSH_DETAILS",
    "FG_PROFILE_PUSH_NOTIFICATION_DETAILS",
    "FG_PROFILE_SEGMENTATION",
    "PROFILE",
    "ROOT_ENV_VAR",
    "VENDORED_ROOT",
    "VENDORED_ROOTS",
    "ValidationReport",
    "XdmSchema",
    "dataset_form_path",
    "schema_closure",
    "schema_index",
]

if TYPE_CHECKING:
    # referencing exports Resolver only from its private module; annotations need no import.
    from referencing._core import Resolver

    _Part: TypeAlias = tuple[dict[str, Any], Resolver[Any]]

# --------------------------------------------------------------------------------------------
# Component ids (real $ids from the adobe/xdm tree; file paths in comments).

# components/classes/experienceevent.schema.json
EXPERIENCE_EVENT: Final = "https://ns.adobe.com/xdm/context/experienceevent"
# components/classes/profile.schema.json
PROFILE: Final = "https://ns.adobe.com/xdm/context/profile"
# components/fieldgroups/experience-event/experienceevent-directmarketing.schema.json
FG_DIRECT_MARKETING: Final = "https://ns.adobe.com/xdm/context/experienceevent-directmarketing"
# extensions/adobe/experience/campaign/experienceevent-campaign-delivery-log.schema.json
FG_CAMPAIGN_DELIVERY_LOG: Final = (
    "https://ns.adobe.com/experience/campaign/experienceevent-campaign-delivery-log"
)
# extensions/adobe/experience/campaign/experienceevent-campaign-tracking-log.schema.json
FG_CAMPAIGN_TRACKING_LOG: Final = (
    "https://ns.adobe.com/experience/campaign/experienceevent-campaign-tracking-log"
)
# components/fieldgroups/profile/profile-person-details.schema.json ("Demographic Details":
# person.name, birth date, gender)
FG_PROFILE_PERSON_DETAILS: Final = "https://ns.adobe.com/xdm/context/profile-person-details"
# components/fieldgroups/profile/profile-personal-details.schema.json ("Personal Contact
# Details": personalEmail, mobilePhone, homeAddress, ...)
FG_PROFILE_PERSONAL_DETAILS: Final = "https://ns.adobe.com/xdm/context/profile-personal-details"
# components/fieldgroups/profile/profile-push-details.schema.json (pushNotificationTokens;
# deprecated upstream in favour of the next one, kept for datasets still built on it)
FG_PROFILE_PUSH_DETAILS: Final = "https://ns.adobe.com/xdm/context/profile-push-details"
# components/fieldgroups/profile/profile-push-notification-details.schema.json
FG_PROFILE_PUSH_NOTIFICATION_DETAILS: Final = (
    "https://ns.adobe.com/xdm/context/profile-push-notification-details"
)
# components/fieldgroups/profile/profile-consents.schema.json ("Consent and Preference Details",
# built on components/datatypes/consent/consent-preferences.schema.json)
FG_PROFILE_CONSENTS: Final = "https://ns.adobe.com/xdm/mixins/profile-consents"
# components/fieldgroups/shared/identitymap.schema.json
FG_IDENTITY_MAP: Final = "https://ns.adobe.com/xdm/context/identitymap"
# components/fieldgroups/shared/segmentation.schema.json ("Segment Membership Details")
FG_PROFILE_SEGMENTATION: Final = "https://ns.adobe.com/xdm/context/profile-segmentation"

# The single list the vendoring script copies the closure of; keep code and files in step.
VENDORED_ROOTS: Final[tuple[str, ...]] = (
    EXPERIENCE_EVENT,
    PROFILE,
    FG_DIRECT_MARKETING,
    FG_CAMPAIGN_DELIVERY_LOG,
    FG_CAMPAIGN_TRACKING_LOG,
    FG_PROFILE_PERSON_DETAILS,
    FG_PROFILE_PERSONAL_DETAILS,
    FG_PROFILE_PUSH_DETAILS,
    FG_PROFILE_PUSH_NOTIFICATION_DETAILS,
    FG_PROFILE_CONSENTS,
    FG_IDENTITY_MAP,
    FG_PROFILE_SEGMENTATION,
)

ROOT_ENV_VAR: Final = "RTCDP_XDM_ROOT"
VENDORED_ROOT: Final = Path(__file__).resolve().parent / "xdm_schemas"

_DRAFT6_URI: Final = "http://json-schema.org/draft-06/schema#"
_EXTENSIBLE_ID: Final = "https://ns.adobe.com/xdm/common/extensible"

# --------------------------------------------------------------------------------------------
# Source form -> dataset form names

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
_SCHEMA_MAP_KEYWORDS: Final = frozenset({"properties", "patternProperties", "definitions"})
_SCHEMA_LIST_KEYWORDS: Final = frozenset({"allOf", "anyOf", "oneOf"})
_SCHEMA_KEYWORDS: Final = frozenset({"additionalProperties", "additionalItems", "contains", "not"})
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
        if key in _SCHEMA_MAP_KEYWORDS and key != "properties":
            # definitions keys are pointer targets and patternProperties keys are regexes
            # over map keys (data), not field names: both stay as they are.
            out[key] = {name: _to_dataset_form(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LIST_KEYWORDS:
            out[key] = [_to_dataset_form(sub) for sub in value]
        elif key in _SCHEMA_KEYWORDS:
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
    if document.get("$schema", _DRAFT6_URI) != _DRAFT6_URI:
        raise ValueError(f"{document.get('$id')}: expected a draft-06 schema")
    if document.get("$id") == _EXTENSIBLE_ID:
        document = {**document, "definitions": {**document["definitions"]}}
        document["definitions"]["@context"] = {"type": "object"}
    return _to_dataset_form(document)


# --------------------------------------------------------------------------------------------
# Schema files: index by $id and closure (shared with scripts/vendor_xdm.py)


def _resolve_root(root: str | os.PathLike[str] | None) -> Path:
    if root is None:
        root = os.environ.get(ROOT_ENV_VAR) or VENDORED_ROOT
    return Path(root).resolve()


@functools.lru_cache(maxsize=8)
def schema_index(root: Path) -> dict[str, Path]:
    """$id -> file of every ``*.schema.json`` under ``root``."""
    index: dict[str, Path] = {}
    for path in sorted(root.rglob("*.schema.json")):
        schema_id = json.loads(path.read_text(encoding="utf-8")).get("$id")
        if schema_id in index:
            raise ValueError(f"duplicate $id {schema_id}: {index[schema_id]} and {path}")
        if schema_id:
            index[schema_id] = path
    if not index:
        raise FileNotFoundError(f"no *.schema.json under {root}")
    return index


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            elif key == "meta:extends" and isinstance(value, list):
                yield from value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def schema_closure(root: Path, schema_ids: Iterable[str]) -> dict[str, Path]:
    """The files ``schema_ids`` need: every ``$ref`` and ``meta:extends``, transitively."""
    index = schema_index(root)
    closure: dict[str, Path] = {}
    pending = list(schema_ids)
    while pending:
        schema_id = pending.pop().split("#", 1)[0]
        if not schema_id or schema_id in closure:
            continue  # "" is a same-document "#/definitions/..." reference
        if schema_id not in index:
            raise KeyError(
                f"{schema_id} is not under {root}; add it to VENDORED_ROOTS and run "
                "scripts/vendor_xdm.py, or point RTCDP_XDM_ROOT at the full XDM tree"
            )
        closure[schema_id] = index[schema_id]
        document = json.loads(index[schema_id].read_text(encoding="utf-8"))
        pending.extend(_references(document))
    return closure


@functools.lru_cache(maxsize=1024)
def _dataset_form_document(path: Path) -> dict[str, Any]:
    return _load_dataset_form(json.loads(path.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------------------------
# Compilation for speed: same validation outcome, fewer subschemas for jsonschema to visit.
# Every $ref and allOf branch costs jsonschema a descend (a validator "evolve") per record;
# for a broadLog event that was ~90 descends and most of the time. Inlining the $refs and
# folding allOf branches into one schema where the branches cannot interact leaves roughly one
# descend per field present in the record.


def _inline(schema: Any, base: str, registry: Registry[Any], active: frozenset[str]) -> Any:
    """``schema`` with every ``$ref`` replaced by its target, except recursive ones."""
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        target = urljoin(base, schema["$ref"])
        if target in active:
            return {"$ref": target}  # a recursive data type: left to the registry
        resolved = registry.resolver().lookup(target)
        return _inline(resolved.contents, target.split("#", 1)[0], registry, active | {target})
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("definitions", "$id", "$schema"):
            continue  # only reachable through $ref, which is inlined or made absolute
        if key in ("properties", "patternProperties"):
            out[key] = {name: _inline(sub, base, registry, active) for name, sub in value.items()}
        elif key in _SCHEMA_LIST_KEYWORDS or (key == "items" and isinstance(value, list)):
            out[key] = [_inline(sub, base, registry, active) for sub in value]
        elif key in _SCHEMA_KEYWORDS or key == "items":
            out[key] = _inline(value, base, registry, active)
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
                    _merge_all_of({"allOf": [merged[name], sub]}) if name in merged else sub
                )
            target[key] = merged
        elif key == "required":
            target[key] = list(dict.fromkeys([*target.get(key, []), *value]))
        else:
            target[key] = value
    return True


def _merge_all_of(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: _merge_all_of(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LIST_KEYWORDS or (key == "items" and isinstance(value, list)):
            out[key] = [_merge_all_of(sub) for sub in value]
        elif key in _SCHEMA_KEYWORDS or key == "items":
            out[key] = _merge_all_of(value)
        else:
            out[key] = value
    if "allOf" not in out:
        return out
    members = out.pop("allOf")
    residual = [member for member in members if not _absorb(out, member)]
    if residual:
        out["allOf"] = residual
    return out


# --------------------------------------------------------------------------------------------
# Formats jsonschema cannot check without extra packages

_DATE_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_URI_CHARACTERS = re.compile(r"^(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
_FIRST_SEGMENT = re.compile(r"^[^/?#]*")


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    match = _DATE_TIME.match(value)
    if not match:
        return False
    day, hour, minute, second, fraction, offset = match.groups()
    # RFC 3339 allows leap second 60, datetime does not; the calendar check is what matters.
    second = "59" if second == "60" else second
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        datetime.fromisoformat(f"{day}T{hour}:{minute}:{second}{fraction or ''}{offset}")
    except ValueError:
        return False
    return True


def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_uri_reference(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _URI_CHARACTERS.match(value) or value.count("#") > 1:
        return False
    first = _FIRST_SEGMENT.match(value)
    # A colon before the first "/", "?" or "#" can only end a scheme (RFC 3986 4.2).
    head = first.group(0) if first else ""
    return ":" not in head or bool(_SCHEME.match(head.split(":", 1)[0]))


def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    first = _FIRST_SEGMENT.match(value)
    return _is_uri_reference(value) and ":" in (first.group(0) if first else "")


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checkers = dict(Draft6Validator.FORMAT_CHECKER.checkers)
    for name, check in (
        ("date-time", _is_date_time),
        ("date", _is_date),
        ("uri", _is_uri),
        ("uri-reference", _is_uri_reference),
    ):
        checker.checks(name)(check)
    return checker


_FORMAT_CHECKER: Final = _format_checker()

# --------------------------------------------------------------------------------------------
# Field tree: which field paths the composed schema defines


class _Field:
    """Fields allowed at one position of a record."""

    __slots__ = ("any_key", "children", "is_object", "items", "patterns", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Field] = {}
        self.values: _Field | None = None  # map: any key, values described by this node
        self.patterns: list[tuple[re.Pattern[str], _Field]] = []
        self.items: _Field | None = None
        self.is_object = False
        self.any_key = False  # open object without a value schema: nothing below is checked

    def child(self, key: str) -> _Field | None:
        found = self.children.get(key)
        if found is not None:
            return found
        for pattern, node in self.patterns:
            if pattern.search(key):
                return node
        return self.values


def _flatten(schema: Any, resolver: Resolver[Any], out: list[_Part], seen: set[int]) -> None:
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
    for keyword in _SCHEMA_LIST_KEYWORDS:
        for sub in schema.get(keyword, ()):
            _flatten(sub, resolver, out, seen)


class _FieldTreeBuilder:
    def __init__(self) -> None:
        # Keyed by the identities of the flattened parts so recursive schemas terminate.
        self._memo: dict[frozenset[int], _Field] = {}

    def build(self, schemas: Sequence[_Part]) -> _Field:
        parts: list[_Part] = []
        seen: set[int] = set()
        for schema, resolver in schemas:
            _flatten(schema, resolver, parts, seen)
        key = frozenset(id(schema) for schema, _ in parts)
        if key in self._memo:
            return self._memo[key]
        node = self._memo[key] = _Field()
        children: dict[str, list[_Part]] = {}
        values: list[_Part] = []
        items: list[_Part] = []
        patterns: dict[str, list[_Part]] = {}
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


def _unknown_fields(
    value: Any, node: _Field, path: tuple[str | int, ...]
) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, dict):
        if not node.is_object or node.any_key:
            return  # not an object in the schema: the type error is jsonschema's to report
        for key, sub in value.items():
            child = node.child(key)
            if child is None:
                yield (*path, key)
            else:
                yield from _unknown_fields(sub, child, (*path, key))
    elif isinstance(value, list) and node.items is not None:
        for index, sub in enumerate(value):
            yield from _unknown_fields(sub, node.items, (*path, index))


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
        documents = {sid: _dataset_form_document(path) for sid, path in closure.items()}
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
            "$schema": _DRAFT6_URI,
            "allOf": [{"$ref": sid} for sid in (class_id, *self.field_group_ids)],
        }
        # What jsonschema runs: equivalent to self.schema, see _inline and _merge_all_of.
        self.compiled_schema: dict[str, Any] = {
            "$schema": _DRAFT6_URI,
            **_merge_all_of(_inline(self.schema, "", self.registry, frozenset())),
        }
        self._validator = Draft6Validator(
            self.compiled_schema, registry=self.registry, format_checker=_FORMAT_CHECKER
        )
        self._probe_validator = _ProbeValidator(self.compiled_schema, registry=self.registry)
        # The shape/value split is only sound where every error of a subschema reaches the
        # output; a $ref into the registry could lead to an opaque keyword, so look there too.
        reachable: list[Any] = [self.compiled_schema]
        if _has_key(self.compiled_schema, frozenset({"$ref"})):
            reachable.extend(documents.values())
        self._shape_split_ok = not any(_has_key(node, _OPAQUE_KEYWORDS) for node in reachable)
        resolver = self.registry.resolver()
        self._fields = _FieldTreeBuilder().build([(self.schema, resolver)])

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
        return _compose(class_id, tuple(field_group_ids), _resolve_root(root))

    def field_paths(self) -> list[str]:
        """Dotted paths of all defined fields (``*`` for map keys, ``[]`` for array items)."""
        paths: list[str] = []

        def walk(node: _Field, prefix: str, seen: frozenset[int]) -> None:
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
        return next(_unknown_fields(record, self._fields, ()), None) is None

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
            for path in _unknown_fields(record, self._fields, ())
        )
        return sorted(messages)

    def validate_many(
        self, records: Iterable[Mapping[str, Any]], max_examples: int = 20, *, fast: bool = True
    ) -> ValidationReport:
        """Counts, example messages and message kinds for ``records``.

        ``fast=False`` validates every record with jsonschema (the reference the fast path is
        tested against); both give the same report, see ``_ShapeCheck``.
        """
        report = ValidationReport()
        kinds: Counter[str] = Counter()
        check = _ShapeCheck(self) if fast and self._shape_split_ok else None
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

    def _path(self, path: Iterable[str | int], include_values: bool) -> str:
        """Dotted path; map keys are record data, so they are masked unless asked for."""
        text = ""
        node: _Field | None = self._fields
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


# --------------------------------------------------------------------------------------------
# Fast path of validate_many: validate each record SHAPE once, then only the constrained values
#
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
_OPAQUE_KEYWORDS: Final = frozenset({"anyOf", "oneOf", "not", "contains"})
_PROBE_MESSAGE: Final = "<value probe>"


def _probe(validator: Any, expected: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    yield ValidationError(_PROBE_MESSAGE)


_ProbeValidator: Final = validators.extend(
    Draft6Validator, dict.fromkeys(_VALUE_CHECK_KEYWORDS, _probe)
)


def _has_key(node: Any, keys: frozenset[str]) -> bool:
    if isinstance(node, dict):
        return any(key in keys or _has_key(value, keys) for key, value in node.items())
    if isinstance(node, list):
        return any(_has_key(item, keys) for item in node)
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


class _ShapeCheck:
    """Per-call memo of shape verdicts and value checks; bounded, so a batch of odd records
    costs time, never unbounded memory."""

    MAX_SHAPES: Final = 10_000
    MAX_VALUES: Final = 200_000

    def __init__(self, schema: XdmSchema) -> None:
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
            for path in _unknown_fields(stand_in, schema._fields, ())
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


@functools.lru_cache(maxsize=64)
def _compose(class_id: str, field_group_ids: tuple[str, ...], root: Path) -> XdmSchema:
    return XdmSchema(class_id, field_group_ids, root)
