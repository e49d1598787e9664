"""The platform's footprint on the Campaign SFTP server against the contract's storage quota.

What counts (docs/formats.md §f6: "stay within the SFTP storage limits of the Campaign
contract"): everything the platform keeps there, by area,

- `archive`: processed exports moved to `<export>/archive/<dataset>/` and their completion
  markers moved to `<export>/markers/<dataset>/` (the housekeeping deletes them after
  `archive_retention_days`, rtcdp_assets/operations/sftp_housekeeping.py);
- `quarantine`: unreadable exports and their reasons, `<export>/quarantine/` (never deleted
  by retention: a person decides);
- `imports`: the import folder (`campaign_import_folder`, every depth): the import files and
  `.done` markers we upload, until Campaign consumes them.

The files Campaign itself writes to the export folder are Campaign's, not ours, and are not
counted. Measurement lists each area with sizes through the `DropZone` interface (`walk`), so it
works on every zone kind.

`UploadGuard` is what the Campaign upload path (`campaign_import_files.upload_verified`) asks
before writing: from `campaign_sftp_block_share` of the quota (default 95 %) it refuses, records
the refused file in the file ledger as pending with the reason `upload_deferred: ...`, and the
run fails with that reason; `campaign_upload_resume_sensor` requests the upload again once the
footprint is back below the limit, so the work is delayed, never lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagster import Failure, MetadataValue

from resources.drop_zones import DropZone, Entry, join
from resources.file_ledger import UPLOAD_DEFERRED, FileLedger, FileVersion
from resources.settings import PipelineSettings

# Sub-folders of the export folder the Campaign export flows move files to
# (export_flow/description.py and ingest_step.py).
ARCHIVE = "archive"
QUARANTINE = "quarantine"
MOVED_MARKERS = "markers"
AREAS = ("archive", "quarantine", "imports")


def area_folders(settings: PipelineSettings) -> dict[str, tuple[str, ...]]:
    """The SFTP folders of each area of the platform's footprint."""
    export = settings.campaign_export_folder
    return {
        "archive": (join(export, ARCHIVE), join(export, MOVED_MARKERS)),
        "quarantine": (join(export, QUARANTINE),),
        "imports": (settings.campaign_import_folder,),
    }


@dataclass(frozen=True)
class Footprint:
    """Bytes and files per area; `quota_bytes` 0 when no quota is configured."""

    bytes_by_area: dict[str, int]
    files_by_area: dict[str, int]
    quota_bytes: int

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_by_area.values())

    def share(self, extra_bytes: int = 0) -> float | None:
        """Share of the quota used (with `extra_bytes` more); None without a quota."""
        if not self.quota_bytes:
            return None
        return (self.total_bytes + extra_bytes) / self.quota_bytes

    def metadata(self) -> dict[str, object]:
        share = self.share()
        return {
            "footprint_bytes": self.total_bytes,
            "quota_bytes": self.quota_bytes,
            "quota_used": round(share, 4) if share is not None else "no quota configured",
            "bytes_by_area": MetadataValue.json(self.bytes_by_area),
            "files_by_area": MetadataValue.json(self.files_by_area),
        }


def measure_footprint(zone: DropZone, settings: PipelineSettings) -> Footprint:
    sizes: dict[str, int] = {}
    files: dict[str, int] = {}
    for area, folders in area_folders(settings).items():
        entries: dict[str, Entry] = {}
        for folder in folders:
            # A folder nested in another is listed once.
            entries.update((e.path, e) for e in zone.walk(folder))
        sizes[area] = sum(e.size for e in entries.values())
        files[area] = len(entries)
    return Footprint(sizes, files, settings.campaign_sftp_quota_bytes)


def storage_level(share: float | None, settings: PipelineSettings) -> str:
    """`unconfigured`, `ok`, `warn` (≥ warn share) or `block` (≥ block share)."""
    if share is None:
        return "unconfigured"
    if share >= settings.campaign_sftp_block_share:
        return "block"
    return "warn" if share >= settings.campaign_sftp_warn_share else "ok"


def upload_identity(sha256: str) -> str:
    """The ledger identity of a file we upload: its content, known before it exists remotely."""
    return f"sha256:{sha256}"


class UploadRefused(Failure):
    """The Campaign SFTP is too full for this upload; the ledger holds it as deferred."""


@dataclass
class UploadGuard:
    """Admits Campaign uploads while the footprint stays below the block share; records each
    upload (or refusal) in the file ledger under the asset that uploads (`dataset`)."""

    zone: DropZone
    settings: PipelineSettings
    ledger: FileLedger | None
    dataset: str
    partition: str | None = None
    run_id: str | None = None
    now: datetime | None = None
    footprint: Footprint | None = field(default=None)
    _added_bytes: int = 0

    def _measured(self) -> Footprint:
        if self.footprint is None:
            self.footprint = measure_footprint(self.zone, self.settings)
        return self.footprint

    def _version(self, target: str, sha256: str) -> FileVersion:
        folder, _, name = target.rpartition("/")
        return FileVersion(self.zone.describe(), folder, name, upload_identity(sha256))

    def admit(self, target: str, size: int, sha256: str) -> None:
        """Raise `UploadRefused` (after recording it) when `size` more bytes would take the
        footprint to the block share or beyond."""
        if not self.settings.campaign_sftp_quota_bytes:
            return
        footprint = self._measured()
        share = footprint.share(self._added_bytes + size)
        if storage_level(share, self.settings) != "block":
            return
        assert share is not None
        reason = (
            f"{UPLOAD_DEFERRED}: Campaign SFTP storage would be at {share:.1%} of the quota "
            f"({footprint.total_bytes + self._added_bytes + size:,} of "
            f"{footprint.quota_bytes:,} bytes) with this file, the limit is "
            f"{self.settings.campaign_sftp_block_share:.0%}; resumed once space frees"
        )
        version = self._version(target, sha256)
        if self.ledger is not None:
            self.ledger.record(
                version,
                Entry(target, size, self.now or datetime.now(UTC), version.identity),
                dataset=self.dataset,
                status="pending",
                location=target,
                # Not lost: waiting to be uploaded (files_accounted_for reads in_folder so).
                in_folder=True,
                partition=self.partition,
                run_id=self.run_id,
                reason=reason,
                sha256=sha256,
            )
        raise UploadRefused(
            description=f"{target} not uploaded: {reason}",
            metadata={**footprint.metadata(), "refused_file": target},
        )

    def uploaded(self, target: str, entry: Entry, sha256: str) -> None:
        """The file and its marker are on the server: count them, and record the upload."""
        self._added_bytes += entry.size
        if self.ledger is None:
            return
        self.ledger.record(
            self._version(target, sha256),
            entry,
            dataset=self.dataset,
            status="uploaded",
            location=target,
            in_folder=True,
            partition=self.partition,
            run_id=self.run_id,
            reason=None,
            sha256=sha256,
        )
