"""RTCDP_PARTITIONS_START: the first 4-hour window of every time-partitioned asset, read when
the definitions load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from resources.settings import DEFAULT_PARTITIONS_START, partitions_start
from rtcdp_assets.shared.partitions import four_hourly_partitions

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("value", "first"),
    [
        ("", DEFAULT_PARTITIONS_START),
        ("2026-11-20", "2026-11-20-00:00"),
        ("2026-11-20-08:00", "2026-11-20-08:00"),
        ("2026-11-20-10:30", "2026-11-20-08:00"),  # rounded down to its window
        (" 2026-11-20 ", "2026-11-20-00:00"),
    ],
)
def test_partitions_start_values(value, first):
    assert partitions_start({"RTCDP_PARTITIONS_START": value}) == first


@pytest.mark.parametrize("value", ["20261120", "2026-13-01", "yesterday", "2026-11-20T08:00"])
def test_a_wrong_partitions_start_stops_the_load_with_the_variable_named(value):
    with pytest.raises(ValueError, match="RTCDP_PARTITIONS_START"):
        partitions_start({"RTCDP_PARTITIONS_START": value})


def test_the_default_covers_every_window_the_tests_and_samples_use():
    keys = four_hourly_partitions.get_partition_keys()
    assert keys[0] == DEFAULT_PARTITIONS_START
    # The earliest windows of the tests and of the sample data (2026-11-20 … 2026-11-25).
    assert "2026-11-20-08:00" in keys and "2026-11-23-08:00" in keys


def test_the_code_location_loads_with_the_configured_start():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RTCDP_", "DAGSTER_"))}
    env["RTCDP_PARTITIONS_START"] = "2026-11-20"
    code = (
        "from rtcdp_assets.definitions import defs\n"
        "from dagster import AssetKey\n"
        "p = defs.resolve_assets_def(AssetKey('broadlog')).partitions_def\n"
        "print(p.get_first_partition_key())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "2026-11-20-00:00"
