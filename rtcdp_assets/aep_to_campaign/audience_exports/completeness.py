"""The exports of a listing, by destination, audience and time, and whether each is complete."""

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from resources.audience_settings import AepDestinationOptions
from resources.drop_zones import Entry, is_temporary_name
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import (
    TAG_AUDIENCE,
    TAG_DESTINATION,
    TAG_EXPORT_FILES,
    TAG_EXPORT_MANIFEST,
    TAG_EXPORT_TIME,
)
from rtcdp_assets.aep_to_campaign.audience_exports.file_names import (
    MANIFEST_NAME_RE,
    STAMP_FORMAT,
    AepManifest,
    ExportFileName,
    ManifestError,
    parse_export_name,
    parse_manifest,
    read_export_name,
)

# How a wait for a file the manifest promises reads: the sensor warns about those.
NOT_IN_FOLDER = " but not in the folder"


@dataclass
class AudienceExport:
    """The files of one export of one audience, as listed now."""

    destination: str
    audience_id: str
    exported_at: datetime
    parts: dict[int, tuple[ExportFileName, Entry]] = field(default_factory=dict)
    manifest: AepManifest | None = None
    # Files whose names claim a part another file already holds (two name templates, or
    # custom text `_1` after the date/time): the export waits rather than pick one.
    clashes: list[str] = field(default_factory=list)

    @cached_property
    def stamp(self) -> str:
        return self.exported_at.strftime(STAMP_FORMAT)

    @property
    def export_id(self) -> str:
        return f"{self.destination}_{self.audience_id}_{self.stamp}"

    @property
    def files(self) -> list[tuple[ExportFileName, Entry]]:
        return [self.parts[p] for p in sorted(self.parts)]

    @property
    def newest(self) -> float:
        return max(e.modified_ts for _, e in self.parts.values())

    @property
    def oldest(self) -> float:
        return min(e.modified_ts for _, e in self.parts.values())

    def file_identities(self) -> list[dict[str, Any]]:
        return [{"name": n.name, "etag": e.identity, "size": e.size} for n, e in self.files]

    @cached_property
    def identity(self) -> str:
        """Digest of the files' names and ETags: changes whenever AEP rewrites any part."""
        text = "\n".join(f"{f['name']}@{f['etag']}" for f in self.file_identities())
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def run_key(self) -> str:
        return f"aep-export:{self.export_id}@{self.identity}"

    def tags(self) -> dict[str, str]:
        tags = {
            TAG_DESTINATION: self.destination,
            TAG_AUDIENCE: self.audience_id,
            TAG_EXPORT_TIME: self.stamp,
            TAG_EXPORT_FILES: json.dumps(self.file_identities(), separators=(",", ":")),
        }
        if self.manifest is not None:
            tags[TAG_EXPORT_MANIFEST] = self.manifest.name
        return tags


@dataclass
class Listing:
    exports: dict[str, AudienceExport]
    manifests: list[Entry]
    unrecognised: list[tuple[Entry, str]]  # with the part of the name that failed

    @property
    def names(self) -> set[str]:
        """Every export file name in the listing."""
        return {n.name for x in self.exports.values() for n, _ in x.parts.values()} | {
            n for x in self.exports.values() for n in x.clashes
        }


def group_listing(entries: Sequence[Entry]) -> Listing:
    exports: dict[str, AudienceExport] = {}
    manifests: list[Entry] = []
    unrecognised: list[tuple[Entry, str]] = []
    for entry in entries:
        name = entry.path.rsplit("/", 1)[-1]
        if MANIFEST_NAME_RE.match(name):
            manifests.append(entry)
            continue
        # Hidden and temporary names (.part, .tmp, ...) are what an uploader may still be
        # writing: neither read nor reported.
        if name.startswith((".", "~")) or is_temporary_name(name):
            continue
        parsed = read_export_name(name)
        if isinstance(parsed, str):
            unrecognised.append((entry, parsed))
            continue
        export = exports.setdefault(
            parsed.export_id,
            AudienceExport(parsed.destination, parsed.audience_id, parsed.exported_at),
        )
        if parsed.part in export.parts:
            export.clashes.append(name)
            continue
        export.parts[parsed.part] = (parsed, entry)
    return Listing(exports, manifests, unrecognised)


def load_manifests(
    manifests: Sequence[Entry], read: Callable[[Entry], bytes], notes: list[str] | None = None
) -> dict[str, AepManifest]:
    """File name -> the newest manifest that lists it. An unreadable manifest is noted, skipped."""
    by_file: dict[str, tuple[float, AepManifest]] = {}
    for entry in manifests:
        try:
            manifest = parse_manifest(entry.name, read(entry))
        except ManifestError as exc:
            if notes is not None:
                notes.append(str(exc))
            continue
        for name in manifest.sizes:
            if name not in by_file or entry.modified_ts > by_file[name][0]:
                by_file[name] = (entry.modified_ts, manifest)
    return {name: m for name, (_, m) in by_file.items()}


def assess_export(
    export: AudienceExport,
    options: AepDestinationOptions,
    manifests_by_file: Mapping[str, AepManifest],
    now: float,
    settle_seconds: float,
) -> str | None:
    """None when the export is complete; otherwise why it has to wait.

    Sets `export.manifest` to the manifest that lists its files, if any.
    """
    present = {n.name: e for n, e in export.parts.values()}
    if export.clashes:
        claims = ", ".join(
            f"{name} claims part {p.part}, held by {export.parts[p.part][0].name}"
            for name in sorted(export.clashes)
            if (p := parse_export_name(name)) is not None
        )
        return f"two files name the same part of one export ({claims}); remove one"
    highest = max(export.parts)
    missing = [p for p in range(1, highest + 1) if p not in export.parts]
    if missing:
        names = ", ".join("the first file" if p == 1 else f"_{p}" for p in missing)
        return f"waiting for split file(s) {names} (found parts {sorted(export.parts)})"
    young = sorted(n for n, e in present.items() if now - e.modified_ts < settle_seconds)
    if young:
        return (
            f"{', '.join(young)} modified less than {settle_seconds:g} s ago (still being written)"
        )
    manifest = next((manifests_by_file[n] for n in sorted(present) if n in manifests_by_file), None)
    export.manifest = manifest
    if manifest is None:
        if options.manifest_required:
            return (
                "waiting for the manifest (manifest-<destinationId>-<dataflowRunId>.json) "
                "listing its files"
            )
        return None
    listed = {
        name: size
        for name, size in manifest.sizes.items()
        if (p := parse_export_name(name)) is not None and p.export_id == export.export_id
    }
    absent = sorted(set(listed) - set(present))
    if absent:
        return f"waiting for {', '.join(absent)}: listed in {manifest.name}{NOT_IN_FOLDER}"
    extra = sorted(set(present) - set(listed))
    if extra:
        return f"{', '.join(extra)} not listed in {manifest.name}"
    wrong = [
        f"{name} is {present[name].size} bytes, {manifest.name} says {size}"
        for name, size in sorted(listed.items())
        if present[name].size != size
    ]
    if wrong:
        return "; ".join(wrong)
    return None
