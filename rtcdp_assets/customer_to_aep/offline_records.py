"""Offline rows to XDM records by their mapping, every bad row quarantined with a reason.

Input: the rows of a partition's files (CSV read as text; Parquet values as they are typed).
Output: XDM records, valid against the official schema of the mapping, and rejects, so that
``rows_read == rows_mapped + rows_quarantined`` always holds.

Value rules (decided here, the issue is silent):

* numbers use a decimal point, no thousands separator (``1234.50``); a decimal comma
  (``12,50``) is refused as ``bad_number`` rather than guessed, because ``1,250`` means
  1250 in one locale and 1.25 in another. Export the file with a point, or fix it upstream.
* dates are ISO 8601 (``2026-11-23``); date-times are ISO 8601 with or without an offset
  (``2026-11-23T09:30:00+01:00``, ``2026-11-23 09:30:00``), a time without an offset being in
  the mapping's ``timezone`` (UTC by default); they are published in UTC (``...Z``).
* every record has exactly one primary identity: the mapping's, or, when that column is empty
  in the record, the first identity it has in the mapping's column order.
* rows sharing the ``group_by`` value (an order's lines) make ONE record: its order-level
  values must agree on every line, and one bad line quarantines the whole order (the other
  lines with ``group_has_rejected_row``): a published order is never missing a line.

Reasons carry column names, never values: ``missing_identity``, ``missing_value:<col>``,
``bad_number:<col>``, ``bad_integer:<col>``, ``bad_date:<col>``, ``bad_boolean:<col>``,
``unknown_column:<col>`` (a file column the mapping neither maps nor ignores: every row of the
file, since sending the rest would silently drop that column), ``conflicting_value:<col>``,
``group_has_rejected_row``, ``xdm_invalid`` (column: the first schema error, without values).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from zoneinfo import ZoneInfo

from rtcdp_assets.customer_to_aep.offline_mapping import (
    ITEMS,
    ColumnMapping,
    MappingError,
    OfflineMapping,
)

_NUMBER: Final = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_INTEGER: Final = re.compile(r"^[+-]?\d+$")
_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_OFFSET: Final = re.compile(r"\s*([+-]\d{2}):?(\d{2})$")
_BOOLEANS: Final = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


@dataclass(frozen=True)
class SourceRow:
    source_file: str
    line_number: int  # CSV record number (the header is 1); Parquet row number from 1
    values: Mapping[str, Any]


@dataclass
class OfflineResult:
    records: list[dict[str, Any]]
    rejects: list[dict[str, Any]]  # source_file, line_number, reason, column, raw
    rows_read: int
    rows_mapped: int
    reasons: dict[str, int] = field(default_factory=dict)
    # (source file, line number) of every mapped row -> the _id of the record it is in
    row_records: dict[tuple[str, int], str] = field(default_factory=dict)

    @property
    def reconciles(self) -> bool:
        return self.rows_read == self.rows_mapped + len(self.rejects)


class BadValue(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_value(column: ColumnMapping, raw: Any, tz: ZoneInfo) -> Any:
    """The JSON value of ``raw`` for ``column``; None when empty; raises BadValue."""
    if raw is None or (isinstance(raw, float) and raw != raw):  # NaN from Parquet
        return None
    if isinstance(raw, str):
        raw = raw.strip()
        if raw == "":
            return None
    name, kind = column.column, column.type
    if kind == "string":
        return str(raw)
    if kind in ("number", "integer"):
        return _number(raw, kind, name)
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in _BOOLEANS:
            return _BOOLEANS[str(raw).lower()]
        raise BadValue(f"bad_boolean:{name}")
    if kind == "date":
        return _date(raw, name)
    return _datetime(raw, name, tz)


def _number(raw: Any, kind: str, name: str) -> int | float:
    if isinstance(raw, bool):
        raise BadValue(f"bad_{kind}:{name}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float | Decimal):
        if kind == "integer" and raw != int(raw):
            raise BadValue(f"bad_integer:{name}")
        return int(raw) if kind == "integer" else float(raw)
    text = str(raw)
    if not (_INTEGER if kind == "integer" else _NUMBER).match(text):
        raise BadValue(f"bad_{kind}:{name}")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise BadValue(f"bad_{kind}:{name}") from exc
    return int(value) if kind == "integer" else float(value)


def _date(raw: Any, name: str) -> str:
    if isinstance(raw, datetime):
        return raw.date().isoformat()
    if isinstance(raw, date):
        return raw.isoformat()
    text = str(raw)
    try:
        if not _DATE.match(text):
            raise ValueError(text)
        return date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise BadValue(f"bad_date:{name}") from exc


def _datetime(raw: Any, name: str, tz: ZoneInfo) -> str:
    if isinstance(raw, datetime):
        when = raw
    else:
        # "2026-11-23 09:30:12 +0100", as shop exports write it -> "...09:30:12+01:00"
        text = _OFFSET.sub(r"\1:\2", str(raw))
        try:
            if len(text) < 16:  # a date alone is not an event time
                raise ValueError(text)
            when = datetime.fromisoformat(text)
        except ValueError as exc:
            raise BadValue(f"bad_date:{name}") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    when = when.astimezone(UTC)
    fraction = f".{when.microsecond:06d}" if when.microsecond else ""
    return f"{when:%Y-%m-%dT%H:%M:%S}{fraction}Z"


def _set(record: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = record
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _raw(row: SourceRow) -> str:
    return json.dumps({k: _plain(v) for k, v in row.values.items()}, sort_keys=True)


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


@dataclass
class _Typed:
    row: SourceRow
    values: dict[str, Any]


def map_rows(
    mapping: OfflineMapping, rows: Iterable[SourceRow], timezone: str = "UTC"
) -> OfflineResult:
    """Type, group, map and validate ``rows``; the records come sorted by ``_id``. The
    mapping's namespace placeholders must be filled (``OfflineDataset.for_settings``)."""
    if mapping.namespace_placeholders:
        raise MappingError(
            f"{mapping.source}: namespace {mapping.namespace_placeholders[0]} is not filled "
            "from the settings (OfflineMapping.with_namespaces)"
        )
    tz = ZoneInfo(timezone)
    known = set(mapping.by_column) | set(mapping.ignore)
    rejects: list[dict[str, Any]] = []
    typed: list[_Typed] = []
    rejected_rows: list[SourceRow] = []
    rows_read = 0

    def reject(row: SourceRow, reason: str, column: str | None) -> None:
        rejected_rows.append(row)
        rejects.append(
            {
                "source_file": row.source_file,
                "line_number": row.line_number,
                "reason": reason,
                "column": column,
                "raw": _raw(row),
            }
        )

    for row in rows:
        rows_read += 1
        unknown = sorted(set(row.values) - known)
        if unknown:
            reject(row, f"unknown_column:{unknown[0]}", unknown[0])
            continue
        try:
            typed.append(_Typed(row, _type_row(mapping, row, tz)))
        except BadValue as bad:
            column = bad.reason.split(":", 1)[1] if ":" in bad.reason else None
            reject(row, bad.reason, column)

    # Orders that lost a line already: their remaining lines cannot be published alone.
    bad_keys = {_raw_key(mapping, row) for row in rejected_rows} - {None}
    groups = _groups(mapping, typed, bad_keys, reject)
    schema = mapping.xdm_schema()
    records: list[dict[str, Any]] = []
    row_records: dict[tuple[str, int], str] = {}
    rows_mapped = 0
    for key, members in groups.items():
        record = _record(mapping, key, members)
        if not schema.is_valid(record):
            first = schema.errors(record)[0]  # messages name paths and rules, never values
            for member in members:
                reject(member.row, "xdm_invalid", first)
            continue
        records.append(record)
        rows_mapped += len(members)
        for member in members:
            row_records[(member.row.source_file, member.row.line_number)] = record["_id"]
    records.sort(key=lambda r: r["_id"])
    rejects.sort(key=lambda r: (r["source_file"], r["line_number"]))
    reasons: dict[str, int] = {}
    for item in rejects:
        reasons[item["reason"]] = reasons.get(item["reason"], 0) + 1
    return OfflineResult(
        records, rejects, rows_read, rows_mapped, dict(sorted(reasons.items())), row_records
    )


def _type_row(mapping: OfflineMapping, row: SourceRow, tz: ZoneInfo) -> dict[str, Any]:
    values: dict[str, Any] = {}
    grouped = mapping.group_by is not None
    for column in mapping.columns:
        value = parse_value(column, row.values.get(column.column), tz)
        # An order's own values may sit on its first line only (the rest left empty, as
        # e-commerce exports write them): those are checked once the order is assembled.
        line_level = not grouped or column.per_item or column.column == mapping.group_by
        if value is None and column.required and line_level:
            raise BadValue(f"missing_value:{column.column}")
        values[column.column] = value
    if not grouped and all(values[c.column] is None for c in mapping.identity_columns):
        raise BadValue("missing_identity")
    return values


def _merged(mapping: OfflineMapping, members: list[_Typed]) -> tuple[dict[str, Any], str | None]:
    """The order-level values of a group (first non-empty of its lines) and the reason it is
    refused, if any: two lines disagreeing, a required value or every identity missing."""
    merged: dict[str, Any] = {}
    for column in mapping.columns:
        if column.per_item:
            continue
        present = [m.values[column.column] for m in members if m.values[column.column] is not None]
        if len({json.dumps(v, sort_keys=True) for v in present}) > 1:
            return merged, f"conflicting_value:{column.column}"
        merged[column.column] = present[0] if present else None
        if column.required and not present:
            return merged, f"missing_value:{column.column}"
    if all(merged[c.column] is None for c in mapping.identity_columns if not c.per_item):
        return merged, "missing_identity"
    return merged, None


def _groups(
    mapping: OfflineMapping,
    typed: list[_Typed],
    bad_keys: set[str],
    reject: Any,
) -> dict[str, list[_Typed]]:
    """Rows by record key; a group with a rejected or conflicting row is quarantined whole."""
    groups: dict[str, list[_Typed]] = {}
    for item in typed:
        key = _key(mapping, item)
        groups.setdefault(key, []).append(item)
    if mapping.group_by is None:
        return groups
    kept: dict[str, list[_Typed]] = {}
    for key, members in groups.items():
        # A lost line first: what remains of such an order (its first line gone, say) would
        # otherwise be reported as the fault of the lines that are fine.
        if key in bad_keys:
            for member in members:
                reject(member.row, "group_has_rejected_row", mapping.group_by)
            continue
        refused = _merged(mapping, members)[1]
        if refused is not None:
            column = refused.split(":", 1)[1] if ":" in refused else None
            for member in members:
                reject(member.row, refused, column)
        else:
            kept[key] = members
    return kept


def _raw_key(mapping: OfflineMapping, row: SourceRow) -> str | None:
    """The group key as written in the file (a rejected row has no typed values)."""
    if mapping.group_by is None:
        return None
    value = row.values.get(mapping.group_by)
    return None if value is None else str(value).strip()


def _key(mapping: OfflineMapping, item: _Typed) -> str:
    if mapping.group_by is not None:
        return _raw_key(mapping, item.row) or ""
    # Without a group key a row is its own record, named by its content: a re-run of the same
    # file, or the same row in a renamed file, gets the same _id (AEP deduplicates on it).
    return json.dumps(item.values, sort_keys=True, default=str)


def record_id(dataset: str, key: str) -> str:
    return hashlib.sha256(f"{dataset}\x1f{key}".encode()).hexdigest()[:32]


def _record(mapping: OfflineMapping, key: str, members: list[_Typed]) -> dict[str, Any]:
    first = _merged(mapping, members)[0] if mapping.group_by else members[0].values
    record: dict[str, Any] = {"_id": record_id(mapping.dataset, key)}
    if mapping.record == "event":
        record["eventType"] = mapping.event_type
    for path, value in mapping.constants.items():
        _set(record, path, value)
    identity_map: dict[str, list[dict[str, Any]]] = {}
    for column in mapping.columns:
        value = first.get(column.column)
        if value is None:
            continue
        if column.identity is not None:
            identity_map.setdefault(column.identity.namespace, []).append(
                {"id": str(value), "primary": column.identity.primary}
            )
        if column.target is not None and not column.per_item:
            _set(record, column.target, [value] if column.list_leaf else value)
    if identity_map and not any(i["primary"] for ids in identity_map.values() for i in ids):
        # The mapping's primary identity is empty here (an order known by the customer id
        # alone): AEP refuses a record without a primary identity, so the first identity the
        # record has, in the mapping's column order, is primary in its place.
        next(iter(identity_map.values()))[0]["primary"] = True
    if identity_map:
        record["identityMap"] = identity_map
    array = mapping.item_array
    if array is not None:
        items = []
        for member in members:
            item: dict[str, Any] = {}
            for column in mapping.columns:
                value = member.values[column.column]
                if column.per_item and column.path is not None and value is not None:
                    _set(item, column.path.split(ITEMS + ".", 1)[1], value)
            items.append(item)
        _set(record, array, items)
    return record
