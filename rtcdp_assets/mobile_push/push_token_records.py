"""The typed rows of `aep_push_tokens`, and export records → rows and rejects one by one.

The per-record path: JSON lines parsed one at a time, so every malformed line is named.
"""

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from resources.settings import PipelineSettings
from rtcdp_assets.shared import push_token_formats
from rtcdp_assets.shared.ingest import SOURCE_FILE

DATASET = "aep_push_tokens"
LINE_NUMBER = "_line_number"  # JSON line or Parquet row (1-based) of the record

TYPED_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string()),
        pa.field("ecid", pa.string()),
        pa.field("app_id", pa.string(), nullable=False),
        pa.field("token", pa.string(), nullable=False),
        pa.field("platform", pa.string(), nullable=False),
        pa.field("denylisted", pa.bool_()),
        pa.field("identity_namespace", pa.string()),
        pa.field("identity_id", pa.string()),
        pa.field("dataset_id", pa.string(), nullable=False),
        pa.field("export_time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field(SOURCE_FILE, pa.string(), nullable=False),
        pa.field(LINE_NUMBER, pa.int64(), nullable=False),
    ]
)
PERSONAL = {"token", "ecid", "identity_id"}


class UnreadableExport(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def json_records(local: Path, name: str) -> Iterator[tuple[int, Any, str | None]]:
    """JSON lines one by one (Parquet always takes the Arrow path): (record number, record
    or None, raw text when the line is not a JSON object)."""
    opener = gzip.open if name.endswith(".gz") else open
    try:
        with opener(local, "rb") as fh:  # type: ignore[operator]
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    yield number, None, line.decode("utf-8", "replace").rstrip("\n")
                    continue
                if not isinstance(record, dict):
                    yield number, None, line.decode("utf-8", "replace").rstrip("\n")
                    continue
                yield number, record, None
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableExport("corrupt_gzip", str(exc)[:300]) from exc


def _ecid(record: dict[str, Any]) -> str | None:
    items = (record.get("identityMap") or {}).get("ECID") or []
    return next((i.get("id") for i in items if isinstance(i, dict) and i.get("id")), None)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def split_record(
    record: dict[str, Any], settings: PipelineSettings
) -> Iterator[tuple[dict[str, Any] | None, str, str, Any]]:
    """Per push item: (values or None, reason, column, raw text or the item itself). A
    candidate (values, reason empty) still has its token to be checked by `settle_tokens`."""
    items = record.get("pushNotificationDetails")
    if not isinstance(items, list) or not items:
        yield None, "no_push_details", "pushNotificationDetails", json.dumps(record, default=str)
        return
    ecid = _ecid(record)
    for i, item in enumerate(items):
        column = f"pushNotificationDetails[{i}]"
        if not isinstance(item, dict):
            yield None, "no_push_details", column, raw_json(item)
            continue
        app, token, platform = (_text(item.get(k)) for k in ("appID", "token", "platform"))
        missing = next(
            (k for k, v in (("appID", app), ("token", token), ("platform", platform)) if v is None),
            None,
        )
        if missing:
            yield None, "missing_required_value", f"{column}.{missing}", raw_json(item)
            continue
        if platform not in push_token_formats.PLATFORMS:
            yield None, "unknown_code:platform", f"{column}.platform", raw_json(item)
            continue
        identity = item.get("identity") if isinstance(item.get("identity"), dict) else {}
        namespace = identity.get("namespace") if isinstance(identity.get("namespace"), dict) else {}
        denylisted = item.get("denylisted")
        # The token's format is checked for a whole chunk at once (`settle_tokens`): compiling the
        # patterns per item would cost more than everything else here.
        yield (
            {
                "record_id": _text(record.get("_id")),
                "ecid": ecid,
                "app_id": app,
                "token": token,
                "platform": platform,
                "denylisted": denylisted if isinstance(denylisted, bool) else None,
                "identity_namespace": _text(namespace.get("code")),
                "identity_id": _text(identity.get("xid") or identity.get("id")),
            },
            "",
            f"{column}.token",
            item,  # serialized only if the token is rejected
        )


def raw_json(item: Any) -> str:
    return json.dumps(item, default=str, sort_keys=True)


def settle_tokens(
    pending: list[tuple[dict[str, Any], str, Any]], settings: PipelineSettings
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str, Any]]]:
    """Candidate rows → (typed rows with normalized tokens, rows with an invalid token)."""
    if not pending:
        return [], []
    tokens = pa.array([values["token"] for values, _, _ in pending], pa.string())
    platforms = pa.array([values["platform"] for values, _, _ in pending], pa.string())
    invalid = push_token_formats.invalid_tokens(tokens, platforms, settings).to_pylist()
    normalized = push_token_formats.normalized(tokens, platforms).to_pylist()
    good, bad = [], []
    for (values, column, raw), is_bad, token in zip(pending, invalid, normalized, strict=True):
        if is_bad:
            bad.append((values, column, raw))
        else:
            values["token"] = token
            good.append(values)
    return good, bad
