"""Offline files are first-class in the file ledger: `offline_data_sensor` records each complete
version, the run marks it processed; a failed run (the AEP landing zone or the warehouse is a
plain file) leaves it pending, the sensor requests the day again after the back-off under a new
run key, and after `failed_run_max_attempts` failures it is `failed`, flagged by
`no_failed_versions` and listed and retried by `rtcdp-ledger`. The clock is injected."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from asset_checks.customer_to_aep.offline_checks import offline_checks
from asset_checks.operations.ledger_checks import failed_versions_result
from resources import embedded_resources
from rtcdp_assets.customer_to_aep import offline_sensor
from rtcdp_assets.customer_to_aep.offline_assets import build_offline_defs, offline_datasets
from rtcdp_assets.operations import ledger_cli
from tests.customer_to_aep.test_offline_orders import DAY, FOLDER, LANDING, SHOP_CSV, pos_parquet
from tests.drop_files import write_settled
from tests.results import check_evaluations_by_name, materialization, read_published
from tests.runs import evaluate_sensor

NAME = "orders_20261123.csv"
(DATASET,) = [d for d in offline_datasets() if d.dataset == "offline_orders"]
DEFS = build_offline_defs([DATASET])
SENSOR = DEFS.sensors[0]


@pytest.fixture
def env(tmp_path: Path):
    resources = embedded_resources(
        tmp_path, failed_run_max_attempts=2, failed_run_retry_backoff_seconds=600
    )
    # A shop's export as it is downloaded (BOM, CRLF), uploaded a minute ago.
    write_settled(tmp_path / "customer_source" / FOLDER / NAME, SHOP_CSV, 60)
    return tmp_path, resources, DagsterInstance.ephemeral()


def break_zone(root: Path, zone: str) -> None:
    shutil.rmtree(root / zone, ignore_errors=True)
    (root / zone).write_text("not a folder\n")


def fix_zone(root: Path, zone: str) -> None:
    (root / zone).unlink()
    (root / zone).mkdir()


def tick(monkeypatch, resources, instance, cursor, now: datetime):
    monkeypatch.setattr(offline_sensor, "sensor_now", lambda: now)
    result = evaluate_sensor(SENSOR, resources, instance, cursor)
    return list(result.run_requests or []), result.cursor


def run(resources, instance, request=None):
    """The job's assets and blocking checks for the day, with the request's tags (none: a
    hand-launched re-run)."""
    return materialize(
        [*DEFS.assets, *offline_checks(DATASET)],
        partition_key=DAY,
        resources=resources,
        instance=instance,
        tags=request.tags if request is not None else None,
        raise_on_error=False,
    )


def ledger_row(resources):
    [row] = [r for r in resources["file_ledger"].rows() if r.version.name == NAME]
    return row


def test_a_failed_publication_comes_back_after_the_back_off_and_is_processed(env, monkeypatch):
    root, resources, instance = env
    break_zone(root, "aep_landing")
    t0 = datetime.now(UTC)
    (request,), cursor = tick(monkeypatch, resources, instance, None, t0)
    assert request.run_key.startswith(f"offline_orders:{DAY}:")
    row = ledger_row(resources)
    assert (row.status, row.dataset, row.version.folder) == ("pending", "offline_orders", FOLDER)
    assert row.version.zone == resources["customer_source"].describe()
    # The day was ingested and archived before publication failed.
    assert not run(resources, instance, request).success

    requests, cursor = tick(monkeypatch, resources, instance, cursor, t0 + timedelta(seconds=60))
    assert requests == []  # before: the same run key for ever, which Dagster never runs again
    row = ledger_row(resources)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.reason.startswith("run_failed: attempt 1 of 2 failed: step offline_orders_published")
    # The back-off runs from the failure (the run's own clock, just after t0).
    assert t0 + timedelta(seconds=600) <= row.retry_after < t0 + timedelta(seconds=700)

    fix_zone(root, "aep_landing")
    later = t0 + timedelta(seconds=700)
    (retry,), cursor = tick(monkeypatch, resources, instance, cursor, later)
    assert retry.run_key.startswith(f"{request.run_key}#attempt2@")
    assert retry.tags["rtcdp/offline_versions"] == request.tags["rtcdp/offline_versions"]
    result = run(resources, instance, retry)
    assert result.success
    row = ledger_row(resources)
    assert (row.status, row.attempts, row.partition) == ("processed", 1, DAY)
    assert (row.run_id, row.in_folder, row.rows) == (result.run_id, False, 9)
    assert row.location == f"{FOLDER}/archive/{DAY}/{NAME}"
    requests, _ = tick(monkeypatch, resources, instance, cursor, later + timedelta(days=1))
    assert requests == []

    # A re-run of the processed day gives the same published file and leaves the ledger.
    landed = (root / LANDING).read_bytes()
    again = run(resources, instance)
    assert again.success
    assert materialization(again, "offline_orders_published").metadata["already_published"].value
    assert (root / LANDING).read_bytes() == landed
    assert ledger_row(resources).run_id == result.run_id


def test_a_day_failing_n_times_is_failed_listed_and_retried_by_an_operator(
    env, monkeypatch, capsys
):
    root, resources, instance = env
    break_zone(root, "warehouse")
    t0 = datetime.now(UTC)
    (request,), cursor = tick(monkeypatch, resources, instance, None, t0)
    assert not run(resources, instance, request).success
    (retry,), cursor = tick(monkeypatch, resources, instance, cursor, t0 + timedelta(seconds=700))
    assert retry.run_key != request.run_key
    assert not run(resources, instance, retry).success

    next_day = t0 + timedelta(days=1)
    requests, cursor = tick(monkeypatch, resources, instance, cursor, next_day)
    assert requests == []
    row = ledger_row(resources)
    assert (row.status, row.attempts, row.in_folder) == ("failed", 2, True)
    assert row.reason.startswith("run_failed: 2 of 2 attempts failed, last: step offline_orders_")
    # The check that flags failed Campaign export versions flags this one too.
    check = failed_versions_result(resources["file_ledger"].rows(), resources["settings"])
    assert not check.passed
    assert check.metadata["failed"].value == [f"offline_orders: {row.version} ({row.reason})"]

    url = ["--ledger-url", resources["file_ledger"].url]
    assert ledger_cli.main([*url, "failed"]) == 0
    listed = capsys.readouterr().out
    assert f"failed offline_orders {FOLDER}/{NAME}@" in listed
    assert "1 failed file versions" in listed

    fix_zone(root, "warehouse")
    assert ledger_cli.main([*url, "retry", str(row.version)], now=next_day) == 0
    (again,), cursor = tick(monkeypatch, resources, instance, cursor, next_day)
    assert again.run_key.startswith(f"{request.run_key}#attempt1@")
    assert run(resources, instance, again).success
    assert ledger_row(resources).status == "processed"


def test_a_day_held_by_an_unreadable_file_stays_held_on_retries_until_it_is_replaced(
    env, monkeypatch
):
    root, resources, instance = env
    folder = root / "customer_source" / FOLDER
    # The point-of-sale extract cut off mid-upload: Parquet's magic, not its footer.
    broken = "orders_20261123_pos.parquet"
    write_settled(folder / broken, pos_parquet()[:200], 60)
    t0 = datetime.now(UTC)
    (request,), cursor = tick(monkeypatch, resources, instance, None, t0)
    first = run(resources, instance, request)
    assert not first.success
    assert not check_evaluations_by_name(first)["reconciliation"].passed
    [held] = [p.name for p in (folder / "quarantine").iterdir() if p.suffix != ".json"]
    assert held.startswith(f"{broken}@")

    # The retry re-reads the day's archive, where the unreadable file is not: still held.
    requests, cursor = tick(monkeypatch, resources, instance, cursor, t0 + timedelta(seconds=60))
    assert requests == []
    (retry,), cursor = tick(monkeypatch, resources, instance, cursor, t0 + timedelta(seconds=700))
    second = run(resources, instance, retry)
    assert not second.success
    check = check_evaluations_by_name(second)["reconciliation"]
    assert not check.passed
    assert check.metadata["files_quarantined"].value == [f"{broken}: bad_parquet"]
    assert check.metadata["rows_in"].value == 9
    assert not (root / LANDING).parent.exists()
    # A hand-launched re-run too.
    assert not check_evaluations_by_name(run(resources, instance))["reconciliation"].passed
    assert not (root / LANDING).parent.exists()

    next_day = t0 + timedelta(days=1)
    requests, cursor = tick(monkeypatch, resources, instance, cursor, next_day)
    assert requests == []
    row = ledger_row(resources)
    assert (row.status, row.attempts) == ("failed", 2)
    assert row.reason.startswith("run_failed: 2 of 2 attempts failed, last: step offline_orders_")
    check = failed_versions_result(resources["file_ledger"].rows(), resources["settings"])
    assert check.metadata["failed"].value == [f"offline_orders: {row.version} ({row.reason})"]

    # The operator uploads the corrected extract under the same name: that run publishes the day.
    write_settled(folder / broken, pos_parquet(), 30)
    (fixed,), cursor = tick(monkeypatch, resources, instance, cursor, next_day)
    assert fixed.tags["rtcdp/offline_file"] == broken
    result = run(resources, instance, fixed)
    assert result.success
    checks = check_evaluations_by_name(result)
    assert checks["reconciliation"].passed
    assert checks["reconciliation"].metadata["rows_in"].value == 12
    published = read_published(root, LANDING)
    assert published is not None
    assert sorted(r["commerce"]["order"]["purchaseID"] for r in published) == [
        "#1001",
        "#1002",
        "#2001",
        "#2002",
    ]
    # Nothing deleted: the unreadable version stays in quarantine with its reason.
    assert sorted(p.name for p in (folder / "quarantine").iterdir()) == [
        held,
        f"{held}.reason.json",
    ]
    by_status = sorted((r.version.name, r.status) for r in resources["file_ledger"].rows())
    assert by_status == [
        (NAME, "processed"),
        (broken, "processed"),
        (broken, "quarantined"),
    ]
    requests, _ = tick(monkeypatch, resources, instance, cursor, next_day + timedelta(hours=1))
    assert requests == []
