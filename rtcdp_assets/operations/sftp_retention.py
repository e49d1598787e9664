"""What may leave the Campaign SFTP server, and when (docs/formats.md §f6: "keep data 15 days
at most; retention is the customer's job").

- **Archived exports** (`<export>/archive/<dataset>/<name>@<version>`, and the completion
  marker moved with it to `<export>/markers/<dataset>/`) are deleted once older than
  `archive_retention_days` (since the ledger first saw them) AND their rows are safely in the
  warehouse: the ledger holds the version's SHA-256 and partition, and that partition's
  manifest (written last, after its data) lists the version with the same SHA-256, its data
  file is stored; a duplicate goes only once the version it duplicates is stored so. A version
  that fails any of this is held, with the reason, never deleted. A file the ledger does not
  know is never deleted (nothing says where its rows are).
- **Quarantined exports** are never deleted here: a person decides (they count in the
  footprint).
- **Import files we uploaded** (ledger status `uploaded`) are deleted with their marker once
  Campaign has consumed them (its import workflow deleted or moved the `.done` marker, or the
  file) or once older than `campaign_import_max_age_days`.

Every deletion is recorded in the file ledger (`removed_at`, `removed_reason`); the row stays.
The clock is a parameter (`now`), so tests move time instead of waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from resources.drop_zones import DropZone, Entry, join
from resources.file_ledger import FileLedger, LedgerRow
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.shared.campaign_import_files import IMPORT_MARKER_SUFFIX
from rtcdp_assets.shared.campaign_sftp_storage import ARCHIVE, MOVED_MARKERS

# A marker missing from a file written this recently may not be written yet (an upload writes
# the file, then its marker): only an older file counts as consumed.
CONSUMED_GRACE = timedelta(minutes=15)


@dataclass
class Removal:
    row: LedgerRow
    paths: list[str]
    reason: str


@dataclass
class RetentionPlan:
    """Files to delete now, and archived versions past retention that must stay (why)."""

    removals: list[Removal] = field(default_factory=list)
    held: list[tuple[LedgerRow, str]] = field(default_factory=list)
    # Versions whose file was already gone (Campaign moved an import away): recorded only.
    gone: list[Removal] = field(default_factory=list)


def _not_stored(
    warehouse: Warehouse, row: LedgerRow, manifests: dict[tuple[str, str], dict | None]
) -> str | None:
    """Why `row`'s rows are not known to be safe in the warehouse; None when they are."""
    if not row.sha256:
        return "no SHA-256 in the ledger"
    if not row.partition:
        return "no partition in the ledger"
    key = (row.dataset, row.partition)
    if key not in manifests:
        manifests[key] = warehouse.get_json(row.dataset, row.partition, "manifest.json")
    manifest = manifests[key]
    if manifest is None:
        return f"partition {row.partition} of {row.dataset} is not stored (no manifest)"
    listed = next(
        (
            f
            for f in manifest.get("files", [])
            if f.get("source_file") == row.version.name
            and f.get("identity") == row.version.identity
        ),
        None,
    )
    if listed is None:
        return f"partition {row.partition} does not list this version"
    if listed.get("sha256") != row.sha256:
        return f"partition {row.partition} holds other bytes under this name (SHA-256 differs)"
    if warehouse.row_count(row.dataset, row.partition) is None:
        return f"partition {row.partition} has no stored data file"
    return None


def plan_archive_retention(
    zone: DropZone,
    ledger: FileLedger,
    warehouse: Warehouse,
    settings: PipelineSettings,
    now: datetime,
) -> RetentionPlan:
    zone_id = zone.describe()
    archive = join(settings.campaign_export_folder, ARCHIVE) + "/"
    rows = ledger.in_zone(zone_id, ("processed", "duplicate"))
    present = {e.path for e in zone.walk(archive.rstrip("/"))}
    processed_by_sha = {r.sha256: r for r in rows if r.status == "processed" and r.sha256}
    cutoff = now - timedelta(days=settings.archive_retention_days)
    manifests: dict[tuple[str, str], dict | None] = {}
    plan = RetentionPlan()
    for row in rows:
        location = row.location or ""
        if not location.startswith(archive) or location not in present:
            continue  # not archived here, or already missing (files_accounted_for says so)
        if row.first_seen >= cutoff:
            continue
        why = _not_stored(warehouse, row, manifests)
        if why is None and row.status == "duplicate":
            canonical = processed_by_sha.get(row.sha256)
            why = (
                "the version it duplicates is not in the ledger"
                if canonical is None
                else _not_stored(warehouse, canonical, manifests)
            )
        if why is not None:
            plan.held.append((row, why))
            continue
        v = row.version
        marker = join(
            v.folder,
            MOVED_MARKERS,
            row.dataset,
            f"{v.name}{settings.completion_marker_suffix}@{v.identity}",
        )
        plan.removals.append(
            Removal(
                row,
                [location, marker],
                f"archive_retention: archived over {settings.archive_retention_days:g} days; "
                f"partition {row.partition} stored, SHA-256 {row.sha256} in the ledger",
            )
        )
    return plan


def plan_import_cleanup(
    zone: DropZone, ledger: FileLedger, settings: PipelineSettings, now: datetime
) -> RetentionPlan:
    max_age = timedelta(days=settings.campaign_import_max_age_days)
    plan = RetentionPlan()
    for row in ledger.in_zone(zone.describe(), ("uploaded",)):
        path = row.location or ""
        marker_path = f"{path}{IMPORT_MARKER_SUFFIX}"
        data: Entry | None = zone.stat(path)
        marker: Entry | None = zone.stat(marker_path)
        if data is None and marker is None:
            plan.gone.append(Removal(row, [], "consumed: Campaign moved the file and its marker"))
        elif data is None:
            plan.removals.append(
                Removal(row, [marker_path], "consumed: Campaign took the file, left its marker")
            )
        elif marker is None and now - data.modified > CONSUMED_GRACE:
            plan.removals.append(
                Removal(row, [path], "consumed: Campaign's import workflow removed the marker")
            )
        elif now - data.modified > max_age:
            plan.removals.append(
                Removal(
                    row,
                    [path, marker_path],
                    f"import_max_age: not consumed after "
                    f"{settings.campaign_import_max_age_days:g} days",
                )
            )
    return plan


def apply_plan(zone: DropZone, ledger: FileLedger, plan: RetentionPlan, now: datetime) -> int:
    """Delete the plan's files and record each removal in the ledger; the files deleted."""
    deleted = 0
    for removal in plan.removals:
        for path in removal.paths:
            deleted += zone.delete(path)
        # After the delete: a crash in between leaves a file the next run deletes again.
        ledger.record_removal(removal.row.version, now, removal.reason)
    for removal in plan.gone:
        ledger.record_removal(removal.row.version, now, removal.reason)
    return deleted
