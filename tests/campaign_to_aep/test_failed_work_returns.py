"""Failed work comes back: a broadLog export whose run failed is requested again after the
back-off under a new run key, and is `failed` (with its reason, flagged) after N failed runs.

The blocker is real: the warehouse folder is a plain file (a volume not mounted), so the run
cannot store the partition. The sensor's clock is injected; the runs fail at the wall clock,
so every tick time is taken relative to the start with margins of minutes.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import DagsterInstance, materialize

from asset_checks.operations.ledger_checks import build_file_ledger_checks
from resources import embedded_resources
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_flow
from rtcdp_assets.operations import ledger_cli
from rtcdp_assets.operations.ledger_snapshot import file_ledger_asset
from tests.campaign_to_aep.completion_steps import run_request, tick_at
from tests.drop_files import drop_campaign_export
from tests.results import check_evaluations_by_name

NAME = "broadLog_20261123_0800.csv"
HEADER = (
    "iBroadLogId,iDeliveryId,iRecipientId,sExternalId,sAddress,iStatus,iFailureType,"
    "iFailureReason,tsEvent,sDeliveryLabel\n"
)
ROWS = "1,10,100,CUST-1,alice@example.com,1,0,0,2026-11-23 08:01:00,Newsletter\n"
BACKOFF = 600.0


def env(tmp_path: Path) -> tuple[dict, DagsterInstance]:
    resources = embedded_resources(
        tmp_path, failed_run_max_attempts=3, failed_run_retry_backoff_seconds=BACKOFF
    )
    drop_campaign_export(tmp_path, NAME, HEADER + ROWS)
    return resources, DagsterInstance.ephemeral()


def break_warehouse(root: Path) -> None:
    shutil.rmtree(root / "warehouse")
    (root / "warehouse").write_text("not a folder: the volume is not mounted\n")


def fix_warehouse(root: Path) -> None:
    (root / "warehouse").unlink()
    (root / "warehouse").mkdir()


def row(resources: dict):
    [only] = [r for r in resources["file_ledger"].rows() if r.version.name == NAME]
    return only


def test_a_failed_export_is_retried_after_the_backoff_then_failed(tmp_path, monkeypatch):
    resources, instance = env(tmp_path)
    break_warehouse(tmp_path)
    t0 = datetime.now(UTC)

    requests, cursor, _ = tick_at(monkeypatch, resources, instance, None, t0)
    assert len(requests) == 1
    first_key = requests[0].run_key
    assert not run_request(resources, instance, requests[0]).success

    # Before the back-off: nothing is asked again; the ledger says why and until when.
    requests, cursor, skip = tick_at(
        monkeypatch, resources, instance, cursor, t0 + timedelta(0, 60)
    )
    assert requests == []
    assert "requested again at" in skip
    failed_once = row(resources)
    assert (failed_once.status, failed_once.attempts) == ("pending", 1)
    assert failed_once.reason.startswith("run_failed: attempt 1 of 3 failed: step broadlog")
    assert failed_once.retry_after is not None
    assert failed_once.retry_after - t0 >= timedelta(seconds=BACKOFF)
    requests, cursor, _ = tick_at(monkeypatch, resources, instance, cursor, t0 + timedelta(0, 300))
    assert requests == []

    # After the back-off: one request, a new run key; then once only.
    requests, cursor, _ = tick_at(monkeypatch, resources, instance, cursor, t0 + timedelta(0, 700))
    assert len(requests) == 1
    second_key = requests[0].run_key
    assert second_key.startswith(f"{first_key}#attempt2@")
    again, cursor, _ = tick_at(monkeypatch, resources, instance, cursor, t0 + timedelta(0, 710))
    assert again == []
    assert not run_request(resources, instance, requests[0]).success

    # The second back-off is doubled (1,200 s after the second failure).
    requests, cursor, _ = tick_at(monkeypatch, resources, instance, cursor, t0 + timedelta(0, 900))
    assert requests == [] and row(resources).attempts == 2
    requests, cursor, _ = tick_at(monkeypatch, resources, instance, cursor, t0 + timedelta(0, 1400))
    assert len(requests) == 1 and requests[0].run_key.startswith(f"{first_key}#attempt3@")
    assert len({first_key, second_key, requests[0].run_key}) == 3
    assert not run_request(resources, instance, requests[0]).success

    # Third failure of three: failed, with its reason, never requested again by the sensor.
    requests, cursor, skip = tick_at(monkeypatch, resources, instance, cursor, t0 + timedelta(1))
    assert requests == []
    failed = row(resources)
    assert (failed.status, failed.attempts, failed.retry_after) == ("failed", 3, None)
    assert failed.reason.startswith("run_failed: 3 of 3 attempts failed, last: step broadlog")
    assert "NotADirectoryError" in failed.reason or "Errno" in failed.reason
    assert f"{NAME} is already failed" in skip
    assert len(instance.get_run_records()) == 3

    fix_warehouse(tmp_path)  # fixed too late: the version stays failed until an operator acts
    result = materialize(
        [file_ledger_asset, build_file_ledger_checks([broadlog_flow])],
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    flagged = check_evaluations_by_name(result)["no_failed_versions"]
    assert not flagged.passed
    assert flagged.metadata["failed_count"].value == 1
    [line] = flagged.metadata["failed"].value
    assert line.startswith(f"broadlog: export/{NAME}@") and "3 of 3 attempts failed" in line


def test_fixing_the_blocker_before_the_last_attempt_processes_the_export(tmp_path, monkeypatch):
    resources, instance = env(tmp_path)
    break_warehouse(tmp_path)
    t0 = datetime.now(UTC)
    requests, cursor, _ = tick_at(monkeypatch, resources, instance, None, t0)
    assert not run_request(resources, instance, requests[0]).success

    fix_warehouse(tmp_path)
    requests, cursor, _ = tick_at(monkeypatch, resources, instance, cursor, t0 + timedelta(0, 60))
    assert requests == []  # fixed, but the back-off still runs: no hammering
    requests, cursor, _ = tick_at(monkeypatch, resources, instance, cursor, t0 + timedelta(0, 700))
    assert len(requests) == 1
    assert run_request(resources, instance, requests[0]).success

    processed = row(resources)
    assert (processed.status, processed.attempts, processed.retry_after) == ("processed", 1, None)
    requests, _, _ = tick_at(monkeypatch, resources, instance, cursor, t0 + timedelta(1))
    assert requests == []
    result = materialize(
        [file_ledger_asset, build_file_ledger_checks([broadlog_flow])],
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    assert check_evaluations_by_name(result)["no_failed_versions"].passed


def test_the_operator_command_lists_and_re_requests_a_failed_version(tmp_path, monkeypatch, capsys):
    resources, instance = env(tmp_path)
    url = ["--ledger-url", resources["file_ledger"].url]
    break_warehouse(tmp_path)
    t0 = datetime.now(UTC)
    requests, cursor, _ = tick_at(monkeypatch, resources, instance, None, t0)
    first_key = requests[0].run_key
    assert not run_request(resources, instance, requests[0]).success
    for offset in (700, 1400):  # the 2nd and 3rd runs, each after its back-off
        now = t0 + timedelta(0, offset)
        requests, cursor, _ = tick_at(monkeypatch, resources, instance, cursor, now)
        assert not run_request(resources, instance, requests[0]).success
    requests, cursor, _ = tick_at(monkeypatch, resources, instance, cursor, t0 + timedelta(1))
    assert requests == [] and row(resources).status == "failed"

    capsys.readouterr()
    assert ledger_cli.main([*url, "pending"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 pending file versions"
    assert ledger_cli.main([*url, "failed"]) == 0
    listed, total = capsys.readouterr().out.splitlines()
    version = f"export/{NAME}@{row(resources).version.identity}"
    assert listed.startswith(f"failed broadlog {version} attempts=3 since=")
    assert "reason=run_failed: 3 of 3 attempts failed" in listed
    assert "alice" not in listed and total == "1 failed file versions"

    assert ledger_cli.main([*url, "retry", "export/nothing.csv@1"]) == 1
    fix_warehouse(tmp_path)
    at = t0 + timedelta(days=1, hours=1)
    assert ledger_cli.main([*url, "retry", version], now=at) == 0
    revived = row(resources)
    assert (revived.status, revived.attempts, revived.retry_after) == ("pending", 0, at)
    assert ledger_cli.main([*url, "pending"]) == 0
    assert "attempts=0 retry_at=" in capsys.readouterr().out

    # The next tick requests it under a new key; the run succeeds; nothing more is asked.
    requests, cursor, _ = tick_at(monkeypatch, resources, instance, cursor, at)
    assert len(requests) == 1
    assert requests[0].run_key.startswith(f"{first_key}#attempt1@")
    assert run_request(resources, instance, requests[0]).success
    assert row(resources).status == "processed"
    requests, _, _ = tick_at(monkeypatch, resources, instance, cursor, at + timedelta(1))
    assert requests == []
