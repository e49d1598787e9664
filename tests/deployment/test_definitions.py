"""The code location loads the way `dagster dev` loads it, with the asset names users rely on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_workspace_validates_with_the_dagster_cli(tmp_path):
    env = {**os.environ, "RTCDP_DATA_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Validation successful for code location rtcdp" in result.stderr + result.stdout


def test_pyproject_does_not_shadow_workspace_yaml():
    # dagster dev prefers [tool.dagster]/[tool.dg] in pyproject.toml over workspace.yaml
    text = (REPO / "pyproject.toml").read_text()
    assert "[tool.dagster]" not in text and "[tool.dg" not in text


def test_asset_names_jobs_sensors_and_checks(monkeypatch, tmp_path):
    monkeypatch.setenv("RTCDP_DATA_DIR", str(tmp_path))
    from rtcdp_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    names = {key.to_user_string() for key in graph.get_all_asset_keys()}
    for dataset in ("broadlog", "tracking_log", "non_deliverables", "preferences", "profiles"):
        assert {dataset, f"{dataset}_xdm", f"{dataset}_published"} <= names
        assert defs.resolve_job_def(f"{dataset}_job")
        assert defs.resolve_sensor_def(f"{dataset}_export_sensor")
    assert "suppression_list" in names
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert ("broadlog", "reconciliation") in checks
    assert ("broadlog_xdm", "xdm_conformance") in checks
    assert ("tracking_log", "orphan_tracking_rows") in checks
    assert ("profiles", "export_freshness") in checks
    # lineage: tracking logs react to deliveries
    assert graph.get(graph.get_all_asset_keys().__iter__().__next__()) is not None
    tracking = next(k for k in graph.get_all_asset_keys() if k.to_user_string() == "tracking_log")
    assert "broadlog" in {p.to_user_string() for p in graph.get(tracking).parent_keys}
