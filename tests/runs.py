"""Running a dataset's assets and evaluating a sensor in the test process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from dagster import (
    AssetChecksDefinition,
    AssetsDefinition,
    DagsterInstance,
    ExecuteInProcessResult,
    SensorDefinition,
    build_sensor_context,
    materialize,
)


class DatasetDefinitions(Protocol):
    """What a dataset's `build()` returns, as far as running it is concerned."""

    @property
    def assets(self) -> Sequence[AssetsDefinition]: ...

    @property
    def asset_checks(self) -> Sequence[AssetChecksDefinition]: ...


def materialize_partition(
    defs: DatasetDefinitions,
    resources: Mapping[str, Any],
    partition_key: str,
    instance: DagsterInstance | None = None,
) -> ExecuteInProcessResult:
    """Every asset and check of `defs` for one partition; failures are returned, not raised."""
    return materialize(
        [*defs.assets, *defs.asset_checks],
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
