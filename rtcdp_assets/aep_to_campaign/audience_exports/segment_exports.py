"""The `segment_exports` asset: typed rows of one AEP audience export, with rejects and a
quarantine for unreadable exports, and the file ledger entries of its files.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions at definition time.
"""

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from resources.audience_settings import AudienceSettings
from resources.drop_zones import DropZone
from resources.file_ledger import FileLedger, FileVersion
from resources.settings import PipelineSettings
from resources.warehouse import ParquetSink, Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.completeness import (
    AudienceExport,
    assess_export,
    group_listing,
    load_manifests,
)
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import (
    GROUP,
    SEGMENT_EXPORTS,
    TAG_AUDIENCE,
    TAG_DESTINATION,
    TAG_EXPORT_FILES,
    TAG_EXPORT_TIME,
    audience_partitions,
)
from rtcdp_assets.aep_to_campaign.audience_exports.export_records import (
    latest_stamp,
    read_export_record,
    read_index,
)
from rtcdp_assets.aep_to_campaign.audience_exports.file_reader import (
    audience_format,
    read_export_file,
)
from rtcdp_assets.aep_to_campaign.audience_exports.join_identities import (
    choose_join_identity,
    normalise_phone,
)
from rtcdp_assets.shared.ingest import (
    LINE_NUMBER,
    REJECT_SCHEMA,
    SOURCE_FILE,
    ExportFormat,
    FileResult,
    IngestedBatch,
    UnreadableFile,
)
from rtcdp_assets.shared.masking import mask_text, masked_preview
from rtcdp_assets.shared.row_json import raw_json


@dataclass(frozen=True)
class Resolution:
    """What a run of `segment_exports` works on: an export as listed now, or why not."""

    export: AudienceExport | None
    reason: str = ""
    files_gone: bool = False  # the tagged export is no longer in the container


def resolve_export(
    zone: DropZone,
    warehouse: Warehouse,
    audience_settings: AudienceSettings,
    settings: PipelineSettings,
    audience_id: str,
    tags: Mapping[str, str],
    now: float,
) -> Resolution:
    """The export named in the run tags; without tags (a run started by hand or a backfill),
    the next export not processed yet for an incremental destination (they must be applied in
    order), else the latest complete one."""
    listing = group_listing(zone.list(audience_settings.destination_folder))
    mine = [x for x in listing.exports.values() if x.audience_id == audience_id]
    manifests = load_manifests(listing.manifests, lambda e: zone.read_bytes(e.path))
    if tags.get(TAG_AUDIENCE) == audience_id and tags.get(TAG_EXPORT_TIME):
        wanted = [
            x
            for x in mine
            if x.stamp == tags[TAG_EXPORT_TIME]
            and x.destination == tags.get(TAG_DESTINATION, x.destination)
        ]
        if not wanted:
            return Resolution(None, f"its files are no longer in {zone.describe()}", True)
        export = wanted[0]
        requested = json.loads(tags.get(TAG_EXPORT_FILES, "[]"))
        if requested and requested != export.file_identities():
            return Resolution(
                None,
                "AEP rewrote the export since the run was requested (the files or ETags "
                "differ); the sensor requests a run for the new version",
            )
        # Settling was judged when the run was requested.
        options = audience_settings.destination(export.destination)
        reason = assess_export(export, options, manifests, now, 0)
        return Resolution(export if reason is None else None, f"incomplete: {reason}")
    complete: list[AudienceExport] = []
    reasons = []
    for export in sorted(mine, key=lambda x: x.exported_at):
        options = audience_settings.destination(export.destination)
        reason = assess_export(export, options, manifests, now, settings.file_settle_seconds)
        if reason is None:
            complete.append(export)
        else:
            reasons.append(f"{export.export_id}: {reason}")
    if not complete:
        return Resolution(None, "no complete export: " + ("; ".join(reasons) or "none found"))
    done = read_index(warehouse, SEGMENT_EXPORTS, audience_id)["exports"]
    latest = complete[-1]
    if audience_settings.destination(latest.destination).export_mode == "incremental":
        newer = [
            x
            for x in complete
            if x.stamp not in done and x.stamp > (latest_stamp(done, "processed") or "")
        ]
        if newer:
            return Resolution(newer[0])
    return Resolution(latest)


def ingest_export(
    zone: DropZone,
    warehouse: Warehouse,
    audience_settings: AudienceSettings,
    settings: PipelineSettings,
    export: AudienceExport,
    log: Any = None,
) -> dict[str, Any]:
    """Read every part of one export into the warehouse; return its record (export.json)."""
    options = audience_settings.destination(export.destination)
    # Stored without a required identity: which one is required is known from the header.
    fmt = audience_format(export.audience_id, options, None)
    chosen: list[str] = []  # the export's join identity, from its first readable header

    def format_for(header: list[str]) -> ExportFormat:
        if not header:
            return fmt  # an empty file: `ingest_file` says so
        if not chosen:
            chosen.append(choose_join_identity(header, options, audience_settings.join_identities))
        return audience_format(export.audience_id, options, chosen[0])

    files: list[dict[str, Any]] = []
    header: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rtcdp-aep-") as tmp:
        tmpdir = Path(tmp)
        data_local, rejects_local = tmpdir / "data.parquet", tmpdir / "rejects.parquet"
        with (
            ParquetSink(data_local, fmt.typed_schema) as good,
            ParquetSink(rejects_local, REJECT_SCHEMA) as bad,
        ):
            for parsed, entry in export.files:
                result = FileResult(source_file=parsed.name, layout="")
                info: dict[str, Any] = {
                    "name": parsed.name,
                    "etag": entry.identity,
                    "size": entry.size,
                    "part": parsed.part,
                    "stamp_form": parsed.stamp_form,
                }
                file_header: list[str] | None = None
                try:
                    for batch, seen in read_export_file(
                        zone, parsed, entry, format_for, options, settings, result, tmpdir
                    ):
                        file_header = seen
                        if chosen == ["phone"]:
                            batch = reject_invalid_phones(batch, result)
                        good.write(batch.good)
                        bad.write(batch.rejects)
                except UnreadableFile as exc:
                    info |= {
                        "status": "quarantined",
                        "reason": exc.reason,
                        "detail": mask_text(exc.detail),
                        "rows_in": None,
                        "rows_out": 0,
                        "rows_rejected": 0,
                    }
                    if log:
                        log.warning(f"{parsed.name} quarantined: {exc.reason}: {info['detail']}")
                    files.append(info)
                    continue
                if file_header and not header:
                    header = file_header
                files.append({**info, "status": "processed", **result.as_dict()})
            rows_out, rows_rejected = good.rows, bad.rows
        # AEP fills every part but the last to the split size; anything else means a part is
        # missing or was cut short, and a partial export must never be applied.
        for f in files[:-1]:
            if f["status"] == "processed" and f["rows_in"] != options.rows_per_file:
                f |= {
                    "status": "quarantined",
                    "reason": "inconsistent_split",
                    "detail": f"part {f['part']} holds {f['rows_in']} rows, not the "
                    f"{options.rows_per_file} AEP writes before starting the next part",
                }
        warehouse.put_file(
            SEGMENT_EXPORTS, f"{export.audience_id}/{export.stamp}", "data.parquet", data_local
        )
        warehouse.put_file(
            SEGMENT_EXPORTS,
            f"{export.audience_id}/{export.stamp}",
            "rejects.parquet",
            rejects_local,
        )
    reasons: dict[str, int] = {}
    for f in files:
        for reason, n in (f.get("reasons") or {}).items():
            reasons[reason] = reasons.get(reason, 0) + n
    quarantined = [f for f in files if f["status"] == "quarantined"]
    why = {
        f["name"]: f"{f['reason']}: {f['detail']}" if f.get("detail") else f["reason"]
        for f in quarantined
    }
    record = {
        "export_id": export.export_id,
        "audience_id": export.audience_id,
        "destination": export.destination,
        "stamp": export.stamp,
        "export_time": export.exported_at.isoformat().replace("+00:00", "Z"),
        "mode": options.export_mode,
        "destination_kind": options.kind,
        "identity": export.identity,
        "manifest": export.manifest.name if export.manifest else None,
        "files": files,
        "columns": header,
        "status": "quarantined" if quarantined else "processed",
        "quarantine_reasons": sorted(f"{name}: {text}" for name, text in why.items()),
        "join_identity": chosen[0] if chosen else None,
        "rows_in": sum(f["rows_in"] or 0 for f in files),
        "rows_out": rows_out,
        "rows_rejected": rows_rejected,
        "reasons": dict(sorted(reasons.items())),
    }
    warehouse.put_json(
        SEGMENT_EXPORTS, f"{export.audience_id}/{export.stamp}", "export.json", record
    )
    index = read_index(warehouse, SEGMENT_EXPORTS, export.audience_id)
    index["exports"][export.stamp] = {
        k: record[k]
        for k in (
            "status",
            "destination",
            "destination_kind",
            "export_time",
            "mode",
            "identity",
            "rows_in",
            "rows_out",
            "rows_rejected",
            "join_identity",
        )
    } | {"columns": len(header)}
    index["latest"] = latest_stamp(index["exports"], "processed")
    index["last_processed"] = export.stamp
    # Written last: the index is what says the export is in the warehouse.
    warehouse.put_json(SEGMENT_EXPORTS, export.audience_id, "manifest.json", index)
    return record


def reject_invalid_phones(batch: IngestedBatch, result: FileResult) -> IngestedBatch:
    """Rows joined by phone whose number is not E.164 (after removing separators and reading
    `00` as `+`) become rejects `invalid_phone`: they could match no Campaign recipient."""
    good = batch.good
    _, valid = normalise_phone(good.column("phone"))
    n_bad = len(valid) - pc.sum(valid.cast(pa.int64())).as_py()
    if not n_bad:
        return batch
    bad_rows = good.filter(pc.invert(valid))
    rejects = pa.RecordBatch.from_arrays(
        [
            bad_rows.column(SOURCE_FILE),
            bad_rows.column(LINE_NUMBER),
            pa.array(["invalid_phone"] * n_bad, pa.string()),
            pa.array(["phone"] * n_bad, pa.string()),
            raw_json(bad_rows, [f.name for f in bad_rows.schema if not f.name.startswith("_")]),
        ],
        schema=REJECT_SCHEMA,
    )
    result.rows_out -= n_bad
    result.rows_rejected += n_bad
    result.reasons["invalid_phone"] += n_bad
    return IngestedBatch(
        good=good.filter(valid),
        rejects=pa.concat_batches([batch.rejects, rejects]) if batch.rejects.num_rows else rejects,
    )


def _export_metadata(record: dict[str, Any], warehouse: Warehouse) -> dict[str, Any]:
    aud, stamp = record["audience_id"], record["stamp"]
    rows = [
        f"| {f['name']} | {f['status']} | {f.get('rows_in')} | {f.get('rows_out', 0)} | "
        f"{f.get('rows_rejected', 0)} | {f.get('reason', '')} |"
        for f in record["files"]
    ]
    files_md = "\n".join(
        [
            "| file | status | rows in | rows out | rejected | reason |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    table = warehouse.read_table(SEGMENT_EXPORTS, f"{aud}/{stamp}", "data.parquet")
    return {
        "dagster/row_count": record["rows_out"],
        "export_id": record["export_id"],
        "export_time": record["export_time"],
        "export_status": record["status"],
        "export_mode": record["mode"],
        "join_identity": record.get("join_identity") or "",
        "rows_in": record["rows_in"],
        "rows_rejected": record["rows_rejected"],
        "rejects_by_reason": MetadataValue.json(record["reasons"]),
        "quarantine_reasons": MetadataValue.json(record["quarantine_reasons"]),
        "columns": MetadataValue.json(record["columns"]),
        "source_files": MetadataValue.md(files_md),
        "preview": MetadataValue.md(masked_preview(table, {"email", "external_id", "phone"})),
        "warehouse_path": warehouse.path(SEGMENT_EXPORTS, f"{aud}/{stamp}", "data.parquet"),
    }


@asset(
    name=SEGMENT_EXPORTS,
    partitions_def=audience_partitions,
    group_name=GROUP,
    kinds={"azure", "parquet"},
    description=(
        "Typed rows of one AEP audience export (all its split files), with rejects and a "
        "quarantine for unreadable exports. One partition per audience; each run processes one "
        "export, named in the run tags (or the latest complete one)."
    ),
)
def segment_exports(
    context: AssetExecutionContext,
    aep_destination: DropZone,
    warehouse: Warehouse,
    audience_settings: AudienceSettings,
    settings: PipelineSettings,
    file_ledger: FileLedger,
) -> MaterializeResult:
    audience_id = context.partition_key
    tags = context.run.tags
    resolution = resolve_export(
        aep_destination,
        warehouse,
        audience_settings,
        settings,
        audience_id,
        tags,
        datetime.now(UTC).timestamp(),
    )
    export = resolution.export
    if export is None:
        stamp = tags.get(TAG_EXPORT_TIME, "")
        processed = read_index(warehouse, SEGMENT_EXPORTS, audience_id)["exports"].get(stamp)
        if resolution.files_gone and processed:
            # AEP's retention removed the files; the warehouse holds the rows they gave.
            record = read_export_record(warehouse, audience_id, stamp)
            stored = [{k: f[k] for k in ("name", "etag", "size")} for f in record["files"]]
            if stored == json.loads(tags.get(TAG_EXPORT_FILES, "[]")):
                context.log.info(
                    f"{resolution.reason}; keeping the rows stored for {record['export_id']}"
                )
                return MaterializeResult(metadata=_export_metadata(record, warehouse))
        raise Failure(
            description=f"Audience {audience_id}: cannot process the export: {resolution.reason}."
        )
    record = ingest_export(
        aep_destination, warehouse, audience_settings, settings, export, log=context.log
    )
    record_in_ledger(file_ledger, aep_destination, export, record, context.run.run_id)
    return MaterializeResult(metadata=_export_metadata(record, warehouse))


def record_in_ledger(
    ledger: FileLedger, zone: DropZone, export: AudienceExport, record: dict[str, Any], run_id: str
) -> None:
    """Each part of the export in the file ledger. AEP's files stay where AEP wrote them (its
    retention removes them), so the location is the file itself."""
    outcome = {f["name"]: f for f in record["files"]}
    zone_id = zone.describe()
    for parsed, entry in export.files:
        f = outcome[parsed.name]
        folder = entry.path.rsplit("/", 1)[0] if "/" in entry.path else ""
        ledger.record(
            FileVersion(zone_id, folder, parsed.name, entry.identity),
            entry,
            dataset=SEGMENT_EXPORTS,
            status="processed" if f["status"] == "processed" else "quarantined",
            location=entry.path,
            in_folder=True,
            partition=f"{export.audience_id}/{export.stamp}",
            run_id=run_id,
            rows=f.get("rows_in"),
            reason=f.get("reason"),
        )
