"""suppression_list's automation condition, evaluated the way the daemon's automation sensor
does (`evaluate_automation_conditions` on an instance, with the cursor carried from tick to
tick): nothing before any quarantine or preference partition, one request after each new one,
nothing again without new data."""

from __future__ import annotations

from typing import Any

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    evaluate_automation_conditions,
    materialize,
)

from rtcdp_assets.campaign_to_aep.non_deliverables import non_deliverables_defs, suppression_list
from rtcdp_assets.campaign_to_aep.preferences import preferences_defs
from rtcdp_assets.definitions import defs as code_location
from rtcdp_dev import sample_audiences as sample
from tests.drop_files import drop_campaign_export

SUPPRESSION = AssetKey("suppression_list")


def tick(instance: DagsterInstance, cursor: Any = None) -> tuple[int, Any]:
    """One evaluation of the automation sensor's target in the code location's asset graph:
    (suppression_list requested, cursor). Every partition of both deps but one or two stays
    missing, as in a deployment."""
    result = evaluate_automation_conditions(
        defs=code_location,
        instance=instance,
        asset_selection=AssetSelection.assets(suppression_list),
        cursor=cursor,
    )
    return result.get_num_requested(SUPPRESSION), result.cursor


def load(root, resources, instance, defs, stamp: str, partition_key: str, **exports: Any) -> None:
    """The typed partition of `defs`' dataset from a real Campaign export file for `stamp`."""
    recipients = sample.campaign_recipients(6)
    files = sample.campaign_exports(recipients, stamp=stamp, **exports)
    prefix = defs.flow.file_prefix
    for name, data in files.items():
        if name.startswith(prefix):
            drop_campaign_export(root, name, data)
    assert materialize(
        [defs.assets[0]], partition_key=partition_key, resources=resources, instance=instance
    ).success


def test_suppression_list_runs_after_each_new_quarantine_or_preference_partition(
    embedded_env_with_instance,
):
    root, resources, instance = embedded_env_with_instance
    # No quarantine or preference yet: an empty list would be built for nothing.
    requested, cursor = tick(instance)
    assert requested == 0
    requested, cursor = tick(instance, cursor)
    assert requested == 0

    load(
        root,
        resources,
        instance,
        non_deliverables_defs,
        "20261123_0800",
        "2026-11-23-08:00",
        quarantined=[0, 1],
    )
    requested, cursor = tick(instance, cursor)
    assert requested == 1  # despite thousands of other, empty, quarantine windows

    # The requested run (what the daemon launches), then no new data: nothing more.
    assert materialize([suppression_list], resources=resources, instance=instance).success
    requested, cursor = tick(instance, cursor)
    assert requested == 0
    requested, cursor = tick(instance, cursor)
    assert requested == 0

    load(
        root,
        resources,
        instance,
        preferences_defs,
        "20261123_1200",
        "2026-11-23-12:00",
        opted_out=[2],
    )
    requested, cursor = tick(instance, cursor)
    assert requested == 1
