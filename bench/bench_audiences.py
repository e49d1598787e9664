"""4,000 audiences (AEP's batch-audience guardrail): the audience sensor and the UI's asset page.

    .venv/bin/python bench/bench_audiences.py [--audiences 4000]

1. Sensor: N audiences with two exports each in a local AEP destination zone; times the first
   ticks until every export is requested (the daemon calls the sensor repeatedly; each tick
   requests at most `max_runs_per_tick`) and an idle tick. Baseline: the zone's bare listing.
2. UI: registers the N audience partitions in a SQLite instance, starts `dagster-webserver` on
   the workspace, and times the GraphQL queries the `segment_exports` asset page issues for its
   partitions (keys and materialization health), against a baseline query for an asset with 4-hourly
   partitions (`broadlog`, 6,000+ time partitions) in the same run.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore")

from dagster import DagsterInstance, build_sensor_context  # noqa: E402

from asset_checks.aep_to_campaign.wiring import audience_defs  # noqa: E402
from resources import (  # noqa: E402
    AudienceSettings,
    FileLedger,
    LocalDropZone,
    PipelineSettings,
    Warehouse,
)
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import AUDIENCES_PARTITION_NAME  # noqa: E402
from rtcdp_dev import sample_audiences as sample  # noqa: E402
from rtcdp_dev.services import free_port  # noqa: E402

DEST = "Bench_Blob"
T0 = datetime(2026, 11, 20, 6, tzinfo=UTC)

PARTITIONS_QUERY = """
query ($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode {
      partitionKeysByDimension { name partitionKeys }
      partitionStats { numMaterialized numPartitions numFailed numMaterializing }
    }
  }
}
"""


def audience_ids(n: int) -> list[str]:
    return [f"{i:08x}-0000-4000-8000-000000000000" for i in range(n)]


def bench_sensor(n: int, tmp: Path) -> None:
    zone_root = tmp / "aep_destination"
    zone_root.mkdir()
    past = time.time() - 7200
    for k in (0, 1):
        for a in audience_ids(n):
            path = zone_root / sample.export_file_name(DEST, a, T0 + timedelta(hours=6 * k))
            path.write_bytes(b"x\n")
            os.utime(path, (past + k * 3600, past + k * 3600))
    zone = LocalDropZone(root=str(zone_root))
    t0 = time.perf_counter()
    listed = len(zone.list(""))
    listing = time.perf_counter() - t0
    instance = DagsterInstance.ephemeral()
    resources = {
        "aep_destination": zone,
        "audience_settings": AudienceSettings(max_runs_per_tick=1000),
        "settings": PipelineSettings(file_settle_seconds=0),
        "warehouse": Warehouse(zone=LocalDropZone(root=str(tmp / "warehouse"))),
        "file_ledger": FileLedger(url=f"sqlite:///{tmp / 'ledger.sqlite'}"),
    }
    sensor_def = next(s for s in audience_defs.sensors)
    resources = {k: v for k, v in resources.items() if k in sensor_def.required_resource_keys}
    cursor, ticks, requested, busiest = None, 0, 0, 0.0
    while True:
        started = time.perf_counter()
        with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
            result = sensor_def(ctx)
        elapsed = time.perf_counter() - started
        runs = len(getattr(result, "run_requests", None) or [])
        for request in getattr(result, "dynamic_partitions_requests", None) or []:
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        cursor = getattr(result, "cursor", None) or cursor
        ticks += 1
        if not runs:
            idle = elapsed
            break
        busiest = max(busiest, elapsed)
        requested += runs
    print(
        f"sensor: {listed} files, bare listing {listing:.2f} s; {requested} exports requested in "
        f"{ticks - 1} ticks, busiest tick {busiest:.2f} s ({busiest / listing:.1f}x listing); "
        f"idle tick {idle:.2f} s ({idle / listing:.1f}x listing)"
    )


def graphql(port: int, query: str, variables: dict[str, object]) -> tuple[float, dict]:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        payload = json.loads(response.read())
    return time.perf_counter() - started, payload


def bench_ui(n: int, tmp: Path) -> None:
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "RTCDP_DATA_DIR": str(tmp / "data")}
    os.environ.update(DAGSTER_HOME=str(home))
    DagsterInstance.get().add_dynamic_partitions(AUDIENCES_PARTITION_NAME, audience_ids(n))
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster_webserver",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                graphql(port, "{ version }", {})
                break
            except OSError:
                time.sleep(0.5)
        results = {}
        for asset in ("broadlog", "segment_exports"):
            graphql(port, PARTITIONS_QUERY, {"path": [asset]})  # warm the code location
            timings = []
            for _ in range(3):
                seconds, payload = graphql(port, PARTITIONS_QUERY, {"path": [asset]})
                timings.append(seconds)
            node = payload["data"]["assetNodeOrError"]
            keys = sum(len(d["partitionKeys"]) for d in node["partitionKeysByDimension"])
            results[asset] = (min(timings), keys)
        base, base_keys = results["broadlog"]
        seconds, keys = results["segment_exports"]
        print(
            f"ui: segment_exports partitions query {seconds:.2f} s for {keys} audience "
            f"partitions; broadlog (baseline) {base:.2f} s for {base_keys} time partitions "
            f"({seconds / base:.1f}x)"
        )
    finally:
        server.terminate()
        server.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--audiences", type=int, default=4000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rtcdp-bench-aud-") as tmp:
        bench_sensor(args.audiences, Path(tmp))
        bench_ui(args.audiences, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
