"""The `campaign_audience_import` asset (the staged, checked import) and
`campaign_audience_import_published` (its upload to the Campaign SFTP server).

With `audience_settings.campaign_import_review_first`, the upload waits for the approved
`activation_dry_run` of the export (run tag or approval file, destinations/dry_run.py): nothing
is written, the reason is an observation (`waiting`, `waiting_for_review`, `dry_run_id`), and
`destination_export_sensor` asks for the publication again once the approval file appears.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions at definition time.
"""

from collections.abc import Iterator

from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    MaterializeResult,
    MetadataValue,
    asset,
)

from resources.audience_settings import AudienceSettings
from resources.drop_zones import DropZone
from resources.file_ledger import FileLedger
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import (
    GROUP,
    SEGMENT_EXPORTS,
    audience_partitions,
)
from rtcdp_assets.aep_to_campaign.audience_exports.export_records import export_stamp_for_run
from rtcdp_assets.aep_to_campaign.audience_exports.membership import audience_membership
from rtcdp_assets.aep_to_campaign.campaign_audience_import.import_build import build_import
from rtcdp_assets.aep_to_campaign.campaign_audience_import.import_file import (
    CAMPAIGN_IMPORT,
    PERSONAL_COLUMNS,
    PUBLISHED,
)
from rtcdp_assets.aep_to_campaign.campaign_audience_import.upload import publish_import
from rtcdp_assets.aep_to_campaign.dry_run_approval import (
    ACTIVATION_DRY_RUN,
    APPROVAL_FILE,
    CAMPAIGN_DESTINATION,
    approval,
    dry_run_id,
)
from rtcdp_assets.shared.campaign_sftp_storage import UploadGuard
from rtcdp_assets.shared.late_suppression import note_metadata
from rtcdp_assets.shared.masking import masked_preview


@asset(
    name=CAMPAIGN_IMPORT,
    partitions_def=audience_partitions,
    group_name=GROUP,
    kinds={"parquet", "csv"},
    deps=[
        audience_membership,
        # Written only after the dry run said who the import adds, removes and excludes.
        AssetKey("activation_dry_run"),
        # Every audience is matched against all Campaign recipients, whatever window brought them.
        AssetDep(AssetKey("profiles"), partition_mapping=AllPartitionMapping()),
        AssetKey("suppression_list"),
    ],
    description=(
        "Audience members joined to Campaign profiles, as the staged Campaign import file; "
        "members without a Campaign profile are quarantined (`not_in_campaign`), suppressed "
        "addresses excluded with their reason. Checked before it is uploaded."
    ),
)
def campaign_audience_import(
    context: AssetExecutionContext, warehouse: Warehouse, audience_settings: AudienceSettings
) -> MaterializeResult:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    manifest = build_import(
        warehouse,
        audience_settings,
        context.instance.get_materialized_partitions(AssetKey("profiles")),
        audience_id,
        stamp,
    )
    quarantine = warehouse.read_table(
        CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", "quarantine.parquet"
    )
    return MaterializeResult(
        metadata={
            "dagster/row_count": manifest["rows"],
            "export_id": manifest["export_id"],
            "files": MetadataValue.json(manifest["files"]),
            "rows_by_status": MetadataValue.json(manifest["rows_by_status"]),
            "excluded_by_reason": MetadataValue.json(manifest["excluded"]),
            "quarantined_by_reason": MetadataValue.json(manifest["quarantined"]),
            "reconciliation": MetadataValue.json(manifest["reconciliation"]),
            "quarantine_preview": MetadataValue.md(masked_preview(quarantine, PERSONAL_COLUMNS)),
            "warehouse_path": warehouse.path(CAMPAIGN_IMPORT, audience_id, stamp),
            # Built again because a suppression arrived before Campaign took the import.
            **note_metadata(context.run.tags),
        }
    )


@asset(
    name=PUBLISHED,
    partitions_def=audience_partitions,
    group_name=GROUP,
    kinds={"sftp", "csv"},
    deps=[campaign_audience_import],
    # Nothing is materialized while a review_first import waits for its approved dry run.
    output_required=False,
    description=(
        "The checked Campaign import file(s) of the export, uploaded atomically to the Campaign "
        "SFTP import folder, each followed by its `.done` completion marker. With "
        "`campaign_import_review_first`, waits (nothing written, the reason observed) for the "
        "approved activation_dry_run."
    ),
    pool="campaign_sftp",
)
def campaign_audience_import_published(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    settings: PipelineSettings,
    file_ledger: FileLedger,
    audience_settings: AudienceSettings,
) -> Iterator[MaterializeResult | AssetObservation]:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    review = audience_settings.campaign_import_review_first
    approved = approval(warehouse, context.run.tags, audience_id, stamp) if review else None
    review_metadata = {
        "dry_run_id": dry_run_id(audience_id, stamp),
        "dry_run_approved_by": approved or "",
    }
    if review and not approved:
        reason = (
            "Campaign import not published (campaign_import_review_first): the dry run "
            f"{dry_run_id(audience_id, stamp)} is not approved; tag a run "
            "rtcdp/approved_dry_run=<dry-run id> or write "
            f"{warehouse.path(ACTIVATION_DRY_RUN, f'{audience_id}/{stamp}', APPROVAL_FILE)}."
        )
        context.log.warning(reason)
        yield AssetObservation(
            asset_key=context.asset_key,
            partition=audience_id,
            metadata={
                "waiting": reason,
                "export_stamp": stamp,
                "waiting_for_review": MetadataValue.json([CAMPAIGN_DESTINATION]),
                **review_metadata,
            },
        )
        return
    # Refuses the upload while the Campaign SFTP is at its storage limit (recorded, resumed).
    guard = UploadGuard(
        campaign_sftp, settings, file_ledger, PUBLISHED, audience_id, context.run.run_id
    )
    published = publish_import(warehouse, campaign_sftp, settings, audience_id, stamp, guard)
    yield MaterializeResult(
        metadata={
            "dagster/row_count": sum(p["rows"] for p in published),
            "import_files": MetadataValue.json(published),
            "campaign_sftp": campaign_sftp.describe(),
            "segment_exports_record": f"{SEGMENT_EXPORTS}/{audience_id}/{stamp}/export.json",
            "export_stamp": stamp,
            "waiting_for_review": MetadataValue.json([]),
            **review_metadata,
        }
    )
