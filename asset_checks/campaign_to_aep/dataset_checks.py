"""The checks of each Campaign → AEP dataset: the typed and XDM guardrails every dataset has,
plus the dataset's own (orphan tracking rows, push token format, push quarantine, the contract's
active profiles, events per profile, the destination identities of profiles), and on its
publication the guardrails that look across every published dataset (identity graphs, batches
per day; publication_checks.py).

`campaign_export_checks(flow)` builds them; rtcdp_assets/definitions.py and the tests take
them from here. A dataset's job runs them by selecting its assets, so the flow never imports
a check.
"""

from collections.abc import Callable, Mapping, Sequence

from dagster import AssetChecksDefinition

from asset_checks.campaign_to_aep.destination_identity_checks import (
    build_destination_identities_check,
)
from asset_checks.campaign_to_aep.export_checks import build_typed_checks, build_xdm_checks
from asset_checks.campaign_to_aep.profile_guardrails import (
    build_active_profiles_check,
    build_events_per_profile_check,
)
from asset_checks.campaign_to_aep.publication_checks import build_publication_checks
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
    "profiles": (build_active_profiles_check,),
}
XDM_CHECKS_BY_DATASET: Mapping[str, tuple[CheckBuilder, ...]] = {
    "push_subscriptions": (lambda flow: build_quarantine_check(flow, flow.xdm_key),),
    "broadlog": (build_events_per_profile_check,),
    "tracking_log": (build_events_per_profile_check,),
    "profiles": (build_destination_identities_check,),
}


def campaign_export_checks(
    flow: CampaignExportDescription, published: Sequence[CampaignExportDescription] = ()
) -> list[AssetChecksDefinition]:
    """The partitioned checks of one Campaign dataset: typed, XDM, then its own; with
    `published` (every dataset published to AEP), the checks on its publication too."""
    return [
        build_typed_checks(flow, flow.typed_key),
        build_xdm_checks(flow, flow.xdm_key),
        *[build(flow) for build in TYPED_CHECKS_BY_DATASET.get(flow.dataset, ())],
        *[build(flow) for build in XDM_CHECKS_BY_DATASET.get(flow.dataset, ())],
        *([build_publication_checks(flow, published)] if published else []),
    ]
