"""Guardrails on profiles: the Campaign contract's count of profiles, and AEP's ExperienceEvents
per profile.

- `active_profiles` on `profiles` (WARN, not blocking): the distinct Campaign recipients of every
  `profiles` partition loaded up to this window (each partition holds the recipients exported in
  its window, so one person appears in many: counted once) against `contracted_profiles`;
  WARN from `active_profiles_warn_share` (90 %), WARN and "over contract" from 100 %. Without a
  contracted count it reports the count and passes.
- `events_per_profile` on each event dataset's `<dataset>_xdm` (WARN, not blocking): the events
  of each profile (its primary identity, `campaign_identity_namespace`) in this publication;
  AEP does not consider a profile with more than `max_events_per_profile` (5,000) for
  segmentation (docs/formats.md §e1).

Both count over hashed values (xdm_tallies.string_hashes) and compare by value wherever hashes
decide the outcome, so a hash collision never changes a count.

No `from __future__ import annotations` here: Dagster reads the decorated functions' annotations.
"""

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    multi_asset_check,
)

from asset_checks.campaign_to_aep.xdm_tallies import DuplicateCounter, string_hashes
from asset_checks.check_descriptions import count, of, plural
from asset_checks.partition_reconciliation import partition_check_spec
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportDescription

PROFILE_KEY = "recipient_id"  # Campaign's recipient key: one per person (profiles.py)
BATCH_ROWS = 64 * 1024


# --------------------------------------------------------------------------------------------
# active_profiles
# --------------------------------------------------------------------------------------------
def build_active_profiles_check(flow: CampaignExportDescription) -> AssetChecksDefinition:
    spec = partition_check_spec(
        "active_profiles",
        flow.typed_key,
        "Distinct Campaign profiles in every `profiles` partition loaded up to this window "
        "against the contracted count (`contracted_profiles`): WARN from 90 % "
        "(`active_profiles_warn_share`) and over contract; without a contracted count the "
        "check reports the count and passes.",
        blocking=False,
        source="Campaign contract: active profiles (issue 21; blueprint §f1: Campaign holds "
        "every active profile)",
        limit="WARN at 90 % of settings.contracted_profiles",
    )

    @multi_asset_check(specs=[spec], name=f"{flow.dataset}_contract_checks")
    def contract_checks(
        context: AssetCheckExecutionContext, warehouse: Warehouse, settings: PipelineSettings
    ) -> Iterator[AssetCheckResult]:
        pk = context.partition_key
        loaded = context.instance.get_materialized_partitions(flow.typed_key) | {pk}
        partitions = sorted(p for p in loaded if p <= pk)
        yield active_profiles_result(
            flow.dataset, distinct_profiles(warehouse, flow.dataset, partitions), settings
        )

    return contract_checks


def distinct_profiles(warehouse: Warehouse, dataset: str, partitions: Iterable[str]) -> int:
    """Distinct `recipient_id`s over the stored partitions (8 bytes of hash per row)."""
    partitions = list(partitions)

    def ids() -> Iterator[pa.Array]:
        for pk in partitions:
            for batch in warehouse.iter_batches(
                dataset, pk, batch_size=BATCH_ROWS, columns=[PROFILE_KEY]
            ):
                yield batch.column(PROFILE_KEY)

    seen = DuplicateCounter()
    for values in ids():
        seen.add(values)
    # `duplicates` counts every null after the first; the first null is no profile either.
    return seen.rows - seen.duplicates(ids) - (seen.nulls > 0)


def active_profiles_result(
    dataset: str, profiles: int, settings: PipelineSettings
) -> AssetCheckResult:
    contracted = settings.contracted_profiles
    warn_share = settings.active_profiles_warn_share
    metadata: dict[str, object] = {
        "active_profiles": profiles,
        "contracted_profiles": contracted,
        "warn_share": warn_share,
    }
    if contracted is None:
        return AssetCheckResult(
            asset_key=AssetKey(dataset),
            check_name="active_profiles",
            passed=True,
            description=f"{plural(profiles, 'Campaign profile')}; no contract count is configured "
            "(settings.contracted_profiles)",
            metadata=metadata,
        )
    used = profiles / contracted
    metadata["contract_share"] = round(used, 4)
    line = f"{of(profiles, contracted, 'contracted Campaign profiles')} ({used:.1%})"
    if used >= 1:
        line += f": over contract by {count(profiles - contracted)}"
    elif used >= warn_share:
        line += f": at or above the {warn_share:.0%} warning level"
    return AssetCheckResult(
        asset_key=AssetKey(dataset),
        check_name="active_profiles",
        passed=used < warn_share,
        severity=AssetCheckSeverity.WARN,
        description=line,
        metadata=metadata,
    )


# --------------------------------------------------------------------------------------------
# events_per_profile
# --------------------------------------------------------------------------------------------
def build_events_per_profile_check(flow: CampaignExportDescription) -> AssetChecksDefinition:
    spec = partition_check_spec(
        "events_per_profile",
        flow.xdm_key,
        "ExperienceEvents per profile (primary identity) in this publication: WARN when a "
        "profile has more than `max_events_per_profile`; AEP leaves such a profile out of "
        "segmentation.",
        blocking=False,
        source="AEP profile guardrails: ExperienceEvents per profile (§e1)",
        limit="5,000 events per profile (settings.max_events_per_profile)",
    )

    @multi_asset_check(specs=[spec], name=f"{flow.xdm_dataset}_profile_checks")
    def profile_checks(
        context: AssetCheckExecutionContext, warehouse: Warehouse, settings: PipelineSettings
    ) -> Iterator[AssetCheckResult]:
        ids = stored_primary_ids(
            warehouse, flow.xdm_dataset, context.partition_key, settings.campaign_identity_namespace
        )
        yield events_per_profile_result(flow.xdm_dataset, ids, settings)

    return profile_checks


def stored_primary_ids(
    warehouse: Warehouse, dataset: str, pk: str, namespace: str
) -> Callable[[], Iterator[pa.Array]]:
    """Reads the stored events' primary ids, batch by batch, each time it is called."""

    def primary_ids() -> Iterator[pa.Array]:
        for batch in warehouse.iter_batches(
            dataset, pk, batch_size=BATCH_ROWS, columns=["identityMap"]
        ):
            yield primary_identities(batch, namespace)

    return primary_ids


def primary_identities(batch: pa.RecordBatch, namespace: str) -> pa.Array:
    """The id of each event's first identity in `namespace` (null where it has none)."""
    n = batch.num_rows
    if "identityMap" not in batch.schema.names:
        return pa.nulls(n, pa.string())
    column = batch.column("identityMap")
    if not pa.types.is_struct(column.type) or column.type.get_field_index(namespace) < 0:
        return pa.nulls(n, pa.string())
    lists = column.flatten()[column.type.get_field_index(namespace)]  # null map: null list
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    ids = lists.values.field("id")
    has_one = pc.fill_null(pc.greater(pc.list_value_length(lists), 0), False)
    if not len(ids):
        return pa.nulls(n, pa.string())
    starts = np.minimum(lists.offsets.to_numpy()[:-1], len(ids) - 1)
    first = pc.take(ids, pa.array(starts))
    return pc.if_else(has_one, first, pa.scalar(None, first.type))


def events_per_profile_result(
    dataset: str, primary_ids: Callable[[], Iterable[pa.Array]], settings: PipelineSettings
) -> AssetCheckResult:
    """Events per primary identity; `primary_ids` gives the ids batch by batch (read twice
    only when some hash has more events than the limit, to count those by value)."""
    limit = settings.max_events_per_profile
    hashes, events, without = [], 0, 0
    for ids in primary_ids():
        events += len(ids)
        without += ids.null_count
        hashes.append(string_hashes(ids))
    merged = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    keys, counts = np.unique(merged, return_counts=True)
    profiles = len(keys)
    most = int(counts.max()) if len(counts) else 0
    over: dict[str, int] = {}
    if most > limit:
        # The hashes over the limit, recounted by value: a collision never adds events.
        heavy = keys[counts > limit]
        exact: dict[str, int] = {}
        for ids in primary_ids():
            text = pc.drop_null(ids)
            picked = pc.filter(text, pa.array(np.isin(string_hashes(text), heavy)))
            for item in pc.value_counts(picked).to_pylist():
                exact[item["values"]] = exact.get(item["values"], 0) + item["counts"]
        over = {k: n for k, n in exact.items() if n > limit}
        most = max(exact.values())
    return AssetCheckResult(
        asset_key=AssetKey(dataset),
        check_name="events_per_profile",
        passed=not over,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{of(len(over), profiles, 'profiles')} have more than {count(limit)} events in "
            f"this publication (most for one profile: {count(most)}; "
            f"{plural(events, 'event')}, {count(without)} without a profile identity)"
        ),
        # Counts only: the identities themselves are personal values.
        metadata={
            "events_checked": events,
            "profiles": profiles,
            "profiles_over_limit": len(over),
            "most_events_for_a_profile": most,
            "events_without_profile_identity": without,
            "limit": limit,
        },
    )
