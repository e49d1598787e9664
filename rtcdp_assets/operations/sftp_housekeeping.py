"""`campaign_sftp_housekeeping`: the platform keeps its part of the Campaign contract's SFTP
storage (docs/formats.md §f6), every hour.

One run applies the retention of rtcdp_assets/operations/sftp_retention.py (archived exports
past `archive_retention_days` whose partition is stored and checksummed; import files Campaign
consumed or that outlived `campaign_import_max_age_days`), records each deletion in the file
ledger, then measures what is left against `campaign_sftp_quota_bytes`
(shared/campaign_sftp_storage.py). Its checks (asset_checks/operations/sftp_checks.py) WARN at
80 % of the quota and fail with ERROR at 95 %, when uploads are refused.

Why an asset on its own hourly schedule: deletions are the one irreversible thing the platform
does, so each pass is a materialization people can read (what went, what was held and why) with
its checks beside it; it needs no partition (it acts on whatever is due), and an hour keeps
consumed import files and the storage reading fresh without listing the server every tick of a
sensor. The ledger snapshot (`file_ledger_job`, :15) then shows the deletions.

No `from __future__ import annotations` here: Dagster reads the decorated function's annotations.
"""

from datetime import UTC, datetime
from typing import Any

from dagster import (
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
)

from resources.drop_zones import DropZone
from resources.file_ledger import FileLedger
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.operations.ledger_snapshot import hourly_asset_schedule
from rtcdp_assets.operations.sftp_retention import (
    RetentionPlan,
    apply_plan,
    plan_archive_retention,
    plan_import_cleanup,
)
from rtcdp_assets.shared.campaign_sftp_storage import measure_footprint

HOUSEKEEPING = "campaign_sftp_housekeeping"


def run_housekeeping(
    zone: DropZone,
    ledger: FileLedger,
    warehouse: Warehouse,
    settings: PipelineSettings,
    now: datetime,
) -> dict[str, Any]:
    """Retention, then the footprint that is left; what happened, as metadata."""
    archive = plan_archive_retention(zone, ledger, warehouse, settings, now)
    imports = plan_import_cleanup(zone, ledger, settings, now)
    deleted = apply_plan(zone, ledger, archive, now) + apply_plan(zone, ledger, imports, now)
    footprint = measure_footprint(zone, settings)
    return {
        **footprint.metadata(),
        "files_deleted": deleted,
        "archived_versions_removed": len(archive.removals),
        "import_files_removed": len(imports.removals) + len(imports.gone),
        "archived_versions_held": len(archive.held),
        "removed": MetadataValue.json(_listed(archive) + _listed(imports)),
        "held": MetadataValue.json(
            [f"{r.dataset}: {r.version.name}: {why}" for r, why in archive.held[:100]]
        ),
    }


def _listed(plan: RetentionPlan) -> list[str]:
    # File names and reasons only: neither carries a personal value.
    return [f"{r.row.version.name}: {r.reason}" for r in [*plan.removals, *plan.gone]][:100]


@asset(
    name=HOUSEKEEPING,
    group_name="operations",
    kinds={"sftp"},
    description=(
        "Deletes from the Campaign SFTP server what the platform no longer needs there: "
        "archived exports past `archive_retention_days` whose partition is stored with the "
        "source's SHA-256 in the ledger, and import files Campaign consumed (marker gone) or "
        "that outlived `campaign_import_max_age_days`; records each deletion in the file "
        "ledger, then measures the footprint (archive, quarantine, imports) against the quota."
    ),
    pool="campaign_sftp",
)
def campaign_sftp_housekeeping(
    context: AssetExecutionContext,
    campaign_sftp: DropZone,
    file_ledger: FileLedger,
    warehouse: Warehouse,
    settings: PipelineSettings,
) -> MaterializeResult:
    metadata = run_housekeeping(campaign_sftp, file_ledger, warehouse, settings, datetime.now(UTC))
    context.log.info(
        f"{metadata['files_deleted']} files deleted; {metadata['archived_versions_held']} "
        f"archived versions past retention held; footprint {metadata['footprint_bytes']:,} bytes"
    )
    return MaterializeResult(metadata=metadata)


def build_housekeeping_schedule(checks: Any) -> tuple[Any, ScheduleDefinition]:
    return hourly_asset_schedule(
        "campaign_sftp_housekeeping",
        campaign_sftp_housekeeping,
        checks,
        5,
        "Apply the Campaign SFTP retention and check the storage quota.",
        "Hourly: Campaign SFTP retention, then the storage quota checks.",
    )
