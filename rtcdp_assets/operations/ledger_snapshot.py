"""`file_ledger`: the ledger of drop-zone file versions, as an asset people can read.

The ledger itself is a table the sensors and runs write (resources/ledger.py). This asset
snapshots it into the warehouse (`file_ledger/current/data.parquet`) and shows in the UI how
many versions are in each state and which ones need a person: quarantined, duplicate,
superseded, or pending for too long. Its checks say whether anything is stuck or lost.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions at definition time.
"""

import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSelection,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    define_asset_job,
    in_process_executor,
    multi_asset_check,
)

from resources.drop_zones import DropZone, is_temporary_name
from resources.file_ledger import FileLedger, LedgerRow
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportFlow

SNAPSHOT_PARTITION = "current"
ATTENTION = ("quarantined", "duplicate", "superseded", "pending")

LEDGER_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("zone", pa.string()),
        ("folder", pa.string()),
        ("name", pa.string()),
        ("identity", pa.string()),
        ("status", pa.string()),
        ("in_folder", pa.bool_()),
        ("location", pa.string()),
        ("sha256", pa.string()),
        ("rows", pa.int64()),
        ("partition", pa.string()),
        ("run_id", pa.string()),
        ("reason", pa.string()),
        ("duplicate_of", pa.string()),
        ("first_seen", pa.timestamp("us", tz="UTC")),
    ]
)


def _record(row: LedgerRow) -> dict[str, Any]:
    v = row.version
    return {
        "dataset": row.dataset,
        "zone": v.zone,
        "folder": v.folder,
        "name": v.name,
        "identity": v.identity,
        "status": row.status,
        "in_folder": row.in_folder,
        "location": row.location,
        "sha256": row.sha256,
        "rows": row.rows,
        "partition": row.partition,
        "run_id": row.run_id,
        "reason": row.reason,
        "duplicate_of": row.duplicate_of,
        "first_seen": row.first_seen,
    }


def _attention_table(rows: Sequence[LedgerRow], limit: int = 50) -> str:
    # File names and reasons carry no personal data (reasons are masked when recorded).
    flagged = [r for r in rows if r.status in ATTENTION][-limit:]
    if not flagged:
        return "_every file version is processed_"
    lines = [
        "| dataset | file | status | partition | reason / duplicate of |",
        "|---|---|---|---|---|",
    ]
    for r in flagged:
        why = r.reason or r.duplicate_of or ""
        lines.append(
            f"| {r.dataset} | {r.version.name} | {r.status} | {r.partition or ''} | "
            f"{why.replace('|', '/')} |"
        )
    return "\n".join(lines)


@asset(
    name="file_ledger",
    group_name="operations",
    kinds={"sql", "parquet"},
    description=(
        "Every file version seen in a drop zone (name, size, content identity, SHA-256, rows) "
        "and its fate: pending, processed (partition and run), quarantined (reason), duplicate "
        "of another delivery, or superseded by a newer version."
    ),
)
def file_ledger_asset(
    context: AssetExecutionContext, file_ledger: FileLedger, warehouse: Warehouse
) -> MaterializeResult:
    rows = file_ledger.rows()
    table = pa.Table.from_pylist([_record(r) for r in rows], schema=LEDGER_SCHEMA)
    with tempfile.TemporaryDirectory(prefix="rtcdp-ledger-") as tmp:
        local = Path(tmp) / "data.parquet"
        pq.write_table(table, local, compression="zstd")
        warehouse.put_file("file_ledger", SNAPSHOT_PARTITION, "data.parquet", local)
    by_status: dict[str, Counter[str]] = {}
    for r in rows:
        by_status.setdefault(r.dataset, Counter())[r.status] += 1
    context.log.info(f"{len(rows)} file versions in the ledger")
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "versions_by_status": MetadataValue.json(
                {ds: dict(sorted(c.items())) for ds, c in sorted(by_status.items())}
            ),
            "needs_attention": MetadataValue.md(_attention_table(rows)),
            "warehouse_path": warehouse.path("file_ledger", SNAPSHOT_PARTITION, "data.parquet"),
        }
    )


def stuck_pending(rows: Sequence[LedgerRow], now: datetime, alert_hours: float) -> list[LedgerRow]:
    limit = now - timedelta(hours=alert_hours)
    return [r for r in rows if r.status == "pending" and r.first_seen < limit]


def unaccounted_files(
    zone: DropZone,
    flows: Sequence[CampaignExportFlow],
    settings: PipelineSettings,
    rows: Sequence[LedgerRow],
) -> tuple[list[str], list[str]]:
    """(lost, unrecorded): ledger versions whose recorded location holds no file, and files
    in the archive or quarantine folders the ledger knows nothing about."""
    zone_id = zone.describe()
    mine = [r for r in rows if r.version.zone == zone_id]
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


def build_file_ledger_checks(flows: Sequence[CampaignExportFlow]) -> Any:
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
        yield AssetCheckResult(
            check_name="no_stuck_pending",
            passed=not stuck,
            severity=AssetCheckSeverity.WARN,
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

    return file_ledger_checks


def build_file_ledger_schedule(checks: Any) -> tuple[Any, ScheduleDefinition]:
    job = define_asset_job(
        "file_ledger_job",
        selection=AssetSelection.assets(file_ledger_asset) | AssetSelection.checks(checks),
        executor_def=in_process_executor,
        description="Snapshot the file ledger and check that nothing is stuck or lost.",
    )
    schedule = ScheduleDefinition(
        name="file_ledger_schedule",
        job=job,
        cron_schedule="15 * * * *",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Hourly: the ledger snapshot and its checks.",
    )
    return job, schedule
