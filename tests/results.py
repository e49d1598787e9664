"""Reading a Dagster run's results by asset, whatever op wrote the asset."""

import io
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from dagster import AssetCheckEvaluation, AssetKey, AssetMaterialization, ExecuteInProcessResult

from resources.drop_zones import DropZone
from rtcdp_assets.shared import xdm


def materialization(result: ExecuteInProcessResult, asset: str) -> AssetMaterialization:
    """The run's (first) materialization of `asset`; typed and XDM assets share one op."""
    key = AssetKey(asset)
    return next(
        e.materialization for e in result.get_asset_materialization_events() if e.asset_key == key
    )


def check_evaluations_by_name(result: ExecuteInProcessResult) -> dict[str, AssetCheckEvaluation]:
    """The run's asset check evaluations, by check name."""
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def read_published(zone: DropZone | Path, path: str) -> list[dict[str, Any]] | None:
    """The XDM records of a published file (`<dataset>_published`), whatever its form: JSON
    Lines line by line, XDM Parquet read back through `xdm.to_records` (dates as ISO text, as
    in the JSON form). `zone` is a drop zone or a local zone's root folder; None when the
    file is absent."""
    if isinstance(zone, Path):
        local = zone / path
        raw = local.read_bytes() if local.exists() else None
    else:
        raw = zone.read_bytes(path) if zone.stat(path) is not None else None
    if raw is None:
        return None
    if path.endswith(".parquet"):
        return [_dates_as_text(r) for r in xdm.to_records(pq.read_table(io.BytesIO(raw)))]
    return [json.loads(line) for line in raw.splitlines()]


def _dates_as_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _dates_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dates_as_text(v) for v in value]
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return value


def landing_files(root: Path) -> list[Path]:
    """Every file in an embedded environment's AEP landing zone (`<root>/aep_landing`), in
    either publication form, manifests included."""
    return sorted(p for p in (root / "aep_landing").rglob("*") if p.is_file())
