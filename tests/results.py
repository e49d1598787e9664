"""Reading a Dagster run's results by asset, whatever op wrote the asset."""

from dagster import AssetCheckEvaluation, AssetKey, AssetMaterialization, ExecuteInProcessResult


def materialization(result: ExecuteInProcessResult, asset: str) -> AssetMaterialization:
    """The run's (first) materialization of `asset`; typed and XDM assets share one op."""
    key = AssetKey(asset)
    return next(
        e.materialization for e in result.get_asset_materialization_events() if e.asset_key == key
    )


def check_evaluations_by_name(result: ExecuteInProcessResult) -> dict[str, AssetCheckEvaluation]:
    """The run's asset check evaluations, by check name."""
    return {e.check_name: e for e in result.get_asset_check_evaluations()}
