"""aep_push_tokens: the push tokens AEP knows from the Experience Platform Mobile SDK route.

The Mobile SDK registers each device's push token in a profile dataset (`pushNotificationDetails`
items). An AEP dataset export (adobe-formats.md §a1) writes that dataset as JSON or Parquet
files with random names under

    <aep_dataset_export_folder>/<datasetId>/exportTime=YYYYMMDDHHMM/<anything>.json[.gz]|.parquet

in the `aep_dataset_export` zone (a local folder in the embedded default, an Azure Blob
container in production). `aep_push_tokens_sensor` watches those folders and requests one run
per 4-hour window (the window of exportTime) whenever the set of file versions of the window
changes; the run key is the window plus a fingerprint of those versions, so the same export
never runs twice and a re-delivered one always does. The files belong to AEP's export and are
read in place, never moved.

Each `pushNotificationDetails` item becomes one typed row (record `_id`, ECID, app ID, token,
platform, denylisted, identity, dataset ID, export time). Malformed input goes to the rejects
with the raw value and a reason: `invalid_json` (a line that is not a JSON object),
`no_push_details` (a record without items), `missing_required_value` (no appID, token or
platform), `unknown_code:platform` (not apns/apnsSandbox/fcm), `invalid_push_token` (format of
its platform, `rtcdp_assets/push_tokens.py`). A row is one item, or one rejected record where
there is no item to count: rows in = typed rows + rejected rows, per file, checked by the
blocking `reconciliation` check. A file that cannot be read at all (`corrupt_parquet`,
`corrupt_gzip`) is recorded as quarantined in the manifest, which fails that check.

Parquet and plain JSON-lines files are read whole by Arrow and split with compute kernels;
gzip'd JSON, or JSON that Arrow refuses (a malformed line, types that differ between lines),
takes the per-record path, which names every malformed line. Both paths give the same rows and
rejects for the same records (tests/mobile_push/test_push.py).
"""

import gzip
import hashlib
import json
import re
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    AssetSelection,
    DefaultSensorStatus,
    Failure,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    in_process_executor,
    multi_asset_check,
    sensor,
)

from asset_checks.campaign_to_aep.export_checks import _spec, reconcile
from asset_checks.mobile_push.push_checks import build_duplicate_registration_check
from resources.drop_zones import DropZone, DropZoneUnavailable, Entry, is_temporary_name, join
from resources.settings import PipelineSettings
from resources.warehouse import ParquetSink, Warehouse
from rtcdp_assets.campaign_to_aep.export_flow import table_schema
from rtcdp_assets.shared import push_tokens
from rtcdp_assets.shared.ingest import REJECT_SCHEMA, SOURCE_FILE
from rtcdp_assets.shared.masking import masked_preview
from rtcdp_assets.shared.partitions import four_hourly_partitions

DATASET = "aep_push_tokens"
EXPORT_TIME = re.compile(r"^exportTime=(?P<stamp>\d{12})$")
DATA_FILE = re.compile(r"\.(json|json\.gz|parquet)$", re.IGNORECASE)
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
FLUSH_ROWS = 50_000


# --------------------------------------------------------------------------------------------
# Where the exports are
# --------------------------------------------------------------------------------------------
def partition_for_export_time(folder_name: str) -> str | None:
    """`exportTime=202611230915` → `2026-11-23-08:00` (the 4-hour window of the export)."""
    m = EXPORT_TIME.match(folder_name)
    if not m:
        return None
    s = m["stamp"]
    try:
        when = datetime(int(s[:4]), int(s[4:6]), int(s[6:8]), int(s[8:10]), int(s[10:12]))
    except ValueError:
        return None
    return f"{when:%Y-%m-%d}-{when.hour - when.hour % 4:02d}:00"


def export_time(folder_name: str) -> datetime:
    stamp = EXPORT_TIME.match(folder_name)["stamp"]  # type: ignore[index]
    return datetime.strptime(stamp, "%Y%m%d%H%M").replace(tzinfo=UTC)


def export_files(zone: DropZone, settings: PipelineSettings) -> dict[str, list[Entry]]:
    """Window → data files of every export folder of the push-token datasets."""
    root = settings.aep_dataset_export_folder
    datasets = settings.aep_push_token_dataset_ids or zone.list_folders(root)
    out: dict[str, list[Entry]] = {}
    for dataset_id in datasets:
        for folder in zone.list_folders(join(root, dataset_id)):
            pk = partition_for_export_time(folder)
            if pk is None:
                continue
            for entry in zone.list(join(root, dataset_id, folder)):
                if not is_temporary_name(entry.name) and DATA_FILE.search(entry.name):
                    out.setdefault(pk, []).append(entry)
    return {pk: sorted(entries) for pk, entries in sorted(out.items())}


def fingerprint(entries: list[Entry]) -> str:
    text = "\n".join(f"{e.path}@{e.identity}" for e in sorted(entries))
    return hashlib.sha256(text.encode()).hexdigest()


def plan_tick(
    by_window: dict[str, list[Entry]], cursor: str | None, now: datetime, settle_seconds: float
) -> tuple[list[RunRequest], str, list[str]]:
    """Run requests for windows whose file versions changed since they were last requested.

    A window with a file still being written (empty, or modified within `settle_seconds`)
    waits as a whole: a run must see the complete export. The cursor maps window → the
    fingerprint last requested, for the windows still present in the folder.
    """
    seen: dict[str, str] = json.loads(cursor) if cursor else {}
    requests: list[RunRequest] = []
    notes: list[str] = []
    new_cursor: dict[str, str] = {}
    for pk, entries in by_window.items():
        if pk in seen:
            new_cursor[pk] = seen[pk]
        unsettled = [
            e.name
            for e in entries
            if e.size == 0 or now.timestamp() - e.modified_ts < settle_seconds
        ]
        if unsettled:
            notes.append(f"{pk}: {len(unsettled)} file(s) still being written; waiting")
            continue
        fp = fingerprint(entries)
        if seen.get(pk) == fp:
            continue
        requests.append(
            RunRequest(
                run_key=f"{pk}@{fp[:16]}",
                partition_key=pk,
                tags={"rtcdp/aep_export_files": str(len(entries))},
            )
        )
        new_cursor[pk] = fp
    return requests, json.dumps(new_cursor, sort_keys=True), notes


# --------------------------------------------------------------------------------------------
# Records → typed rows and rejects
# --------------------------------------------------------------------------------------------
class _Unreadable(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _download(zone: DropZone, entry: Entry, tmp: Path) -> Path:
    """A local copy: Parquet needs random access, and Arrow reads local files fastest."""
    local = tmp / "export-file"
    with zone.open_read(entry.path) as src, local.open("wb") as dst:
        while chunk := src.read(4 << 20):
            dst.write(chunk)
    return local


def _records(local: Path, name: str) -> Iterator[tuple[int, Any, str | None]]:
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
        raise _Unreadable("corrupt_gzip", str(exc)[:300]) from exc


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
    candidate (values, reason empty) still has its token to be checked by `_settle`."""
    items = record.get("pushNotificationDetails")
    if not isinstance(items, list) or not items:
        yield None, "no_push_details", "pushNotificationDetails", json.dumps(record, default=str)
        return
    ecid = _ecid(record)
    for i, item in enumerate(items):
        column = f"pushNotificationDetails[{i}]"
        if not isinstance(item, dict):
            yield None, "no_push_details", column, _raw(item)
            continue
        app, token, platform = (_text(item.get(k)) for k in ("appID", "token", "platform"))
        missing = next(
            (k for k, v in (("appID", app), ("token", token), ("platform", platform)) if v is None),
            None,
        )
        if missing:
            yield None, "missing_required_value", f"{column}.{missing}", _raw(item)
            continue
        if platform not in push_tokens.PLATFORMS:
            yield None, "unknown_code:platform", f"{column}.platform", _raw(item)
            continue
        identity = item.get("identity") if isinstance(item.get("identity"), dict) else {}
        namespace = identity.get("namespace") if isinstance(identity.get("namespace"), dict) else {}
        denylisted = item.get("denylisted")
        # The token's format is checked for a whole chunk at once (`_settle`): compiling the
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


def _raw(item: Any) -> str:
    return json.dumps(item, default=str, sort_keys=True)


def _settle(
    pending: list[tuple[dict[str, Any], str, Any]], settings: PipelineSettings
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str, Any]]]:
    """Candidate rows → (typed rows with normalized tokens, rows with an invalid token)."""
    if not pending:
        return [], []
    tokens = pa.array([values["token"] for values, _, _ in pending], pa.string())
    platforms = pa.array([values["platform"] for values, _, _ in pending], pa.string())
    invalid = push_tokens.invalid_tokens(tokens, platforms, settings).to_pylist()
    normalized = push_tokens.normalized(tokens, platforms).to_pylist()
    good, bad = [], []
    for (values, column, raw), is_bad, token in zip(pending, invalid, normalized, strict=True):
        if is_bad:
            bad.append((values, column, raw))
        else:
            values["token"] = token
            good.append(values)
    return good, bad


# --------------------------------------------------------------------------------------------
# Arrow fast path: whole columns instead of one dict per record
# --------------------------------------------------------------------------------------------
def _arrow_table(local: Path, name: str) -> pa.Table | None:
    """The file as an Arrow table when Arrow can take it whole: any Parquet file (None when
    unreadable is decided by the caller), or a plain JSON-lines file whose every line is one
    object of consistent types, with no blank line (so row i is line i + 1). None → the
    per-record path, which also finds and names the malformed lines."""
    if name.endswith(".parquet"):
        return pq.read_table(local)
    if not name.endswith(".json"):
        return None
    lines, blank, previous = 0, False, b"\n"
    with local.open("rb") as fh:
        while chunk := fh.read(4 << 20):
            lines += chunk.count(b"\n")
            blank = blank or b"\n\n" in previous[-1:] + chunk
            previous = chunk
    if previous[-1:] != b"\n":
        lines += 1
    if blank:
        return None
    try:
        table = pajson.read_json(local)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == lines else None


def _text_array(values: pa.Array | None, n: int) -> pa.Array:
    """Trimmed text, null where missing or empty (as `_text` does for one value)."""
    if values is None or pa.types.is_struct(values.type) or pa.types.is_list(values.type):
        return pa.nulls(n, pa.string())
    text = pc.utf8_trim_whitespace(pc.cast(values, pa.string()))
    return pc.if_else(pc.equal(pc.utf8_length(text), 0), pa.scalar(None, pa.string()), text)


def _field(values: pa.Array | None, name: str) -> pa.Array | None:
    if values is None or not pa.types.is_struct(values.type):
        return None
    index = values.type.get_field_index(name)
    return None if index < 0 else pc.struct_field(values, [index])


def _first_ecids(table: pa.Table) -> pa.Array:
    """Per record: the first non-empty ECID of its identityMap (null when none)."""
    n = table.num_rows
    identity_map = (
        table.column("identityMap").combine_chunks()
        if "identityMap" in table.column_names
        else None
    )
    ecids = _field(identity_map, "ECID")
    if ecids is None or not pa.types.is_list(ecids.type):
        return pa.nulls(n, pa.string())
    ids = _text_array(_field(pc.list_flatten(ecids), "id"), len(pc.list_flatten(ecids)))
    parents = pc.list_parent_indices(ecids).to_numpy()
    present = np.asarray(pc.is_valid(ids).to_numpy(zero_copy_only=False), dtype=bool)
    rows, first = np.unique(parents[present], return_index=True)
    out = np.full(n, -1, dtype=np.int64)
    out[rows] = np.flatnonzero(present)[first]
    return pc.take(ids, pa.array(out, mask=out < 0))


def _arrow_split(
    table: pa.Table, settings: PipelineSettings
) -> tuple[pa.Table, list[tuple[int, str, str, str]]]:
    """Typed candidate rows (token not yet checked; `_LINE_NUMBER` set) and the rejects
    (record number, reason, column, raw) of one whole file, as `split_record` decides them."""
    n = table.num_rows
    rejects: list[tuple[int, str, str, str]] = []
    details = (
        table.column("pushNotificationDetails").combine_chunks()
        if "pushNotificationDetails" in table.column_names
        else None
    )
    if details is None or not pa.types.is_list(details.type):
        details = pa.nulls(n, pa.list_(pa.struct([])))
    lengths = pc.fill_null(pc.list_value_length(details), 0).to_numpy()
    for i in np.flatnonzero(lengths == 0).tolist():
        record = table.slice(i, 1).to_pylist()[0]
        rejects.append(
            (i + 1, "no_push_details", "pushNotificationDetails", json.dumps(record, default=str))
        )
    items = pc.list_flatten(details)
    parent = pc.list_parent_indices(details).to_numpy()
    offsets = details.offsets.to_numpy()
    position = np.arange(len(items)) - (offsets[parent] - offsets[0])
    m = len(items)
    if not pa.types.is_struct(items.type):
        for k in range(m):
            rejects.append(
                (
                    int(parent[k]) + 1,
                    "no_push_details",
                    f"pushNotificationDetails[{position[k]}]",
                    _raw(items[k].as_py()),
                )
            )
        return TYPED_SCHEMA.empty_table(), rejects
    app, token, platform = (
        _text_array(_field(items, k), m) for k in ("appID", "token", "platform")
    )
    known = pc.is_in(platform, value_set=pa.array(sorted(push_tokens.PLATFORMS)))
    checks = (
        (pc.is_null(app), "missing_required_value", ".appID"),
        (pc.is_null(token), "missing_required_value", ".token"),
        (pc.is_null(platform), "missing_required_value", ".platform"),
        (pc.invert(pc.fill_null(known, False)), "unknown_code:platform", ".platform"),
    )
    failed = np.zeros(m, dtype=bool)
    for mask, reason, suffix in checks:
        hit = (
            np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)
            & ~failed
        )
        for k in np.flatnonzero(hit).tolist():
            rejects.append(
                (
                    int(parent[k]) + 1,
                    reason,
                    f"pushNotificationDetails[{position[k]}]{suffix}",
                    _raw(items[k].as_py()),
                )
            )
        failed |= hit
    keep = pa.array(~failed)
    identity = _field(items, "identity")
    denylisted = _field(items, "denylisted")
    if denylisted is None or not pa.types.is_boolean(denylisted.type):
        denylisted = pa.nulls(m, pa.bool_())
    record_ids = _text_array(
        table.column("_id").combine_chunks() if "_id" in table.column_names else None, n
    )
    take = pa.array(parent)
    xid = _text_array(_field(identity, "xid"), m)
    candidates = pa.table(
        {
            "record_id": pc.take(record_ids, take),
            "ecid": pc.take(_first_ecids(table), take),
            "app_id": app,
            "token": token,
            "platform": platform,
            "denylisted": denylisted,
            "identity_namespace": _text_array(_field(_field(identity, "namespace"), "code"), m),
            "identity_id": pc.coalesce(xid, _text_array(_field(identity, "id"), m)),
            LINE_NUMBER: pa.array(parent + 1, pa.int64()),
            "_item": pa.array(position, pa.int64()),
        }
    ).filter(keep)
    return candidates, rejects


def _ingest_file(
    zone: DropZone,
    entry: Entry,
    tmpdir: Path,
    settings: PipelineSettings,
    good: ParquetSink,
    bad: ParquetSink,
) -> dict[str, Any]:
    """One export file into the sinks; its manifest entry (counts, reasons or quarantine)."""
    parts = entry.path.split("/")
    dataset_id, when = parts[-3], export_time(parts[-2])
    pending: list[tuple[dict[str, Any], str, Any]] = []
    rejects: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    rows_out = 0

    def reject(number: int, reason: str, column: str, raw: str | None) -> None:
        rejects.append(_reject(entry.path, number, reason, column, raw))
        reasons[reason] += 1

    def flush() -> int:
        rows, bad_tokens = _settle(pending, settings)
        for values, column, item in bad_tokens:
            reject(values[LINE_NUMBER], push_tokens.INVALID_PUSH_TOKEN, column, _raw(item))
        good.write(pa.Table.from_pylist(rows, schema=TYPED_SCHEMA))
        pending.clear()
        return len(rows)

    name = entry.name.lower()
    local = _download(zone, entry, tmpdir)
    try:
        table = _arrow_table(local, name)
    except (pa.ArrowInvalid, OSError) as exc:
        return _quarantined(entry, "corrupt_parquet", str(exc)[:300])
    if table is not None:
        candidates, early = _arrow_split(table, settings)
        for number, reason, column, raw in early:
            reject(number, reason, column, raw)
        invalid = push_tokens.invalid_tokens(
            candidates.column("token"), candidates.column("platform"), settings
        )
        for row in candidates.filter(invalid).to_pylist():
            raw = _raw({"appID": row["app_id"], "platform": row["platform"], "token": row["token"]})
            column = f"pushNotificationDetails[{row['_item']}].token"
            reject(row[LINE_NUMBER], push_tokens.INVALID_PUSH_TOKEN, column, raw)
        rows = candidates.filter(pc.invert(invalid))
        count = rows.num_rows
        rows = rows.set_column(
            rows.schema.get_field_index("token"),
            "token",
            push_tokens.normalized(rows.column("token"), rows.column("platform")),
        )
        rows = rows.append_column("dataset_id", pa.array([dataset_id] * count, pa.string()))
        rows = rows.append_column(
            "export_time", pa.array([when] * count, pa.timestamp("us", tz="UTC"))
        )
        rows = rows.append_column(SOURCE_FILE, pa.array([entry.path] * count, pa.string()))
        good.write(rows.select(TYPED_SCHEMA.names).cast(TYPED_SCHEMA))
        return _processed(entry, dataset_id, when, count, rejects, reasons, bad)
    try:
        for number, record, raw in _records(local, name):
            if record is None:
                reject(number, "invalid_json", "", raw)
                continue
            for values, reason, column, raw_item in split_record(record, settings):
                if values is None:
                    reject(number, reason, column, raw_item)
                    continue
                values.update(
                    dataset_id=dataset_id,
                    export_time=when,
                    **{SOURCE_FILE: entry.path, LINE_NUMBER: number},
                )
                pending.append((values, column, raw_item))
            if len(pending) >= FLUSH_ROWS:
                rows_out += flush()
    except _Unreadable as exc:
        return _quarantined(entry, exc.reason, exc.detail)
    rows_out += flush()
    return _processed(entry, dataset_id, when, rows_out, rejects, reasons, bad)


def _quarantined(entry: Entry, reason: str, detail: str) -> dict[str, Any]:
    return {
        "source_file": entry.path,
        "identity": entry.identity,
        "status": "quarantined",
        "reason": reason,
        "detail": detail,
        "rows_in": None,
        "rows_out": 0,
        "rows_rejected": 0,
    }


def _processed(
    entry: Entry,
    dataset_id: str,
    when: datetime,
    rows_out: int,
    rejects: list[dict[str, Any]],
    reasons: Counter[str],
    bad: ParquetSink,
) -> dict[str, Any]:
    # file order, whatever the check that caught a row
    rejects.sort(key=lambda r: (r["line_number"], r["column"] or ""))
    bad.write(pa.Table.from_pylist(rejects, schema=REJECT_SCHEMA))
    return {
        "source_file": entry.path,
        "identity": entry.identity,
        "status": "processed",
        "dataset_id": dataset_id,
        "export_time": when.isoformat(),
        "rows_in": rows_out + len(rejects),
        "rows_out": rows_out,
        "rows_rejected": len(rejects),
        "reasons": dict(sorted(reasons.items())),
    }


def ingest_window(
    zone: DropZone, warehouse: Warehouse, settings: PipelineSettings, pk: str
) -> dict[str, Any]:
    """Every export file of window `pk` → data.parquet, rejects.parquet, manifest.json."""
    entries = export_files(zone, settings).get(pk, [])
    if not entries:
        raise Failure(
            description=(
                f"No AEP dataset export for window {pk} under "
                f"'{settings.aep_dataset_export_folder}/<datasetId>/exportTime=YYYYMMDDHHMM/' "
                f"on {zone.describe()}."
            )
        )
    with tempfile.TemporaryDirectory(prefix="rtcdp-aep-push-") as tmp:
        tmpdir = Path(tmp)
        data_local, rejects_local = tmpdir / "data.parquet", tmpdir / "rejects.parquet"
        with (
            ParquetSink(data_local, TYPED_SCHEMA) as good,
            ParquetSink(rejects_local, REJECT_SCHEMA) as bad,
        ):
            files = [_ingest_file(zone, e, tmpdir, settings, good, bad) for e in entries]
        warehouse.put_file(DATASET, pk, "data.parquet", data_local)
        warehouse.put_file(DATASET, pk, "rejects.parquet", rejects_local)
    reasons_total: Counter[str] = Counter()
    for f in files:
        reasons_total.update(f.get("reasons") or {})
    manifest = {
        "dataset": DATASET,
        "partition": pk,
        "files": files,
        "rows_in": sum(f["rows_in"] or 0 for f in files),
        "rows_out": sum(f["rows_out"] for f in files),
        "rows_rejected": sum(f["rows_rejected"] for f in files),
        "reasons": dict(sorted(reasons_total.items())),
        "files_quarantined": sum(f["status"] == "quarantined" for f in files),
    }
    warehouse.put_json(DATASET, pk, "manifest.json", manifest)  # last: the partition is complete
    return manifest


def _reject(path: str, number: int, reason: str, column: str, raw: str | None) -> dict[str, Any]:
    return {
        "source_file": path,
        "line_number": number,
        "reason": reason,
        "column": column or None,
        "raw": raw,
    }


# --------------------------------------------------------------------------------------------
# Dagster objects
# --------------------------------------------------------------------------------------------
@asset(
    name=DATASET,
    partitions_def=four_hourly_partitions,
    group_name="mobile_push",
    kinds={"azure", "parquet"},
    description=(
        "Push tokens AEP received from the Experience Platform Mobile SDK, read from the AEP "
        "dataset export (<folder>/<datasetId>/exportTime=YYYYMMDDHHMM/, JSON or Parquet): one "
        "typed row per pushNotificationDetails item, malformed records quarantined with a reason."
    ),
    metadata={"dagster/column_schema": table_schema(TYPED_SCHEMA)},
)
def aep_push_tokens(
    context: AssetExecutionContext,
    aep_dataset_export: DropZone,
    warehouse: Warehouse,
    settings: PipelineSettings,
) -> MaterializeResult:
    pk = context.partition_key
    manifest = ingest_window(aep_dataset_export, warehouse, settings, pk)
    head = next(iter(warehouse.iter_batches(DATASET, pk, batch_size=5)), None)
    preview = (
        masked_preview(pa.Table.from_batches([head]), PERSONAL) if head is not None else "_no rows_"
    )
    platforms: dict[str, int] = {}
    for batch in warehouse.iter_batches(DATASET, pk):
        for item in pc.value_counts(batch.column("platform")).to_pylist():
            platforms[item["values"]] = platforms.get(item["values"], 0) + item["counts"]
    return MaterializeResult(
        metadata={
            "dagster/row_count": manifest["rows_out"],
            "rows_in": manifest["rows_in"],
            "rows_rejected": manifest["rows_rejected"],
            "files": len(manifest["files"]),
            "files_quarantined": manifest["files_quarantined"],
            "rejects_by_reason": MetadataValue.json(manifest["reasons"]),
            "tokens_by_platform": MetadataValue.json(dict(sorted(platforms.items()))),
            "preview": MetadataValue.md(preview),
            "warehouse_path": warehouse.path(DATASET, pk, "data.parquet"),
            "rejects_path": warehouse.path(DATASET, pk, "rejects.parquet"),
        }
    )


_reconciliation_spec = _spec(
    "reconciliation",
    aep_push_tokens.key,
    "Per export file: push items and records in = typed rows + quarantined rows, and every "
    "file could be read. Blocks use of an incomplete partition.",
    blocking=True,
    source="project: nothing lost, counts reconcile",
    limit="rows in = rows out + rows rejected",
)


@multi_asset_check(specs=[_reconciliation_spec], name="aep_push_tokens_checks")
def aep_push_tokens_checks(
    context: AssetCheckExecutionContext, warehouse: Warehouse
) -> Iterator[AssetCheckResult]:
    # The same recount as the Campaign datasets': per file, stored rows against the manifest.
    yield reconcile(DATASET, warehouse, context.partition_key)


duplicate_registration_check = build_duplicate_registration_check(aep_push_tokens)

aep_push_tokens_job = define_asset_job(
    "aep_push_tokens_job",
    selection=AssetSelection.assets(aep_push_tokens).without_checks()
    | AssetSelection.checks(aep_push_tokens_checks, duplicate_registration_check),
    executor_def=in_process_executor,
    description="Read one window of the AEP push-token dataset export, check it.",
)


@sensor(
    name="aep_push_tokens_sensor",
    job=aep_push_tokens_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Watches the AEP dataset export folders (<folder>/<datasetId>/exportTime=…/) of the "
        "push-token datasets and requests one run per 4-hour window whose files changed."
    ),
)
def aep_push_tokens_sensor(
    context: SensorEvaluationContext, aep_dataset_export: DropZone, settings: PipelineSettings
) -> SensorResult | SkipReason:
    try:
        by_window = export_files(aep_dataset_export, settings)
    except DropZoneUnavailable as exc:
        return SkipReason(f"AEP dataset export zone unavailable, will retry: {exc}")
    requests, cursor, notes = plan_tick(
        by_window, context.cursor, datetime.now(UTC), settings.file_settle_seconds
    )
    for note in notes:
        context.log.info(note)
    if not requests:
        return SensorResult(
            skip_reason=SkipReason("; ".join(notes) or "no new AEP push-token exports"),
            cursor=cursor,
        )
    return SensorResult(run_requests=requests, cursor=cursor)
