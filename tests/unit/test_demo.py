"""The README's headless demo: sample data in, a summary out, exit code 0 when all is well."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_headless_demo_processes_the_sample_partitions(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RTCDP_", "DAGSTER_"))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtcdp_assets.demo",
            "--headless",
            "--data-dir",
            str(tmp_path),
            "--windows",
            "2",
            "--rows-per-file",
            "300",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "0 failed; " in out and " checks passed, 0 failed" in out
    for dataset in ("broadlog", "broadlog_xdm", "broadlog_published"):
        assert sum(line.startswith(f"{dataset} ") for line in out.splitlines()) == 2
    published = list((tmp_path / "aep_landing").rglob("*.json"))
    assert any(p.name.startswith("broadlog_") for p in published)
    # a second run finds nothing new: every file version runs exactly once
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtcdp_assets.demo",
            "--headless",
            "--data-dir",
            str(tmp_path),
            "--windows",
            "2",
            "--rows-per-file",
            "300",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0
    assert "no runs were requested" in again.stdout
