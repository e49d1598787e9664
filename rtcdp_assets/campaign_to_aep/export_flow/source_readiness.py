"""Which export files a run may read, and whether what it read still holds.

The sensor requests a version once the zone's completion rule calls it complete
(shared/file_completion.py). A run reads the version it was requested for on the sensor's
word (`RunRelease`), and any other file of its partition only if the same rule calls it
complete by the run's clock. After reading, a run checks that nothing it read changed
(`changed_sources`), and a file that ends in a cut line waits for the sensor's final verdict
(`incomplete_reason`) instead of being published in part.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from resources.drop_zones import DropZone, Entry
from resources.file_ledger import FileLedger, FileVersion
from rtcdp_assets.campaign_to_aep.export_flow.description import SourceFile
from rtcdp_assets.shared.file_completion import (
    INCOMPLETE_IS_FINAL_TAG,
    INCOMPLETE_REASON_PREFIX,
    CompletionRule,
)
from rtcdp_assets.shared.ingest import FileResult, UnreadableFile


@dataclass(frozen=True)
class RunRelease:
    """What the sensor said about the run: the version it was requested for, and whether an
    empty or cut version of it is final (quarantine) rather than still being written.

    A run launched by hand has no release: it reads what the rule calls complete and judges
    an empty or cut file at once (a person asked for a verdict).
    """

    path: str | None = None
    identity: str | None = None
    final: bool = True
    first_seen: Mapping[tuple[str, str], datetime] = field(default_factory=dict)

    @classmethod
    def from_tags(cls, tags: Mapping[str, str], path_tag: str, identity_tag: str) -> "RunRelease":
        if path_tag not in tags:
            return cls()
        return cls(
            path=tags[path_tag],
            identity=tags.get(identity_tag),
            final=tags.get(INCOMPLETE_IS_FINAL_TAG) == "true",
        )

    @property
    def by_sensor(self) -> bool:
        return self.path is not None

    def is_released(self, entry: Entry) -> bool:
        return entry.path == self.path and entry.identity == self.identity

    def is_final(self, entry: Entry) -> bool:
        """Whether an empty or cut `entry` is to be quarantined now."""
        return self.is_released(entry) and self.final if self.by_sensor else True


def incoming_is_ready(
    entry: Entry,
    rule: CompletionRule,
    listing: Mapping[str, Entry],
    release: RunRelease,
    now: datetime,
) -> bool:
    """Whether a run may read `entry` from the export folder."""
    if rule.is_sidecar(entry.name):
        return False
    if release.is_released(entry):
        return entry.size > 0 or release.final
    first_seen = release.first_seen.get((entry.name, entry.identity))
    if first_seen is None and not release.by_sensor:
        # A hand-launched run on a version no sensor listed: the server's time is all we have.
        first_seen = entry.modified
    if rule.wait_reason(entry, listing, first_seen, now):
        return False
    return entry.size > 0 or release.is_final(entry)


def with_first_seen(
    release: RunRelease, ledger: FileLedger | None, zone_id: str, folder: str, dataset: str
) -> RunRelease:
    if ledger is None:
        return release
    seen = {
        key: datetime.fromisoformat(p.first_seen)
        for key, p in ledger.present(zone_id, folder, dataset).items()
    }
    return RunRelease(release.path, release.identity, release.final, seen)


def incomplete_reason(error: UnreadableFile | None, result: FileResult) -> str:
    """Why a file read to its end looks still being written, or ""."""
    if error is not None and error.reason == "truncated_gzip":
        return "the gzip stream ends before its end marker"
    if error is None and result.cut_last_line:
        return "the last line has fewer fields than the header and no line end"
    return ""


def changed_sources(zone: DropZone, sources: list[SourceFile]) -> list[str]:
    """The incoming files whose size or modification time changed since the run listed them
    (read again just before anything is stored or moved)."""
    changed = []
    for src in sources:
        if src.location != "incoming":
            continue
        now = zone.stat(src.entry.path)
        if now is None:
            changed.append(f"{src.name} is no longer in the export folder")
        elif now.identity != src.entry.identity:
            changed.append(
                f"{src.name} changed while it was read (size {src.entry.size} → {now.size} "
                "bytes, or a new modification time)"
            )
    return changed


def record_incomplete(
    ledger: FileLedger | None,
    zone_id: str,
    folder: str,
    dataset: str,
    waiting: list[tuple[SourceFile, str]],
) -> None:
    """Leave each incomplete version pending with a reason the sensor acts on after the grace."""
    if ledger is None:
        return
    for src, why in waiting:
        ledger.record(
            FileVersion(zone_id, folder, src.name, src.identity),
            src.entry,
            dataset=dataset,
            status="pending",
            location=src.entry.path,
            in_folder=True,
            reason=f"{INCOMPLETE_REASON_PREFIX} {why}",
        )
