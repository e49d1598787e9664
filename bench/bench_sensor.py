"""Export-sensor tick time over a drop zone with many files (local folder and real sshd).

    .venv/bin/python bench/bench_sensor.py --files 10000

Writes N broadLog-named files (tiny, distinct windows), then times the broadLog sensor's first
tick (every file new) and a second tick with nothing new, the way the daemon calls it
(`build_sensor_context` + the sensor). Baseline in the same run: the zone's bare listing, so
the ratio shows what the sensor's own work adds. Target: first tick < 10 s, an idle
tick < 1 s at 10,000 files.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore")

from dagster import DagsterInstance, build_sensor_context  # noqa: E402

from resources import FileLedger, LocalDropZone, PipelineSettings  # noqa: E402
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs  # noqa: E402
from rtcdp_dev.services import SshdServer  # noqa: E402
from tests.zones import sftp_zone  # noqa: E402


def populate(root: Path, files: int) -> None:
    export = root / "export"
    export.mkdir(parents=True, exist_ok=True)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    past = time.time() - 3600
    for i in range(files):
        # distinct 4-hour windows, several files per window via the optional suffix
        when = start + timedelta(hours=4 * (i // 3))
        path = export / f"broadLog_{when:%Y%m%d_%H%M}_{i % 3}.csv"
        path.write_bytes(b"iBroadLogId\n1\n")
        os.utime(path, (past + i * 1e-3, past + i * 1e-3))


def tick(zone: object, cursor: str | None, ledger: FileLedger) -> tuple[float, int, str | None]:
    resources = {
        "campaign_sftp": zone,
        "settings": PipelineSettings(file_settle_seconds=0),
        "file_ledger": ledger,
    }
    instance = DagsterInstance.ephemeral()  # the daemon's instance exists before the tick
    start = time.perf_counter()
    with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
        result = broadlog_defs.sensor(ctx)
    seconds = time.perf_counter() - start
    requests = getattr(result, "run_requests", None) or []
    return seconds, len(requests), getattr(result, "cursor", cursor)


def bench(name: str, zone: object, repeat: int, tmp: Path) -> None:
    def median_of(fn: object) -> float:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()  # type: ignore[operator]
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    listed = len(zone.list("export"))  # type: ignore[attr-defined]
    listing = median_of(lambda: zone.list("export"))  # type: ignore[attr-defined]
    if hasattr(zone, "_connect"):
        # paramiko's own listing (listdir_attr: one READDIR round trip at a time), what
        # SftpDropZone.list used before.
        sftp = zone._connect()
        plain = median_of(lambda: sftp.listdir_attr("export"))
        print(f"{name:<6} paramiko listdir_attr {plain:6.2f} s; zone.list {listing / plain:4.2f}x")
    firsts, idles = [], []
    for i in range(repeat):
        # The sensor reads and writes the file ledger (a SQLite file, as in the embedded
        # setup); a fresh one per round, so that every first tick sees every file as new.
        ledger = _ledger(tmp / f"{name}-{i}.sqlite")
        first, n_first, cursor = tick(zone, None, ledger)
        idle, n_idle, _ = tick(zone, cursor, ledger)
        firsts.append(first)
        idles.append(idle)
    first, idle = statistics.median(firsts), statistics.median(idles)
    print(
        f"{name:<6} files={listed:>6}  bare listing {listing:6.2f} s  "
        f"first tick {first:6.2f} s ({n_first} runs, {first / listing:4.1f}x listing)  "
        f"idle tick {idle:6.2f} s ({n_idle} runs, {idle / listing:4.1f}x listing)  "
        f"(medians of {repeat})"
    )


def _ledger(path: Path) -> FileLedger:
    return FileLedger(url=f"sqlite:///{path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rtcdp-bench-sensor-") as tmp:
        root = Path(tmp) / "zone"
        populate(root, args.files)
        bench("local", LocalDropZone(root=str(root)), args.repeat, Path(tmp))
        with SshdServer(root=root, workdir=Path(tmp) / "sshd") as sshd:
            zone = sftp_zone(sshd, base_path="")
            bench("sftp", zone, args.repeat, Path(tmp))
            zone.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
