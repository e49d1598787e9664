"""Export freshness: a 4-hour window with no Campaign export after 4 hours plus a grace.

Campaign exports each window's logs during or right after it, so window W is late once
W.start + 4 h + `settings.freshness_grace_minutes` has passed without a materialization of W.
The check looks at the last `settings.freshness_lookback_windows` due windows and names the
missing ones. It is not partitioned (it judges the recent past as a whole) and runs hourly from
`export_freshness_schedule`, which is on by default.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetSelection,
    DefaultScheduleStatus,
    ScheduleDefinition,
    asset_check,
    define_asset_job,
    in_process_executor,
)

from asset_checks.check_descriptions import listing, of
from resources.settings import PipelineSettings
from rtcdp_assets.campaign_to_aep.export_flow import EXPORT_FRESHNESS_CHECK
from rtcdp_assets.shared.check_outcome_tags import tag_failed_checks
from rtcdp_assets.shared.partitions import PARTITION_KEY_FORMAT


def due_windows(now: datetime, grace_minutes: int, lookback: int) -> list[str]:
    """Keys of the most recent windows whose export is due by `now`, newest first."""
    latest_due_end = now - timedelta(minutes=grace_minutes)
    # a window is due when its end + grace has passed
    last_start = latest_due_end - timedelta(hours=4)
    last_start = last_start.replace(
        hour=last_start.hour - last_start.hour % 4, minute=0, second=0, microsecond=0
    )
    return [
        (last_start - timedelta(hours=4 * i)).strftime(PARTITION_KEY_FORMAT)
        for i in range(lookback)
    ]


def freshness_result(
    asset_key: AssetKey, materialized: set[str], now: datetime, settings: PipelineSettings
) -> AssetCheckResult:
    due = due_windows(now, settings.freshness_grace_minutes, settings.freshness_lookback_windows)
    missing = [k for k in due if k not in materialized]
    return AssetCheckResult(
        asset_key=asset_key,
        passed=not missing,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{of(len(missing), len(due), 'recent 4-hour windows')} have no export 4 h + "
            f"{settings.freshness_grace_minutes} min after they began"
            + (f": {listing(missing)}" if missing else "")
        ),
        metadata={
            "windows_checked": len(due),
            "windows_missing": len(missing),
            "missing_windows": missing,
            "grace_minutes": settings.freshness_grace_minutes,
        },
    )


def build_freshness_check(key: AssetKey) -> Any:
    @asset_check(
        asset=key,
        name=EXPORT_FRESHNESS_CHECK,
        blocking=False,
        description="Every recent 4-hour window received its export within 4 h plus the grace.",
        metadata={
            "guardrail/source": "blueprint: exports every 4 hours (§f1)",
            "guardrail/limit": "late after 4 h + grace (WARN)",
        },
    )
    def export_freshness(
        context: AssetCheckExecutionContext, settings: PipelineSettings
    ) -> AssetCheckResult:
        materialized = context.instance.get_materialized_partitions(key)
        return freshness_result(key, set(materialized), datetime.now(UTC), settings)

    return export_freshness


def freshness_automation(checks: Sequence[Any]) -> tuple[Any, ScheduleDefinition]:
    job = define_asset_job(
        "export_freshness_job",
        selection=AssetSelection.checks(*checks),
        executor_def=in_process_executor,
        description="Evaluates the export-freshness checks of every Campaign dataset.",
        hooks={tag_failed_checks},
    )
    schedule = ScheduleDefinition(
        name="export_freshness_schedule",
        job=job,
        cron_schedule="15 * * * *",
        execution_timezone="UTC",
        # On by default: a late Campaign export is only noticed if this runs.
        default_status=DefaultScheduleStatus.RUNNING,
        description=(
            "Hourly at :15 UTC: export_freshness on every Campaign dataset, which names the "
            "recent 4-hour windows whose export is late (WARN)."
        ),
    )
    return job, schedule
