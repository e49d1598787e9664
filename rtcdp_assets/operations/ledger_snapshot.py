"""`file_ledger`: the ledger of drop-zone file versions, as an asset people can read.

The ledger itself is a table the sensors and runs write (resources/file_ledger.py). This asset
snapshots it into the warehouse (`file_ledger/current/data.parquet`) and shows in the UI how
many versions are in each state and which ones need a person: quarantined, duplicate,
superseded, or pending for too long. Its checks (asset_checks/operations/ledger_checks.py) say
whether anything is stuck or lost.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions at definition time.
"""

import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import (
    AssetExecutionContext,
    AssetSelection,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    define_asset_job,
    in_process_executor,
)

from resources.file_ledger import FileLedger, LedgerRow
from resources.warehouse import Warehouse
from rtcdp_assets.shared.check_outcome_tags import tag_failed_checks

SNAPSHOT_PARTITION = "current"
ATTENTION = ("quarantined", "duplicate", "superseded", "pending", "failed")

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
        # Set when the Campaign SFTP housekeeping deleted the file (sftp_retention.py).
        ("removed_at", pa.timestamp("us", tz="UTC")),
        ("removed_reason", pa.string()),
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
        "removed_at": row.removed_at,
        "removed_reason": row.removed_reason,
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


def hourly_asset_schedule(
    name: str, asset_def: Any, checks: Any, minute: int, does: str, description: str
) -> tuple[Any, ScheduleDefinition]:
    """`<name>_job` (one unpartitioned asset and its checks, in one process) and
    `<name>_schedule`, on by default, every hour at `minute`."""
    job = define_asset_job(
        f"{name}_job",
        selection=AssetSelection.assets(asset_def) | AssetSelection.checks(checks),
        executor_def=in_process_executor,
        description=does,
        hooks={tag_failed_checks},
    )
    schedule = ScheduleDefinition(
        name=f"{name}_schedule",
        job=job,
        cron_schedule=f"{minute} * * * *",
        default_status=DefaultScheduleStatus.RUNNING,
        description=description,
    )
    return job, schedule


def build_file_ledger_schedule(checks: Any) -> tuple[Any, ScheduleDefinition]:
    return hourly_asset_schedule(
        "file_ledger",
        file_ledger_asset,
        checks,
        15,
        "Snapshot the file ledger and check that nothing is stuck or lost.",
        "Hourly: the ledger snapshot and its checks.",
    )
