"""Guardrails on what we have published to AEP, checked on each `<dataset>_published` after its
publication (WARN, not blocking: what is published is published; the numbers tell what to fix).

- `identity_graph_size`: the identity graphs that the latest publication of every Campaign
  dataset (as of this window) builds in AEP's Identity Service, from the records' identityMap
  and push details (identity_graphs.py); WARN when one holds more than
  `max_identities_per_graph` (50, a hard limit: such a profile is left out of segmentation,
  exports and lookups, docs/formats.md §e1, §e2). Counts and sizes only, never an identity.
- `batches_per_day`: each publication that wrote a file is one batch of AEP's cloud-storage
  source. Publications of each AEP dataset in the UTC day of the check, from Dagster's record
  of the `<dataset>_published` materializations (an identical re-run writes nothing and is not
  counted): WARN above `max_batches_per_dataset_per_day` for this dataset, or above
  `max_profile_batches_per_day` for all of them together (§e1).

No `from __future__ import annotations` here: Dagster reads the decorated functions' annotations.
"""

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

import pyarrow.parquet as pq
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    MetadataValue,
    multi_asset_check,
)

from asset_checks.campaign_to_aep.identity_graphs import IdentityGraphs
from asset_checks.check_descriptions import count, listing, plural
from asset_checks.partition_reconciliation import partition_check_spec
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportDescription

IDENTITY_COLUMNS = ("identityMap", "pushNotificationDetails")
BATCH_ROWS = 64 * 1024
RECORDS_PAGE = 1000  # materialization records read per request


def build_publication_checks(
    flow: CampaignExportDescription, flows: Sequence[CampaignExportDescription]
) -> AssetChecksDefinition:
    """The checks on `flow`'s publication; `flows`: every dataset published to AEP."""
    key = AssetKey(flow.published_name)
    specs = [
        partition_check_spec(
            "identity_graph_size",
            key,
            "Identity graphs linked by the latest publication of every Campaign dataset "
            "(identityMap and push details of each record): WARN when one holds more "
            "identities than `max_identities_per_graph`. Counts and sizes only.",
            blocking=False,
            source="AEP identity guardrails: identities per graph (§e1, §e2)",
            limit="50 identities per graph (settings.max_identities_per_graph)",
        ),
        partition_check_spec(
            "batches_per_day",
            key,
            "Publications (AEP batches) per AEP dataset in the UTC day: WARN above "
            "`max_batches_per_dataset_per_day` for this dataset or above "
            "`max_profile_batches_per_day` for every dataset together.",
            blocking=False,
            source="AEP profile guardrails: Profile + ExperienceEvent batches per day (§e1)",
            limit="6 per dataset (4-hour cadence, §f1), 90 in all per day (settings)",
        ),
    ]

    @multi_asset_check(specs=specs, name=f"{flow.published_name}_checks")
    def publication_checks(
        context: AssetCheckExecutionContext, warehouse: Warehouse, settings: PipelineSettings
    ) -> Iterator[AssetCheckResult]:
        pk, instance = context.partition_key, context.instance
        latest = latest_publications(instance, flows, flow, pk)
        yield identity_graph_result(flow.published_name, warehouse, latest, settings)
        now = datetime.now(UTC)
        yield batches_per_day_result(
            flow.published_name, publications_on(instance, flows, now.date()), now, settings
        )

    return publication_checks


# -- identity_graph_size ------------------------------------------------------------------
def latest_publications(
    instance: DagsterInstance,
    flows: Sequence[CampaignExportDescription],
    flow: CampaignExportDescription,
    pk: str,
) -> dict[str, str]:
    """XDM dataset → its latest published window up to `pk` (this flow's: `pk`)."""
    latest = {}
    for other in flows:
        done = instance.get_materialized_partitions(AssetKey(other.published_name))
        windows = [p for p in done | ({pk} if other is flow else set()) if p <= pk]
        if windows:
            latest[other.xdm_dataset] = max(windows)
    return latest


def identity_graph_result(
    published: str, warehouse: Warehouse, latest: Mapping[str, str], settings: PipelineSettings
) -> AssetCheckResult:
    limit = settings.max_identities_per_graph
    graphs = IdentityGraphs()
    for dataset, pk in sorted(latest.items()):
        with warehouse.parquet_source(dataset, pk, "data.parquet") as source:
            names = set(pq.read_schema(source).names) if source is not None else set()
        columns = [c for c in IDENTITY_COLUMNS if c in names]
        if columns:
            for batch in warehouse.iter_batches(
                dataset, pk, batch_size=BATCH_ROWS, columns=columns
            ):
                graphs.add(batch)
    sizes = graphs.sizes()
    over = sizes[sizes > limit]
    largest = int(sizes.max()) if len(sizes) else 0
    return AssetCheckResult(
        asset_key=AssetKey(published),
        check_name="identity_graph_size",
        passed=not len(over),
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{plural(len(over), 'identity graph')} over {count(limit)} identities among "
            f"{count(len(sizes))} (largest {count(largest)}) in "
            f"{plural(graphs.records, 'record')} of {plural(len(latest), 'publication')}"
        ),
        metadata={
            "records_checked": graphs.records,
            "identity_graphs": len(sizes),
            "graphs_over_limit": len(over),
            "largest_graph": largest,
            "sizes_over_limit": MetadataValue.json(sorted(int(s) for s in over)[-20:]),
            "publications": MetadataValue.json(dict(sorted(latest.items()))),
            "limit": limit,
        },
    )


# -- batches_per_day --------------------------------------------------------------------------
def publications_on(
    instance: DagsterInstance, flows: Sequence[CampaignExportDescription], day: date
) -> dict[str, list[datetime]]:
    """Published asset → when each of its publications on `day` (UTC) wrote a file."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    times: dict[str, list[datetime]] = {}
    for flow in flows:
        key, cursor = AssetKey(flow.published_name), None
        found = times.setdefault(flow.published_name, [])
        while True:
            page = instance.fetch_materializations(
                AssetRecordsFilter(
                    asset_key=key,
                    after_timestamp=start.timestamp(),
                    before_timestamp=end.timestamp(),
                ),
                limit=RECORDS_PAGE,
                cursor=cursor,
            )
            for record in page.records:
                meta = record.asset_materialization.metadata if record.asset_materialization else {}
                already = meta.get("already_published")
                if not getattr(already, "value", already):
                    found.append(datetime.fromtimestamp(record.timestamp, UTC))
            if not page.has_more:
                break
            cursor = page.cursor
    return times


def batches_per_day_result(
    published: str,
    publications: Mapping[str, Sequence[datetime]],
    now: datetime,
    settings: PipelineSettings,
) -> AssetCheckResult:
    """`publications`: published asset → publication times; those in `now`'s UTC day count."""
    day = now.astimezone(UTC).date()
    per_dataset = {
        name: sum(t.astimezone(UTC).date() == day for t in times)
        for name, times in sorted(publications.items())
    }
    mine, total = per_dataset.get(published, 0), sum(per_dataset.values())
    per_limit, all_limit = (
        settings.max_batches_per_dataset_per_day,
        settings.max_profile_batches_per_day,
    )
    over = sorted(name for name, n in per_dataset.items() if n > per_limit)
    line = (
        f"{plural(mine, 'publication')} of {published} on {day.isoformat()} UTC (limit "
        f"{per_limit}); {count(total)} of every dataset (limit {count(all_limit)})"
    )
    if over:
        line += f"; over the per-dataset limit: {listing(over)}"
    return AssetCheckResult(
        asset_key=AssetKey(published),
        check_name="batches_per_day",
        passed=mine <= per_limit and total <= all_limit,
        severity=AssetCheckSeverity.WARN,
        description=line,
        metadata={
            "day": day.isoformat(),
            "batches_today": mine,
            "batches_today_all_datasets": total,
            "batches_by_dataset": MetadataValue.json(per_dataset),
            "limit_per_dataset": per_limit,
            "limit_all_datasets": all_limit,
        },
    )
