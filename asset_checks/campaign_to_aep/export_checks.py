"""Guardrail checks shared by every Campaign → AEP dataset.

On the typed asset (`<dataset>`):
- `reconciliation` (blocking): per file, rows in = typed rows + quarantined rows, and no file
  was quarantined whole. Publication of an incomplete partition is impossible.
- `single_org_unit` (blocking): the pattern supports one Campaign organizational unit; when
  an export carries the org-unit column, every row belongs to the configured unit.
- `export_cadence` (WARN by default, `settings.cadence_severity`): Campaign export workflows
  run at most every 4 hours, so one window holds at most one export.
- `reject_rate` (blocking): the share of rejected rows, WARN above 1 %, ERROR above 20 %
  (settings; reject_rate.py).

On the XDM asset (`<dataset>_xdm`), all blocking, in one pass over the partition's batches:
- `xdm_conformance`, `id_unique`, `no_future_timestamp` (events), `record_size` (10 KB per
  event, 100 KB per profile record), `identity_count` (at most 20 identities per record).
  All but conformance are computed over columns (xdm_tallies.py): record sizes from column
  lengths, identities from list lengths, `_id`s as 64-bit hashes checked by value on collision.

Each check spec carries `guardrail/*` metadata (source, limit) so that the guardrail catalog
can be generated from the code. The functions that compute results take plain arguments and
are unit-tested without Dagster runs.
"""

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

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
    multi_asset_check,
)

from asset_checks.campaign_to_aep.reject_rate import reject_rate_result, reject_rate_spec
from asset_checks.campaign_to_aep.xdm_tallies import (
    DuplicateCounter,
    identity_counts,
    record_sizes,
)
from asset_checks.check_descriptions import count, listing, of, plural
from asset_checks.partition_reconciliation import (
    partition_check_spec,
    reconcile,
    stored_value_counts,
)
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportDescription

MAX_IDENTITIES_PER_RECORD = 20  # docs/formats.md §e2 (Identity Service guardrail)
# Rows checked at once. Peak RSS of the broadLog checks at 1 M rows: 375 MiB with 64 K-row
# batches, 320 with 32 K, 277 with 16 K (5 M rows: 353 and 308 for the last two); CPU time
# within noise of each other, a little more per row as batches shrink.
XDM_CHECK_BATCH_ROWS = 32 * 1024


# --------------------------------------------------------------------------------------------
# Typed-asset checks
# --------------------------------------------------------------------------------------------
def build_typed_checks(flow: CampaignExportDescription, key: AssetKey) -> AssetChecksDefinition:
    specs = [
        partition_check_spec(
            "reconciliation",
            key,
            "Per source file: rows in the file = typed rows + quarantined rows, and no file was "
            "quarantined as unreadable. Blocks publication of an incomplete partition.",
            blocking=True,
            source="project: nothing lost, counts reconcile",
            limit="rows in = rows out + rows rejected",
        ),
        partition_check_spec(
            "single_org_unit",
            key,
            "Every row of an export that carries the organizational-unit column belongs to the "
            "configured Campaign organizational unit.",
            blocking=True,
            source="blueprint: single organizational unit deployments only (§f1)",
            limit="1 organizational unit",
        ),
        partition_check_spec(
            "export_cadence",
            key,
            "At most one Campaign export per 4-hour window (WARN unless configured as ERROR).",
            blocking=False,
            source="blueprint: Campaign export workflows run at most every 4 hours (§f1)",
            limit="1 export per 4 h",
        ),
        reject_rate_spec(key),
    ]

    @multi_asset_check(specs=specs, name=f"{flow.dataset}_checks")
    def typed_checks(
        context: AssetCheckExecutionContext, warehouse: Warehouse, settings: PipelineSettings
    ) -> Iterator[AssetCheckResult]:
        pk = context.partition_key
        yield reconcile(flow.dataset, warehouse, pk)
        yield org_unit_result(flow.dataset, warehouse, settings, pk)
        yield cadence_result(flow, warehouse, settings, pk)
        yield reject_rate_result(flow.dataset, warehouse, settings, pk)

    return typed_checks


def org_unit_result(
    dataset: str, warehouse: Warehouse, settings: PipelineSettings, pk: str
) -> AssetCheckResult:
    counts: Counter[str] = Counter()
    with warehouse.parquet_source(dataset, pk, "data.parquet") as source:
        if source is not None and "org_unit" in pq.read_schema(source).names:
            for unit, n in stored_value_counts(source, "org_unit").items():
                if unit is not None:
                    counts[unit] = n
    foreign = {unit: n for unit, n in counts.items() if unit != settings.campaign_org_unit}
    outside = sum(foreign.values())
    description = (
        f"{of(outside, sum(counts.values()), 'rows')} belong to another organizational unit "
        f"than {settings.campaign_org_unit}"
        if counts
        else "No row carries an organizational unit: nothing to compare."
    )
    return AssetCheckResult(
        asset_key=AssetKey(dataset),
        check_name="single_org_unit",
        passed=not foreign,
        severity=AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "configured_org_unit": settings.campaign_org_unit,
            "rows_by_org_unit": MetadataValue.json(dict(sorted(counts.items()))),
            "rows_outside_org_unit": outside,
        },
    )


def cadence_result(
    flow: CampaignExportDescription, warehouse: Warehouse, settings: PipelineSettings, pk: str
) -> AssetCheckResult:
    manifest = warehouse.get_json(flow.dataset, pk, "manifest.json") or {"files": []}
    # Split parts of one export share its timestamp; different timestamps are separate exports.
    exports = sorted({flow.export_stamp(f["source_file"]) for f in manifest["files"]} - {None})
    severity = AssetCheckSeverity[settings.cadence_severity]
    return AssetCheckResult(
        asset_key=AssetKey(flow.dataset),
        check_name="export_cadence",
        passed=len(exports) <= 1,
        severity=severity,
        description=(
            f"{plural(len(exports), 'export')} in this 4-hour window (limit 1)"
            + (f": {listing(exports)}" if len(exports) > 1 else "")
        ),
        metadata={
            "exports_in_window": len(exports),
            "export_times": MetadataValue.json(exports),
            "limit": "1 export per 4-hour window",
        },
    )


# --------------------------------------------------------------------------------------------
# XDM checks
# --------------------------------------------------------------------------------------------
XDM_CHECK_DESCRIPTIONS = {
    "xdm_conformance": (
        "Every record validates against the official XDM schemas (class + field groups, "
        "unknown fields rejected).",
        "XDM conformance of output bound for AEP (§c)",
        "all records",
    ),
    "id_unique": (
        "`_id` is unique within the partition (AEP de-duplicates events on it).",
        "XDM ExperienceEvent `_id` (§c1)",
        "0 duplicates",
    ),
    "no_future_timestamp": (
        "No event `timestamp` lies in the future (XDM requires past timestamps).",
        "XDM ExperienceEvent `timestamp` (§c1)",
        "timestamp <= now + tolerance",
    ),
    "record_size": (
        "Every record fits AEP's size limit; larger records are dropped by AEP.",
        "AEP profile guardrails (§e1)",
        "10 KB per ExperienceEvent, 100 KB per profile record",
    ),
    "identity_count": (
        "At most 20 identities per record (Identity Service guardrail).",
        "AEP identity guardrails (§e2)",
        f"{MAX_IDENTITIES_PER_RECORD} identities per record",
    ),
}


def xdm_check_names(flow: CampaignExportDescription) -> list[str]:
    names = ["xdm_conformance", "id_unique", "record_size", "identity_count"]
    if flow.record_kind == "event":
        names.insert(2, "no_future_timestamp")
    return names


def build_xdm_checks(flow: CampaignExportDescription, key: AssetKey) -> AssetChecksDefinition:
    specs = []
    for name in xdm_check_names(flow):
        description, source, limit = XDM_CHECK_DESCRIPTIONS[name]
        specs.append(
            partition_check_spec(name, key, description, blocking=True, source=source, limit=limit)
        )

    @multi_asset_check(specs=specs, name=f"{flow.xdm_dataset}_checks")
    def xdm_checks(
        context: AssetCheckExecutionContext, warehouse: Warehouse, settings: PipelineSettings
    ) -> Iterator[AssetCheckResult]:
        yield from evaluate_xdm(flow, warehouse, settings, context.partition_key)

    return xdm_checks


def evaluate_xdm(
    flow: CampaignExportDescription, warehouse: Warehouse, settings: PipelineSettings, pk: str
) -> list[AssetCheckResult]:
    """One pass over the XDM partition for every record-level guardrail: conformance per
    record, the other checks over columns (xdm_tallies.py)."""
    key = AssetKey(flow.xdm_dataset)
    schema = flow.xdm_schema()
    is_event = flow.record_kind == "event"
    limit = settings.max_event_bytes if is_event else settings.max_profile_bytes
    now = datetime.now(UTC) + timedelta(seconds=settings.future_tolerance_seconds)
    checked = invalid = oversize = future = too_many_ids = largest = 0
    most_ids = 0
    examples: list[str] = []
    kinds: Counter[str] = Counter()
    ids = DuplicateCounter()
    # The next batch is decoded while this one is checked: the read overlaps the checks.
    batches = warehouse.iter_batches(
        flow.xdm_dataset, pk, batch_size=XDM_CHECK_BATCH_ROWS, prefetch=True
    )
    for batch in batches:
        report = schema.validate_table(batch, max_examples=20)
        invalid += report.invalid
        kinds.update(report.error_counts)
        examples.extend(f"record {checked + i}: {m}" for i, m in report.examples)
        if "_id" in batch.schema.names:
            ids.add(batch.column("_id"))
        if is_event and "timestamp" in batch.schema.names:
            ts = batch.column("timestamp")
            future += pc.sum(pc.greater(ts, pa.scalar(now, ts.type)).cast(pa.int64())).as_py() or 0
        if batch.num_rows:
            sizes, n_ids = record_sizes(batch), identity_counts(batch)
            largest = max(largest, int(sizes.max()))
            oversize += int((sizes > limit).sum())
            most_ids = max(most_ids, int(n_ids.max()))
            too_many_ids += int((n_ids > MAX_IDENTITIES_PER_RECORD).sum())
        checked += batch.num_rows
    duplicates = ids.duplicates(lambda: _stored_ids(warehouse, flow.xdm_dataset, pk))
    top_error = f" (most often: {kinds.most_common(1)[0][0]})" if kinds else ""
    descriptions = {
        "xdm_conformance": f"{of(invalid, checked, 'records')} fail XDM validation{top_error}",
        "id_unique": f"{plural(duplicates, 'duplicate _id')} among {plural(checked, 'record')}",
        "no_future_timestamp": f"{of(future, checked, 'events')} have a timestamp in the future",
        "record_size": (
            f"{of(oversize, checked, 'records')} over {count(limit)} bytes "
            f"(largest {count(largest)} bytes)"
        ),
        "identity_count": (
            f"{of(too_many_ids, checked, 'records')} carry more than "
            f"{MAX_IDENTITIES_PER_RECORD} identities (most in one record: {most_ids})"
        ),
    }
    results = {
        "xdm_conformance": (
            invalid == 0,
            {
                "records_checked": checked,
                "records_invalid": invalid,
                "errors_by_kind": MetadataValue.json(dict(kinds.most_common(50))),
                "examples": MetadataValue.json(examples[:20]),
            },
        ),
        "id_unique": (duplicates == 0, {"records_checked": checked, "duplicate_ids": duplicates}),
        "no_future_timestamp": (
            future == 0,
            {"records_checked": checked, "future_timestamps": future},
        ),
        "record_size": (
            oversize == 0,
            {
                "records_checked": checked,
                "records_over_limit": oversize,
                "limit_bytes": limit,
                "largest_record_bytes": largest,
            },
        ),
        "identity_count": (
            too_many_ids == 0,
            {
                "records_checked": checked,
                "records_over_limit": too_many_ids,
                "limit": MAX_IDENTITIES_PER_RECORD,
                "most_identities_in_a_record": most_ids,
            },
        ),
    }
    return [
        AssetCheckResult(
            asset_key=key,
            check_name=name,
            passed=passed,
            description=descriptions[name],
            metadata=meta,
        )
        for name in xdm_check_names(flow)
        for passed, meta in [results[name]]
    ]


def _stored_ids(warehouse: Warehouse, dataset: str, pk: str) -> Iterator[pa.Array]:
    """The partition's `_id` column again, batch by batch (read only when hashes collide)."""
    with warehouse.parquet_source(dataset, pk, "data.parquet") as source:
        if source is None:
            return
        for batch in pq.ParquetFile(source, pre_buffer=False).iter_batches(columns=["_id"]):
            yield batch.column("_id")
