"""When is a file that someone else writes into a drop zone complete?

One rule per zone, chosen by setting (resources/settings.py, docs/deployment.md "Completion"):

- `marker`: the writer puts `<name><suffix>` (`.done` by default) beside the data file after
  the data file is complete. The marker must be no older than the data file, so a marker left
  from an earlier version of the same name does not release a new one.
- `rename`: the writer uploads under a temporary name (`*.tmp`, `*.part`, `*.filepart`, ... and
  `temporary_name_patterns`) and renames when done; a file under its final name is complete.
- `stability`: the same version (size and modification time) is listed at least twice, at
  least `stability_window_seconds` apart by our clock. A pause longer than the window that
  ends on a row boundary is indistinguishable from the end of the file: the weakest rule.

Whatever the rule, a file modified within `file_settle_seconds` (server clock) waits. A file
that its rule calls complete but that is empty or ends in a cut line still counts as being
written until `incomplete_file_grace_seconds` (our clock) have passed since the version was
first seen (plus the stability window under `stability`); then it is quarantined
(`empty_file`, `truncated_file`). Sensors decide with their clock; runs obey the sensor's
verdict for the version they were requested for and apply the same rule to the others.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from resources.drop_zones import Entry, is_temporary_name
from resources.settings import PipelineSettings

DEFAULT_MARKER_SUFFIX = ".done"
# Ledger reason of a version a run found incomplete (cut last line, cut gzip): still pending,
# re-requested by the sensor once the grace has passed.
INCOMPLETE_REASON_PREFIX = "incomplete:"
# Run tag set by the sensor when the grace of an empty or cut version has passed: the run
# then quarantines it instead of waiting again.
INCOMPLETE_IS_FINAL_TAG = "rtcdp/incomplete_is_final"


@dataclass(frozen=True)
class CompletionRule:
    """The completion rule of one drop zone, with the timings it needs."""

    rule: str  # marker | rename | stability
    marker_suffix: str = DEFAULT_MARKER_SUFFIX
    temporary_patterns: tuple[str, ...] = ()
    settle_seconds: float = 30.0
    stability_seconds: float = 120.0
    grace_seconds: float = 600.0

    @classmethod
    def for_zone(cls, settings: PipelineSettings, rule: str) -> CompletionRule:
        return cls(
            rule=rule,
            marker_suffix=settings.completion_marker_suffix or DEFAULT_MARKER_SUFFIX,
            temporary_patterns=tuple(p.lower() for p in settings.temporary_name_patterns),
            settle_seconds=settings.file_settle_seconds,
            stability_seconds=settings.stability_window_seconds,
            grace_seconds=settings.incomplete_file_grace_seconds,
        )

    @classmethod
    def campaign_export(cls, settings: PipelineSettings) -> CompletionRule:
        return cls.for_zone(settings, settings.campaign_export_completion)

    @classmethod
    def customer_source(cls, settings: PipelineSettings) -> CompletionRule:
        return cls.for_zone(settings, settings.customer_source_completion)

    def is_marker(self, name: str) -> bool:
        return self.rule == "marker" and name.endswith(self.marker_suffix)

    def is_temporary(self, name: str) -> bool:
        """A name a writer uses while uploading: never read, under any rule."""
        if is_temporary_name(name):
            return True
        lowered = name.rsplit("/", 1)[-1].lower()
        return any(fnmatch.fnmatchcase(lowered, p) for p in self.temporary_patterns)

    def is_sidecar(self, name: str) -> bool:
        """Not a data file: a temporary name or a completion marker."""
        return self.is_temporary(name) or self.is_marker(name)

    def wait_reason(
        self,
        entry: Entry,
        listing: Mapping[str, Entry],
        first_seen: datetime | None,
        now: datetime,
    ) -> str:
        """Why `entry` is not complete by this rule yet, or "" when it is.

        `listing` maps the paths of the folder's entries (for the marker); `first_seen` is when
        this very version (size + modification time) was first listed, by our clock (None:
        this is the first listing).
        """
        if self.is_temporary(entry.name):
            return "temporary name, still being uploaded"
        if now.timestamp() - entry.modified_ts < self.settle_seconds:
            return "modified moments ago, still being written"
        if self.rule == "marker":
            marker = listing.get(entry.path + self.marker_suffix)
            if marker is None:
                return f"no completion marker {entry.name}{self.marker_suffix} yet"
            if marker.modified < entry.modified:
                return (
                    f"completion marker {marker.name} is older than the file (left from an "
                    "earlier version?)"
                )
        elif self.rule == "stability":
            if first_seen is None:
                return (
                    f"first listing; size and time must stay unchanged for "
                    f"{self.stability_seconds:g} s"
                )
            unchanged = (now - first_seen).total_seconds()
            if unchanged < self.stability_seconds:
                return (
                    f"unchanged for {unchanged:.0f} of {self.stability_seconds:g} s "
                    "(stability rule)"
                )
        return ""

    def final_after(self, first_seen: datetime) -> datetime:
        """When an empty or cut version, unchanged since `first_seen`, stops counting as still
        being written and is quarantined."""
        window = self.stability_seconds if self.rule == "stability" else 0.0
        return first_seen + timedelta(seconds=window + self.grace_seconds)
