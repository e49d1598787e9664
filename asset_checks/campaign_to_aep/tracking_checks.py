"""`orphan_tracking_rows` on `tracking_log` (WARN): tracking rows whose broadLog ID appears in
no broadlog partition within the configured look-back (`settings.orphan_lookback_hours`).

A reaction can reach the platform before its send: Campaign's trackingLog export may run before
the broadLog export of the same windows, or a broadLog run may fail and be retried. So the check
tells "no broadLog for this row" apart from "the broadLog windows it could be in are not loaded
yet": a look-back window counts as not loaded when no broadlog partition is materialized for it,
unless it is earlier than the first broadlog partition ever loaded (or the first partition):
history starts there. Unmatched rows with such windows pass, with `outcome` =
`broadlog_not_loaded` and the windows in `broadlog_windows_missing`; `orphan_recheck_sensor`
runs the check again when broadLog partitions arrive (a missing broadLog export stays visible
through broadlog's `export_cadence` and `export_freshness`).
"""

from collections.abc import Iterable
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
    MetadataValue,
    asset_check,
)

from asset_checks.check_descriptions import of, plural
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.shared.partitions import (
    PARTITION_KEY_FORMAT,
    before_first_partition,
    four_hourly_partitions,
)

BROADLOG = AssetKey("broadlog")
ORPHAN_CHECK_NAME = "orphan_tracking_rows"
# `outcome` metadata of the check.
ALL_MATCHED = "all_matched"
ORPHANS = "orphans"
BROADLOG_NOT_LOADED = "broadlog_not_loaded"


def build_orphan_check(key: AssetKey) -> AssetChecksDefinition:
    """Tracking rows whose broadLog is in no broadlog partition within the look-back."""

    @asset_check(
        asset=key,
        name=ORPHAN_CHECK_NAME,
        additional_deps=[BROADLOG],
        partitions_def=four_hourly_partitions,
        blocking=False,
        description=(
            "Tracking rows whose broadLog ID appears in no broadlog partition within the "
            "configured look-back (settings.orphan_lookback_hours). WARN, with the orphan rate. "
            "Passes with outcome broadlog_not_loaded while broadLog windows of the look-back are "
            "not loaded yet; evaluated again when they arrive (orphan_recheck_sensor)."
        ),
        metadata={
            "guardrail/source": "project: trackingLog depends on broadLog (lineage)",
            "guardrail/limit": "0 orphans (advisory)",
        },
    )
    def orphan_tracking_rows(
        context: AssetCheckExecutionContext, warehouse: Warehouse, settings: PipelineSettings
    ) -> AssetCheckResult:
        loaded = context.instance.get_materialized_partitions(BROADLOG)
        return orphan_result(warehouse, settings, context.partition_key, loaded)

    return orphan_tracking_rows


def lookback_keys(pk: str, settings: PipelineSettings) -> list[str]:
    """This window and the ones before it within the look-back (a reaction comes after its
    send), from the first partition on."""
    window = four_hourly_partitions.time_window_for_partition_key(pk)
    steps = max(1, settings.orphan_lookback_hours // 4)
    keys = [
        (window.start - timedelta(hours=4 * i)).strftime(PARTITION_KEY_FORMAT)
        for i in range(steps + 1)
    ]
    return [k for k in keys if not before_first_partition(k)]


def missing_broadlog_windows(keys: Iterable[str], loaded: set[str]) -> list[str]:
    """The windows of `keys` with no broadlog partition, from the first one ever loaded on."""
    history_start = min(loaded) if loaded else ""
    return sorted(k for k in keys if k not in loaded and k >= history_start)


def orphan_result(
    warehouse: Warehouse, settings: PipelineSettings, pk: str, loaded: set[str]
) -> AssetCheckResult:
    """The check's result for tracking partition `pk`, `loaded` being the materialized
    broadlog partitions."""
    tracked = _column(warehouse, "tracking_log", pk, "broadlog_id")
    keys = lookback_keys(pk, settings)
    missing = missing_broadlog_windows(keys, loaded)
    searched = [k for k in keys if k in loaded]
    known = pa.chunked_array(
        [_column(warehouse, "broadlog", k, "broadlog_id") for k in searched], pa.int64()
    )
    orphans = 0
    if len(tracked):
        present = pc.is_in(tracked, value_set=pc.unique(known))
        orphans = len(tracked) - (pc.sum(present.cast(pa.int64())).as_py() or 0)
    rate = orphans / len(tracked) if len(tracked) else 0.0
    if not orphans:
        outcome = ALL_MATCHED
        summary = f"{of(len(tracked), len(tracked), 'tracking rows')} match a broadLog"
    elif missing:
        outcome = BROADLOG_NOT_LOADED
        summary = (
            f"{orphans:,} of {len(tracked):,} tracking rows match no broadLog yet: "
            f"{len(missing)} of {len(keys)} broadLog windows of the look-back are not loaded; "
            "evaluated again when they arrive"
        )
    else:
        outcome = ORPHANS
        summary = (
            f"{of(orphans, len(tracked), 'tracking rows')} match no broadLog in the "
            f"{plural(len(keys), 'window')} searched ({settings.orphan_lookback_hours} h back)"
        )
    return AssetCheckResult(
        passed=outcome != ORPHANS,
        severity=AssetCheckSeverity.WARN,
        description=summary,
        metadata={
            "outcome": outcome,
            "tracking_rows": len(tracked),
            "orphan_rows": orphans,
            "orphan_rate": round(rate, 6),
            "broadlog_partitions_searched": len(searched),
            "broadlog_windows_missing": MetadataValue.json(missing),
            "lookback_hours": settings.orphan_lookback_hours,
        },
    )


def _column(warehouse: Warehouse, dataset: str, pk: str, column: str) -> pa.Array:
    with warehouse.local_copy(dataset, pk, "data.parquet") as local:
        if local is None:
            return pa.array([], pa.int64())
        return pq.read_table(local, columns=[column]).column(column).combine_chunks()
