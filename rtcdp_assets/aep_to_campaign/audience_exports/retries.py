"""Failed audience imports come back: `aep_audience_export_sensor` records the files of each
failed run in the file ledger (rtcdp_assets/shared/failed_runs.py finds the runs through the
instance's run records by their `rtcdp/export_files` tag) and requests the export again under a
new run key once the back-off has passed; after `failed_run_max_attempts` runs the files are
`failed`. The watermark of the cursor (tick_plan.py) never looks back, so the ledger does.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagster import RunRequest, SensorEvaluationContext

from resources.drop_zones import Entry
from resources.file_ledger import FileLedger, FileVersion
from resources.settings import PipelineSettings
from rtcdp_assets.aep_to_campaign.audience_exports.completeness import group_listing
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import (
    SEGMENT_EXPORTS,
    TAG_EXPORT_FILES,
)
from rtcdp_assets.shared.failed_runs import failed_runs_after, requested_again_at

# Cursor key: update time of the newest failed run read.
FAILURES_AFTER = "failures_after"


def sensor_now() -> datetime:
    """The sensor's clock (tests replace `job_and_sensor.sensor_now` to step past back-offs)."""
    return datetime.now(UTC)


def _version(zone_id: str, entry: Entry) -> FileVersion:
    folder, _, name = entry.path.rpartition("/")
    return FileVersion(zone_id, folder, name, entry.identity)


def record_failed_exports(
    context: SensorEvaluationContext,
    ledger: FileLedger,
    zone_id: str,
    entries: Sequence[Entry],
    settings: PipelineSettings,
) -> float | None:
    """The files of failed import runs, in the ledger; the cursor's next `failures_after`.
    Files AEP rewrote or removed since are not the failed run's versions: left alone."""
    state = json.loads(context.cursor) if context.cursor else {}
    runs, after = failed_runs_after(context.instance, state.get(FAILURES_AFTER), TAG_EXPORT_FILES)
    by_name = {e.path.rsplit("/", 1)[-1]: e for e in entries}
    for run in runs:
        for listed in json.loads(run.tags[TAG_EXPORT_FILES]):
            entry = by_name.get(listed["name"])
            if entry is None or entry.identity != listed["etag"]:
                continue
            ledger.record_failed_run(
                _version(zone_id, entry),
                entry,
                dataset=SEGMENT_EXPORTS,
                run_id=run.run_id,
                reason=run.reason,
                at=run.failed_at,
                limits=settings,
            )
    return after


@dataclass
class Retries:
    run_requests: list[RunRequest] = field(default_factory=list)
    versions: list[FileVersion] = field(default_factory=list)  # to mark as requested
    notes: list[str] = field(default_factory=list)


def retry_requests(
    ledger: FileLedger, zone_id: str, entries: Sequence[Entry], now: datetime
) -> Retries:
    """One request per export with a file whose retry is due, under a new run key; a note for
    the exports whose retry waits for its back-off (how many, when the first is due)."""
    due = {r.version: r for r in ledger.due_retries(zone_id, SEGMENT_EXPORTS, now)}
    later = {
        r.version: r.retry_after
        for r in ledger.awaiting_retry(zone_id, SEGMENT_EXPORTS)
        if r.in_folder and r.retry_after is not None and r.retry_after > now
    }
    retries = Retries()
    if not due and not later:
        return retries
    exports = group_listing(entries).exports.values()
    waiting: list[datetime] = []
    for export in exports:
        dues = [later[v] for _, e in export.files if (v := _version(zone_id, e)) in later]
        if dues:
            waiting.append(min(dues))
    if waiting:
        # A count and a time only: which exports wait is in the ledger (`rtcdp-ledger`).
        retries.notes.append(
            f"{len(waiting)} audience export(s) waiting for a retry after a failed run, the "
            f"first {requested_again_at(min(waiting))}"
        )
    for export in exports:
        rows = [due[v] for _, e in export.files if (v := _version(zone_id, e)) in due]
        if not rows:
            continue
        attempt = max(r.attempts or 0 for r in rows) + 1
        stamp = min(r.retry_after for r in rows if r.retry_after is not None)
        # The due time makes the key unique: an operator's retry starts the attempts again.
        run_key = f"{export.run_key}#attempt{attempt}@{stamp.isoformat(timespec='seconds')}"
        retries.run_requests.append(
            RunRequest(run_key=run_key, partition_key=export.audience_id, tags=export.tags())
        )
        retries.versions.extend(r.version for r in rows)
        retries.notes.append(f"{export.export_id}: attempt {attempt} after a failed run")
    return retries
