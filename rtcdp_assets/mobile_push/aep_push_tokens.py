"""aep_push_tokens: the push tokens AEP knows from the Experience Platform Mobile SDK route.

The Mobile SDK registers each device's push token in a profile dataset (`pushNotificationDetails`
items). An AEP dataset export (docs/formats.md §a1) writes that dataset as JSON or Parquet
files with random names under

    <aep_dataset_export_folder>/<datasetId>/exportTime=YYYYMMDDHHMM/<anything>.json[.gz]|.parquet

in the `aep_dataset_export` zone (a local folder in the embedded default, an Azure Blob
container in production). `aep_push_tokens_sensor` watches those folders and requests one run
per 4-hour window (the window of exportTime) whenever the set of file versions of the window
changes; the run key is the window plus a fingerprint of those versions, so the same export
never runs twice and a re-delivered one always does. The files belong to AEP's export and are
read in place, never moved.

Each `pushNotificationDetails` item becomes one typed row (record `_id`, ECID, app ID, token,
platform, denylisted, identity, dataset ID, export time). Malformed input goes to the rejects
with the raw value and a reason: `invalid_json` (a line that is not a JSON object),
`no_push_details` (a record without items), `missing_required_value` (no appID, token or
platform), `unknown_code:platform` (not apns/apnsSandbox/fcm), `invalid_push_token` (format of
its platform, `rtcdp_assets/shared/push_token_formats.py`). A row is one item, or one rejected
record where there is no item to count: rows in = typed rows + rejected rows, per file,
checked by the blocking `reconciliation` check. A file that cannot be read at all
(`corrupt_parquet`, `corrupt_gzip`) is recorded as quarantined in the manifest, which fails
that check.

Parquet and plain JSON-lines files are read whole by Arrow and split with compute kernels;
gzip'd JSON, or JSON that Arrow refuses (a malformed line, types that differ between lines),
takes the per-record path, which names every malformed line. Both paths give the same rows and
rejects for the same records (tests/mobile_push/test_push.py).

Modules: export_windows.py (where the exports are, the sensor's plan), push_token_records.py
(typed rows, the per-record path), push_token_columns.py (the Arrow path), push_token_ingest.py
(one window into the warehouse); the checks are in asset_checks/mobile_push/.
"""

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetExecutionContext,
    AssetSelection,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    in_process_executor,
    sensor,
)

from resources.drop_zones import DropZone, DropZoneUnavailable
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.mobile_push.export_windows import export_files, plan_tick
from rtcdp_assets.mobile_push.push_token_ingest import ingest_window
from rtcdp_assets.mobile_push.push_token_records import DATASET, PERSONAL, TYPED_SCHEMA
from rtcdp_assets.shared.column_schema import table_schema
from rtcdp_assets.shared.masking import masked_preview
from rtcdp_assets.shared.partitions import four_hourly_partitions


@asset(
    name=DATASET,
    partitions_def=four_hourly_partitions,
    group_name="mobile_push",
    kinds={"azure", "parquet"},
    description=(
        "Push tokens AEP received from the Experience Platform Mobile SDK, read from the AEP "
        "dataset export (<folder>/<datasetId>/exportTime=YYYYMMDDHHMM/, JSON or Parquet): one "
        "typed row per pushNotificationDetails item, malformed records quarantined with a reason."
    ),
    metadata={"dagster/column_schema": table_schema(TYPED_SCHEMA)},
)
def aep_push_tokens(
    context: AssetExecutionContext,
    aep_dataset_export: DropZone,
    warehouse: Warehouse,
    settings: PipelineSettings,
) -> MaterializeResult:
    pk = context.partition_key
    manifest = ingest_window(aep_dataset_export, warehouse, settings, pk)
    head = next(iter(warehouse.iter_batches(DATASET, pk, batch_size=5)), None)
    preview = (
        masked_preview(pa.Table.from_batches([head]), PERSONAL) if head is not None else "_no rows_"
    )
    platforms: dict[str, int] = {}
    for batch in warehouse.iter_batches(DATASET, pk):
        for item in pc.value_counts(batch.column("platform")).to_pylist():
            platforms[item["values"]] = platforms.get(item["values"], 0) + item["counts"]
    return MaterializeResult(
        metadata={
            "dagster/row_count": manifest["rows_out"],
            "rows_in": manifest["rows_in"],
            "rows_rejected": manifest["rows_rejected"],
            "files": len(manifest["files"]),
            "files_quarantined": manifest["files_quarantined"],
            "rejects_by_reason": MetadataValue.json(manifest["reasons"]),
            "tokens_by_platform": MetadataValue.json(dict(sorted(platforms.items()))),
            "preview": MetadataValue.md(preview),
            "warehouse_path": warehouse.path(DATASET, pk, "data.parquet"),
            "rejects_path": warehouse.path(DATASET, pk, "rejects.parquet"),
        }
    )


aep_push_tokens_job = define_asset_job(
    "aep_push_tokens_job",
    # The asset and every check on it (reconciliation, duplicate_registration).
    selection=AssetSelection.assets(aep_push_tokens),
    executor_def=in_process_executor,
    description="Read one window of the AEP push-token dataset export, check it.",
)


@sensor(
    name="aep_push_tokens_sensor",
    job=aep_push_tokens_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Watches the AEP dataset export folders (<folder>/<datasetId>/exportTime=…/) of the "
        "push-token datasets and requests one run per 4-hour window whose files changed."
    ),
)
def aep_push_tokens_sensor(
    context: SensorEvaluationContext, aep_dataset_export: DropZone, settings: PipelineSettings
) -> SensorResult | SkipReason:
    try:
        by_window = export_files(aep_dataset_export, settings)
    except DropZoneUnavailable as exc:
        return SkipReason(f"AEP dataset export zone unavailable, will retry: {exc}")
    requests, cursor, notes = plan_tick(
        by_window, context.cursor, datetime.now(UTC), settings.file_settle_seconds
    )
    for note in notes:
        context.log.info(note)
    if not requests:
        return SensorResult(
            skip_reason=SkipReason("; ".join(notes) or "no new AEP push-token exports"),
            cursor=cursor,
        )
    return SensorResult(run_requests=requests, cursor=cursor)
