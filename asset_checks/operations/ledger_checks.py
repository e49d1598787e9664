"""The checks on `file_ledger`: nothing lost (`files_accounted_for`), nothing stuck
(`no_stuck_pending`), no version whose runs kept failing (`no_failed_versions`).

The Campaign export flows whose archive and quarantine folders are searched are passed in
(rtcdp_assets/definitions.py passes every Campaign dataset's flow); any object with the two
folder methods of `ExportFolders` will do.
"""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    multi_asset_check,
)

from asset_checks.check_descriptions import count, of, plural
from resources.drop_zones import DropZone, is_temporary_name
from resources.file_ledger import FileLedger, LedgerRow
from resources.settings import PipelineSettings


class ExportFolders(Protocol):
    """Where a Campaign export flow moves the files it has read (CampaignExportFlow has both)."""

    def archive_folder(self, settings: PipelineSettings) -> str: ...

    def quarantine_folder(self, settings: PipelineSettings) -> str: ...


def stuck_pending(rows: Sequence[LedgerRow], now: datetime, alert_hours: float) -> list[LedgerRow]:
    limit = now - timedelta(hours=alert_hours)
    return [r for r in rows if r.status == "pending" and r.first_seen < limit]


def unaccounted_files(
    zone: DropZone,
    flows: Sequence[ExportFolders],
    settings: PipelineSettings,
    rows: Sequence[LedgerRow],
) -> tuple[list[str], list[str]]:
    """(lost, unrecorded): ledger versions whose recorded location holds no file, and files
    in the archive or quarantine folders the ledger knows nothing about."""
    zone_id = zone.describe()
    # A version the SFTP housekeeping deleted (recorded with its reason) is not lost.
    mine = [r for r in rows if r.version.zone == zone_id and r.removed_at is None]
    present: set[str] = set()
    for folder in {
        settings.campaign_export_folder,
        *(f.archive_folder(settings) for f in flows),
        *(f.quarantine_folder(settings) for f in flows),
    }:
        present.update(
            e.path
            for e in zone.list(folder)
            if not is_temporary_name(e.name) and not e.name.endswith(".reason.json")
        )
    lost = sorted(
        f"{r.dataset}: {r.version.name} ({r.status}) expected at {r.location}"
        for r in mine
        if r.status in ("processed", "quarantined", "duplicate") and r.location not in present
    )
    # A version that left the export folder before any run read it is lost too.
    vanished = sorted(
        f"{r.dataset}: {r.version.name} left {r.version.folder} before it was processed"
        for r in mine
        if r.status == "pending" and not r.in_folder
    )
    recorded = {r.location for r in mine}
    moved_folders = tuple(
        f"{folder}/"
        for flow in flows
        for folder in (flow.archive_folder(settings), flow.quarantine_folder(settings))
    )
    unrecorded = sorted(p for p in present - recorded if p.startswith(moved_folders))
    return lost + vanished, unrecorded


def failed_versions_result(rows: Sequence[LedgerRow], settings: PipelineSettings) -> Any:
    """`no_failed_versions`: each failed version of every zone and wing (Campaign exports,
    AEP exports, customer imports, offline data files) with its reason (masked when recorded;
    those file names hold no personal data)."""
    failed = [r for r in rows if r.status == "failed"]
    retrying = [r for r in rows if r.status == "pending" and (r.attempts or 0) > 0]
    return AssetCheckResult(
        check_name="no_failed_versions",
        passed=not failed,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"{of(len(failed), len(rows), 'file versions')} failed "
            f"{plural(settings.failed_run_max_attempts, 'run')}; "
            f"{plural(len(retrying), 'version')} waiting for a retry"
        ),
        metadata={
            "failed_count": len(failed),
            "failed": MetadataValue.json(
                [f"{r.dataset}: {r.version} ({r.reason})" for r in failed[:100]]
            ),
            "retrying_count": len(retrying),
            "max_attempts": settings.failed_run_max_attempts,
        },
    )


def build_file_ledger_checks(flows: Sequence[ExportFolders]) -> Any:
    specs = [
        AssetCheckSpec(
            name="files_accounted_for",
            asset="file_ledger",
            blocking=False,
            description=(
                "Every processed, quarantined or duplicate version is where the ledger says "
                "(archive or quarantine folder), and no pending version left the export folder "
                "unread: nothing was lost."
            ),
            metadata={
                "guardrail/source": "project: nothing lost, never deleted",
                "guardrail/limit": "0 lost file versions",
            },
        ),
        AssetCheckSpec(
            name="no_stuck_pending",
            asset="file_ledger",
            blocking=False,
            description=(
                "No file version has waited longer than `ledger_pending_alert_hours` without "
                "being processed (a failed run, a missing completion marker, a file still "
                "growing)."
            ),
            metadata={
                "guardrail/source": "project: every file version processed exactly once",
                "guardrail/limit": "pending < ledger_pending_alert_hours (default 8 h)",
            },
        ),
        AssetCheckSpec(
            name="no_failed_versions",
            asset="file_ledger",
            blocking=False,
            description=(
                "No file version is `failed`: its runs failed `failed_run_max_attempts` times "
                "(each retried after `failed_run_retry_backoff_seconds`, doubled per failure). "
                "Fix the reason in the ledger, then `rtcdp-ledger retry <version>`."
            ),
            metadata={
                "guardrail/source": "project: failed work comes back, or a person is told",
                "guardrail/limit": "0 failed file versions (after failed_run_max_attempts runs)",
            },
        ),
    ]

    @multi_asset_check(specs=specs, name="file_ledger_checks")
    def file_ledger_checks(
        context: AssetCheckExecutionContext,
        file_ledger: FileLedger,
        campaign_sftp: DropZone,
        settings: PipelineSettings,
    ) -> Iterator[AssetCheckResult]:
        rows = file_ledger.rows()
        lost, unrecorded = unaccounted_files(campaign_sftp, flows, settings, rows)
        yield AssetCheckResult(
            check_name="files_accounted_for",
            passed=not lost,
            severity=AssetCheckSeverity.ERROR,
            description=(
                f"{of(len(lost), len(rows), 'file versions')} are not where the ledger says; "
                f"{plural(len(unrecorded), 'archived file')} unknown to the ledger"
            ),
            metadata={
                "versions": len(rows),
                "lost": MetadataValue.json(lost[:100]),
                "lost_count": len(lost),
                # Archived before the ledger existed, or moved there by hand: reported only.
                "unrecorded_in_archive": MetadataValue.json(unrecorded[:100]),
                "unrecorded_count": len(unrecorded),
            },
        )
        stuck = stuck_pending(rows, datetime.now(UTC), settings.ledger_pending_alert_hours)
        pending = sum(r.status == "pending" for r in rows)
        yield AssetCheckResult(
            check_name="no_stuck_pending",
            passed=not stuck,
            severity=AssetCheckSeverity.WARN,
            description=(
                f"{of(len(stuck), pending, 'pending file versions')} waiting longer than "
                f"{count(settings.ledger_pending_alert_hours)} h"
            ),
            metadata={
                "stuck_count": len(stuck),
                "stuck": MetadataValue.json(
                    [
                        f"{r.dataset}: {r.version.name} since {r.first_seen:%Y-%m-%d %H:%M}Z"
                        for r in stuck[:100]
                    ]
                ),
                "alert_hours": settings.ledger_pending_alert_hours,
            },
        )
        yield failed_versions_result(rows, settings)

    return file_ledger_checks
