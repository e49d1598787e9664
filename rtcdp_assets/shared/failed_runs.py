"""Failed runs as the sensors that bring failed work back see them: found through the instance's
run records (status FAILURE), newest last, with the file-version tags the sensor put on them and
why they failed (masked: an error message may quote a row).

A sensor keeps `after` (the newest update time it has read) in its cursor and records each
failed run's versions in the file ledger (`FileLedger.record_failed_run`, counted once per
run), so reading a run twice is harmless.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from rtcdp_assets.shared.masking import mask_text

# Failed runs read per tick: a tick stays short, the next one reads on from there.
FAILED_RUNS_PER_TICK = 200
_REASON_CHARS = 300
# Dagster wraps the exception a step raised in these: the reason is the one inside.
_WRAPPERS = ("DagsterExecutionStepExecutionError", "DagsterResourceFunctionError")


@dataclass(frozen=True)
class FailedRun:
    run_id: str
    tags: Mapping[str, str]
    reason: str
    failed_at: datetime


def failed_runs_after(
    instance: DagsterInstance, after: float | None, tag: str | None
) -> tuple[list[FailedRun], float | None]:
    """Failed runs carrying `tag` (None: every failed run), updated after `after` (epoch
    seconds; None: all), and the newest update time read (the next tick's `after`)."""
    since = datetime.fromtimestamp(after, UTC) if after is not None else None
    records = instance.get_run_records(
        filters=RunsFilter(statuses=[DagsterRunStatus.FAILURE], updated_after=since),
        limit=FAILED_RUNS_PER_TICK,
        order_by="update_timestamp",
        ascending=True,
    )
    newest = after
    runs: list[FailedRun] = []
    for record in records:
        stamp = record.update_timestamp
        stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
        newest = max(newest or 0.0, stamp.timestamp())
        run = record.dagster_run
        if tag is None or tag in run.tags:
            runs.append(
                FailedRun(run.run_id, run.tags, failure_reason(instance, run.run_id), stamp)
            )
    return runs, newest


def failure_reason(instance: DagsterInstance, run_id: str) -> str:
    """The first failed step and what it raised (or the run's own failure message)."""
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        if event is None:
            continue
        data = event.step_failure_data
        failure = data.user_failure_data
        if failure is not None and failure.description:
            text = failure.description
        else:
            err = data.error
            while err is not None and err.cls_name in _WRAPPERS and err.cause is not None:
                err = err.cause
            first_line = (err.message.strip().splitlines() or [""])[0] if err else ""
            text = f"{err.cls_name}: {first_line}" if err else "unknown error"
        return _short(f"step {event.step_key}: {text}")
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE):
        if entry.dagster_event is not None and entry.dagster_event.message:
            return _short(entry.dagster_event.message)
    return "the run failed before any step ran"


def _short(text: str) -> str:
    text = mask_text(" ".join(text.split()))
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


def requested_again_at(due: datetime) -> str:
    """How a sensor's note says when a failed run's work is requested again (`due` in UTC, as
    the file ledger keeps it)."""
    return f"requested again at {due:%Y-%m-%d %H:%M:%S}Z"
