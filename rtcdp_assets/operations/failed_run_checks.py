"""`failed_run_checks_sensor`: the check evaluations a failed run planned but never ran are
recorded as not executed, so none stays `PLANNED` in the event log.

Why: Dagster writes a check execution row `PLANNED` when a run starts and updates it only from
the check's evaluation event. A run that fails before a check step runs (the asset's step
failed, a blocking check failed, a resource could not start) leaves the row `PLANNED` for good;
Dagster 1.13 only resolves it at read time in the UI (`AssetCheckExecutionRecord.
resolve_status`), so SQL queries, filters and alerts over the event log keep seeing it planned
(dagster-io/dagster#16102 describes this write path). The sensor reads failed runs through the
run records (rtcdp_assets/shared/failed_runs.py) and stores, in the failed run itself, one
evaluation per planned check without a result: failed, severity WARN, "not executed", with the
run's failure reason. That closes the row as Dagster's own evaluation event would.
"""

import json
import logging

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    MetadataValue,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from rtcdp_assets.shared.failed_runs import FailedRun, failed_runs_after

NOT_EXECUTED = "not executed: the run failed before this check ran"


def _planned_without_result(instance: DagsterInstance, run_id: str) -> list[tuple]:
    """(asset key, check name, partition) of every check the run planned and did not evaluate."""
    planned: list[tuple] = []
    evaluated: set[tuple] = set()
    kinds = {
        DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
        DagsterEventType.ASSET_CHECK_EVALUATION,
    }
    for entry in instance.all_logs(run_id, of_type=kinds):
        event = entry.dagster_event
        if event is None:
            continue
        data = event.event_specific_data
        if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluated.add((data.asset_key, data.check_name, data.partition))
            continue
        subset = data.partitions_subset
        for partition in subset.get_partition_keys() if subset is not None else [None]:
            planned.append((data.asset_key, data.check_name, partition))
    return [key for key in dict.fromkeys(planned) if key not in evaluated]


def close_planned_checks(instance: DagsterInstance, run: FailedRun, job_name: str) -> int:
    """Record the failed run's planned checks as not executed; how many were recorded."""
    missing = _planned_without_result(instance, run.run_id)
    for asset_key, check_name, partition in missing:
        evaluation = AssetCheckEvaluation(
            asset_key=asset_key,
            check_name=check_name,
            passed=False,
            severity=AssetCheckSeverity.WARN,
            description=f"{NOT_EXECUTED} ({run.reason})",
            metadata={
                "not_executed": MetadataValue.bool(True),
                "run_failure": MetadataValue.text(run.reason),
            },
            partition=partition,
        )
        event = DagsterEvent(
            event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION.value,
            job_name=job_name,
            event_specific_data=evaluation,
            message=f"{check_name} on {asset_key.to_user_string()}: {NOT_EXECUTED}",
        )
        instance.report_dagster_event(event, run_id=run.run_id, log_level=logging.WARNING)
    return len(missing)


@sensor(
    name="failed_run_checks_sensor",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Records the checks a failed run planned but never ran as not executed (WARN), so no "
        "check execution of a failed run stays PLANNED in the event log."
    ),
)
def failed_run_checks_sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
    state = json.loads(context.cursor) if context.cursor else {}
    runs, after = failed_runs_after(context.instance, state.get("failures_after"), None)
    closed = 0
    for run in runs:
        record = context.instance.get_run_by_id(run.run_id)
        closed += close_planned_checks(context.instance, run, record.job_name if record else "")
    cursor = json.dumps({"failures_after": after})
    if closed:
        context.log.info(f"{closed} planned check evaluations of {len(runs)} failed runs closed")
    return SensorResult(
        skip_reason=SkipReason(
            f"{closed} planned check evaluations of {len(runs)} failed runs recorded as "
            "not executed"
        ),
        cursor=cursor,
    )
