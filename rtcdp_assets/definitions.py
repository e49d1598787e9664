"""The one `Definitions` of the code location (workspace.yaml loads this module)."""

from __future__ import annotations

from dagster import Definitions

from resources import environment_resources
from rtcdp_assets.broadlog import broadlog_defs

CAMPAIGN_EXPORTS = [broadlog_defs]

defs = Definitions(
    assets=[a for flow in CAMPAIGN_EXPORTS for a in flow.assets],
    asset_checks=[c for flow in CAMPAIGN_EXPORTS for c in flow.asset_checks],
    sensors=[flow.sensor for flow in CAMPAIGN_EXPORTS],
    jobs=[flow.job for flow in CAMPAIGN_EXPORTS],
    resources=environment_resources(),
)
