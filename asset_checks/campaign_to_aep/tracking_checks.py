"""`orphan_tracking_rows` on `tracking_log` (WARN): tracking rows whose broadLog ID appears in
no broadlog partition within the configured look-back (`settings.orphan_lookback_hours`)."""

from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    asset_check,
)

from asset_checks.check_descriptions import of, plural
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.shared.partitions import PARTITION_KEY_FORMAT, four_hourly_partitions


def build_orphan_check(key: AssetKey) -> AssetChecksDefinition:
    """Tracking rows whose broadLog is in no broadlog partition within the look-back."""

    @asset_check(
        asset=key,
        name="orphan_tracking_rows",
        additional_deps=[AssetKey("broadlog")],
        partitions_def=four_hourly_partitions,
        blocking=False,
        description=(
            "Tracking rows whose broadLog ID appears in no broadlog partition within the "
            "configured look-back (settings.orphan_lookback_hours). WARN, with the orphan rate."
        ),
        metadata={
            "guardrail/source": "project: trackingLog depends on broadLog (lineage)",
            "guardrail/limit": "0 orphans (advisory)",
        },
    )
    def orphan_tracking_rows(
        context: AssetCheckExecutionContext, warehouse: Warehouse, settings: PipelineSettings
    ) -> AssetCheckResult:
        return orphan_result(warehouse, settings, context.partition_key)

    return orphan_tracking_rows


def orphan_result(warehouse: Warehouse, settings: PipelineSettings, pk: str) -> AssetCheckResult:
    tracked = _column(warehouse, "tracking_log", pk, "broadlog_id")
    window = four_hourly_partitions.time_window_for_partition_key(pk)
    steps = max(1, settings.orphan_lookback_hours // 4)
    # This window and the ones before it: a reaction comes after its send.
    keys = [
        (window.start - timedelta(hours=4 * i)).strftime(PARTITION_KEY_FORMAT)
        for i in range(steps + 1)
    ]
    known = pa.chunked_array(
        [_column(warehouse, "broadlog", k, "broadlog_id") for k in keys], pa.int64()
    )
    orphans = 0
    if len(tracked):
        present = pc.is_in(tracked, value_set=pc.unique(known))
        orphans = len(tracked) - (pc.sum(present.cast(pa.int64())).as_py() or 0)
    rate = orphans / len(tracked) if len(tracked) else 0.0
    return AssetCheckResult(
        passed=orphans == 0,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{of(orphans, len(tracked), 'tracking rows')} match no broadLog in the "
            f"{plural(len(keys), 'window')} searched ({settings.orphan_lookback_hours} h back)"
        ),
        metadata={
            "tracking_rows": len(tracked),
            "orphan_rows": orphans,
            "orphan_rate": round(rate, 6),
            "broadlog_partitions_searched": len(keys),
            "lookback_hours": settings.orphan_lookback_hours,
        },
    )


def _column(warehouse: Warehouse, dataset: str, pk: str, column: str) -> pa.Array:
    with warehouse.local_copy(dataset, pk, "data.parquet") as local:
        if local is None:
            return pa.array([], pa.int64())
        return pq.read_table(local, columns=[column]).column(column).combine_chunks()
