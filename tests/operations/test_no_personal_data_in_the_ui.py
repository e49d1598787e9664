"""No personal value of the input reaches what a reviewer sees.

The demo's flows run into a temporary instance: sample Campaign exports of every dataset
(profiles, broadLog, trackingLog, non-deliverables, preferences, push subscriptions, with the
generator's malformed rows), the AEP audience export through `campaign_audience_import_published`
(`rtcdp_dev.demo --headless`), then `data_quality_report` for every window, as its schedule
does. Read back from the instance: every run's tags and config, every event of every run (log
message, metadata of materializations, observations, outputs and check evaluations, errors),
every asset event recorded outside a run; and each HTML report page in the warehouse. None of
them holds a personal value of the input (tests/operations/personal_values.py says which values
are searched for and how).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance

from rtcdp_dev.demo_audience import DEMO_AUDIENCE_ID
from rtcdp_dev.sample_data.pipeline import FLOWS
from tests.operations.personal_values import (
    MIN_CHARS,
    add_audience_input,
    campaign_input,
    instance_texts,
    leaks,
)

REPO = Path(__file__).resolve().parents[2]
# The demo, then the report of every window it processed: what the hourly schedule runs, in
# the same process so the definitions are loaded once.
DRIVER = """
import sys
from pathlib import Path

from rtcdp_dev import demo

data_dir = Path(sys.argv[1])
code = demo.main(["--headless", "--data-dir", str(data_dir), "--windows", "2",
                  "--rows-per-file", "300"])
if code:
    sys.exit(code)
from dagster import AssetKey, DagsterInstance

from rtcdp_assets.definitions import defs

instance = DagsterInstance.get()
job = defs.resolve_job_def("data_quality_report_job")
for pk in sorted(instance.get_materialized_partitions(AssetKey("broadlog"))):
    result = job.execute_in_process(
        partition_key=pk, instance=instance, run_config=demo.QUIET, raise_on_error=False
    )
    if not result.success:
        sys.exit(f"data_quality_report {pk} failed")
"""


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RTCDP_", "DAGSTER_"))}
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, str(data_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return data_dir


def test_no_personal_value_of_the_input_reaches_metadata_logs_tags_or_reports(demo_run):
    values = campaign_input(demo_run, {d: flow.fmt for d, flow in FLOWS.items()})
    add_audience_input(values, demo_run, DEMO_AUDIENCE_ID)
    searched = values.searched()
    # The search really covers the input: thousands of values, every kind of personal field,
    # and malformed lines shown in the report.
    assert len(searched) > 2000 and all(len(v) >= MIN_CHARS for v in searched)
    assert values.malformed_lines and set(values.malformed_lines) <= searched
    for sample in ("CUST-", "@", "APA91b"):
        assert any(sample in v for v in searched), sample

    with DagsterInstance.from_config(str(demo_run / "dagster_home")) as instance:
        texts = list(instance_texts(instance))
    pages = sorted((demo_run / "warehouse" / "data_quality_report").rglob("report.html"))
    assert len(pages) == 2
    texts += [(f"report {p.parent.name}", p.read_text(encoding="utf-8")) for p in pages]
    seen = "\n".join(t for _, t in texts)
    # The scan sees what a reviewer sees: previews, quarantined rows in the report, run tags.
    assert "profiles_xdm" in seen and "values (masked)" in seen and "•••" in seen
    assert "rtcdp/audience_id" in seen and "wrong_column_count" in seen

    found = leaks(texts, searched)
    assert not found, sorted({(where.split(":")[0], value) for where, value in found})[:40]
