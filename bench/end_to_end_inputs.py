"""Inputs of `bench_end_to_end.py`, generated before any measured process starts.

Each flow gets a source folder laid out like the embedded default's data directory
(`embedded_resources`): the Campaign export file and its `.done` marker in
`campaign_sftp/export/`, or, for the audience flow, a warehouse of Campaign profiles and the
suppression list plus one AEP audience export in `aep_destination/`. `fresh_root` gives every
measured run its own copy (hard links: the run moves its source to the archive, the copy
stays), so a round never sees another round's output.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CAMPAIGN_FLOWS = (
    "broadlog",
    "tracking_log",
    "non_deliverables",
    "preferences",
    "profiles",
    "push_subscriptions",
)
AUDIENCE_FLOW = "audience"
AUDIENCE_DESTINATION = "Bench_Blob"
# When the export was made: after the profiles' windows, before today, as AEP would.
AUDIENCE_EXPORT_TIME = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
# Older than any settle window, so the sensors take the files at their first tick.
SETTLED_AGE_SECONDS = 3600


@dataclass(frozen=True)
class FlowInput:
    """One flow's generated input: `root` is a data directory, `source` the file the sensor
    finds (the baseline converts the same file), `rows` its data rows."""

    flow: str
    root: Path
    source: Path
    rows: int
    profile_partitions: tuple[str, ...] = ()


def _settle(paths: list[Path]) -> None:
    past = datetime.now(UTC).timestamp() - SETTLED_AGE_SECONDS
    for path in paths:
        os.utime(path, (past, past))


def campaign_input(flow: str, rows: int, root: Path, seed: int = 42) -> FlowInput:
    """One clean Campaign export of `flow` (classic layout) with its completion marker."""
    from rtcdp_dev.sample_data import dataset_file_name, stream_dataset
    from rtcdp_dev.sample_data.common import DEFAULT_BENCH_WINDOW

    folder = root / "campaign_sftp" / "export"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / dataset_file_name(flow, DEFAULT_BENCH_WINDOW)
    # broadlog_rows: trackingLog rows react to the sends of a broadLog of the same size, and
    # profiles cover its recipients; both replay its draws, which needs its row count.
    extra = {"broadlog_rows": rows} if flow in ("tracking_log", "profiles") else {}
    stats = stream_dataset(flow, path, rows, seed=seed, defect_rate=0.0, **extra)
    marker = path.with_name(path.name + ".done")
    marker.write_bytes(b"")
    _settle([path, marker])
    return FlowInput(flow, root, path, stats.rows)


def audience_input(
    members: int,
    profiles: int,
    root: Path,
    on_generated: Callable[[Path], dict[str, Any]] | None = None,
) -> tuple[FlowInput, dict[str, Any] | None]:
    """Campaign's side (profiles partitions and the suppression list, in the warehouse, from
    bench_audience_match's generator) and one AEP export of `members` as AEP's default CSV.
    `on_generated(warehouse)` runs on the generator's output as it stands (bench_audience_match
    measures it), before it becomes the flow's input; its result is returned beside it."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from bench.bench_audience_match import AUDIENCE, STAMP, generate
    from rtcdp_dev.sample_audiences import columns_for, export_file_name

    warehouse = root / "warehouse"
    generate(warehouse, members, profiles)
    measured = on_generated(warehouse) if on_generated else None
    # The generator's windows lie before the default first partition (2026-11-01): moved to
    # November, so the profiles partitions are ones the definitions know.
    keys = []
    for number, old in enumerate(_read_json(warehouse / "_partitions.json")):
        new = f"2026-11-{1 + number // 6:02d}-{(number % 6) * 4:02d}:00"
        (warehouse / "profiles" / old).rename(warehouse / "profiles" / new)
        keys.append(new)
    members_file = warehouse / "audience_membership" / AUDIENCE / STAMP / "members.parquet"
    table = pq.read_table(members_file, columns=["external_id", "email", "status"])
    qualified = pq.read_table(members_file, columns=["last_qualification_time"]).column(0)
    # What the run writes itself (membership, export record) goes; Campaign's side stays.
    for name in ("audience_membership", "segment_exports", "_partitions.json"):
        target = warehouse / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    columns = columns_for(AUDIENCE)
    # Whole seconds first: `%S` of a microsecond timestamp carries the fraction.
    seconds = qualified.cast(pa.timestamp("s", tz="UTC"), safe=False)
    lqt = pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%S.000Z")
    n = table.num_rows
    export = pa.table(
        [
            pa.array(["Ann"] * n),
            pa.array(["Lee"] * n),
            table.column("email"),
            table.column("external_id"),
            table.column("status"),
            lqt,
        ],
        names=columns,
    )
    folder = root / "aep_destination"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / export_file_name(AUDIENCE_DESTINATION, AUDIENCE, AUDIENCE_EXPORT_TIME)
    # AEP's CSV (docs/formats.md §a2): header, comma, quotes only where needed, nulls empty.
    pacsv.write_csv(export, path, pacsv.WriteOptions(quoting_style="needed", include_header=True))
    _settle([path])
    return FlowInput(AUDIENCE_FLOW, root, path, n, tuple(keys)), measured


def _read_json(path: Path) -> list[str]:
    import json

    return list(json.loads(path.read_text()))


def fresh_root(source: FlowInput, root: Path) -> FlowInput:
    """A copy of `source`'s data directory under `root` (files hard-linked, read-only use),
    with modification times kept: the sensor must see settled files."""
    shutil.copytree(source.root, root, copy_function=os.link)
    return FlowInput(
        source.flow,
        root,
        root / source.source.relative_to(source.root),
        source.rows,
        source.profile_partitions,
    )


def instance_home(root: Path) -> Path:
    """The SQLite Dagster instance's folder in a data directory (`dagster dev`'s default
    storage), telemetry off."""
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def record_campaign_side(root: Path, profile_partitions: tuple[str, ...]) -> None:
    """The audience flow's instance: Campaign's profiles partitions and the suppression list
    materialized (as runless events: their runs are not what this benchmark measures)."""
    from dagster import AssetMaterialization, DagsterInstance

    with DagsterInstance.local_temp(tempdir=str(instance_home(root))) as instance:
        for key in profile_partitions:
            instance.report_runless_asset_event(
                AssetMaterialization(asset_key="profiles", partition=key)
            )
        instance.report_runless_asset_event(AssetMaterialization(asset_key="suppression_list"))
