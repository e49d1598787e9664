"""The tick planning of `<dataset>_export_sensor`: which export file versions to run, from a
listing of the SFTP export folder, the file ledger and the sensor's cursor.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions (context and resource parameters) at definition time.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from resources.drop_zones import DropZone, DropZoneUnavailable, Entry
from resources.file_ledger import FileLedger, FileVersion, Presence
from resources.settings import PipelineSettings
from rtcdp_assets.campaign_to_aep.export_flow.description import CampaignExportDescription
from rtcdp_assets.shared.failed_runs import FailedRun, failed_runs_after, requested_again_at
from rtcdp_assets.shared.file_completion import (
    INCOMPLETE_IS_FINAL_TAG,
    INCOMPLETE_REASON_PREFIX,
    CompletionRule,
)
from rtcdp_assets.shared.partitions import before_first_partition, before_first_partition_note

SOURCE_FILE_TAG = "rtcdp/source_file"
SOURCE_IDENTITY_TAG = "rtcdp/source_identity"
# Cursor key: update time of the newest failed run read (rtcdp_assets/shared/failed_runs.py).
FAILURES_AFTER = "failures_after"


@dataclass
class TickPlan:
    run_requests: list[RunRequest]
    cursor: str
    notes: list[str]
    new: list[Entry] = field(default_factory=list)  # versions to record as pending
    gone: list[tuple[str, str]] = field(default_factory=list)  # (name, identity) left the folder
    retried: list[tuple[str, str]] = field(default_factory=list)  # requested again after a failure


def _request_token(run_key: str) -> str:
    # The cursor holds the versions requested but not settled yet; short digests keep it small
    # even when thousands of files arrive at once.
    return hashlib.sha256(run_key.encode()).hexdigest()[:16]


def plan_tick(
    flow: CampaignExportDescription,
    entries: Sequence[Entry],
    known: Mapping[tuple[str, str], Presence],
    cursor: str | None,
    now: datetime,
    settings: PipelineSettings,
) -> TickPlan:
    """Decide which file versions to run, from a listing, the ledger and the cursor.

    A version is requested once: when the ledger has no fate for it yet (not processed,
    quarantined, duplicate or superseded) and the cursor does not hold it as already
    requested. Neither file times nor the wall clock decide what is new, so a file that
    arrives late with an old modification time is still picked up. The run key is the path
    plus the content identity, so a new version of the same name always runs.

    A version is requested once the zone's completion rule says it is complete
    (shared/file_completion.py: marker, rename or stability, and the settle time). An empty
    version, or one a run found cut (ledger reason `incomplete:`), is requested again with
    `INCOMPLETE_IS_FINAL_TAG` once `incomplete_file_grace_seconds` have passed: that run
    quarantines it if it is still empty or cut.
    """
    rule = CompletionRule.campaign_export(settings)
    state = json.loads(cursor) if cursor else {}
    requested = set(state.get("requested", []))
    still_requested: set[str] = set()
    requests: list[RunRequest] = []
    retried: list[tuple[str, str]] = []
    notes: list[str] = []
    new: list[Entry] = []
    listed: set[tuple[str, str]] = set()
    unrecognised = []
    by_path = {e.path: e for e in entries} if rule.rule == "marker" else {}
    for entry in sorted(entries, key=lambda e: (e.modified_ts, e.path)):
        if rule.is_sidecar(entry.name):
            continue
        key = (entry.name, entry.identity)
        row = known.get(key)
        run_key = f"{entry.path}@{entry.identity}"
        tags = {SOURCE_FILE_TAG: entry.path, SOURCE_IDENTITY_TAG: entry.identity}
        first_seen: datetime | None = None
        if row is not None:
            listed.add(key)
            if row.status != "pending":
                notes.append(
                    f"{entry.name} is already {row.status} (run {row.run_id}); the next run of "
                    f"{row.partition} moves it out of the export folder"
                )
                continue
            first_seen = datetime.fromisoformat(row.first_seen)
            token = _request_token(run_key)
            if row.retry_after is not None:
                # Its run failed (or an operator asked again): a new run key once it is due.
                still_requested.add(token)
                retry = _retry_request(flow, entry, run_key, tags, row, now)
                if isinstance(retry, RunRequest):
                    requests.append(retry)
                    retried.append(key)
                else:
                    notes.append(retry)
                continue
            if token in requested:
                # Requested by an earlier tick, not settled yet: the cheap path of idle ticks.
                still_requested.add(token)
                if (row.reason or "").startswith(INCOMPLETE_REASON_PREFIX):
                    final = _final_request(entry, run_key, tags, first_seen, now, rule, flow)
                    final_token = _request_token(f"{run_key}{FINAL_SUFFIX}")
                    if final_token in requested:
                        still_requested.add(final_token)
                    elif isinstance(final, RunRequest):
                        requests.append(final)
                        still_requested.add(final_token)
                    else:
                        notes.append(final)
                continue
        pk = flow.partition_for(entry.name)
        if pk is None:
            if entry.name.lower().startswith(flow.file_prefix.lower()):
                unrecognised.append(entry.name)
            continue
        if before_first_partition(pk):
            notes.append(before_first_partition_note(entry.name, pk))
            continue
        if row is None:
            listed.add(key)
            new.append(entry)
        waiting = rule.wait_reason(entry, by_path, first_seen, now)
        if not waiting and entry.size == 0:
            if first_seen is None or now < rule.final_after(first_seen):
                until = rule.final_after(first_seen or now).isoformat(timespec="seconds")
                waiting = f"empty so far; quarantined as empty_file if still empty at {until}"
            else:
                tags[INCOMPLETE_IS_FINAL_TAG] = "true"
        if waiting:
            notes.append(f"{entry.name}: {waiting}; waiting")
            continue
        requests.append(RunRequest(run_key=run_key, partition_key=pk, tags=tags))
        still_requested.add(_request_token(run_key))
    if unrecognised:
        notes.append(
            f"left alone, name not recognised as {flow.file_prefix}_YYYYMMDD_HHMM.csv[.gz]: "
            + ", ".join(sorted(unrecognised)[:20])
        )
    return TickPlan(
        requests,
        json.dumps({"requested": sorted(still_requested)}),
        notes,
        new=new,
        gone=[key for key in known if key not in listed],
        retried=retried,
    )


def _retry_request(
    flow: CampaignExportDescription,
    entry: Entry,
    run_key: str,
    tags: dict[str, str],
    row: Presence,
    now: datetime,
) -> RunRequest | str:
    """The next attempt of a version whose run failed, once due; before, why it waits."""
    due = datetime.fromisoformat(row.retry_after or "")
    pk = flow.partition_for(entry.name)
    if now < due or pk is None:
        return f"{entry.name}: {row.reason}; {requested_again_at(due)}"
    # The due time makes the key unique: an operator's retry starts the attempts again.
    attempt = f"#attempt{(row.attempts or 0) + 1}@{row.retry_after}"
    return RunRequest(run_key=f"{run_key}{attempt}", partition_key=pk, tags=tags)


FINAL_SUFFIX = "#final"


def _final_request(
    entry: Entry,
    run_key: str,
    tags: dict[str, str],
    first_seen: datetime,
    now: datetime,
    rule: CompletionRule,
    flow: CampaignExportDescription,
) -> RunRequest | str:
    """The second request of a version a run found cut, once its grace has passed; before,
    the note saying until when it waits."""
    until = rule.final_after(first_seen)
    pk = flow.partition_for(entry.name)
    if now < until or pk is None:
        return (
            f"{entry.name}: ends in a cut line, still being written?; quarantined as "
            f"truncated_file if unchanged at {until.isoformat(timespec='seconds')}"
        )
    return RunRequest(
        run_key=f"{run_key}{FINAL_SUFFIX}",
        partition_key=pk,
        tags={**tags, INCOMPLETE_IS_FINAL_TAG: "true"},
    )


def record_failed_versions(
    ledger: FileLedger,
    zone_id: str,
    folder: str,
    dataset: str,
    runs: Sequence[FailedRun],
    settings: PipelineSettings,
) -> None:
    """The versions of failed runs in the ledger: pending with a retry due, or failed. Only
    versions this sensor saw (a hand-launched run of another file is not its business)."""
    for run in runs:
        path, identity = run.tags[SOURCE_FILE_TAG], run.tags.get(SOURCE_IDENTITY_TAG, "")
        version = FileVersion(zone_id, folder, path.rsplit("/", 1)[-1], identity)
        row = ledger.get(version)
        if row is None or row.dataset != dataset:
            continue
        if (row.reason or "").startswith(INCOMPLETE_REASON_PREFIX):
            # A file found cut fails its run on purpose: its final request comes after the
            # grace (`_final_request`), not as a retry.
            continue
        entry = Entry(path=path, size=row.size or 0, modified=row.first_seen, identity=identity)
        ledger.record_failed_run(
            version,
            entry,
            dataset=dataset,
            run_id=run.run_id,
            reason=run.reason,
            at=run.failed_at,
            limits=settings,
        )


def sensor_now() -> datetime:
    """The sensor's clock (tests replace it to step past settle, stability and grace times)."""
    return datetime.now(UTC)


def build_export_sensor(flow: CampaignExportDescription, job: Any) -> Any:

    @sensor(
        name=f"{flow.dataset}_export_sensor",
        job=job,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"Watches the Campaign SFTP export folder for {flow.file_prefix}_*.csv[.gz] and "
            "requests one run per file version."
        ),
    )
    def export_sensor(
        context: SensorEvaluationContext,
        campaign_sftp: DropZone,
        settings: PipelineSettings,
        file_ledger: FileLedger,
    ) -> SensorResult | SkipReason:
        folder = settings.campaign_export_folder
        zone_id = campaign_sftp.describe()
        try:
            entries = campaign_sftp.list(folder)
        except DropZoneUnavailable as exc:
            # The cursor is untouched, so nothing is missed once the server is back.
            return SkipReason(f"Campaign SFTP unavailable, will retry: {exc}")
        now = sensor_now()
        state = json.loads(context.cursor) if context.cursor else {}
        runs, failures_after = failed_runs_after(
            context.instance, state.get(FAILURES_AFTER), SOURCE_FILE_TAG
        )
        record_failed_versions(file_ledger, zone_id, folder, flow.dataset, runs, settings)
        known = file_ledger.present(zone_id, folder, flow.dataset)
        plan = plan_tick(flow, entries, known, context.cursor, now, settings)
        plan.cursor = json.dumps({**json.loads(plan.cursor), FAILURES_AFTER: failures_after})
        # Recorded before the run requests are returned: if this tick fails, the versions
        # are simply still pending and the next tick requests them.
        gone = [FileVersion(zone_id, folder, name, identity) for name, identity in plan.gone]
        file_ledger.observe(zone_id, folder, flow.dataset, plan.new, gone, seen_at=now)
        file_ledger.retry_requested(FileVersion(zone_id, folder, *key) for key in plan.retried)
        for note in plan.notes:
            context.log.info(note)
        if not plan.run_requests:
            return SensorResult(
                skip_reason=SkipReason("; ".join(plan.notes[:20]) or "no new export files"),
                cursor=plan.cursor,
            )
        return SensorResult(run_requests=plan.run_requests, cursor=plan.cursor)

    return export_sensor
