"""Masking of personal data in anything shown in the Dagster UI.

Previews and metadata never carry a raw email address, phone number or push token: reviewers see
enough to recognise a pattern (the domain, the length, the last digits), not enough to contact
anyone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pyarrow as pa

# Bounded repetitions keep matching linear: an unbounded local part backtracks quadratically
# on a long run of letters (a 100 KB field took minutes).
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){1,8}")
# International (+…) or national (0…) numbers; a plain digit run such as a date or an ID is not
# a phone number and stays readable.
_PHONE = re.compile(r"(?:\+|\b0)\d[\d \-().]{6,18}\d")
# Push device tokens identify a device: APNs (64 hex characters) and FCM (`<id>:APA91b…`).
_PUSH_TOKEN = re.compile(r"\b[0-9A-Fa-f]{64}\b|[A-Za-z0-9_\-]{0,64}:?APA91b[A-Za-z0-9_\-]{20,4096}")
PREVIEW_CELL_CHARS = 80


def mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    if not domain:
        return mask_text(value)
    tld = domain.rsplit(".", 1)[-1]
    return f"{local[:1]}***@***.{tld}"


def mask_phone(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    return f"***{digits[-2:]}" if len(digits) >= 4 else "***"


def mask_text(value: str) -> str:
    """Mask every email address, push token and phone number inside free text."""
    value = _EMAIL.sub(lambda m: mask_email(m.group(0)), value)
    value = _PUSH_TOKEN.sub(lambda m: f"***{m.group(0)[-4:]}", value)
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), value)


def masked_preview(table: pa.Table, personal: Iterable[str], rows: int = 5) -> str:
    """A Markdown preview of the first rows with personal columns masked."""
    personal = set(personal)
    head = table.slice(0, rows).to_pylist()
    if not head:
        return "_no rows_"
    cols = table.schema.names
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in head:
        cells = []
        for c in cols:
            v = row[c]
            text = "" if v is None else str(v)[:PREVIEW_CELL_CHARS]
            if c in personal and text:
                text = mask_email(text) if "@" in text else mask_phone(text)
            else:
                text = mask_text(text)
            cells.append(text.replace("|", "\\|").replace("\n", " "))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
