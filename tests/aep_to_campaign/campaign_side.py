"""Shared steps of the end-to-end audience tests: Campaign's side loaded first (an audience
import joins to profiles and honours the suppression list), and listing entries of files in the
AEP destination folder."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, ExecuteInProcessResult, RunRequest, materialize

from asset_checks.aep_to_campaign.audience_checks import PARTITIONED_AUDIENCE_CHECKS
from asset_checks.aep_to_campaign.wiring import audience_defs
from resources.drop_zones import Entry
from rtcdp_assets.campaign_to_aep.non_deliverables import non_deliverables_defs, suppression_list
from rtcdp_assets.campaign_to_aep.preferences import preferences_defs
from rtcdp_assets.campaign_to_aep.profiles import profiles_defs
from rtcdp_dev import sample_audiences as sample
from tests.drop_files import drop_campaign_export


def load_campaign_side(
    root: Path,
    resources: dict[str, Any],
    instance: DagsterInstance,
    recipients: Sequence[Mapping[str, str]],
    *,
    partition_key: str,
    **exports: Any,
) -> None:
    """Campaign's profiles, non-deliverables and preferences exports for `recipients` (with
    their completion markers), their typed partitions, then the suppression list. `exports` go
    to `sample.campaign_exports` (quarantined, opted_out, stamp)."""
    for name, data in sample.campaign_exports(recipients, **exports).items():
        drop_campaign_export(root, name, data)
    for defs in (profiles_defs, non_deliverables_defs, preferences_defs):
        assert materialize(
            [defs.assets[0]], partition_key=partition_key, resources=resources, instance=instance
        ).success
    assert materialize([suppression_list], resources=resources, instance=instance).success


def export_entry(
    folder: str, name: str, size: int = 100, age: float = 600, now: float | None = None
) -> Entry:
    """How a zone lists `folder/name`, modified `age` seconds before `now`."""
    ts = (now or time.time()) - age
    return Entry(
        path=f"{folder}/{name}",
        size=size,
        modified=datetime.fromtimestamp(ts, UTC),
        identity=f"{size}-{int(ts * 1e9)}",
    )


def run_audience_export(
    resources: dict[str, Any], instance: DagsterInstance, request: RunRequest
) -> ExecuteInProcessResult:
    """The run `aep_audience_export_sensor` asked for: every audience asset and check of the
    request's audience partition, with its tags (the export it names)."""
    return materialize(
        [*audience_defs.assets, *PARTITIONED_AUDIENCE_CHECKS],
        partition_key=request.partition_key,
        tags=request.tags,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
