"""`<dataset>_published`: the publish step, XDM records in AEP's landing container as XDM Parquet
(the default) or JSON Lines (`aep_publication_format`, docs/formats.md §h3), written only after
the blocking checks pass.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions (context and resource parameters) at definition time.
"""

import hashlib
import json
import tempfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import AssetExecutionContext, AssetsDefinition, Failure, MaterializeResult, asset

from resources.drop_zones import DropZone, Entry, join
from resources.file_ledger import FileLedger, FileVersion
from resources.settings import PipelineSettings
from resources.warehouse import ParquetSink, Warehouse, parquet_batches
from rtcdp_assets.campaign_to_aep.export_flow.description import (
    PUBLICATION_EXTENSIONS,
    CampaignExportDescription,
)
from rtcdp_assets.shared.late_suppression import ledger_reason, note_metadata
from rtcdp_assets.shared.partitions import four_hourly_partitions
from rtcdp_assets.shared.xdm_json import json_lines
from rtcdp_assets.shared.xdm_parquet import (
    aep_parquet_batch,
    parquet_type_problems,
)

BATCH_ROWS = 65536
ENCODING_THREADS = 2
ENCODING_AHEAD = 2


def build_published_asset(flow: CampaignExportDescription) -> AssetsDefinition:

    @asset(
        name=flow.published_name,
        partitions_def=four_hourly_partitions,
        group_name="campaign_to_aep",
        kinds={"azure", "parquet", "json"},
        # The typed asset too: its blocking checks (reconciliation above all) must pass
        # before anything is published, and they gate only direct dependents.
        deps=[flow.xdm_key, flow.typed_key],
        description=(
            f"{flow.dataset} XDM records in the AEP landing container, read by AEP's cloud-storage "
            "source: XDM Parquet by default, JSON Lines when `aep_publication_format` says so. "
            "Written only after the blocking checks pass."
        ),
    )
    def published_asset(
        context: AssetExecutionContext,
        warehouse: Warehouse,
        aep_landing: DropZone,
        settings: PipelineSettings,
        file_ledger: FileLedger,
    ) -> MaterializeResult:
        pk = context.partition_key
        form = settings.aep_publication_format
        data_path, manifest_path = flow.landing_paths(settings, pk)
        with tempfile.TemporaryDirectory(prefix="rtcdp-pub-") as tmp:
            local = Path(tmp) / f"data{PUBLICATION_EXTENSIONS[form]}"
            if form == "parquet":
                rows = write_parquet(flow, warehouse, pk, local)
            else:
                rows = write_json_lines(flow, warehouse, pk, local)
            digest = file_sha256(local)
            metadata: dict[str, Any] = {
                "dagster/row_count": rows,
                "landing_path": data_path,
                "landing_zone": aep_landing.describe(),
                "sha256": digest,
                "format": form,
                # Why a late quarantine or opt-out made this run publish the partition again.
                **note_metadata(context.run.tags),
            }
            published = already_published(aep_landing, data_path, manifest_path, digest)
            if published is not None:
                # AEP ingests every new or rewritten file: sending the same records again
                # would duplicate them, so an identical re-run leaves the landing alone.
                context.log.info(f"{data_path} already holds these {rows} records")
                retire_other_forms(aep_landing, settings, flow, pk, context)
                return MaterializeResult(
                    metadata={**metadata, "bytes": published.size, "already_published": True}
                )
            entry = aep_landing.write_atomic(data_path, local)
        manifest = {
            "dataset": flow.dataset,
            "partition": pk,
            "xdm_class": flow.xdm_class,
            "xdm_field_groups": list(flow.xdm_field_groups),
            "file": data_path.rsplit("/", 1)[-1],
            "format": form,
            "records": rows,
            "bytes": entry.size,
            "sha256": digest,
            "data_identity": entry.identity,
        }
        # The manifest goes last: its presence says the data file is complete.
        aep_landing.write_bytes(
            manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode()
        )
        retire_other_forms(aep_landing, settings, flow, pk, context)
        why = ledger_reason(context.run.tags)
        if why is not None:
            record_republication(file_ledger, aep_landing, flow, entry, context, rows, digest, why)
        return MaterializeResult(
            metadata={**metadata, "bytes": entry.size, "already_published": False}
        )

    return published_asset


def record_republication(
    ledger: FileLedger,
    zone: DropZone,
    flow: CampaignExportDescription,
    entry: Entry,
    context: AssetExecutionContext,
    rows: int,
    digest: str,
    reason: str,
) -> None:
    """The rewritten landing file in the file ledger, with why it was written again (AEP
    ingests it again: the ledger says it was on purpose)."""
    folder, name = entry.path.rsplit("/", 1) if "/" in entry.path else ("", entry.path)
    ledger.record(
        FileVersion(zone.describe(), folder, name, entry.identity),
        entry,
        dataset=flow.published_name,
        status="processed",
        location=entry.path,
        in_folder=True,
        partition=context.partition_key,
        run_id=context.run.run_id,
        sha256=digest,
        rows=rows,
        reason=reason,
    )


# -- the two forms ----------------------------------------------------------------------


def write_parquet(flow: CampaignExportDescription, warehouse: Warehouse, pk: str, out: Path) -> int:
    """The stored XDM partition as AEP's XDM Parquet at `out` (docs/formats.md §h3): only the
    columns whose Parquet type differs are rebuilt, the file is written by the warehouse's
    writer (same settings every run, no time in its metadata), so a re-run gives the same
    bytes. Returns the record count."""
    schema = flow.xdm_schema()
    # A local zone's file is read in place, not copied first (`Warehouse.parquet_source`).
    with warehouse.parquet_source(flow.xdm_dataset, pk, "data.parquet") as stored:
        source = pq.ParquetFile(stored) if stored is not None else None
        stored_schema = source.schema_arrow if source is not None else pa.schema([])
        # The published schema, from the stored one (also for a partition without rows).
        empty = pa.RecordBatch.from_arrays(
            [pa.array([], f.type) for f in stored_schema], schema=stored_schema
        )
        arrow_schema = aep_parquet_batch(empty, schema).schema
        problems = parquet_type_problems(arrow_schema, schema)
        if problems:
            # AEP would refuse the file: fail the run instead (field paths, no values).
            raise Failure(
                f"{flow.dataset}: the XDM Parquet does not fit the dataset's schema",
                metadata={"problems": "\n".join(problems[:20])},
            )
        with ParquetSink(out, arrow_schema, statistics=False) as sink:
            if source is not None:
                for batch in parquet_batches(stored, batch_size=BATCH_ROWS):
                    sink.write(aep_parquet_batch(batch, schema))
                    del batch
                    # Give back what the pool keeps of each converted batch: the step's
                    # peak stays near a few batches' working set (5 M rows: see bench/).
                    pa.default_memory_pool().release_unused()
        return sink.rows


def write_json_lines(
    flow: CampaignExportDescription, warehouse: Warehouse, pk: str, out: Path
) -> int:
    """The stored XDM partition as JSON Lines at `out`, batch by batch; returns the count.

    Arrow's kernels release the GIL, so two batches are encoded at once on two threads (1.8x
    on 2 cores); the lines are written in the batches' order, so the bytes are the same as
    one thread's, and at most `ENCODING_AHEAD` batches are held at a time."""
    rows = 0
    with out.open("wb") as sink, ThreadPoolExecutor(ENCODING_THREADS) as pool:
        pending: deque[Future[bytes]] = deque()
        for batch in warehouse.iter_batches(flow.xdm_dataset, pk, batch_size=BATCH_ROWS):
            pending.append(pool.submit(json_lines, batch))
            rows += batch.num_rows
            if len(pending) > ENCODING_AHEAD:
                sink.write(pending.popleft().result())
        while pending:
            sink.write(pending.popleft().result())
    return rows


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while chunk := src.read(4 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- ingestion -------------------------------------------------------------------------


def already_published(
    zone: DropZone, data_path: str, manifest_path: str, digest: str
) -> Entry | None:
    """The landed data file if it holds exactly these bytes (per its manifest), else None."""
    if zone.stat(manifest_path) is None:
        return None
    data = zone.stat(data_path)
    if data is None:
        return None
    try:
        manifest = json.loads(zone.read_bytes(manifest_path))
    except ValueError:
        return None
    # The identity ties the manifest to the very data file it was written for: a later run
    # that replaced the data file and died before its manifest does not count.
    same = (
        manifest.get("sha256") == digest
        and manifest.get("data_identity") == data.identity
        and manifest.get("file") == data.name
    )
    return data if same else None


def retire_other_forms(
    zone: DropZone,
    settings: PipelineSettings,
    flow: CampaignExportDescription,
    pk: str,
    context: AssetExecutionContext,
) -> None:
    """Move the partition's data file of the other form, if any, out of the dataset's landing
    folder (to `<aep_landing_folder>/_superseded/...`, kept, never deleted): after a switch of
    `aep_publication_format`, the landing holds one data file per partition, so no dataflow
    reads the same records in both forms (docs/formats.md §h3)."""
    for form in PUBLICATION_EXTENSIONS:
        if form == settings.aep_publication_format:
            continue
        other, _ = flow.landing_paths(settings, pk, form)
        entry = zone.stat(other)
        if entry is None:
            continue
        target = join(flow.superseded_folder(settings, pk), f"{entry.name}@{entry.identity}")
        zone.move(other, target)
        context.log.info(f"moved the {form} file of this partition to {target}")
