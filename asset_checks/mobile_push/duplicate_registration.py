"""`duplicate_registration` on `aep_push_tokens` (WARN).

The blueprint warns that running both the Experience Platform Mobile SDK and the Campaign SDK
makes the device register (and call) twice; a token that AEP received from the Mobile SDK and
that Campaign also holds (the `push_subscriptions` dataset, read from the warehouse by name) is
such a device. The result counts them per app.
"""

from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetsDefinition,
    MetadataValue,
    multi_asset_check,
)

from asset_checks.check_descriptions import of
from asset_checks.partition_reconciliation import partition_check_spec
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.mobile_push.push_token_records import DATASET as AEP_PUSH_DATASET
from rtcdp_assets.shared import push_token_formats, xdm

CAMPAIGN_PUSH_DATASET = "push_subscriptions"


TOKEN_APPS = pa.schema([pa.field("token", pa.string()), pa.field("app_id", pa.string())])


def _one_row_per_token(parts: list[pa.Table], keep: str) -> pa.Table:
    """The rows of `parts` (in order) with one row per token: its first (`keep="min"`) or its
    last (`keep="max"`) occurrence; a hash group-by over the column, no Python per token."""
    if not parts:
        return TOKEN_APPS.empty_table()
    rows = pa.concat_tables(parts)
    rows = rows.append_column("_order", pa.array(np.arange(rows.num_rows)))
    chosen = rows.group_by("token", use_threads=False).aggregate([("_order", keep)])
    return rows.take(np.sort(chosen.column(f"_order_{keep}").to_numpy())).select(TOKEN_APPS.names)


def campaign_tokens(
    warehouse: Warehouse, settings: PipelineSettings, partitions: set[str]
) -> pa.Table:
    """Every device token Campaign holds in the given partitions with its app ID (TOKEN_APPS,
    one row per normalized token; a later partition or row wins)."""
    parts = []
    for pk in sorted(partitions):
        for batch in warehouse.iter_batches(CAMPAIGN_PUSH_DATASET, pk):
            platform = xdm.lookup(batch.column("platform"), settings.push_platform_codes)
            token = push_token_formats.normalized(batch.column("token"), platform)
            parts.append(pa.table([token, batch.column("app_id")], schema=TOKEN_APPS))
    return _one_row_per_token(parts, "max")


def _apps(app_ids: pa.Array | pa.ChunkedArray) -> Counter[str]:
    """Count per app ID, a missing or empty one counted as "unknown"."""
    named = pc.if_else(pc.fill_null(pc.equal(app_ids, ""), True), "unknown", app_ids)
    return Counter({c["values"]: int(c["counts"]) for c in pc.value_counts(named).to_pylist()})


def duplicate_registration_result(
    warehouse: Warehouse, pk: str, campaign: pa.Table
) -> AssetCheckResult:
    parts = [
        pa.table([b.column("token"), b.column("app_id")], schema=TOKEN_APPS)
        for b in warehouse.iter_batches(AEP_PUSH_DATASET, pk)
    ]
    # Each AEP token once, with the app of its first row.
    aep = _one_row_per_token(parts, "min")
    at = pc.index_in(aep.column("token"), value_set=campaign.column("token").combine_chunks())
    hit = pc.is_valid(at)
    apps = _apps(aep.column("app_id").filter(hit))
    campaign_apps = _apps(campaign.column("app_id").combine_chunks().take(at.filter(hit)))
    aep_tokens = aep.num_rows
    both = sum(apps.values())
    return AssetCheckResult(
        asset_key=AssetKey(AEP_PUSH_DATASET),
        check_name="duplicate_registration",
        passed=both == 0,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{of(both, aep_tokens, 'AEP device tokens')} are also registered in Campaign "
            "(both SDK routes)"
        ),
        metadata={
            "aep_tokens": aep_tokens,
            "campaign_tokens": campaign.num_rows,
            "tokens_registered_through_both_routes": both,
            "apps_concerned": MetadataValue.json(dict(sorted(apps.items()))),
            "campaign_apps_concerned": MetadataValue.json(dict(sorted(campaign_apps.items()))),
            "advice": (
                "Register each app's devices through one SDK route only (the Experience "
                "Platform Mobile SDK or the Campaign SDK): both routes send duplicate calls."
            ),
        },
    )


def build_duplicate_registration_check(aep_asset: AssetsDefinition) -> Any:
    spec = partition_check_spec(
        "duplicate_registration",
        aep_asset.key,
        "Device tokens that AEP received from the Experience Platform Mobile SDK and that "
        "Campaign also holds (push_subscriptions up to this window): WARN with counts and the "
        "apps concerned; PASS when the two routes are disjoint.",
        blocking=False,
        source="blueprint: running both SDK routes creates duplicate calls from the device",
        limit="0 tokens registered through both routes",
    )

    @multi_asset_check(specs=[spec], name="aep_push_tokens_checks_duplicates")
    def duplicate_checks(
        context: AssetCheckExecutionContext, warehouse: Warehouse, settings: PipelineSettings
    ) -> Iterator[AssetCheckResult]:
        pk = context.partition_key
        partitions = {
            p
            for p in context.instance.get_materialized_partitions(AssetKey(CAMPAIGN_PUSH_DATASET))
            if p <= pk
        }
        yield duplicate_registration_result(
            warehouse, pk, campaign_tokens(warehouse, settings, partitions)
        )

    return duplicate_checks
