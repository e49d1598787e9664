"""Customer-supplied data → Campaign import files: `profile_import` and `personalization_import`.

    customer_source/profiles/*.csv|*.csv.gz|*.parquet        ──▶ profile_import
    customer_source/personalization/*.csv|*.csv.gz|*.parquet ──▶ personalization_import
        validated with the Campaign-export rules (ingest.py), rows that fail quarantined with a
        reason, staged in the warehouse, verified, uploaded atomically to the Campaign SFTP
        import folder (`settings.campaign_import_folder`), then `<name>.done`

The customer drops files in the `customer_source` zone (embedded default: the local folder
`<data dir>/customer_source`; in production any `DropZone`). Each asset reads every file of its
folder that the zone's completion rule calls complete (`customer_source_completion`,
shared/file_completion.py; others are left out and logged) as one **snapshot**, identified by
the SHA-256 of the file names and contents. The files stay where the customer put them (the
customer owns that folder); a new snapshot is any change of its content. Campaign reconciles on
`external_id` and updates, so importing a snapshot that repeats earlier rows is harmless.

**Columns** (header names exactly as below, any order, other columns ignored; Parquet columns of
any type are read as their text form):

profiles — `external_id` (required, the key), `email` (required, lower-cased), `first_name`,
`last_name`, `mobile_phone` (`+` and 6–15 digits), `birth_date` (YYYY-MM-DD), `country_code`
(two letters, upper-cased), `city`, `zip_code`.

personalization — `external_id` (required), `preferred_channel` (email / sms / push /
direct_mail), `preferred_language` (`en`, `fr-FR`), `send_hour_utc` (0–23, for send-time
orchestration), `loyalty_tier`, `offer_code`, `offer_expiry` (YYYY-MM-DD).

**Quarantine.** Every row that fails is kept with `source_file`, `line_number` (CSV record
number, header = 1; for Parquet the row number + 1), `reason`, `column` and the raw values:
the reasons of ingest.py (`missing_required_value`, `invalid_email`, `invalid_date`,
`invalid_integer`, `unknown_code:<field>`, `wrong_column_count`), plus `invalid_phone`,
`invalid_country_code`, `invalid_language`, `out_of_range:send_hour_utc` and `duplicate_key`
(several rows for one `external_id`: the row of the last file by name, last line, wins — a later
file is the customer's correction; every other copy is quarantined). A file that cannot be read
at all (`unknown_layout` when a required column is missing, `corrupt_gzip`, `bad_encoding`,
`corrupt_parquet`, ...) blocks the snapshot: it is staged with its reason but nothing is
uploaded, so Campaign never gets part of a delivery.

Counts reconcile per file and in total: rows in = imported + quarantined by reason (the
`import_reconciliation` checks, asset_checks/customer_to_campaign/import_checks.py, recount them).

**Import file.** CSV written by `shared/campaign_import_files.csv_bytes` (UTF-8, comma, header,
quoting only where needed, `\\n`), rows sorted by `external_id`, named
`customer_<dataset>_<snapshot>.csv`. Staged at `<asset>/<snapshot>/` in the warehouse with
`quarantine.parquet` and `manifest.json` (written last); the staged bytes are checked against
the manifest's SHA-256 before the upload (`write_atomic`), then `<name>.done`
(JSON: file, rows, bytes, sha256, dataset, snapshot_id, source_files, columns) is written.
Nothing depends on the clock, so a re-run of the same snapshot writes byte-identical files.

**Sensor.** `customer_source_sensor` lists both folders and requests a run of
`customer_import_job` for each dataset whose settled files changed; the run key is the digest of
the file names and their versions (size + mtime / ETag), so one set of files runs once.

Whole tables are held in memory: customer files are expected in the millions of rows at most.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions at definition time.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AssetSelection,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    in_process_executor,
    sensor,
)

from resources.drop_zones import DropZone, DropZoneUnavailable, join
from resources.file_ledger import FileLedger, FileVersion
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.customer_to_campaign.customer_datasets import (
    CUSTOMER_DATASETS,
    GROUP,
    PERSONALIZATION,
    PROFILES,
    CustomerDataset,
)
from rtcdp_assets.customer_to_campaign.customer_retries import (
    CUSTOMER_DATASET_TAG,
    CUSTOMER_FILES_TAG,
    FAILURES_AFTER,
    SnapshotRetry,
    files_tag,
    record_failed_imports,
    snapshot_retry,
)
from rtcdp_assets.customer_to_campaign.snapshot_import import run_import
from rtcdp_assets.customer_to_campaign.snapshot_reading import settled_files
from rtcdp_assets.shared.file_completion import CompletionRule


def _build_asset(dataset: CustomerDataset) -> AssetsDefinition:
    @asset(
        name=dataset.asset_name,
        group_name=GROUP,
        kinds={"csv", "sftp"},
        description=dataset.description,
        pool="campaign_sftp",
    )
    def customer_import(
        context: AssetExecutionContext,
        customer_source: DropZone,
        warehouse: Warehouse,
        campaign_sftp: DropZone,
        settings: PipelineSettings,
        file_ledger: FileLedger,
    ) -> MaterializeResult:
        manifest = run_import(
            dataset,
            customer_source,
            warehouse,
            campaign_sftp,
            settings,
            log=context.log.info,
            ledger=file_ledger,
            run_id=context.run.run_id,
        )
        if manifest is None:
            return MaterializeResult(
                metadata={
                    "dagster/row_count": 0,
                    "status": f"no files in {customer_source.describe()} / {dataset.folder}",
                }
            )
        rec = manifest["reconciliation"]
        return MaterializeResult(
            metadata={
                "dagster/row_count": manifest["file"]["rows"],
                "snapshot_id": manifest["snapshot_id"],
                "rows_in": rec["rows_in"],
                "quarantined": rec["quarantined"],
                "quarantined_by_reason": MetadataValue.json(rec["quarantined_by_reason"]),
                "files": MetadataValue.json(rec["files"]),
                "import_file": join(settings.campaign_import_folder, manifest["file"]["name"]),
                "sha256": manifest["file"]["sha256"],
                "warehouse_path": warehouse.path(
                    dataset.asset_name, manifest["snapshot_id"], "manifest.json"
                ),
            }
        )

    return customer_import


profile_import = _build_asset(PROFILES)
personalization_import = _build_asset(PERSONALIZATION)

customer_import_job = define_asset_job(
    "customer_import_job",
    selection=AssetSelection.assets(profile_import, personalization_import),
    executor_def=in_process_executor,
    description="Validate the customer's profile and personalization files and upload them as "
    "Campaign import files.",
)


ASSETS_BY_DATASET = {
    PROFILES.asset_name: profile_import,
    PERSONALIZATION.asset_name: personalization_import,
}


def plan_customer_tick(
    zone: DropZone, rule: CompletionRule, now: float, ledger: FileLedger | None = None
) -> tuple[list[RunRequest], list[str], list[FileVersion]]:
    """One run per dataset whose settled files changed; the run key names the file versions.
    A snapshot whose run failed is requested again under a new key once due
    (customer_retries.py); the versions so requested are returned to be marked."""
    requests, notes, retried = [], [], []
    moment = datetime.fromtimestamp(now, UTC)
    for dataset in CUSTOMER_DATASETS:
        files, waiting = settled_files(zone, dataset.folder, rule, now)
        notes += waiting
        if not files:
            continue
        retry = (
            snapshot_retry(ledger, zone.describe(), dataset, files, moment)
            if ledger is not None
            else SnapshotRetry()
        )
        if retry.waiting:
            notes.append(retry.waiting)
            continue
        retried.extend(retry.versions)
        versions = "\n".join(f"{e.name}@{e.identity}" for e in sorted(files))
        digest = hashlib.sha256(versions.encode()).hexdigest()[:16]
        requests.append(
            RunRequest(
                run_key=f"{dataset.asset_name}:{digest}{retry.suffix}",
                asset_selection=[ASSETS_BY_DATASET[dataset.asset_name].key],
                tags={CUSTOMER_DATASET_TAG: dataset.dataset, CUSTOMER_FILES_TAG: files_tag(files)},
            )
        )
    return requests, notes, retried


def sensor_now() -> float:
    """The sensor's clock (tests replace it to step past back-offs)."""
    return datetime.now(UTC).timestamp()


@sensor(
    name="customer_source_sensor",
    job=customer_import_job,
    minimum_interval_seconds=120,
    default_status=DefaultSensorStatus.RUNNING,
    description="Watches the customer source folders and requests an import of a dataset "
    "whenever its set of settled files changes (run keys make each set run once; a failed "
    "import is requested again after the back-off).",
)
def customer_source_sensor(
    context: SensorEvaluationContext,
    customer_source: DropZone,
    settings: PipelineSettings,
    file_ledger: FileLedger,
) -> SensorResult | SkipReason:
    try:
        after = record_failed_imports(context, file_ledger, customer_source, settings)
        requests, notes, retried = plan_customer_tick(
            customer_source, CompletionRule.customer_source(settings), sensor_now(), file_ledger
        )
    except DropZoneUnavailable as exc:
        return SkipReason(f"customer source unavailable, will retry: {exc}")
    file_ledger.retry_requested(retried)
    for note in notes:
        context.log.info(note)
    cursor = json.dumps({FAILURES_AFTER: after})
    if not requests:
        return SensorResult(
            skip_reason=SkipReason("; ".join(notes[:20]) or "no customer files"), cursor=cursor
        )
    return SensorResult(run_requests=requests, cursor=cursor)


@dataclass
class CustomerImportDefinitions:
    assets: list[AssetsDefinition]
    jobs: list[Any]
    sensors: list[Any]


customer_import_defs = CustomerImportDefinitions(
    assets=[profile_import, personalization_import],
    jobs=[customer_import_job],
    sensors=[customer_source_sensor],
)
