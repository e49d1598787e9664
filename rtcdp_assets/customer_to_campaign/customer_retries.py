"""Failed customer imports come back: `customer_source_sensor` records the files of each failed
import run in the file ledger (found through the instance's run records by their
`rtcdp/customer_files` tag, rtcdp_assets/shared/failed_runs.py) and requests the snapshot again
under a new run key once the back-off has passed; after `failed_run_max_attempts` runs the
files are `failed`. Without this the run key (the digest of the files) would never run again.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from dagster import SensorEvaluationContext

from resources.drop_zones import DropZone, Entry
from resources.file_ledger import FileLedger, FileVersion
from resources.settings import PipelineSettings
from rtcdp_assets.customer_to_campaign.customer_datasets import CUSTOMER_DATASETS, CustomerDataset
from rtcdp_assets.shared.failed_runs import failed_runs_after

CUSTOMER_DATASET_TAG = "rtcdp/customer_dataset"
# The snapshot's file versions, [[name, identity], ...]: what a failed run was given.
CUSTOMER_FILES_TAG = "rtcdp/customer_files"
FAILURES_AFTER = "failures_after"


def files_tag(files: Sequence[Entry]) -> str:
    return json.dumps(sorted([e.name, e.identity] for e in files), separators=(",", ":"))


def record_failed_imports(
    context: SensorEvaluationContext,
    ledger: FileLedger,
    zone: DropZone,
    settings: PipelineSettings,
) -> float | None:
    """The files of failed import runs in the ledger; the cursor's next `failures_after`."""
    state = json.loads(context.cursor) if context.cursor else {}
    runs, after = failed_runs_after(context.instance, state.get(FAILURES_AFTER), CUSTOMER_FILES_TAG)
    by_name = {d.dataset: d for d in CUSTOMER_DATASETS}
    zone_id = zone.describe()
    for run in runs:
        dataset = by_name.get(run.tags.get(CUSTOMER_DATASET_TAG, ""))
        if dataset is None:
            continue
        listed = {(e.name, e.identity): e for e in zone.list(dataset.folder)}
        for name, identity in json.loads(run.tags[CUSTOMER_FILES_TAG]):
            entry = listed.get((name, identity))
            if entry is None:  # replaced or removed since: not the failed run's version
                continue
            ledger.record_failed_run(
                FileVersion(zone_id, dataset.folder, name, identity),
                entry,
                dataset=dataset.asset_name,
                run_id=run.run_id,
                reason=run.reason,
                at=run.failed_at,
                limits=settings,
            )
    return after


@dataclass(frozen=True)
class SnapshotRetry:
    """What the ledger says of a snapshot's files: request it as usual (`suffix` empty), again
    under a new key (`suffix`), or not now (`waiting`, why)."""

    suffix: str = ""
    waiting: str | None = None
    versions: tuple[FileVersion, ...] = ()


def snapshot_retry(
    ledger: FileLedger,
    zone_id: str,
    dataset: CustomerDataset,
    files: Sequence[Entry],
    now: datetime,
) -> SnapshotRetry:
    rows = [
        row
        for e in files
        if (row := ledger.get(FileVersion(zone_id, dataset.folder, e.name, e.identity)))
    ]
    if any(r.status == "failed" for r in rows):
        return SnapshotRetry(waiting=f"{dataset.asset_name}: failed; see `rtcdp-ledger failed`")
    retrying = [r for r in rows if r.status == "pending" and r.retry_after is not None]
    if not retrying:
        return SnapshotRetry()
    due = min(r.retry_after for r in retrying if r.retry_after is not None)
    if now < due:
        return SnapshotRetry(
            waiting=f"{dataset.asset_name}: run failed; requested again at {due:%H:%M:%S}Z"
        )
    attempt = max(r.attempts or 0 for r in retrying) + 1
    return SnapshotRetry(
        suffix=f"#attempt{attempt}@{due.isoformat(timespec='seconds')}",
        versions=tuple(r.version for r in retrying),
    )
