"""Formats jsonschema cannot check without extra packages (see the package docstring)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Final

from jsonschema import Draft6Validator, FormatChecker

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


FORMAT_CHECKER: Final = _format_checker()
