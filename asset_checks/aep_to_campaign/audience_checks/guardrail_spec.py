"""The spec of an audience check, with its `guardrail/*` metadata and the audience partitions."""

from dagster import AssetCheckSpec, AssetKey

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
    return AssetCheckSpec(
        name=name,
        asset=asset,
        blocking=blocking,
        description=description,
        partitions_def=audience_partitions if partitioned else None,
        metadata={"guardrail/source": source, "guardrail/limit": limit},
    )
