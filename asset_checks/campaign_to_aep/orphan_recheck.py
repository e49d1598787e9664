"""`orphan_recheck_sensor`: runs `orphan_tracking_rows` again for the tracking_log partitions a
newly loaded broadlog partition can change.

A broadlog partition Q is in the look-back of the tracking partitions Q … Q + look-back. Of
those that are materialized, the sensor asks for the check again unless its latest result
already settled it (passed with every look-back window loaded) or a run is about to evaluate
it. One run per tracking partition and batch of broadlog materializations; the cursor is the
last broadlog materialization seen (event storage id), so each arrival is handled once.
"""

from datetime import timedelta

from dagster import (
    AssetCheckKey,
    AssetChecksDefinition,
    AssetKey,
    AssetSelection,
    DagsterInstance,
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    in_process_executor,
    sensor,
)
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from asset_checks.campaign_to_aep.tracking_checks import BROADLOG, BROADLOG_NOT_LOADED
from resources.settings import PipelineSettings
from rtcdp_assets.shared.new_materializations import materializations_after, storage_id_cursor
from rtcdp_assets.shared.partitions import PARTITION_KEY_FORMAT, four_hourly_partitions

TRACKING_LOG = AssetKey("tracking_log")
# Broadlog materializations read per tick: a backlog is worked through over several ticks.
BATCH = 200
# The partition of a check-only run travels as this tag: a job of checks alone has no
# partitions definition of its own to validate a `partition_key` against.
PARTITION_TAG = "dagster/partition"


def build_orphan_recheck(
    check_def: AssetChecksDefinition,
) -> tuple[JobDefinition, SensorDefinition]:
    """The check-only job of `check_def` (orphan_tracking_rows) and the sensor that runs it
    when broadlog partitions arrive."""
    check_key = next(iter(check_def.check_keys))
    job = define_asset_job(
        "orphan_recheck_job",
        selection=AssetSelection.checks(check_def),
        executor_def=in_process_executor,
        description="Evaluate orphan_tracking_rows again for one tracking_log partition.",
    )

    @sensor(
        name="orphan_recheck_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "When broadlog partitions are loaded, evaluates orphan_tracking_rows again for the "
            "tracking_log partitions whose look-back they fall in and whose result is not "
            "settled yet (broadlog_not_loaded or orphans)."
        ),
    )
    def orphan_recheck_sensor(
        context: SensorEvaluationContext, settings: PipelineSettings
    ) -> SensorResult | SkipReason:
        after = storage_id_cursor(context.cursor)
        records = materializations_after(context.instance, BROADLOG, after, BATCH)
        if not records:
            return SkipReason("no new broadlog partition")
        last = records[-1].storage_id
        arrived = {r.partition_key for r in records if r.partition_key}
        requests = [
            RunRequest(
                run_key=f"{pk}@broadlog-{last}",
                tags={PARTITION_TAG: pk, "rtcdp/reason": "broadlog_loaded"},
            )
            for pk in recheck_partitions(context.instance, check_key, arrived, settings)
        ]
        return SensorResult(
            run_requests=requests,
            cursor=str(last),
            skip_reason=None if requests else SkipReason("every affected result is settled"),
        )

    return job, orphan_recheck_sensor


def affected_partitions(arrived: set[str], settings: PipelineSettings) -> set[str]:
    """Tracking windows whose look-back holds one of the `arrived` broadlog windows."""
    steps = max(1, settings.orphan_lookback_hours // 4)
    out: set[str] = set()
    for pk in arrived:
        start = four_hourly_partitions.time_window_for_partition_key(pk).start
        out.update(
            (start + timedelta(hours=4 * i)).strftime(PARTITION_KEY_FORMAT)
            for i in range(steps + 1)
        )
    return out


def recheck_partitions(
    instance: DagsterInstance,
    check_key: AssetCheckKey,
    arrived: set[str],
    settings: PipelineSettings,
) -> list[str]:
    """The materialized tracking partitions of `affected_partitions` whose latest
    orphan_tracking_rows result is missing, failed or waited for broadLog."""
    candidates = affected_partitions(arrived, settings) & instance.get_materialized_partitions(
        TRACKING_LOG
    )
    out = []
    for pk in sorted(candidates):
        history = instance.event_log_storage.get_asset_check_execution_history(
            check_key, limit=1, partition_filter=PartitionKeyFilter(key=pk)
        )
        if not history or not _settled(instance, history[0]):
            out.append(pk)
    return out


def _settled(instance: DagsterInstance, latest: AssetCheckExecutionRecord) -> bool:
    """Passed, and not while waiting for broadLog; or about to be evaluated by a run that
    has not finished (it reads the broadLog loaded by then)."""
    if latest.status == AssetCheckExecutionRecordStatus.PLANNED:
        run = instance.get_run_by_id(latest.run_id)
        return run is not None and not run.is_finished
    if latest.status != AssetCheckExecutionRecordStatus.SUCCEEDED or latest.event is None:
        return False
    evaluation = latest.event.dagster_event.event_specific_data  # an AssetCheckEvaluation
    outcome = evaluation.metadata.get("outcome") if evaluation is not None else None
    return outcome is None or outcome.value != BROADLOG_NOT_LOADED
