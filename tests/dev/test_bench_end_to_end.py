"""bench/bench_end_to_end.py at a tiny size: its harness really runs what users run (the
sensor's request, every asset and check, the published file). No timings are asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_broadlog_and_audience_runs_publish_with_every_check_passed(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_end_to_end.py"),
            "--flow",
            "broadlog",
            "--broadlog-rows",
            "500",
            "--flow",
            "audience",
            "--members",
            "300",
            "--profiles",
            "2000",
            "--launch-repeat",
            "0",
            "--no-match",
            "--dir",
            str(tmp_path),
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    by_flow = {r["flow"]: r for r in figures["results"]}
    assert set(by_flow) == {"broadlog", "audience"}

    broadlog = by_flow["broadlog"]["rounds"][0]
    assert broadlog["baseline"]["rows"] == 500
    run = broadlog["run"]
    assert run["requests"] == 1
    (job_run,) = run["runs"]
    assert job_run["job"] == "broadlog_job" and job_run["success"]
    assert job_run["checks_failed"] == []
    assert {"reconciliation", "xdm_conformance", "record_size"} <= set(job_run["checks_passed"])
    steps = [s["step"] for s in job_run["steps"]]
    assert steps[0] == "broadlog_ingest" and "broadlog_published" in steps
    assert all(s["ok"] for s in job_run["steps"])
    assert any(p.startswith("aep_landing/campaign/broadlog/") for p in run["published"])
    assert run["published_after_seconds"] is not None

    audience = by_flow["audience"]["rounds"][0]
    assert audience["baseline"]["rows"] == 300
    (audience_run,) = audience["run"]["runs"]
    assert audience_run["job"] == "audience_import_job" and audience_run["success"]
    assert audience_run["checks_failed"] == [] and audience_run["checks_passed"]
    assert "campaign_audience_import_published" in [s["step"] for s in audience_run["steps"]]
    published = audience["run"]["published"]
    assert any(p.startswith("campaign_sftp/import/") and p.endswith(".csv") for p in published)
    assert all(s["ok"] for s in figures["summaries"])
