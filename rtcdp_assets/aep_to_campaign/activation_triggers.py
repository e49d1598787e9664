"""What starts activation once an audience export is imported: `destination_export_sensor`
(the destination files follow each import) and `audience_reach_schedule` (reach, every four
hours).

**Why a sensor, not an automation condition.** A destination run works on one export of the
audience, named by the run tags `rtcdp/audience_id` and `rtcdp/export_time` (two exports of one
audience are one `audiences` partition, materialized twice). An automation condition requests a
partition, without tags: the run would take "the latest processed export", which is another one
when a second export was imported meanwhile, and two imports between evaluations would give one
run. The sensor reads each `activation_dry_run` materialization (the last step before anything
is written, and the one that carries the export stamp), and asks for one
`destination_export_job` run per export with the import's tags, run key
`destination_exports:<audience>@<stamp>`; its cursor is the last materialization handled, so a
re-tick requests nothing.

**Waiting for review.** A `destination_exports_published` run that held a `review_first`
destination records an observation (`waiting_for_review`, `dry_run_id`). While no later
publication has emptied that list, each tick looks for the approval file of that dry run and,
once it is there, asks for the publication again (only `destination_exports_published`, run key
`destination_exports_published:<dry-run id>:approved`). An approval by run tag is a run someone
launches with the tag; nothing to pick up. The Campaign import waits the same way
(`campaign_import_review_first`): a `campaign_audience_import_published` observation with
`waiting_for_review`, then, once the approval file is there, one `audience_import_job` run of
that asset only (run key `campaign_audience_import_published:<dry-run id>:approved`).

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions at definition time.
"""

import json
from typing import Any

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    schedule,
    sensor,
)

from resources.audience_settings import AudienceSettings
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import (
    AUDIENCES_PARTITION_NAME,
    TAG_AUDIENCE,
    TAG_EXPORT_TIME,
)
from rtcdp_assets.aep_to_campaign.campaign_audience_import.import_file import (
    PUBLISHED as IMPORT_PUBLISHED,
)
from rtcdp_assets.aep_to_campaign.destinations.dry_run import review_first_destinations
from rtcdp_assets.aep_to_campaign.destinations.staged_files import PUBLISHED
from rtcdp_assets.aep_to_campaign.dry_run_approval import (
    ACTIVATION_DRY_RUN,
    CAMPAIGN_DESTINATION,
    approval,
)
from rtcdp_assets.shared.new_materializations import materializations_after

DRY_RUN_KEY = AssetKey(ACTIVATION_DRY_RUN)
PUBLISHED_KEY = AssetKey(PUBLISHED)
IMPORT_PUBLISHED_KEY = AssetKey(IMPORT_PUBLISHED)
DRY_RUNS_PER_TICK = 100  # AEP's soft limit is 100 audiences exported per hour
REACH_CRON = "30 */4 * * *"  # after each 4-hour window of broadLog and trackingLog exports


def _metadata(record: Any, name: str) -> Any:
    event = record.asset_materialization or record.asset_observation
    entry = event.metadata.get(name) if event is not None else None
    return None if entry is None else entry.value


def export_requests(
    instance: DagsterInstance, after: int | None, job_name: str
) -> tuple[list[RunRequest], int | None]:
    """One destination run per `activation_dry_run` materialization after storage id `after`
    (oldest first), and the new cursor."""
    records = materializations_after(instance, DRY_RUN_KEY, after, DRY_RUNS_PER_TICK)
    requests: dict[str, RunRequest] = {}
    for record in records:
        audience_id = record.partition_key
        stamp = _metadata(record, "export_stamp")
        if not audience_id or not stamp:
            continue
        key = f"destination_exports:{audience_id}@{stamp}"
        requests[key] = RunRequest(
            run_key=key,
            job_name=job_name,
            partition_key=audience_id,
            tags={TAG_AUDIENCE: audience_id, TAG_EXPORT_TIME: stamp},
        )
    last = records[-1].storage_id if records else after
    return list(requests.values()), last


def waiting_dry_run(
    instance: DagsterInstance, audience_id: str, published: AssetKey = PUBLISHED_KEY
) -> tuple[str, str] | None:
    """(dry-run id, export stamp) of the audience's publication (`published`: the destination
    files, or the Campaign import) waiting for review, or None."""
    partition = AssetRecordsFilter(asset_key=published, asset_partitions=[audience_id])
    observed = instance.fetch_observations(partition, limit=1).records
    if not observed or not _metadata(observed[0], "waiting_for_review"):
        return None
    done = instance.fetch_materializations(partition, limit=1).records
    # A later publication that held nothing back: the wait is over.
    if (
        done
        and done[0].storage_id > observed[0].storage_id
        and not _metadata(done[0], "waiting_for_review")
    ):
        return None
    return _metadata(observed[0], "dry_run_id"), _metadata(observed[0], "export_stamp")


def approved_requests(
    instance: DagsterInstance,
    warehouse: Warehouse,
    job_name: str,
    published: AssetKey = PUBLISHED_KEY,
) -> list[RunRequest]:
    """Publication (`published`, in `job_name`) again for each waiting export whose dry run is
    now approved by file."""
    requests = []
    for audience_id in sorted(instance.get_dynamic_partitions(AUDIENCES_PARTITION_NAME)):
        waiting = waiting_dry_run(instance, audience_id, published)
        if waiting is None or approval(warehouse, {}, audience_id, waiting[1]) is None:
            continue
        requests.append(
            RunRequest(
                run_key=f"{published.to_user_string()}:{waiting[0]}:approved",
                job_name=job_name,
                partition_key=audience_id,
                asset_selection=[published],
                tags={TAG_AUDIENCE: audience_id, TAG_EXPORT_TIME: waiting[1]},
            )
        )
    return requests


def build_destination_export_sensor(
    destination_job: Any, import_job: Any | None = None
) -> SensorDefinition:
    """`destination_export_sensor` requesting `destination_job` (destination_export_job) and,
    when given, `import_job` (audience_import_job) for an approved Campaign import."""
    jobs = [destination_job] if import_job is None else [destination_job, import_job]

    @sensor(
        name="destination_export_sensor",
        jobs=jobs,
        # Dagster's default interval: a tick is one indexed event-log query, and the files
        # should follow their import promptly.
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "After each audience import (its activation_dry_run), builds, checks and publishes "
            "that export's destination files; publishes a review_first destination again once "
            "its dry run is approved, and a review_first Campaign import likewise."
        ),
    )
    def destination_export_sensor(
        context: SensorEvaluationContext, warehouse: Warehouse, audience_settings: AudienceSettings
    ) -> SensorResult:
        state = json.loads(context.cursor or "{}")
        requests, last = export_requests(context.instance, state.get("after"), destination_job.name)
        review = review_first_destinations(audience_settings)
        if any(d != CAMPAIGN_DESTINATION for d in review):
            requests += approved_requests(context.instance, warehouse, destination_job.name)
        if import_job is not None and CAMPAIGN_DESTINATION in review:
            requests += approved_requests(
                context.instance, warehouse, import_job.name, IMPORT_PUBLISHED_KEY
            )
        return SensorResult(
            run_requests=requests,
            cursor=json.dumps({"after": last}),
            skip_reason=None if requests else SkipReason("no new audience import to activate"),
        )

    return destination_export_sensor


def build_reach_schedule(reach_job: Any) -> ScheduleDefinition:
    """`audience_reach_schedule`: `reach_job` for every audience with a published import."""

    @schedule(
        name="audience_reach_schedule",
        job=reach_job,
        cron_schedule=REACH_CRON,
        default_status=DefaultScheduleStatus.RUNNING,
        description=(
            "Every four hours, the closed-loop reach of every audience whose Campaign import "
            "was published (sends and reactions keep arriving for lookback_hours)."
        ),
    )
    def audience_reach_schedule(context: ScheduleEvaluationContext) -> list[RunRequest]:
        published = context.instance.get_materialized_partitions(AssetKey(IMPORT_PUBLISHED))
        audiences = set(context.instance.get_dynamic_partitions(AUDIENCES_PARTITION_NAME))
        tick = context.scheduled_execution_time.strftime("%Y%m%d_%H%M")
        return [
            RunRequest(run_key=f"audience_reach:{audience_id}@{tick}", partition_key=audience_id)
            for audience_id in sorted(published & audiences)
        ]

    return audience_reach_schedule
