"""`duplicate_registration` on `aep_push_tokens` (WARN).

The blueprint warns that running both the Experience Platform Mobile SDK and the Campaign SDK
makes the device register (and call) twice; a token that AEP received from the Mobile SDK and
that Campaign also holds (the `push_subscriptions` dataset, read from the warehouse by name) is
such a device. The result counts them per app.
"""

from collections import Counter
from collections.abc import Iterator
from typing import Any

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


def campaign_tokens(
    warehouse: Warehouse, settings: PipelineSettings, partitions: set[str]
) -> dict[str, str]:
    """token → app ID of every device token Campaign holds in the given partitions."""
    out: dict[str, str] = {}
    for pk in sorted(partitions):
        for batch in warehouse.iter_batches(CAMPAIGN_PUSH_DATASET, pk):
            platform = xdm.lookup(batch.column("platform"), settings.push_platform_codes)
            token = push_token_formats.normalized(batch.column("token"), platform)
            out.update(zip(token.to_pylist(), batch.column("app_id").to_pylist(), strict=True))
    return out


def duplicate_registration_result(
    warehouse: Warehouse, pk: str, campaign: dict[str, str]
) -> AssetCheckResult:
    aep_tokens: set[str] = set()
    apps: Counter[str] = Counter()
    campaign_apps: Counter[str] = Counter()
    for batch in warehouse.iter_batches(AEP_PUSH_DATASET, pk):
        for token, app in zip(
            batch.column("token").to_pylist(), batch.column("app_id").to_pylist(), strict=True
        ):
            if token in aep_tokens:
                continue
            aep_tokens.add(token)
            if token in campaign:
                apps[app or "unknown"] += 1
                campaign_apps[campaign[token] or "unknown"] += 1
    both = sum(apps.values())
    return AssetCheckResult(
        asset_key=AssetKey(AEP_PUSH_DATASET),
        check_name="duplicate_registration",
        passed=both == 0,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{of(both, len(aep_tokens), 'AEP device tokens')} are also registered in Campaign "
            "(both SDK routes)"
        ),
        metadata={
            "aep_tokens": len(aep_tokens),
            "campaign_tokens": len(campaign),
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
