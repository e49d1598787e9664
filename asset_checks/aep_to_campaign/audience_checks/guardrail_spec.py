"""The spec of an audience check: partitioned by audience unless it spans all audiences."""

from dagster import AssetCheckSpec, AssetKey

from asset_checks.partition_reconciliation import partition_check_spec
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import audience_partitions


def guardrail_spec(
    name: str,
    asset: AssetKey,
    description: str,
    *,
    blocking: bool,
    source: str,
    limit: str,
    partitioned: bool = True,
) -> AssetCheckSpec:
    return partition_check_spec(
        name,
        asset,
        description,
        blocking=blocking,
        source=source,
        limit=limit,
        partitions_def=audience_partitions if partitioned else None,
    )
