"""The Campaign contract's SFTP limits as checks on `campaign_sftp_housekeeping`:
`sftp_storage_quota` (the platform's footprint against the quota: WARN from 80 %, ERROR from
95 %, where uploads are refused) and `sftp_retention` (nothing of ours stays past its time:
archived exports held because their partition is not stored, import files not removed).

Both measure the server again after the housekeeping ran (same job), with the clock as a
parameter of the functions the tests call.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    multi_asset_check,
)

from asset_checks.check_descriptions import count, plural
from asset_checks.partition_reconciliation import partition_check_spec
from resources.drop_zones import DropZone
from resources.file_ledger import FileLedger
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.operations.sftp_housekeeping import HOUSEKEEPING
from rtcdp_assets.operations.sftp_retention import (
    plan_archive_retention,
    plan_import_cleanup,
)
from rtcdp_assets.shared.campaign_sftp_storage import measure_footprint, storage_level

QUOTA_CHECK = "sftp_storage_quota"
RETENTION_CHECK = "sftp_retention"
SFTP_CHECK_SPECS = [
    partition_check_spec(
        QUOTA_CHECK,
        AssetKey(HOUSEKEEPING),
        "The platform's footprint on the Campaign SFTP server (export archive and moved "
        "markers, quarantine, import folder) against `campaign_sftp_quota_bytes`: WARN from "
        "`campaign_sftp_warn_share` (80 %), ERROR from `campaign_sftp_block_share` (95 %), "
        "where new Campaign import uploads are refused until space frees.",
        blocking=False,
        source="Campaign contract: SFTP storage (docs/formats.md §f6; Adobe compresses at 80 %)",
        limit="footprint < 80 % of the quota (WARN), < 95 % (ERROR, uploads refused)",
        partitions_def=None,
    ),
    partition_check_spec(
        RETENTION_CHECK,
        AssetKey(HOUSEKEEPING),
        "No archived export stays on the Campaign SFTP server past `archive_retention_days` "
        "(held only while its partition is not stored with the source's SHA-256), and no "
        "import file we uploaded past `campaign_import_max_age_days`.",
        blocking=False,
        source="Adobe: keep SFTP data 15 days at most (docs/formats.md §f6)",
        limit="0 files past retention (archive 15 days, imports 15 days)",
        partitions_def=None,
    ),
]


def quota_result(zone: DropZone, settings: PipelineSettings) -> AssetCheckResult:
    footprint = measure_footprint(zone, settings)
    share = footprint.share()
    level = storage_level(share, settings)
    if share is None:
        text = (
            f"{count(footprint.total_bytes)} bytes on the Campaign SFTP server; no quota "
            "configured (campaign_sftp_quota_bytes)"
        )
    else:
        text = (
            f"{count(footprint.total_bytes)} of {count(footprint.quota_bytes)} bytes "
            f"({share:.1%}) of the Campaign SFTP quota"
        )
        if level == "block":
            text += f"; uploads to Campaign refused from {settings.campaign_sftp_block_share:.0%}"
        elif level == "warn":
            text += f"; warning from {settings.campaign_sftp_warn_share:.0%}"
    return AssetCheckResult(
        check_name=QUOTA_CHECK,
        passed=level in ("ok", "unconfigured"),
        severity=AssetCheckSeverity.ERROR if level == "block" else AssetCheckSeverity.WARN,
        description=text,
        metadata={**footprint.metadata(), "level": level},
    )


def retention_result(
    zone: DropZone,
    ledger: FileLedger,
    warehouse: Warehouse,
    settings: PipelineSettings,
    now: datetime,
) -> AssetCheckResult:
    archive = plan_archive_retention(zone, ledger, warehouse, settings, now)
    imports = plan_import_cleanup(zone, ledger, settings, now)
    overdue_imports = [r for r in imports.removals if r.reason.startswith("import_max_age")]
    overdue = len(archive.held) + len(archive.removals) + len(overdue_imports)
    return AssetCheckResult(
        check_name=RETENTION_CHECK,
        passed=overdue == 0,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{plural(len(archive.held), 'archived export')} past "
            f"{settings.archive_retention_days:g} days held (partition not stored), "
            f"{plural(len(archive.removals), 'archived export')} and "
            f"{plural(len(overdue_imports), 'import file')} past retention not yet deleted"
        ),
        metadata={
            "overdue_files": overdue,
            "held": MetadataValue.json(
                [f"{r.dataset}: {r.version.name}: {why}" for r, why in archive.held[:100]]
            ),
            "retention_days": settings.archive_retention_days,
            "import_max_age_days": settings.campaign_import_max_age_days,
            "checked_at": now.isoformat(timespec="seconds"),
        },
    )


@multi_asset_check(specs=SFTP_CHECK_SPECS, name="campaign_sftp_checks")
def campaign_sftp_checks(
    context: AssetCheckExecutionContext,
    campaign_sftp: DropZone,
    file_ledger: FileLedger,
    warehouse: Warehouse,
    settings: PipelineSettings,
) -> Iterator[AssetCheckResult]:
    yield quota_result(campaign_sftp, settings)
    yield retention_result(campaign_sftp, file_ledger, warehouse, settings, datetime.now(UTC))
