"""One 4-hour window of AEP push-token exports → data.parquet, rejects.parquet, manifest.json."""

import tempfile
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from dagster import Failure

from resources.drop_zones import DropZone, Entry
from resources.settings import PipelineSettings
from resources.warehouse import ParquetSink, Warehouse
from rtcdp_assets.mobile_push.export_windows import export_files, export_time
from rtcdp_assets.mobile_push.push_token_columns import arrow_split, arrow_table
from rtcdp_assets.mobile_push.push_token_records import (
    DATASET,
    LINE_NUMBER,
    TYPED_SCHEMA,
    UnreadableExport,
    json_records,
    raw_json,
    settle_tokens,
    split_record,
)
from rtcdp_assets.shared import push_token_formats
from rtcdp_assets.shared.ingest import REJECT_SCHEMA, SOURCE_FILE

FLUSH_ROWS = 50_000


def _download(zone: DropZone, entry: Entry, tmp: Path) -> Path:
    """A local copy: Parquet needs random access, and Arrow reads local files fastest."""
    local = tmp / "export-file"
    with zone.open_read(entry.path) as src, local.open("wb") as dst:
        while chunk := src.read(4 << 20):
            dst.write(chunk)
    return local


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
        rows, bad_tokens = settle_tokens(pending, settings)
        for values, column, item in bad_tokens:
            reject(
                values[LINE_NUMBER], push_token_formats.INVALID_PUSH_TOKEN, column, raw_json(item)
            )
        good.write(pa.Table.from_pylist(rows, schema=TYPED_SCHEMA))
        pending.clear()
        return len(rows)

    name = entry.name.lower()
    local = _download(zone, entry, tmpdir)
    try:
        table = arrow_table(local, name)
    except (pa.ArrowInvalid, OSError) as exc:
        return _quarantined(entry, "corrupt_parquet", str(exc)[:300])
    if table is not None:
        candidates, early = arrow_split(table, settings)
        for number, reason, column, raw in early:
            reject(number, reason, column, raw)
        invalid = push_token_formats.invalid_tokens(
            candidates.column("token"), candidates.column("platform"), settings
        )
        for row in candidates.filter(invalid).to_pylist():
            raw = raw_json(
                {"appID": row["app_id"], "platform": row["platform"], "token": row["token"]}
            )
            column = f"pushNotificationDetails[{row['_item']}].token"
            reject(row[LINE_NUMBER], push_token_formats.INVALID_PUSH_TOKEN, column, raw)
        rows = candidates.filter(pc.invert(invalid))
        count = rows.num_rows
        rows = rows.set_column(
            rows.schema.get_field_index("token"),
            "token",
            push_token_formats.normalized(rows.column("token"), rows.column("platform")),
        )
        rows = rows.append_column("dataset_id", pa.array([dataset_id] * count, pa.string()))
        rows = rows.append_column(
            "export_time", pa.array([when] * count, pa.timestamp("us", tz="UTC"))
        )
        rows = rows.append_column(SOURCE_FILE, pa.array([entry.path] * count, pa.string()))
        good.write(rows.select(TYPED_SCHEMA.names).cast(TYPED_SCHEMA))
        return _processed(entry, dataset_id, when, count, rejects, reasons, bad)
    try:
        for number, record, raw in json_records(local, name):
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
    except UnreadableExport as exc:
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
