"""Steps the offline dataset tests share: drop a day's files, run the day (every asset and
check of one dataset), and prove that a re-run changes nothing."""

from pathlib import Path
from typing import Any

from dagster import DagsterInstance

from asset_checks.customer_to_aep.offline_checks import offline_checks
from resources import embedded_resources
from rtcdp_assets.customer_to_aep.offline_assets import build_offline_defs, offline_datasets
from tests.results import materialization
from tests.runs import materialize_partition


def offline_env(root: Path, folder: str, files: dict[str, bytes]) -> tuple[Path, dict[str, Any]]:
    """Embedded resources under `root`, with `files` in customer_source/`folder`."""
    resources = embedded_resources(root, file_settle_seconds=0)
    target = root / "customer_source" / folder
    target.mkdir(parents=True)
    for name, data in files.items():
        (target / name).write_bytes(data)
    return root, resources


def run_offline_day(
    dataset: str, resources: dict[str, Any], day: str, instance: DagsterInstance | None = None
) -> Any:
    """One dataset's day, as its job runs it (a shipped mapping picked by name)."""
    (ds,) = [d for d in offline_datasets() if d.dataset == dataset]
    defs = build_offline_defs([ds])
    return materialize_partition([*defs.assets, *offline_checks(ds)], resources, day, instance)


def rerun_changes_nothing(
    root: Path, resources: dict[str, Any], dataset: str, day: str, landing: str
) -> Any:
    """Run the day twice: the second run publishes nothing new, and the landed and stored files
    are byte-identical. Returns the second run's result."""
    instance = DagsterInstance.ephemeral()
    stored_path = root / "warehouse" / f"{dataset}_xdm" / day / "data.parquet"
    first = run_offline_day(dataset, resources, day, instance)
    landed, stored = (root / landing).read_bytes(), stored_path.read_bytes()
    second = run_offline_day(dataset, resources, day, instance)
    assert first.success and second.success
    published = materialization(second, f"{dataset}_published").metadata
    assert published["already_published"].value is True
    assert (root / landing).read_bytes() == landed
    assert stored_path.read_bytes() == stored
    return second


def archived(root: Path, folder: str, day: str) -> list[str]:
    """The day's archived files, once the incoming folder holds none (nothing deleted)."""
    source = root / "customer_source" / folder
    assert [p.name for p in source.iterdir() if p.is_file()] == []
    return sorted(p.name for p in (source / "archive" / day).iterdir())
