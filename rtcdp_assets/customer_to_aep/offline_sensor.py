"""`offline_data_sensor`: the offline data folders of the customer_source zone, in the file
ledger like the Campaign exports (export_flow/tick_planning.py).

Each tick, per mapping (dataset):

1. the file versions of failed runs of ``<dataset>_job`` (found through the instance's run
   records by their ``rtcdp/offline_versions`` tag, rtcdp_assets/shared/failed_runs.py) are
   recorded with ``FileLedger.record_failed_run``: pending with a retry due after the back-off
   (doubling per attempt), or ``failed`` after ``failed_run_max_attempts`` runs. A run that
   archived the day before it failed (at publication, say) counts too: the retry re-reads the
   day's archive (``moved_is_retried``);
2. complete versions seen for the first time are recorded as ``pending``;
3. one run per day whose complete files changed (run key ``<dataset>:<day>:<digest>``, the
   digest of the day's ``name@identity`` versions), and one per day with a retry due, under a
   new key per attempt (``...#attempt<n>@<due>``), so Dagster's run-key de-duplication does
   not swallow it. ``rtcdp-ledger retry`` makes a version due now.

The runs record the outcome (offline_ingest.py): ``processed`` or ``quarantined``.

No ``from __future__ import annotations``: Dagster reads the decorated function's annotations.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dagster import (
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from resources.drop_zones import DropZone, DropZoneUnavailable, Entry, join
from resources.file_ledger import FileLedger, FileVersion, LedgerRow
from resources.settings import PipelineSettings
from rtcdp_assets.customer_to_aep.offline_ingest import OfflineDataset
from rtcdp_assets.shared.failed_runs import failed_runs_after
from rtcdp_assets.shared.file_completion import CompletionRule

OFFLINE_FILE_TAG = "rtcdp/offline_file"
OFFLINE_DATASET_TAG = "rtcdp/offline_dataset"
# The run's file versions, [[name, identity], ...]: what a failed run is retried for.
OFFLINE_VERSIONS_TAG = "rtcdp/offline_versions"
# Cursor key: update time of the newest failed run read.
FAILURES_AFTER = "failures_after"


def sensor_now() -> datetime:
    """The sensor's clock (tests replace it to step past the back-off)."""
    return datetime.now(UTC)


def versions_tag(versions: Iterable[tuple[str, str]]) -> str:
    return json.dumps(
        sorted([name, identity] for name, identity in versions), separators=(",", ":")
    )


def tagged_versions(tags: Mapping[str, str]) -> list[tuple[str, str]]:
    """The (name, identity) versions a run was requested for (none for a hand-launched run)."""
    return [(name, identity) for name, identity in json.loads(tags.get(OFFLINE_VERSIONS_TAG, "[]"))]


def record_failed_offline_runs(
    instance: DagsterInstance,
    after: float | None,
    ledger: FileLedger,
    zone_id: str,
    datasets: Sequence[OfflineDataset],
    settings: PipelineSettings,
) -> float | None:
    """The versions of failed offline runs in the ledger; the cursor's next `failures_after`."""
    runs, newest = failed_runs_after(instance, after, OFFLINE_VERSIONS_TAG)
    by_name = {ds.dataset: ds for ds in datasets}
    for run in runs:
        ds = by_name.get(run.tags.get(OFFLINE_DATASET_TAG, ""))
        if ds is None:
            continue
        for name, identity in tagged_versions(run.tags):
            version = FileVersion(zone_id, ds.folder, name, identity)
            row = ledger.get(version)
            if row is None or row.dataset != ds.dataset:
                continue  # not a version this sensor recorded
            entry = Entry(
                path=row.location or join(ds.folder, name),
                size=row.size or 0,
                modified=row.first_seen,
                identity=identity,
            )
            ledger.record_failed_run(
                version,
                entry,
                dataset=ds.dataset,
                run_id=run.run_id,
                reason=run.reason,
                at=run.failed_at,
                limits=settings,
                moved_is_retried=True,
            )
    return newest


@dataclass(frozen=True)
class DayRetries:
    """Days with versions whose run failed: due now (key suffix and versions), or waiting."""

    due: dict[str, tuple[str, list[FileVersion]]]
    waiting: dict[str, str]


def day_retries(rows: Sequence[LedgerRow], ds: OfflineDataset, now: datetime) -> DayRetries:
    by_day: dict[str, list[LedgerRow]] = {}
    for row in rows:
        pk = row.partition or ds.partition_of(row.version.name)
        if pk is not None and row.retry_after is not None:
            by_day.setdefault(pk, []).append(row)
    due: dict[str, tuple[str, list[FileVersion]]] = {}
    waiting: dict[str, str] = {}
    for pk, day in by_day.items():
        when = min(r.retry_after for r in day if r.retry_after is not None)
        if now < when:
            waiting[pk] = (
                f"{ds.dataset} {pk}: {day[0].reason}; requested again at {when:%Y-%m-%d %H:%M:%S}Z"
            )
            continue
        # The due time makes the key unique: an operator's retry starts the attempts again.
        attempt = max(r.attempts or 0 for r in day) + 1
        due[pk] = (
            f"#attempt{attempt}@{when.isoformat(timespec='seconds')}",
            [r.version for r in day],
        )
    return DayRetries(due, waiting)


def plan_offline_tick(
    datasets: list[OfflineDataset],
    zone: DropZone,
    rule: CompletionRule,
    now: datetime,
    ledger: FileLedger | None = None,
) -> tuple[list[RunRequest], list[str]]:
    """One run per dataset and day whose complete files changed (the run key names them), and
    one per day with a retry due. With a `ledger`, new versions are recorded as pending and the
    retried ones as requested before the requests are returned."""
    requests, notes = [], []
    zone_id = zone.describe()
    for ds in datasets:
        listing = zone.list(ds.folder)
        by_path = {e.path: e for e in listing}
        days: dict[str, list[Entry]] = {}
        for entry in listing:
            if rule.is_temporary(entry.name):
                notes.append(f"{entry.name}: temporary name, still being uploaded")
                continue
            if rule.is_marker(entry.name):
                continue
            pk = ds.partition_of(entry.name)
            if pk is None:
                notes.append(
                    f"{ds.folder}/{entry.name}: not <{ds.mapping.file_prefix}>_"
                    "<YYYYMMDD>[...].csv|.parquet, left in place"
                )
                continue
            waiting = rule.wait_reason(entry, by_path, entry.modified, now)
            if waiting:
                notes.append(f"{entry.name}: {waiting}")
                continue
            days.setdefault(pk, []).append(entry)
        retries = DayRetries({}, {})
        if ledger is not None:
            retries = _ledger_tick(ledger, zone_id, ds, listing, days, now, notes)
        for pk in sorted(set(days) | set(retries.due)):
            if pk in retries.waiting and pk not in retries.due:
                notes.append(retries.waiting[pk])
                continue
            suffix, retried = retries.due.get(pk, ("", []))
            versions = {(e.name, e.identity) for e in days.get(pk, [])}
            versions |= {(v.name, v.identity) for v in retried}
            digest = hashlib.sha256(
                "\n".join(sorted(f"{n}@{i}" for n, i in versions)).encode()
            ).hexdigest()[:16]
            tags = {
                OFFLINE_FILE_TAG: ",".join(sorted({n for n, _ in versions})),
                OFFLINE_DATASET_TAG: ds.dataset,
                OFFLINE_VERSIONS_TAG: versions_tag(versions),
            }
            requests.append(
                RunRequest(
                    run_key=f"{ds.dataset}:{pk}:{digest}{suffix}",
                    partition_key=pk,
                    job_name=f"{ds.dataset}_job",
                    tags=tags,
                )
            )
            if ledger is not None and retried:
                ledger.retry_requested(retried)
    return requests, notes


def _ledger_tick(
    ledger: FileLedger,
    zone_id: str,
    ds: OfflineDataset,
    listing: Sequence[Entry],
    days: dict[str, list[Entry]],
    now: datetime,
    notes: list[str],
) -> DayRetries:
    """New complete versions recorded (pending), vanished ones marked out of the folder, the
    `failed` ones taken out of `days` (only an operator's retry brings them back); the days
    with a retry due or waiting."""
    known = ledger.present(zone_id, ds.folder, ds.dataset)
    listed = {(e.name, e.identity) for e in listing}
    complete = [e for day in days.values() for e in day]
    new = [e for e in complete if (e.name, e.identity) not in known]
    gone = [FileVersion(zone_id, ds.folder, *key) for key in known if key not in listed]
    ledger.observe(zone_id, ds.folder, ds.dataset, new, gone, seen_at=now)
    for pk, day in list(days.items()):
        for e in list(day):
            row = known.get((e.name, e.identity))
            if row is not None and row.status == "failed":
                notes.append(f"{e.name}: failed ({row.reason}); see `rtcdp-ledger failed`")
                day.remove(e)
        if not day:
            del days[pk]
    return day_retries(ledger.awaiting_retry(zone_id, ds.dataset), ds, now)


def build_offline_sensor(datasets: list[OfflineDataset], jobs: list[Any]) -> Any:
    @sensor(
        name="offline_data_sensor",
        jobs=jobs,
        minimum_interval_seconds=120,
        default_status=DefaultSensorStatus.RUNNING,
        description="Watches the offline data folders of the customer_source zone (one per "
        "mapping file), records each complete file version in the file ledger and requests a "
        "run of a dataset's day whenever its complete files change; a failed run's day is "
        "requested again after the back-off under a new run key, at most "
        "`failed_run_max_attempts` times.",
    )
    def offline_data_sensor(
        context: SensorEvaluationContext,
        customer_source: DropZone,
        settings: PipelineSettings,
        file_ledger: FileLedger,
    ) -> SensorResult | SkipReason:
        state = json.loads(context.cursor) if context.cursor else {}
        try:
            after = record_failed_offline_runs(
                context.instance,
                state.get(FAILURES_AFTER),
                file_ledger,
                customer_source.describe(),
                datasets,
                settings,
            )
            requests, notes = plan_offline_tick(
                datasets,
                customer_source,
                CompletionRule.customer_source(settings),
                sensor_now(),
                file_ledger,
            )
        except DropZoneUnavailable as exc:
            return SkipReason(f"customer source unavailable, will retry: {exc}")
        for note in notes:
            context.log.info(note)
        cursor = json.dumps({FAILURES_AFTER: after})
        if not requests:
            skip = SkipReason("; ".join(notes[:20]) or "no offline files")
            return SensorResult(skip_reason=skip, cursor=cursor)
        return SensorResult(run_requests=requests, cursor=cursor)

    return offline_data_sensor
