"""The checks of each Campaign → AEP dataset: the typed and XDM guardrails every dataset has,
plus the dataset's own (orphan tracking rows, push token format, push quarantine).

`campaign_export_checks(flow)` builds them; rtcdp_assets/definitions.py and the tests take
them from here. A dataset's job runs them by selecting its assets, so the flow never imports
a check.
"""

from collections.abc import Callable, Mapping

from dagster import AssetChecksDefinition

from asset_checks.campaign_to_aep.export_checks import build_typed_checks, build_xdm_checks
from asset_checks.campaign_to_aep.push_subscription_checks import (
    build_quarantine_check,
    build_token_format_check,
)
from asset_checks.campaign_to_aep.tracking_checks import build_orphan_check
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportDescription

CheckBuilder = Callable[[CampaignExportDescription], AssetChecksDefinition]

# Dataset-specific checks on the typed asset (`<dataset>`), then on the XDM one.
TYPED_CHECKS_BY_DATASET: Mapping[str, tuple[CheckBuilder, ...]] = {
    "tracking_log": (lambda flow: build_orphan_check(flow.typed_key),),
    "push_subscriptions": (lambda flow: build_token_format_check(flow, flow.typed_key),),
}
XDM_CHECKS_BY_DATASET: Mapping[str, tuple[CheckBuilder, ...]] = {
    "push_subscriptions": (lambda flow: build_quarantine_check(flow, flow.xdm_key),),
}


def campaign_export_checks(flow: CampaignExportDescription) -> list[AssetChecksDefinition]:
    """The partitioned checks of one Campaign dataset: typed, XDM, then its own."""
    return [
        build_typed_checks(flow, flow.typed_key),
        build_xdm_checks(flow, flow.xdm_key),
        *[build(flow) for build in TYPED_CHECKS_BY_DATASET.get(flow.dataset, ())],
        *[build(flow) for build in XDM_CHECKS_BY_DATASET.get(flow.dataset, ())],
    ]
