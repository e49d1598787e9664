"""The README's headless demo: sample data in, a summary out, exit code 0 when all is well."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.results import landing_files

REPO = Path(__file__).resolve().parents[2]
RAW_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{2,}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
RAW_PHONE = re.compile(r"\+\d{8,15}|\b0\d{9}\b")


def assert_no_personal_data_in_the_instance(dagster_home: Path) -> None:
    """Every materialization and check result of the sample run, as the UI shows them: no raw
    email address or phone number anywhere in their metadata."""
    from dagster import DagsterEventType, DagsterInstance

    kinds = {DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_CHECK_EVALUATION}
    scanned = 0
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for run in instance.get_runs():
            for event in instance.all_logs(run.run_id):
                dagster_event = event.dagster_event
                if dagster_event is None or dagster_event.event_type not in kinds:
                    continue
                data = dagster_event.event_specific_data
                meta = getattr(data, "materialization", data).metadata
                text = json.dumps({k: str(v.value) for k, v in meta.items()})
                assert not RAW_EMAIL.search(text), (run.job_name, RAW_EMAIL.search(text)[0])
                assert not RAW_PHONE.search(text), (run.job_name, RAW_PHONE.search(text)[0])
                scanned += 1
    assert scanned > 100  # the scan really saw the sample run


def run_demo(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """The README's headless command, in a clean environment, on a small sample."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RTCDP_", "DAGSTER_"))}
    argv = ["--headless", "--data-dir", str(data_dir), "--windows", "2", "--rows-per-file", "300"]
    return subprocess.run(
        [sys.executable, "-m", "rtcdp_dev.demo", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_headless_demo_processes_the_sample_partitions(tmp_path):
    result = run_demo(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert_no_personal_data_in_the_instance(tmp_path / "dagster_home")
    out = result.stdout
    assert "0 failed; " in out and " checks passed, 0 failed" in out
    for dataset in ("broadlog", "broadlog_xdm", "broadlog_published"):
        assert sum(line.startswith(f"{dataset} ") for line in out.splitlines()) == 2
    published = landing_files(tmp_path)
    assert any(p.name.startswith("broadlog_") and p.suffix == ".parquet" for p in published)
    # The sample logs are mixed-channel, and the summary shows the split per XDM partition.
    splits = [line for line in out.splitlines() if line.startswith("  by channel: ")]
    assert len(splits) == 4, out  # broadlog_xdm and tracking_log_xdm, two windows each
    assert all("email" in s and "sms" in s and "push_ios" in s for s in splits), splits

    # The AEP → Campaign audience path ran on an export drawn from the demo's own profiles.
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    for asset in (
        "segment_exports",
        "audience_membership",
        "campaign_audience_import",
        "campaign_audience_import_published",
        "file_ledger",  # every file version of the run and its fate, checked
        "loyalty_members_published",  # the sample loyalty export, offline data to AEP
    ):
        assert asset in lines, out
    (import_file,) = (tmp_path / "campaign_sftp" / "import").glob("aep_audience_*.csv")
    marker = json.loads(import_file.with_name(import_file.name + ".done").read_text())
    data_rows = len(import_file.read_bytes().splitlines()) - 1  # minus the header
    assert 0 < data_rows == marker["rows"]
    # The summary shows the import file's row count, and the export had more rows than that
    # (people Campaign does not know, rows without the join identity, exited members).
    assert int(lines["campaign_audience_import_published"][2]) == data_rows
    assert int(lines["segment_exports"][2]) > data_rows
    (export,) = (tmp_path / "aep_destination").glob("*.csv")
    assert export.name.split("_")[2] == marker["audience_id"]
    assert list((tmp_path / "aep_destination").glob("manifest-*.json"))
    # a second run finds nothing new: every file version runs exactly once
    again = run_demo(tmp_path)
    assert again.returncode == 0
    assert "no runs were requested" in again.stdout
    # ... and the demo's audience export is not written a second time.
    assert len(list((tmp_path / "aep_destination").glob("*.csv"))) == 1


def test_headless_demo_takes_the_audience_export_from_s3(tmp_path):
    """`--audience-zone s3` without an endpoint: the demo runs moto's S3 server itself, the
    export arrives in the bucket, the import file lands on the (local) SFTP stand-in, and the
    server is gone afterwards."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RTCDP_", "DAGSTER_", "AWS_"))}
    env.pop("AEP_DESTINATION_ZONE", None)
    argv = ["--headless", "--audience-zone", "s3", "--data-dir", str(tmp_path), "--windows", "1"]
    result = subprocess.run(
        [sys.executable, "-m", "rtcdp_dev.demo", *argv, "--rows-per-file", "200"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    (where,) = re.findall(
        r"arrive in s3 bucket rtcdp-aep-destination at (http://127\.0\.0\.1:\d+)", out
    )
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    (import_file,) = (tmp_path / "campaign_sftp" / "import").glob("aep_audience_*.csv")
    marker = json.loads(import_file.with_name(import_file.name + ".done").read_text())
    assert int(lines["campaign_audience_import_published"][2]) == marker["rows"] > 0
    assert int(lines["segment_exports"][2]) > marker["rows"]
    # The export went to the bucket, not to the local stand-in folder.
    assert not list((tmp_path / "aep_destination").iterdir())
    # The demo stopped the server it started.
    host, port = where.removeprefix("http://").split(":")
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=2):
        pass


def test_the_summary_lists_warnings_apart_and_only_errors_fail_the_demo(capsys):
    """A check failing with WARN severity (a partition of the sample over 1 % rejects) is shown
    as a warning and keeps the exit code at 0; an ERROR check or a failed run does not."""
    from dagster import AssetCheckSeverity

    from rtcdp_dev.demo import RunSummary, exit_code, print_summary

    warned = RunSummary(partition="2026-11-23-08:00", job="broadlog_job", success=True)
    warned.rows["broadlog"] = 300
    warned.add_check("broadlog:reconciliation", True, AssetCheckSeverity.ERROR)
    warned.add_check("broadlog:reject_rate", False, AssetCheckSeverity.WARN)
    print_summary([warned])
    out = capsys.readouterr().out
    assert "broadlog:reject_rate" in out and "WARN severity" in out
    assert "1 checks passed, 0 failed, 1 warned (WARN severity)" in out
    assert exit_code([warned]) == 0

    blocked = RunSummary(partition="2026-11-23-08:00", job="broadlog_job", success=False)
    blocked.add_check("broadlog:reject_rate", False, AssetCheckSeverity.ERROR)
    assert exit_code([warned, blocked]) == 1


def test_the_demo_partitions_start_a_few_days_before_its_sample_data(tmp_path):
    from datetime import UTC, datetime

    from rtcdp_dev.demo import demo_partitions_start, sample_window_range

    now = datetime(2026, 11, 23, 19, 46, tzinfo=UTC)
    assert sample_window_range(now, 6)[0] == datetime(2026, 11, 22, 16, tzinfo=UTC)
    assert demo_partitions_start(tmp_path, 6, now) == "2026-11-19-16:00"
    # Kept with the data: a later demo on the same data dir agrees, whatever the clock says.
    later = datetime(2026, 11, 30, tzinfo=UTC)
    assert demo_partitions_start(tmp_path, 6, later) == "2026-11-19-16:00"
