"""Checks of `segment_exports`, per audience partition, on the export the run processed."""

from collections.abc import Iterator, Mapping
from datetime import datetime
from itertools import pairwise
from statistics import median
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    multi_asset_check,
)

from asset_checks.aep_to_campaign.audience_checks.guardrail_spec import guardrail_spec
from asset_checks.check_descriptions import count, plural
from asset_checks.partition_reconciliation import recount_description, recount_files
from resources.audience_settings import AudienceSettings
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import SEGMENT_EXPORTS
from rtcdp_assets.aep_to_campaign.audience_exports.export_records import (
    export_stamp_for_run,
    read_export_record,
    read_index,
)

EXPORTS_KEY = AssetKey(SEGMENT_EXPORTS)


def export_reconciliation_result(
    warehouse: Warehouse, audience_id: str, stamp: str
) -> AssetCheckResult:
    record = read_export_record(warehouse, audience_id, stamp)
    counted, mismatches = recount_files(
        warehouse, SEGMENT_EXPORTS, f"{audience_id}/{stamp}", record["files"], "name"
    )
    rows_out, rejected = sum(counted["good"].values()), sum(counted["rejected"].values())
    quarantined = list(record["quarantine_reasons"] or [])
    return AssetCheckResult(
        asset_key=EXPORTS_KEY,
        check_name="export_reconciliation",
        passed=not mismatches and record["status"] == "processed",
        severity=AssetCheckSeverity.ERROR,
        description=recount_description(
            record["rows_in"] or 0, rows_out, rejected, mismatches, quarantined
        ),
        metadata={
            "export_id": record["export_id"],
            "rows_in": record["rows_in"],
            "rows_out": rows_out,
            "rows_rejected": rejected,
            "rejects_by_reason": MetadataValue.json(record["reasons"]),
            "files_quarantined": MetadataValue.json(record["quarantine_reasons"]),
            "mismatches": MetadataValue.json(mismatches),
        },
    )


def field_count_result(record: Mapping[str, Any], settings: AudienceSettings) -> AssetCheckResult:
    columns = record["columns"]
    return AssetCheckResult(
        asset_key=EXPORTS_KEY,
        check_name="audience_field_count",
        passed=len(columns) <= settings.max_fields_per_audience,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{plural(len(columns), 'field')} in the audience export "
            f"(limit {settings.max_fields_per_audience})"
        ),
        metadata={
            "fields": len(columns),
            "limit": settings.max_fields_per_audience,
            "columns": MetadataValue.json(columns),
        },
    )


def cadence_result(
    exports: Mapping[str, Mapping[str, Any]], settings: AudienceSettings, stamp: str
) -> AssetCheckResult:
    """Intervals between the recent exports up to `stamp` against the expected cadence."""
    recent = sorted(s for s in exports if s <= stamp)[-(settings.cadence_lookback_exports + 1) :]
    times = [
        datetime.fromisoformat(exports[s]["export_time"].replace("Z", "+00:00")) for s in recent
    ]
    hours = [(b - a).total_seconds() / 3600 for a, b in pairwise(times)]
    mode = exports[stamp]["mode"] if stamp in exports else "full"
    grace = settings.cadence_grace_minutes / 60
    allowed = sorted(settings.allowed_cadence_hours)
    if not hours:
        expected = None
    elif mode == "full":
        expected = 24.0  # full exports are daily
    else:
        # The configured cadence is not in the files: the allowed one nearest the typical interval.
        typical = median(hours)
        expected = float(min(allowed, key=lambda c: abs(c - typical)))
    bursts = [h for h in hours if expected is not None and h < expected - grace]
    gaps = [h for h in hours if expected is not None and h > expected + grace]
    return AssetCheckResult(
        asset_key=EXPORTS_KEY,
        check_name="activation_cadence",
        passed=not bursts and not gaps,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{plural(len(bursts), 'burst')} and {plural(len(gaps), 'gap')} in "
            f"{plural(len(hours), 'interval')} between {mode} exports, expected every "
            f"{count(expected)} h ± {settings.cadence_grace_minutes} min"
            if expected is not None
            else "First export of the audience: no interval to judge yet."
        ),
        metadata={
            "export_mode": mode,
            "exports_considered": len(recent),
            "expected_interval_hours": expected if expected is not None else "n/a",
            "intervals_hours": MetadataValue.json([round(h, 2) for h in hours]),
            "bursts": len(bursts),
            "gaps": len(gaps),
            "allowed_cadence_hours": MetadataValue.json(allowed),
        },
    )


EXPORT_SPECS = [
    guardrail_spec(
        "export_reconciliation",
        EXPORTS_KEY,
        "Per file of the export: rows in = typed rows + rejected rows, and no file was "
        "quarantined as unreadable (corrupt, truncated, inconsistent split). Blocks the "
        "membership update and the Campaign import of a partial export.",
        blocking=True,
        source="project: nothing lost, counts reconcile; AEP split files (§a1)",
        limit="rows in = rows out + rows rejected; 0 files quarantined",
    ),
    guardrail_spec(
        "audience_field_count",
        EXPORTS_KEY,
        "At most `max_fields_per_audience` columns per audience export (WARN).",
        blocking=False,
        source="Campaign Managed Services destination: ≤20 fields per audience "
        "(NmsCdp_Aep_Destinations_Max_Columns, §f3); blueprint ≤20 attributes per segment (§f1)",
        limit="20 fields per audience export (audience_settings.max_fields_per_audience)",
    ),
    guardrail_spec(
        "activation_cadence",
        EXPORTS_KEY,
        "Exports arrive daily (full) or every 3, 6, 8 or 12 h (incremental); a burst or a gap "
        "between consecutive exports is flagged (WARN).",
        blocking=False,
        source="AEP destination guardrail: daily full or 3/6/8/12 h incremental (§a5, §e3)",
        limit="interval = cadence ± audience_settings.cadence_grace_minutes",
    ),
]


@multi_asset_check(specs=EXPORT_SPECS, name="segment_exports_checks")
def segment_exports_checks(
    context: AssetCheckExecutionContext,
    warehouse: Warehouse,
    audience_settings: AudienceSettings,
) -> Iterator[AssetCheckResult]:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    yield export_reconciliation_result(warehouse, audience_id, stamp)
    yield field_count_result(read_export_record(warehouse, audience_id, stamp), audience_settings)
    exports = read_index(warehouse, SEGMENT_EXPORTS, audience_id)["exports"]
    yield cadence_result(exports, audience_settings, stamp)
