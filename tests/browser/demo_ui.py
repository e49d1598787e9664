"""The demo's data in a temporary instance, as the browser tests look at it.

The headless demo (the README's `--headless` command) runs in a child process on a small
sample: the definitions pick their resources from the environment when they are imported, so
running the demo inside the test process would tie them to whichever environment imported them
first. Then the data-quality report of the latest window is materialized (the headless demo
does not build it; the UI demo's schedule would), and a dagster-webserver serves the instance.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rtcdp_dev.demo import sample_window_range
from rtcdp_dev.sample_data import generate_broadlog
from rtcdp_dev.services import REPO_ROOT, DagsterWebserver

WINDOWS = 2
ROWS_PER_FILE = 300
CHILD_TIMEOUT_SECONDS = 300
FIRST_SEED = 7  # the demo's default


@dataclass(frozen=True)
class DemoUi:
    data_dir: Path
    base_url: str
    # (asset, partition) -> rows, as the headless demo's summary printed them.
    rows: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def partition(self) -> str:
        """The latest window of the sample, the one the data-quality report covers."""
        return max(pk for asset, pk in self.rows if asset == "broadlog")

    def partitions_of(self, asset: str) -> list[str]:
        return sorted(pk for a, pk in self.rows if a == asset)

    def url(self, path: str) -> str:
        return self.base_url + path


def demo_environment(data_dir: Path) -> dict[str, str]:
    """This process's environment without its RTCDP_/DAGSTER_ settings, on `data_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RTCDP_", "DAGSTER_"))}
    env.update(
        RTCDP_ENV="embedded",
        RTCDP_DATA_DIR=str(data_dir),
        DAGSTER_HOME=str(data_dir / "dagster_home"),
    )
    return env


def _run(argv: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, *argv],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, (argv, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout


def summary_rows(summary: str) -> dict[tuple[str, str], int]:
    """(asset, partition) -> rows from the demo's summary lines `asset partition rows checks`."""
    rows = {}
    for line in summary.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith(" ") and parts[2].isdigit():
            rows[(parts[0], parts[1])] = int(parts[2])
    return rows


def seed_with_broadlog_rejects(now: datetime) -> int:
    """The first seed from the demo's default whose latest sample window holds deliberate
    broadLog rejects. The sample's defects are keyed by (seed, dataset, window) at a 0.5 %
    rate: at 300 rows about one window in five has none, and the data-quality report of such a
    window has no quarantined rows to show, so the page under test would depend on the time
    of day the suite runs."""
    latest = sample_window_range(now, WINDOWS)[1] - timedelta(hours=4)
    for seed in range(FIRST_SEED, FIRST_SEED + 50):
        if generate_broadlog(latest, ROWS_PER_FILE, seed=seed, now=now).expected_rejects:
            return seed
    raise AssertionError(f"no seed gives the {latest} window a broadLog reject")


def prepare_demo_data(data_dir: Path) -> dict[tuple[str, str], int]:
    """The headless demo, then the data-quality report of its latest window."""
    env = demo_environment(data_dir)
    seed = seed_with_broadlog_rejects(datetime.now(UTC))
    argv = ["--headless", "--data-dir", str(data_dir), "--windows", str(WINDOWS)]
    argv += ["--seed", str(seed)]
    summary = _run(["-m", "rtcdp_dev.demo", *argv, "--rows-per-file", str(ROWS_PER_FILE)], env)
    assert "0 failed; " in summary, summary[-3000:]
    rows = summary_rows(summary)
    latest = max(pk for asset, pk in rows if asset == "broadlog")
    report = ["asset", "materialize", "-m", "rtcdp_assets.definitions"]
    _run(["-m", "dagster", *report, "--select", "data_quality_report", "--partition", latest], env)
    return rows


@contextmanager
def demo_ui(data_dir: Path, log_dir: Path) -> Iterator[DemoUi]:
    """The demo's data served by dagster-webserver on a free port; stopped on the way out."""
    rows = prepare_demo_data(data_dir)
    environment = demo_environment(data_dir)
    home = Path(environment.pop("DAGSTER_HOME"))
    with DagsterWebserver(home, log_dir, environment=environment) as server:
        yield DemoUi(data_dir=data_dir, base_url=server.url, rows=rows)
