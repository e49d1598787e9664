"""The audience import job, the guardrail job and `aep_audience_export_sensor`, built around
the assets and checks they are given.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions at definition time.
"""

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetsDefinition,
    AssetSelection,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    in_process_executor,
    sensor,
)

from resources.audience_settings import AudienceSettings
from resources.drop_zones import DropZone, DropZoneUnavailable
from resources.settings import PipelineSettings
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import (
    AUDIENCES_PARTITION_NAME,
    audience_partitions,
)
from rtcdp_assets.aep_to_campaign.audience_exports.tick_plan import plan_audience_tick


def build_audience_job_and_sensor(
    assets: Sequence[AssetsDefinition],
    partitioned_checks: Sequence[Any],
    unpartitioned_checks: Sequence[Any],
    audience_count_evaluation: Callable[
        [set[str], Mapping[str, set[str]], AudienceSettings], AssetCheckEvaluation
    ],
) -> tuple[Any, Any, Any]:
    job = define_asset_job(
        "audience_import_job",
        selection=AssetSelection.assets(*assets).without_checks()
        | AssetSelection.checks(*partitioned_checks),
        executor_def=in_process_executor,
        description="Ingest one AEP audience export, apply it to the membership, build and "
        "check the Campaign import file, then upload it to the Campaign SFTP server.",
    )
    guardrail_job = define_asset_job(
        "audience_guardrails_job",
        selection=AssetSelection.checks(*unpartitioned_checks),
        executor_def=in_process_executor,
        description="Audience-count guardrails across all audiences (also reported by the "
        "sensor whenever it registers new audiences).",
    )

    @sensor(
        name="aep_audience_export_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Watches the AEP destination container for audience exports and requests one run "
            "per complete export, registering unseen audiences as partitions."
        ),
    )
    def aep_audience_export_sensor(
        context: SensorEvaluationContext,
        aep_destination: DropZone,
        audience_settings: AudienceSettings,
        settings: PipelineSettings,
    ) -> SensorResult | SkipReason:
        try:
            entries = aep_destination.list(audience_settings.destination_folder)
        except DropZoneUnavailable as exc:
            # The cursor is untouched, so nothing is missed once the container answers again.
            return SkipReason(f"AEP destination container unavailable, will retry: {exc}")
        known = set(context.instance.get_dynamic_partitions(AUDIENCES_PARTITION_NAME))
        plan = plan_audience_tick(
            entries,
            context.cursor,
            datetime.now(UTC).timestamp(),
            audience_settings,
            settings.file_settle_seconds,
            known,
            lambda entry: aep_destination.read_bytes(entry.path),
        )
        for note in plan.notes:
            context.log.info(note)
        if not plan.run_requests:
            return SensorResult(
                skip_reason=SkipReason("; ".join(plan.notes[:20]) or "no new audience exports"),
                cursor=plan.cursor,
            )
        events = []
        if plan.new_audiences:
            events.append(
                audience_count_evaluation(
                    known | set(plan.new_audiences),
                    plan.audiences_by_destination,
                    audience_settings,
                )
            )
        return SensorResult(
            run_requests=plan.run_requests,
            dynamic_partitions_requests=(
                [audience_partitions.build_add_request(plan.new_audiences)]
                if plan.new_audiences
                else []
            ),
            asset_events=events,
            cursor=plan.cursor,
        )

    return job, aep_audience_export_sensor, guardrail_job
