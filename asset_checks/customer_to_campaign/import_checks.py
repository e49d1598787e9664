"""`import_reconciliation` on `profile_import` and `personalization_import`.

Recounts what is stored and uploaded for the last imported snapshot: the staged file, the
stored quarantine and the file on the Campaign SFTP server agree with the manifest.
"""

import hashlib
import json
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetsDefinition,
    MetadataValue,
    asset_check,
)

from asset_checks.check_descriptions import count, listing, plural
from resources.drop_zones import DropZone, join
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.customer_to_campaign.customer_datasets import (
    PERSONALIZATION,
    PROFILES,
    CustomerDataset,
)
from rtcdp_assets.customer_to_campaign.customer_imports import (
    personalization_import,
    profile_import,
)
from rtcdp_assets.customer_to_campaign.snapshot_import import latest_manifest


def _snapshot_of_last_materialization(context: AssetCheckExecutionContext, key: Any) -> str | None:
    event = context.instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("snapshot_id")
    return None if value is None else str(value.value)


def import_file_result(
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    settings: PipelineSettings,
    dataset: CustomerDataset,
    snapshot_id: str | None,
) -> AssetCheckResult:
    """Recount what is stored and uploaded: staged file, quarantine and SFTP file agree."""
    if snapshot_id is None:
        return AssetCheckResult(
            passed=True,
            description="No snapshot imported yet: nothing to recount.",
            metadata={"note": "no snapshot imported yet"},
        )
    manifest = latest_manifest(warehouse, dataset.asset_name, snapshot_id)
    if manifest is None:
        return AssetCheckResult(
            passed=False,
            description=f"The manifest of snapshot {snapshot_id} is missing.",
            metadata={"problem": "manifest missing"},
        )
    problems = []
    name = manifest["file"]["name"]
    target = join(settings.campaign_import_folder, name)
    if campaign_sftp.stat(target) is None or campaign_sftp.stat(f"{target}.done") is None:
        problems.append(f"{target} or its .done marker is missing on the SFTP server")
    else:
        uploaded = campaign_sftp.read_bytes(target)
        if hashlib.sha256(uploaded).hexdigest() != manifest["file"]["sha256"]:
            problems.append(f"{target} differs from the staged file")
        # Records, not lines: csv_bytes quotes values that hold line breaks.
        rows = pacsv.read_csv(
            pa.BufferReader(uploaded),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in manifest["columns"]}
            ),
        ).num_rows
        marker = json.loads(campaign_sftp.read_bytes(f"{target}.done"))
        if not rows == marker["rows"] == manifest["file"]["rows"]:
            problems.append(f"rows: file {rows}, marker {marker['rows']}")
    quarantined = warehouse.row_count(dataset.asset_name, snapshot_id, "quarantine.parquet") or 0
    rec = manifest["reconciliation"]
    if rec["rows_in"] != manifest["file"]["rows"] + quarantined:
        problems.append(
            f"rows in {rec['rows_in']} != imported {manifest['file']['rows']} + "
            f"quarantined {quarantined}"
        )
    line = (
        f"{count(rec['rows_in'])} rows in, {count(manifest['file']['rows'])} imported + "
        f"{count(quarantined)} quarantined"
    )
    if problems:
        line += f"; {plural(len(problems), 'problem')}: {listing(problems)}"
    return AssetCheckResult(
        passed=not problems,
        description=line,
        metadata={
            "snapshot_id": snapshot_id,
            "rows_in": rec["rows_in"],
            "imported": manifest["file"]["rows"],
            "quarantined": quarantined,
            "problems": MetadataValue.json(problems),
        },
    )


def _build_check(dataset: CustomerDataset, asset_def: AssetsDefinition) -> Any:
    @asset_check(
        asset=asset_def,
        name="import_reconciliation",
        blocking=False,
        description="Rows in = imported + quarantined, recounted from the stored quarantine; "
        "the uploaded file and its .done marker match the staged file.",
        metadata={"guardrail/source": "project: counts reconcile", "guardrail/limit": "0"},
    )
    def customer_import_reconciliation(
        context: AssetCheckExecutionContext,
        warehouse: Warehouse,
        campaign_sftp: DropZone,
        settings: PipelineSettings,
    ) -> AssetCheckResult:
        snapshot_id = _snapshot_of_last_materialization(context, asset_def.key)
        return import_file_result(warehouse, campaign_sftp, settings, dataset, snapshot_id)

    return customer_import_reconciliation


profile_import_checks = _build_check(PROFILES, profile_import)
personalization_import_checks = _build_check(PERSONALIZATION, personalization_import)

customer_import_checks = [profile_import_checks, personalization_import_checks]
