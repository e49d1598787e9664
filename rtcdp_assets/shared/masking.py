"""The one masking policy for anything shown in the Dagster UI or a report.

What is personal is what the formats flag: a field with `FieldSpec.personal` (names, birth
date, postal code, phone, email, external and recipient IDs, subscriber keys, tokens, free
text), and an XDM path fed by such a field (its `column_lineage`), holding identities
(`identityMap`) or missing from the lineage (what it carries is not known). Previews, check
metadata, reports, log lines and run tags show such a value as `•••` (the column already says
what it is); an empty value stays empty, so a missing value is still visible. A raw line that
could not be split into fields is free text and shows as `•••line`. In text that is not
flagged but may carry personal data (error details, values of other columns), every email
address, push token and phone number found is replaced by `•••email`, `•••token` or
`•••phone`.

No hash of the value is shown: an unkeyed hash of a birth date or a 7-digit recipient ID is
reversed by trying every candidate, and a keyed one would need a secret in every process that
renders metadata.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import pyarrow as pa

MASK = "•••"
# Bounded repetitions keep matching linear: an unbounded local part backtracks quadratically
# on a long run of letters (a 100 KB field took minutes).
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){1,8}")
# International (+…) or national (0…) numbers; a plain digit run such as a date or an ID is not
# a phone number and stays readable.
_PHONE = re.compile(r"(?:\+|\b0)\d[\d \-().]{6,18}\d")
# Push device tokens identify a device: APNs (64 hex characters) and FCM (`<id>:APA91b…`).
_PUSH_TOKEN = re.compile(r"\b[0-9A-Fa-f]{64}\b|[A-Za-z0-9_\-]{0,64}:?APA91b[A-Za-z0-9_\-]{20,4096}")
PREVIEW_CELL_CHARS = 80
# Identities (external IDs, emails, ECIDs, push tokens) live under this XDM path, whatever the
# namespace is called.
XDM_IDENTITY_PATH = "identityMap"


def mask_value(value: object) -> str:
    """A personal value as shown: `•••`, or empty when there is no value."""
    if value is None:
        return ""
    return MASK if str(value).strip() else ""


def mask_line(line: str | None) -> str:
    """A raw line that is not split into columns (a malformed row): free text, all hidden."""
    return f"{MASK}line" if line and line.strip() else ""


# Arrow's CSV parser quotes the offending row after the column counts.
_PARSE_ERROR_ROW = re.compile(r"(Expected \d+ columns, got \d+)\s*:.*", re.DOTALL)


def mask_parse_error(message: str) -> str:
    """A CSV parser's error message without the raw row it quotes (free text)."""
    return mask_text(_PARSE_ERROR_ROW.sub(rf"\1: {MASK}line", message))


def mask_text(value: str) -> str:
    """Every email address, push token and phone number inside text not flagged personal."""
    value = _EMAIL.sub(f"{MASK}email", value)
    value = _PUSH_TOKEN.sub(f"{MASK}token", value)
    return _PHONE.sub(f"{MASK}phone", value)


def mask_record(record: Mapping[str, Any], personal: Collection[str] | None) -> dict[str, str]:
    """A row of named values: personal ones masked (every one when `personal` is None: not
    known), the others searched for personal data."""
    return {
        str(k): mask_value(v)
        if personal is None or k in personal
        else mask_text("" if v is None else str(v))
        for k, v in record.items()
    }


def mask_reject_raw(raw: str | None, personal: Collection[str] | None) -> str:
    """The `raw` of a quarantined row for display: a JSON object of its source columns (masked
    column by column), or the raw line of a row that could not be split (masked whole)."""
    if not raw:
        return ""
    try:
        record = json.loads(raw)
    except ValueError:
        return mask_line(raw)
    if not isinstance(record, dict):
        return mask_line(raw)
    return json.dumps(mask_record(record, personal), ensure_ascii=False)


def xdm_path_is_shown(
    path: str, column_lineage: Mapping[str, Iterable[str]], personal_fields: Collection[str]
) -> bool:
    """Whether the value at an XDM path (dotted, list positions left out) may be shown: only
    when lineage says where it comes from and none of its sources is personal. A path fed by a
    personal field, an identity, or a path the lineage does not know is masked."""
    if path == XDM_IDENTITY_PATH or path.startswith(f"{XDM_IDENTITY_PATH}."):
        # An identity's `id` is the person's; `primary` and `authenticatedState` are flags.
        return path.count(".") == 2 and not path.endswith(".id")
    sources = [
        set(cols)
        for lineage_path, cols in column_lineage.items()
        if path == lineage_path or path.startswith(f"{lineage_path}.")
    ]
    return bool(sources) and not any(cols & set(personal_fields) for cols in sources)


def mask_xdm(
    value: Any,
    column_lineage: Mapping[str, Iterable[str]],
    personal_fields: Collection[str],
    path: str = "",
) -> Any:
    """An XDM record (nested dicts and lists) with every value `xdm_path_is_shown` refuses
    masked, and every shown string searched for personal data. Keys stay: they are schema
    names or identity namespaces, never record data."""
    if isinstance(value, Mapping):
        return {
            k: mask_xdm(v, column_lineage, personal_fields, f"{path}.{k}" if path else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_xdm(v, column_lineage, personal_fields, path) for v in value]
    if not xdm_path_is_shown(path, column_lineage, personal_fields):
        return mask_value(value)
    return mask_text(value) if isinstance(value, str) else value


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
            if c in personal:
                text = mask_value(v)
            else:
                text = mask_text("" if v is None else str(v))[:PREVIEW_CELL_CHARS]
            cells.append(text.replace("|", "\\|").replace("\n", " "))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
