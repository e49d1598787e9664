"""Running a dataset's assets and evaluating a sensor in the test process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import (
    AssetChecksDefinition,
    AssetsDefinition,
    DagsterInstance,
    ExecuteInProcessResult,
    RunRequest,
    SensorDefinition,
    SensorResult,
    build_sensor_context,
    materialize,
)

from asset_checks.campaign_to_aep.dataset_checks import campaign_export_checks
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportDefinitions


def campaign_assets_and_checks(
    defs: CampaignExportDefinitions,
) -> list[AssetsDefinition | AssetChecksDefinition]:
    """A Campaign dataset's assets with its per-partition checks
    (`campaign_export_checks(defs.flow)`), ready for `materialize_partition`.

    `export_freshness` is not among them: it looks across partitions, not at one run. A
    Definitions holding the dataset's job needs it too:
    `build_freshness_check(defs.flow.typed_key)` from asset_checks.campaign_to_aep.freshness."""
    return [*defs.assets, *campaign_export_checks(defs.flow)]


def materialize_partition(
    assets_and_checks: Sequence[AssetsDefinition | AssetChecksDefinition],
    resources: Mapping[str, Any],
    partition_key: str,
    instance: DagsterInstance | None = None,
) -> ExecuteInProcessResult:
    """`assets_and_checks` for one partition; failures are returned, not raised. Without an
    `instance` the run gets its own ephemeral one."""
    return materialize(
        list(assets_and_checks),
        partition_key=partition_key,
        resources=resources,
        instance=instance or DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def evaluate_sensor(
    sensor_def: SensorDefinition,
    resources: Mapping[str, Any],
    instance: DagsterInstance,
    cursor: str | None = None,
) -> Any:
    """One evaluation of `sensor_def` with the resources it requires (taken from `resources`)."""
    required = {key: resources[key] for key in sensor_def.required_resource_keys}
    with build_sensor_context(instance=instance, cursor=cursor, resources=required) as context:
        return sensor_def(context)


def sensor_requests(
    sensor_def: SensorDefinition,
    resources: Mapping[str, Any],
    instance: DagsterInstance,
    cursor: str | None,
) -> tuple[list[RunRequest], str | None]:
    """One tick's run requests and the cursor after it (unchanged on a skip)."""
    result = evaluate_sensor(sensor_def, resources, instance, cursor)
    if isinstance(result, SensorResult):
        return list(result.run_requests or []), result.cursor or cursor
    return [], cursor
