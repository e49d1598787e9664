"""`reach_funnel`: each stored funnel of `audience_reach` holds together."""

from itertools import pairwise
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from asset_checks.check_descriptions import of
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import audience_partitions
from rtcdp_assets.aep_to_campaign.reach import AUDIENCE_REACH, STAGES, audience_reach


def funnel_problems(export: dict[str, Any]) -> list[str]:
    """Why a stored funnel cannot be right (empty when it holds together)."""
    problems = []
    order = [s for s in STAGES if s != "exported"]
    for earlier, later in pairwise(order):
        if export[later] > export[earlier]:
            problems.append(f"{later} ({export[later]}) > {earlier} ({export[earlier]})")
    accounted = export["targeted"] + sum(export["excluded"].values())
    if accounted != export["matched"]:
        problems.append(f"matched {export['matched']} != targeted + excluded {accounted}")
    return problems


@asset_check(
    asset=audience_reach,
    name="reach_funnel",
    partitions_def=audience_partitions,
    blocking=False,
    description="Every stage of each funnel is at most the stage before it, and matched = "
    "targeted + excluded by reason.",
    metadata={"guardrail/source": "project: counts reconcile", "guardrail/limit": "0 problems"},
)
def reach_funnel(context: AssetCheckExecutionContext, warehouse: Warehouse) -> AssetCheckResult:
    stored = warehouse.get_json(AUDIENCE_REACH, context.partition_key, "reach.json") or {
        "exports": []
    }
    problems = {e["export_id"]: funnel_problems(e) for e in stored["exports"]}
    problems = {k: v for k, v in problems.items() if v}
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.WARN,
        description=f"{of(len(problems), len(stored['exports']), 'funnels')} do not hold together",
        metadata={
            "exports": len(stored["exports"]),
            "problems": MetadataValue.json(problems),
        },
    )
