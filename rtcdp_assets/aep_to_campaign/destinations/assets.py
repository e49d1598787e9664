"""The `destination_exports` and `destination_exports_published` assets, and their job built
around the checks it is given.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions at definition time.
"""

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetChecksDefinition,
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    AssetSelection,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
    in_process_executor,
)

from resources.audience_settings import AudienceSettings
from resources.drop_zones import DropZone, join
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import GROUP, audience_partitions
from rtcdp_assets.aep_to_campaign.audience_exports.export_records import export_stamp_for_run
from rtcdp_assets.aep_to_campaign.destinations.dry_run import (
    ACTIVATION_DRY_RUN,
    APPROVAL_FILE,
    CAMPAIGN_DESTINATION,
    MEMBER_SOURCE_DEPS,
    approval,
    dry_run_id,
    review_first_destinations,
)
from rtcdp_assets.aep_to_campaign.destinations.staged_files import (
    DESTINATION_EXPORTS,
    LANDING_FOLDER,
    PUBLISHED,
    build_destination_exports,
    read_destination_manifest,
)
from rtcdp_assets.aep_to_campaign.destinations.suppression_freshness import (
    suppression_freshness,
)
from rtcdp_assets.shared.campaign_import_files import upload_verified
from rtcdp_assets.shared.late_suppression import note_metadata


@asset(
    name=DESTINATION_EXPORTS,
    partitions_def=audience_partitions,
    group_name=GROUP,
    kinds={"parquet", "csv"},
    # Written only after the dry run said who each destination gains, loses or excludes.
    deps=[*MEMBER_SOURCE_DEPS, AssetKey(ACTIVATION_DRY_RUN)],
    description=(
        "The audience's current members as one CSV per activation destination (email, sms, "
        "social_ads), each holding exactly its identity contract's columns. Suppressed "
        "addresses and members without the destination's consent are excluded with their "
        "reason; rows that cannot meet the contract are rejected with a reason. Checked before "
        "it is published."
    ),
)
def destination_exports(
    context: AssetExecutionContext, warehouse: Warehouse, audience_settings: AudienceSettings
) -> MaterializeResult:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    manifest = build_destination_exports(
        warehouse,
        audience_settings,
        context.instance.get_materialized_partitions(AssetKey("profiles")),
        context.instance.get_materialized_partitions(AssetKey("preferences")),
        audience_id,
        stamp,
    )
    return MaterializeResult(
        metadata={
            "dagster/row_count": sum(f["rows"] for f in manifest["files"]),
            "export_stamp": stamp,
            "members": manifest["members"],
            "files": MetadataValue.json(manifest["files"]),
            "counts": MetadataValue.json(manifest["counts"]),
            # Counts only: who was excluded stays in the warehouse (excluded.parquet).
            "excluded_by_reason": MetadataValue.json(manifest["excluded_by_reason"]),
            # Counts only: the changes themselves are hashes in ownership.parquet.
            "ownership": MetadataValue.json(manifest["ownership"]),
            "warehouse_path": warehouse.path(DESTINATION_EXPORTS, audience_id, stamp),
            # Built again because a suppression arrived after the files were written.
            **note_metadata(context.run.tags),
        }
    )


def publish_destination_exports(
    warehouse: Warehouse,
    aep_landing: DropZone,
    audience_id: str,
    stamp: str,
    held: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Upload the staged files of the export but those of the `held` destinations."""
    manifest = read_destination_manifest(warehouse, audience_id, stamp)
    published = []
    for f in manifest["files"]:
        if f["destination"] in held:
            continue
        target = join(LANDING_FOLDER, f["destination"], audience_id, stamp, f["name"])
        marker = {
            "file": f["name"],
            "destination": f["destination"],
            "rows": f["rows"],
            "bytes": f["bytes"],
            "sha256": f["sha256"],
            "columns": f["columns"],
            "namespaces": f["namespaces"],
            "audience_id": audience_id,
            "export_stamp": stamp,
        }
        entry = upload_verified(
            warehouse,
            aep_landing,
            (DESTINATION_EXPORTS, f"{audience_id}/{stamp}", f["name"]),
            target,
            f["sha256"],
            marker,
        )
        published.append({"path": target, "rows": f["rows"], "bytes": entry.size})
    return published


@asset(
    name=PUBLISHED,
    partitions_def=audience_partitions,
    group_name=GROUP,
    kinds={"azure", "csv"},
    deps=[destination_exports],
    # Nothing is materialized while the suppression list is stale: publication waits.
    output_required=False,
    description=(
        "The checked destination files of the export, written atomically to the AEP landing "
        "zone under destinations/<destination>/<audience>/<stamp>/, each followed by `.done`. "
        "Skipped, with the reason, while the suppression list is older than the newest "
        "non_deliverables or preferences partition; a `review_first` destination's file waits "
        "for the approved activation_dry_run."
    ),
)
def destination_exports_published(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    aep_landing: DropZone,
    audience_settings: AudienceSettings,
) -> Iterator[MaterializeResult | AssetObservation]:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    freshness = suppression_freshness(context.instance)
    if freshness.stale:
        reason = f"Not published: {freshness.reason()}; re-run destination_exports then."
        context.log.warning(reason)
        yield AssetObservation(
            asset_key=context.asset_key,
            partition=audience_id,
            metadata={
                "waiting": reason,
                "export_stamp": stamp,
                **freshness.metadata(time.time()),
            },
        )
        return
    # The Campaign import waits in its own publication (campaign_audience_import_published).
    review = [d for d in review_first_destinations(audience_settings) if d != CAMPAIGN_DESTINATION]
    approved = approval(warehouse, context.run.tags, audience_id, stamp) if review else None
    held = [] if approved else review
    review_metadata = {
        "dry_run_id": dry_run_id(audience_id, stamp),
        "waiting_for_review": MetadataValue.json(held),
        "dry_run_approved_by": approved or "",
    }
    if held:
        reason = (
            f"Not published to {', '.join(held)} (review_first): the dry run "
            f"{dry_run_id(audience_id, stamp)} is not approved; tag a run "
            "rtcdp/approved_dry_run=<dry-run id> or write "
            f"{warehouse.path(ACTIVATION_DRY_RUN, f'{audience_id}/{stamp}', APPROVAL_FILE)}."
        )
        context.log.warning(reason)
        yield AssetObservation(
            asset_key=context.asset_key,
            partition=audience_id,
            metadata={"waiting": reason, "export_stamp": stamp, **review_metadata},
        )
    manifest = read_destination_manifest(warehouse, audience_id, stamp)
    if all(f["destination"] in held for f in manifest["files"]):
        return
    published = publish_destination_exports(warehouse, aep_landing, audience_id, stamp, held)
    yield MaterializeResult(
        metadata={
            "dagster/row_count": sum(p["rows"] for p in published),
            "files": MetadataValue.json(published),
            "aep_landing": aep_landing.describe(),
            "export_stamp": stamp,
            **review_metadata,
            **freshness.metadata(time.time()),
        }
    )


@dataclass
class DestinationDefinitions:
    assets: list[AssetsDefinition]
    asset_checks: list[AssetChecksDefinition]
    jobs: list[Any]  # unresolved asset jobs


def build_destination_definitions(
    checks: Sequence[AssetChecksDefinition],
) -> DestinationDefinitions:
    """The two assets, the checks passed in (asset_checks/aep_to_campaign) and their job."""
    assets = [destination_exports, destination_exports_published]
    job = define_asset_job(
        "destination_export_job",
        selection=AssetSelection.assets(*assets).without_checks() | AssetSelection.checks(*checks),
        executor_def=in_process_executor,
        description="Build, check and publish the destination files of one audience export "
        "(the export named in the run tags, else the latest processed one).",
    )
    return DestinationDefinitions(assets=assets, asset_checks=list(checks), jobs=[job])
