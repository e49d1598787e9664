"""Offline data to AEP: every mapping file of ``mappings/`` made a dataset, like the Campaign
→ AEP datasets (campaign_to_aep/export_flow), on daily partitions::

    offline_data_sensor ──▶ <dataset> + <dataset>_xdm ──▶ <dataset>_published
    (customer_source        accepted rows + rejects,      XDM Parquet (or JSON Lines) and
     <folder>/, ledger)     XDM records (one op)          a manifest in the aep_landing zone

The sensor and the file ledger (offline_sensor.py): each complete file version is a ledger row;
a failed run's day comes back after the back-off under a new run key.

Daily, not 4-hour, partitions: a customer's order, loyalty or CRM extract is an end-of-day
batch named by its day (``orders_20261123.csv``); 4-hour windows would add five empty
partitions a day and cut a day's file by a time it does not carry.

The checks (asset_checks/customer_to_aep) run in the same job: ``reconciliation`` (the shared
recount of the Campaign datasets) and ``xdm_conformance`` on the stored records, both blocking,
so nothing is published from a partition whose counts do not add up.

No ``from __future__ import annotations``: Dagster reads the decorated functions' annotations.
"""

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    DailyPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
    in_process_executor,
    multi_asset,
)

from resources.drop_zones import DropZone
from resources.file_ledger import FileLedger
from resources.settings import PipelineSettings, partitions_start
from resources.warehouse import Warehouse
from rtcdp_assets.customer_to_aep.offline_ingest import OfflineDataset, ingest_offline_partition
from rtcdp_assets.customer_to_aep.offline_mapping import CLASSES, FIELD_GROUPS, load_mapping
from rtcdp_assets.customer_to_aep.offline_sensor import build_offline_sensor, tagged_versions
from rtcdp_assets.shared.check_outcome_tags import tag_failed_checks
from rtcdp_assets.shared.file_completion import CompletionRule
from rtcdp_assets.shared.xdm_json import json_lines
from rtcdp_assets.shared.xdm_parquet import aep_parquet_batch, parquet_type_problems

GROUP = "customer_to_aep"
MAPPINGS_FOLDER = Path(__file__).resolve().parent / "mappings"
EXTENSIONS = {"parquet": ".parquet", "json-lines": ".json"}

# The first day is the day of the first 4-hour window (RTCDP_PARTITIONS_START).
daily_partitions = DailyPartitionsDefinition(
    start_date=partitions_start()[:10], timezone="UTC", end_offset=1
)


def offline_datasets(folder: Path = MAPPINGS_FOLDER) -> list[OfflineDataset]:
    """One dataset per ``*.yaml`` mapping; a mapping that does not fit the official XDM
    schemas stops the code location from loading (MappingError names column and path)."""
    return [OfflineDataset(load_mapping(path)) for path in sorted(folder.glob("*.yaml"))]


def build_ingest_asset(ds: OfflineDataset) -> AssetsDefinition:
    groups = [*ds.mapping.field_groups, "identity_map"]
    xdm_class = CLASSES[ds.mapping.record].rsplit("/", 1)[-1]

    @multi_asset(
        name=f"{ds.dataset}_ingest",
        partitions_def=daily_partitions,
        specs=[
            AssetSpec(
                ds.dataset,
                group_name=GROUP,
                kinds={"parquet"},
                description=(
                    f"Rows of the customer's {ds.dataset} files (customer_source "
                    f"{ds.folder}/, CSV or Parquet) accepted by the mapping {ds.mapping.source}; "
                    "the others in rejects.parquet with a reason."
                ),
            ),
            AssetSpec(
                ds.xdm_dataset,
                group_name=GROUP,
                kinds={"parquet"},
                deps=[ds.dataset],
                description=(
                    f"{ds.dataset} as XDM {xdm_class} records ({', '.join(groups)}), valid "
                    "against the official schemas."
                ),
            ),
        ],
    )
    def ingest(
        context: AssetExecutionContext,
        customer_source: DropZone,
        warehouse: Warehouse,
        settings: PipelineSettings,
        file_ledger: FileLedger,
    ) -> Any:
        pk = context.partition_key
        manifest = ingest_offline_partition(
            ds.for_settings(settings),
            customer_source,
            warehouse,
            CompletionRule.customer_source(settings),
            pk,
            ledger=file_ledger,
            run_id=context.run.run_id,
            requested=tagged_versions(context.run.tags),
        )
        for note in manifest["notes"]:
            context.log.info(note)
        common = {
            "rows_read": manifest["rows_read"],
            "rows_quarantined": manifest["rows_quarantined"],
            "rejects_by_reason": MetadataValue.json(manifest["reasons"]),
            "files": MetadataValue.json(
                [{k: f[k] for k in ("source_file", "status", "reason")} for f in manifest["files"]]
            ),
        }
        yield MaterializeResult(
            asset_key=ds.dataset,
            metadata={"dagster/row_count": manifest["rows_mapped"], **common},
        )
        yield MaterializeResult(
            asset_key=ds.xdm_dataset, metadata={"dagster/row_count": manifest["records"]}
        )

    return ingest


def build_published_asset(ds: OfflineDataset) -> AssetsDefinition:
    @asset(
        name=ds.published_name,
        partitions_def=daily_partitions,
        group_name=GROUP,
        kinds={"azure", "parquet", "json"},
        deps=[AssetKey(ds.xdm_dataset), AssetKey(ds.dataset)],
        description=(
            f"{ds.dataset} XDM records in the AEP landing container, as the Campaign datasets "
            "are published: XDM Parquet by default, JSON Lines when `aep_publication_format` "
            "says so, then a manifest. Written only after the blocking checks pass; an "
            "identical re-run leaves the landing alone."
        ),
    )
    def published(
        context: AssetExecutionContext,
        warehouse: Warehouse,
        aep_landing: DropZone,
        settings: PipelineSettings,
    ) -> MaterializeResult:
        return publish_offline_partition(
            ds, warehouse, aep_landing, settings, context.partition_key, context.log
        )

    return published


def publish_offline_partition(
    ds: OfflineDataset,
    warehouse: Warehouse,
    aep_landing: DropZone,
    settings: PipelineSettings,
    pk: str,
    log: Any = None,
) -> MaterializeResult:
    form = settings.aep_publication_format
    data_path, manifest_path = ds.landing_paths(settings.aep_landing_folder, pk, EXTENSIONS[form])
    stored = warehouse.read_table(ds.xdm_dataset, pk)
    with tempfile.TemporaryDirectory(prefix="rtcdp-offline-pub-") as tmp:
        local = Path(tmp) / f"data{EXTENSIONS[form]}"
        if form == "parquet":
            schema = ds.mapping.xdm_schema()
            table = (
                pa.Table.from_batches([aep_parquet_batch(b, schema) for b in stored.to_batches()])
                if stored.num_rows
                else stored
            )
            problems = parquet_type_problems(table.schema, schema)
            if problems:  # AEP would refuse the file: field paths only, no values
                raise Failure(
                    f"{ds.dataset}: the XDM Parquet does not fit the dataset's schema",
                    metadata={"problems": "\n".join(problems[:20])},
                )
            pq.write_table(table, local, compression="zstd", write_statistics=False)
        else:
            local.write_bytes(json_lines(stored) if stored.num_rows else b"")
        data = local.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    metadata: dict[str, Any] = {
        "dagster/row_count": stored.num_rows,
        "landing_path": data_path,
        "landing_zone": aep_landing.describe(),
        "sha256": digest,
        "format": form,
    }
    if _already_published(aep_landing, manifest_path, data_path, digest):
        if log is not None:
            log.info(f"{data_path} already holds these {stored.num_rows} records")
        return MaterializeResult(metadata={**metadata, "already_published": True})
    entry = aep_landing.write_bytes(data_path, data)
    manifest = {
        "dataset": ds.dataset,
        "partition": pk,
        "xdm_class": CLASSES[ds.mapping.record],
        "xdm_field_groups": [FIELD_GROUPS[g] for g in ds.mapping.field_groups],
        "file": data_path.rsplit("/", 1)[-1],
        "format": form,
        "records": stored.num_rows,
        "bytes": entry.size,
        "sha256": digest,
        "data_identity": entry.identity,
    }
    # The manifest goes last: its presence says the data file is complete.
    aep_landing.write_bytes(manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode())
    return MaterializeResult(metadata={**metadata, "already_published": False})


def _already_published(zone: DropZone, manifest_path: str, data_path: str, digest: str) -> bool:
    """AEP ingests every new or rewritten file: the same records are not sent twice."""
    data = zone.stat(data_path)
    if data is None or zone.stat(manifest_path) is None:
        return False
    try:
        manifest = json.loads(zone.read_bytes(manifest_path))
    except ValueError:
        return False
    return manifest.get("sha256") == digest and manifest.get("data_identity") == data.identity


@dataclass
class OfflineDefinitions:
    datasets: list[OfflineDataset]
    assets: list[AssetsDefinition]
    jobs: list[Any]
    sensors: list[Any]


def build_offline_defs(datasets: list[OfflineDataset]) -> OfflineDefinitions:
    assets: list[AssetsDefinition] = []
    jobs = []
    for ds in datasets:
        ingest, published = build_ingest_asset(ds), build_published_asset(ds)
        assets += [ingest, published]
        jobs.append(
            define_asset_job(
                f"{ds.dataset}_job",
                selection=AssetSelection.assets(ingest, published),
                executor_def=in_process_executor,
                description=f"Ingest, map, check and publish one day of {ds.dataset}.",
                hooks={tag_failed_checks},
            )
        )

    sensors = [build_offline_sensor(datasets, jobs)] if jobs else []
    return OfflineDefinitions(datasets, assets, jobs, sensors)


# Built when the code location loads: a mapping that does not fit XDM stops the load.
offline_data_defs = build_offline_defs(offline_datasets())
