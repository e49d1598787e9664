"""The AEP → Campaign wing with its checks: the datasets' definitions built around the checks of
this package (dependency injection: no dataset module imports a check). rtcdp_assets/definitions.py,
the tests and the benches load these same objects.
"""

from asset_checks.aep_to_campaign.audience_checks import (
    PARTITIONED_AUDIENCE_CHECKS,
    UNPARTITIONED_AUDIENCE_CHECKS,
    audience_count_evaluation,
)
from asset_checks.aep_to_campaign.consent_checks import (
    destination_consent_checks,
    destination_publication_checks,
)
from asset_checks.aep_to_campaign.destination_checks import destination_exports_checks
from asset_checks.aep_to_campaign.reach_checks import reach_funnel
from rtcdp_assets.aep_to_campaign.audience_import_flow import (
    AudienceDefinitions,
    build_audience_definitions,
)
from rtcdp_assets.aep_to_campaign.destinations.assets import (
    DestinationDefinitions,
    build_destination_definitions,
)
from rtcdp_assets.aep_to_campaign.reach import ReachDefinitions, build_reach_definitions

audience_defs: AudienceDefinitions = build_audience_definitions(
    PARTITIONED_AUDIENCE_CHECKS, UNPARTITIONED_AUDIENCE_CHECKS, audience_count_evaluation
)
destination_defs: DestinationDefinitions = build_destination_definitions(
    [destination_exports_checks, destination_consent_checks, destination_publication_checks]
)
reach_defs: ReachDefinitions = build_reach_definitions([reach_funnel])
