"""`<dataset>_published`: the publish step, XDM records as JSON Lines in AEP's landing
container, written only after the blocking checks pass.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions (context and resource parameters) at definition time.
"""

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, asset

from resources.drop_zones import DropZone, Entry
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.campaign_to_aep.export_flow.description import CampaignExportDescription
from rtcdp_assets.shared import xdm
from rtcdp_assets.shared.partitions import four_hourly_partitions


def build_published_asset(flow: CampaignExportDescription) -> AssetsDefinition:

    @asset(
        name=flow.published_name,
        partitions_def=four_hourly_partitions,
        group_name="campaign_to_aep",
        kinds={"azure", "json"},
        # The typed asset too: its blocking checks (reconciliation above all) must pass
        # before anything is published, and they gate only direct dependents.
        deps=[flow.xdm_key, flow.typed_key],
        description=(
            f"{flow.dataset} XDM records as JSON Lines in the AEP landing container, read by "
            "AEP's Azure Blob source connector. Written only after the blocking checks pass."
        ),
    )
    def published_asset(
        context: AssetExecutionContext,
        warehouse: Warehouse,
        aep_landing: DropZone,
        settings: PipelineSettings,
    ) -> MaterializeResult:
        pk = context.partition_key
        data_path, manifest_path = flow.landing_paths(settings, pk)
        digest = hashlib.sha256()
        rows = 0
        with tempfile.TemporaryDirectory(prefix="rtcdp-pub-") as tmp:
            local = Path(tmp) / "data.json"
            with local.open("wb") as out:
                for batch in warehouse.iter_batches(flow.xdm_dataset, pk):
                    chunk = "".join(xdm.dumps(r) + "\n" for r in xdm.to_records(batch)).encode()
                    digest.update(chunk)
                    out.write(chunk)
                    rows += batch.num_rows
            published = already_published(aep_landing, data_path, manifest_path, digest)
            if published is not None:
                # AEP ingests every new or rewritten file: sending the same records again
                # would duplicate them, so an identical re-run leaves the landing alone.
                context.log.info(f"{data_path} already holds these {rows} records")
                return MaterializeResult(
                    metadata={
                        "dagster/row_count": rows,
                        "landing_path": data_path,
                        "landing_zone": aep_landing.describe(),
                        "sha256": digest.hexdigest(),
                        "bytes": published.size,
                        "already_published": True,
                    }
                )
            entry = aep_landing.write_atomic(data_path, local)
        manifest = {
            "dataset": flow.dataset,
            "partition": pk,
            "xdm_class": flow.xdm_class,
            "xdm_field_groups": list(flow.xdm_field_groups),
            "file": data_path.rsplit("/", 1)[-1],
            "format": "json-lines",
            "records": rows,
            "bytes": entry.size,
            "sha256": digest.hexdigest(),
            "data_identity": entry.identity,
        }
        # The manifest goes last: its presence says the data file is complete.
        aep_landing.write_bytes(
            manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode()
        )
        return MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "landing_path": data_path,
                "landing_zone": aep_landing.describe(),
                "sha256": manifest["sha256"],
                "bytes": entry.size,
                "already_published": False,
            }
        )

    return published_asset


# -- ingestion -------------------------------------------------------------------------


def already_published(
    zone: DropZone, data_path: str, manifest_path: str, digest: Any
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
        manifest.get("sha256") == digest.hexdigest()
        and manifest.get("data_identity") == data.identity
    )
    return data if same else None
