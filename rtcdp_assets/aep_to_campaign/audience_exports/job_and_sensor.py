"""The audience import job, the guardrail job and `aep_audience_export_sensor`, built around
the assets and checks they are given.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions at definition time.
"""

import json
from collections.abc import Callable, Mapping, Sequence
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
from resources.drop_zones import DropZone, DropZoneUnavailable, Entry
from resources.file_ledger import FileLedger, FileVersion
from resources.settings import PipelineSettings
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import (
    AUDIENCES_PARTITION_NAME,
    SEGMENT_EXPORTS,
    audience_partitions,
)
from rtcdp_assets.aep_to_campaign.audience_exports.retries import (
    FAILURES_AFTER,
    record_failed_exports,
    retry_requests,
    sensor_now,
)
from rtcdp_assets.aep_to_campaign.audience_exports.tick_plan import (
    LedgerNote,
    plan_audience_tick,
)
from rtcdp_assets.shared.check_outcome_tags import tag_failed_checks


def _folder_of(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def settle_waiting_versions(
    ledger: FileLedger, zone_id: str, home: str, entries: Sequence[Entry]
) -> frozenset[str]:
    """Names the ledger holds as pending (the sensor's notes of waiting files) still in the
    folder. A pending version that left the folder unread is marked so and stays pending, for
    `no_stuck_pending` to report; one AEP rewrote is superseded when the new one is processed.
    """
    listed = {(_folder_of(e.path), e.name) for e in entries}
    still: set[str] = set()
    for folder in {home.strip("/"), *(folder for folder, _ in listed)}:
        present = ledger.present(zone_id, folder, SEGMENT_EXPORTS)
        waiting = [key for key, presence in present.items() if presence.status == "pending"]
        still.update(name for name, _ in waiting if (folder, name) in listed)
        gone = [
            FileVersion(zone_id, folder, name, identity)
            for name, identity in waiting
            if (folder, name) not in listed
        ]
        if gone:
            ledger.observe(zone_id, folder, SEGMENT_EXPORTS, [], gone)
    return frozenset(still)


def write_ledger_notes(ledger: FileLedger, zone_id: str, notes: Sequence[LedgerNote]) -> None:
    """Why files wait, in the file ledger. A version a run already settled keeps its fate."""
    for note in notes:
        version = FileVersion(
            zone_id, _folder_of(note.entry.path), note.entry.name, note.entry.identity
        )
        known = ledger.get(version)
        if known is not None and known.status != "pending":
            continue
        ledger.record(
            version,
            note.entry,
            dataset=SEGMENT_EXPORTS,
            status=note.status,
            # AEP's files stay where AEP wrote them (its retention removes them).
            location=note.entry.path,
            in_folder=True,
            reason=note.reason,
        )


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
        hooks={tag_failed_checks},
    )
    guardrail_job = define_asset_job(
        "audience_guardrails_job",
        selection=AssetSelection.checks(*unpartitioned_checks),
        executor_def=in_process_executor,
        description="Audience-count guardrails across all audiences (also reported by the "
        "sensor whenever it registers new audiences).",
        hooks={tag_failed_checks},
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
        file_ledger: FileLedger,
    ) -> SensorResult | SkipReason:
        try:
            entries = aep_destination.list(audience_settings.destination_folder)
        except DropZoneUnavailable as exc:
            # The cursor is untouched, so nothing is missed once the container answers again.
            return SkipReason(f"AEP destination container unavailable, will retry: {exc}")
        known = set(context.instance.get_dynamic_partitions(AUDIENCES_PARTITION_NAME))
        zone_id = aep_destination.describe()
        now = sensor_now()
        # Failed runs first: their exports are behind the watermark, the ledger brings them back.
        failures_after = record_failed_exports(context, file_ledger, zone_id, entries, settings)
        retries = retry_requests(file_ledger, zone_id, entries, now)
        pending_in_ledger = settle_waiting_versions(
            file_ledger, zone_id, audience_settings.destination_folder, entries
        )
        plan = plan_audience_tick(
            entries,
            context.cursor,
            now.timestamp(),
            audience_settings,
            settings.file_settle_seconds,
            known,
            lambda entry: aep_destination.read_bytes(entry.path),
            pending_in_ledger,
        )
        for warning in plan.warnings:
            context.log.warning(warning)
        for note in plan.notes:
            context.log.info(note)
        write_ledger_notes(file_ledger, zone_id, plan.ledger_notes)
        state = json.loads(plan.cursor or context.cursor or "{}")
        cursor = json.dumps({**state, FAILURES_AFTER: failures_after}, sort_keys=True)
        requests = [*plan.run_requests, *retries.run_requests]
        file_ledger.retry_requested(retries.versions)
        if not requests:
            said = [*plan.warnings, *plan.notes, *retries.notes][:20]
            return SensorResult(
                skip_reason=SkipReason("; ".join(said) or "no new audience exports"),
                cursor=cursor,
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
            run_requests=requests,
            dynamic_partitions_requests=(
                [audience_partitions.build_add_request(plan.new_audiences)]
                if plan.new_audiences
                else []
            ),
            asset_events=events,
            cursor=cursor,
        )

    return job, aep_audience_export_sensor, guardrail_job
