"""One snapshot end to end: reconcile the counts, stage in the warehouse, upload to Campaign.

The manifest is written last (the commit point); the upload checks the staged bytes against
it, and the data-usage policies gate it.
"""

import hashlib
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import Failure, MetadataValue

from resources.drop_zones import DropZone, Entry, join
from resources.file_ledger import FileLedger, FileVersion
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.customer_to_campaign.customer_datasets import CustomerDataset
from rtcdp_assets.customer_to_campaign.snapshot_reading import (
    Processed,
    Snapshot,
    process_files,
    settled_files,
)
from rtcdp_assets.shared import governance
from rtcdp_assets.shared.campaign_import_files import csv_bytes, upload_verified
from rtcdp_assets.shared.campaign_sftp_storage import UploadGuard
from rtcdp_assets.shared.file_completion import CompletionRule
from rtcdp_assets.shared.ingest import SOURCE_FILE


def _counts(table: pa.Table, column: str) -> dict[str, int]:
    if table.num_rows == 0:
        return {}
    pairs = pc.value_counts(table.column(column)).to_pylist()
    return {p["values"]: p["counts"] for p in sorted(pairs, key=lambda p: p["values"])}


def reconcile(processed: Processed) -> dict[str, Any]:
    """Per file and in total: rows in = imported + quarantined."""
    imported = _counts(processed.good, SOURCE_FILE)
    quarantined = _counts(processed.rejects, "source_file")
    per_file = {}
    for f in processed.files:
        name = f["source_file"]
        rows_in = int(f.get("rows_in", 0))
        per_file[name] = {
            "rows_in": rows_in,
            "imported": imported.get(name, 0),
            "quarantined": quarantined.get(name, 0),
            "balanced": "unreadable" not in f
            and rows_in == imported.get(name, 0) + quarantined.get(name, 0),
        }
    rows_in = sum(v["rows_in"] for v in per_file.values())
    return {
        "rows_in": rows_in,
        "imported": processed.good.num_rows,
        "quarantined": processed.rejects.num_rows,
        "quarantined_by_reason": _counts(processed.rejects, "reason"),
        "unreadable_files": dict(sorted(processed.unreadable.items())),
        "files": per_file,
        "balanced": rows_in == processed.good.num_rows + processed.rejects.num_rows
        and all(v["balanced"] for v in per_file.values()),
    }


def stage(
    warehouse: Warehouse, snapshot: Snapshot, processed: Processed, tmp: Path
) -> dict[str, Any]:
    """Staged import file + quarantine in the warehouse, then the manifest (the commit point)."""
    dataset = snapshot.dataset
    folder = snapshot.snapshot_id
    name = dataset.file_name(folder)
    data = csv_bytes(processed.good.select(list(dataset.columns)), dataset.columns)
    local = tmp / name
    local.write_bytes(data)
    warehouse.put_file(dataset.asset_name, folder, name, local)
    quarantine = tmp / "quarantine.parquet"
    pq.write_table(processed.rejects, quarantine, compression="zstd")
    warehouse.put_file(dataset.asset_name, folder, "quarantine.parquet", quarantine)
    reconciliation = reconcile(processed)
    manifest = {
        "dataset": dataset.dataset,
        "snapshot_id": folder,
        "columns": list(dataset.columns),
        "file": {
            "name": name,
            "rows": processed.good.num_rows,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
        "source_files": processed.files,
        "reconciliation": reconciliation,
        "status": "staged" if reconciliation["balanced"] else "blocked",
    }
    warehouse.put_json(dataset.asset_name, folder, "manifest.json", manifest)
    return manifest


def upload_staged(
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    settings: PipelineSettings,
    asset_name: str,
    manifest: dict[str, Any],
    guard: UploadGuard | None = None,
) -> Entry:
    """Verify the staged bytes against the manifest, upload atomically, then the marker."""
    f = manifest["file"]
    marker = {
        "file": f["name"],
        "rows": f["rows"],
        "bytes": f["bytes"],
        "sha256": f["sha256"],
        "part": 1,
        "parts": 1,
        "dataset": manifest["dataset"],
        "snapshot_id": manifest["snapshot_id"],
        "source_files": sorted(s["source_file"] for s in manifest["source_files"]),
        "columns": manifest["columns"],
    }
    return upload_verified(
        warehouse,
        campaign_sftp,
        (asset_name, manifest["snapshot_id"], f["name"]),
        join(settings.campaign_import_folder, f["name"]),
        f["sha256"],
        marker,
        guard,
    )


def run_import(
    dataset: CustomerDataset,
    customer_source: DropZone,
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    settings: PipelineSettings,
    now: float | None = None,
    log: Callable[[str], None] = lambda _: None,
    ledger: FileLedger | None = None,
    run_id: str | None = None,
) -> dict[str, Any] | None:
    """One snapshot end to end; None when the source folder holds no file to read."""
    files, notes = settled_files(
        customer_source,
        dataset.folder,
        CompletionRule.customer_source(settings),
        now if now is not None else datetime.now(UTC).timestamp(),
    )
    for note in notes:
        log(note)
    if not files:
        return None
    snapshot = Snapshot(dataset, files)
    with tempfile.TemporaryDirectory(prefix="rtcdp-customer-") as tmp:
        processed = process_files(customer_source, snapshot, settings, Path(tmp))
        manifest = stage(warehouse, snapshot, processed, Path(tmp))
    if ledger is not None:
        _record_in_ledger(ledger, customer_source, snapshot, processed, manifest, run_id)
    if manifest["status"] != "staged":
        rec = manifest["reconciliation"]
        raise Failure(
            description=f"{dataset.asset_name} snapshot {snapshot.snapshot_id} is not uploaded: "
            f"unreadable files {rec['unreadable_files']}, counts balanced: {rec['balanced']}. "
            "Fix or remove the files in the customer source folder.",
            metadata={"reconciliation": MetadataValue.json(rec)},
        )
    # Data-usage policies gate the upload: the file never reaches Campaign when a policy denies
    # exporting one of its fields for the destination's marketing actions.
    violations = governance.load().evaluate(dataset.asset_name, manifest["columns"])
    if violations:
        raise Failure(
            description=f"{dataset.asset_name} snapshot {snapshot.snapshot_id} is not uploaded: "
            + "; ".join(v.explain() for v in violations),
            metadata={"violations": MetadataValue.json([v.explain() for v in violations])},
        )
    # Refused while the Campaign SFTP is at its storage limit (recorded in the ledger, resumed).
    guard = UploadGuard(campaign_sftp, settings, ledger, dataset.asset_name, None, run_id)
    upload_staged(warehouse, campaign_sftp, settings, dataset.asset_name, manifest, guard)
    return manifest


def _record_in_ledger(
    ledger: FileLedger,
    zone: DropZone,
    snapshot: Snapshot,
    processed: Processed,
    manifest: dict[str, Any],
    run_id: str | None,
) -> None:
    """The customer's files stay in their folder (a snapshot is re-read until replaced)."""
    per_file = manifest["reconciliation"]["files"]
    zone_id = zone.describe()
    for entry in snapshot.files:
        unreadable = processed.unreadable.get(entry.name)
        ledger.record(
            FileVersion(zone_id, snapshot.dataset.folder, entry.name, entry.identity),
            entry,
            dataset=snapshot.dataset.asset_name,
            status="quarantined" if unreadable else "processed",
            location=entry.path,
            in_folder=True,
            partition=snapshot.snapshot_id,
            run_id=run_id,
            reason=unreadable,
            sha256=snapshot.digests.get(entry.name),
            rows=None if unreadable else per_file.get(entry.name, {}).get("rows_in"),
        )


def latest_manifest(warehouse: Warehouse, asset_name: str, snapshot_id: str) -> dict | None:
    return warehouse.get_json(asset_name, snapshot_id, "manifest.json")
