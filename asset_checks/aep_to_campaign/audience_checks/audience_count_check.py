"""`audience_count`: audiences per Campaign destination and per sandbox, across audiences."""

from collections.abc import Mapping
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from asset_checks.aep_to_campaign.audience_checks.guardrail_spec import guardrail_spec
from asset_checks.aep_to_campaign.audience_checks.segment_export_checks import EXPORTS_KEY
from asset_checks.check_descriptions import count, plural
from resources.audience_settings import AudienceSettings
from resources.drop_zones import DropZone
from rtcdp_assets.aep_to_campaign.audience_exports.completeness import group_listing
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import audience_partitions


def audience_count_outcome(
    registered: set[str], by_destination: Mapping[str, set[str]], settings: AudienceSettings
) -> tuple[bool, dict[str, Any]]:
    campaign = {
        dest: len(auds)
        for dest, auds in sorted(by_destination.items())
        if settings.destination(dest).kind == "campaign_managed_services"
    }
    over_campaign = {
        d: n for d, n in campaign.items() if n > settings.max_audiences_campaign_destination
    }
    sandbox = len(registered | set().union(*by_destination.values()))
    passed = not over_campaign and sandbox <= settings.max_audiences_per_sandbox
    return passed, {
        "audiences_in_sandbox": sandbox,
        "sandbox_limit": settings.max_audiences_per_sandbox,
        "audiences_per_campaign_destination": MetadataValue.json(campaign),
        "campaign_destination_limit": settings.max_audiences_campaign_destination,
        "campaign_destinations_over_limit": MetadataValue.json(over_campaign),
        "audiences_per_destination": MetadataValue.json(
            {d: len(a) for d, a in sorted(by_destination.items())}
        ),
    }


def audience_count_description(metadata: Mapping[str, Any]) -> str:
    over = metadata["campaign_destinations_over_limit"].value
    return (
        f"{count(metadata['audiences_in_sandbox'])} audiences in the sandbox (limit "
        f"{count(metadata['sandbox_limit'])}); {plural(len(over), 'Campaign destination')} over "
        f"{metadata['campaign_destination_limit']} audiences"
    )


def audience_count_evaluation(
    registered: set[str], by_destination: Mapping[str, set[str]], settings: AudienceSettings
) -> AssetCheckEvaluation:
    passed, metadata = audience_count_outcome(registered, by_destination, settings)
    return AssetCheckEvaluation(
        asset_key=EXPORTS_KEY,
        check_name="audience_count",
        passed=passed,
        metadata=metadata,
        severity=AssetCheckSeverity.WARN,
        description=audience_count_description(metadata),
    )


AUDIENCE_COUNT_SPEC = guardrail_spec(
    "audience_count",
    EXPORTS_KEY,
    "At most 25 audiences per Campaign Managed Services destination and at most 4,000 batch "
    "audiences per sandbox (WARN; both configurable).",
    blocking=False,
    source="Campaign Managed Services: ≤25 audiences (NmsCdp_Aep_Audience_List_Limit, §f3); "
    "AEP: ≤4000 batch audiences per sandbox (§e1)",
    limit="25 per Campaign destination, 4000 per sandbox",
    partitioned=False,
)


@asset_check(
    asset=EXPORTS_KEY,
    name="audience_count",
    description=AUDIENCE_COUNT_SPEC.description,
    blocking=False,
    metadata=dict(AUDIENCE_COUNT_SPEC.metadata),
)
def audience_count(
    context: AssetCheckExecutionContext,
    aep_destination: DropZone,
    audience_settings: AudienceSettings,
) -> AssetCheckResult:
    listing = group_listing(aep_destination.list(audience_settings.destination_folder))
    by_destination: dict[str, set[str]] = {}
    for export in listing.exports.values():
        by_destination.setdefault(export.destination, set()).add(export.audience_id)
    registered = set(context.instance.get_dynamic_partitions(audience_partitions.name))
    passed, metadata = audience_count_outcome(registered, by_destination, audience_settings)
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        description=audience_count_description(metadata),
        metadata=metadata,
    )
