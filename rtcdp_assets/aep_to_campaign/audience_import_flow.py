"""The audience import flow as the code location loads it: its five assets, with the job, the
guardrail job and the sensor built around the checks passed in (asset_checks/aep_to_campaign
passes them; no dataset module imports a check).
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dagster import AssetCheckEvaluation, AssetChecksDefinition, AssetsDefinition

from resources.audience_settings import AudienceSettings
from rtcdp_assets.aep_to_campaign.audience_exports.job_and_sensor import (
    build_audience_job_and_sensor,
)
from rtcdp_assets.aep_to_campaign.audience_exports.membership import audience_membership
from rtcdp_assets.aep_to_campaign.audience_exports.segment_exports import segment_exports
from rtcdp_assets.aep_to_campaign.campaign_audience_import.assets import (
    campaign_audience_import,
    campaign_audience_import_published,
)
from rtcdp_assets.aep_to_campaign.destinations.dry_run import activation_dry_run

AUDIENCE_ASSETS: list[AssetsDefinition] = [
    segment_exports,
    audience_membership,
    # Before the Campaign import is written (and the destination files, which depend on it).
    activation_dry_run,
    campaign_audience_import,
    campaign_audience_import_published,
]


@dataclass
class AudienceDefinitions:
    assets: list[AssetsDefinition]
    asset_checks: list[AssetChecksDefinition]
    sensors: list[Any]
    jobs: list[Any]  # unresolved asset jobs


def build_audience_definitions(
    partitioned_checks: Sequence[AssetChecksDefinition],
    unpartitioned_checks: Sequence[AssetChecksDefinition],
    audience_count_evaluation: Callable[
        [set[str], Mapping[str, set[str]], AudienceSettings], AssetCheckEvaluation
    ],
) -> AudienceDefinitions:
    """The flow with the checks given: the partitioned ones run in `audience_import_job`, the
    unpartitioned ones in `audience_guardrails_job`; the sensor reports `audience_count` through
    `audience_count_evaluation` when it registers new audiences."""
    job, sensor_def, guardrail_job = build_audience_job_and_sensor(
        AUDIENCE_ASSETS, partitioned_checks, unpartitioned_checks, audience_count_evaluation
    )
    return AudienceDefinitions(
        assets=list(AUDIENCE_ASSETS),
        asset_checks=[*partitioned_checks, *unpartitioned_checks],
        sensors=[sensor_def],
        jobs=[job, guardrail_job],
    )
