"""`campaign_upload_resume_sensor`: Campaign uploads the storage guard refused come back.

A refused upload (shared/campaign_sftp_storage.py `UploadGuard`) is a pending ledger row in the
Campaign SFTP zone with the reason `upload_deferred: ...`, the asset that uploads (`dataset`),
its partition and the refused run. Once the footprint, with the deferred files, is below
`campaign_sftp_block_share` again, this sensor requests that asset again for that partition,
with the refused run's own tags (the audience export stamp, the customer dataset), in the job
`definitions.py` maps the asset to; the upload then records the row as `uploaded`. One
request per refused run (run key): a run refused again records its own run id, so it is
requested again too.

No `from __future__ import annotations` here: Dagster reads the decorated function's annotations.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from resources.drop_zones import DropZone
from resources.file_ledger import UPLOAD_DEFERRED, FileLedger, LedgerRow
from resources.settings import PipelineSettings
from rtcdp_assets.shared.campaign_sftp_storage import measure_footprint, storage_level


def deferred_uploads(ledger: FileLedger, zone_id: str) -> list[LedgerRow]:
    return [
        r
        for r in ledger.in_zone(zone_id, ("pending",))
        if (r.reason or "").startswith(UPLOAD_DEFERRED)
    ]


def resume_requests(
    rows: Sequence[LedgerRow],
    job_by_asset: Mapping[str, str],
    run_tags: Callable[[str], Mapping[str, str] | None],
) -> tuple[list[RunRequest], list[str]]:
    """One request per refused run whose asset has a job; notes on the rows left aside."""
    requests: dict[str, RunRequest] = {}
    notes = []
    for row in rows:
        job_name = job_by_asset.get(row.dataset)
        if job_name is None or row.run_id is None:
            notes.append(f"{row.version.name}: no job uploads {row.dataset}; resume it by hand")
            continue
        if row.run_id in requests:
            continue
        tags = {
            k: v for k, v in (run_tags(row.run_id) or {}).items() if not k.startswith("dagster/")
        }
        requests[row.run_id] = RunRequest(
            run_key=f"upload_resume:{row.run_id}",
            job_name=job_name,
            partition_key=row.partition,
            asset_selection=[AssetKey(row.dataset)],
            tags={**tags, "rtcdp/resumes_run": row.run_id},
        )
    return list(requests.values()), notes


def build_upload_resume_sensor(jobs_by_asset: Mapping[str, Any]) -> Any:
    """`jobs_by_asset`: the asset that uploads to Campaign → the job that materializes it."""
    job_by_asset = {asset: job.name for asset, job in jobs_by_asset.items()}
    jobs = list({job.name: job for job in jobs_by_asset.values()}.values())

    @sensor(
        name="campaign_upload_resume_sensor",
        jobs=jobs,
        minimum_interval_seconds=300,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Requests again the Campaign import uploads the SFTP storage guard refused, once "
            "the platform's footprint is below campaign_sftp_block_share of the quota."
        ),
    )
    def campaign_upload_resume_sensor(
        context: SensorEvaluationContext,
        campaign_sftp: DropZone,
        file_ledger: FileLedger,
        settings: PipelineSettings,
    ) -> SensorResult | SkipReason:
        rows = deferred_uploads(file_ledger, campaign_sftp.describe())
        if not rows:
            return SkipReason("no deferred Campaign upload")
        footprint = measure_footprint(campaign_sftp, settings)
        # Resumed only when the deferred files fit below the limit, or they are refused again.
        share = footprint.share(sum(r.size or 0 for r in rows))
        if storage_level(share, settings) == "block":
            return SkipReason(
                f"{len(rows)} deferred uploads wait: with them the Campaign SFTP would be at "
                f"{share:.1%} of the quota"
            )

        def tags_of(run_id: str) -> Mapping[str, str] | None:
            run = context.instance.get_run_by_id(run_id)
            return run.tags if run is not None else None

        requests, notes = resume_requests(rows, job_by_asset, tags_of)
        for note in notes:
            context.log.warning(note)
        return SensorResult(run_requests=requests)

    return campaign_upload_resume_sensor
