"""Failed work comes back for customer imports: a snapshot whose run failed (the warehouse
folder is a plain file) is requested again after the back-off under a new run key, and is
imported once the blocker is fixed; after N failures it is `failed`. The clock is injected."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pytest
from dagster import DagsterInstance, materialize

from resources import LocalDropZone, PipelineSettings, embedded_resources
from rtcdp_assets.customer_to_campaign import customer_imports
from rtcdp_assets.customer_to_campaign.customer_imports import customer_import_defs
from tests.drop_files import write_settled
from tests.runs import evaluate_sensor

HEADER = "external_id,email,first_name,last_name,mobile_phone,birth_date,country_code,city,zip_code"
SENSOR = customer_import_defs.sensors[0]


@pytest.fixture
def env(tmp_path):
    resources = embedded_resources(tmp_path)
    resources["settings"] = PipelineSettings(
        file_settle_seconds=5, failed_run_max_attempts=2, failed_run_retry_backoff_seconds=600
    )
    resources["customer_source"] = LocalDropZone(root=str(tmp_path / "customer_source"))
    write_settled(
        tmp_path / "customer_source" / "profiles" / "p.csv",
        HEADER + "\nC-1,a@example.com,,,,,,,\n",
        60,
    )
    shutil.rmtree(tmp_path / "warehouse")
    (tmp_path / "warehouse").write_text("not a folder\n")
    return tmp_path, resources, DagsterInstance.ephemeral()


def tick(monkeypatch, resources, instance, cursor, now: float):
    monkeypatch.setattr(customer_imports, "sensor_now", lambda: now)
    result = evaluate_sensor(SENSOR, resources, instance, cursor)
    return list(result.run_requests or []), result.cursor


def run(resources, instance, request):
    assets = [a for a in customer_import_defs.assets if a.key in request.asset_selection]
    return materialize(
        assets, resources=resources, instance=instance, tags=request.tags, raise_on_error=False
    )


def ledger(resources):
    return [r for r in resources["file_ledger"].rows() if r.version.name == "p.csv"]


def test_a_failed_customer_import_comes_back_and_succeeds_once_fixed(env, monkeypatch):
    root, resources, instance = env
    t0 = datetime.now(UTC).timestamp()
    (request,), cursor = tick(monkeypatch, resources, instance, None, t0)
    assert not run(resources, instance, request).success

    requests, cursor = tick(monkeypatch, resources, instance, cursor, t0 + 60)
    assert requests == []  # before: the same key again, which Dagster would never run
    [row] = ledger(resources)
    assert (row.status, row.attempts, row.version.name) == ("pending", 1, "p.csv")

    (root / "warehouse").unlink()
    (root / "warehouse").mkdir()
    (retry,), cursor = tick(monkeypatch, resources, instance, cursor, t0 + 700)
    assert retry.run_key.startswith(f"{request.run_key}#attempt2@")
    assert run(resources, instance, retry).success
    [row] = ledger(resources)
    assert (row.status, row.attempts) == ("processed", 1)


def test_a_customer_import_failing_n_times_is_failed(env, monkeypatch):
    _, resources, instance = env
    t0 = datetime.now(UTC).timestamp()
    (request,), cursor = tick(monkeypatch, resources, instance, None, t0)
    assert not run(resources, instance, request).success
    (retry,), cursor = tick(monkeypatch, resources, instance, cursor, t0 + 700)
    assert not run(resources, instance, retry).success
    requests, cursor = tick(monkeypatch, resources, instance, cursor, t0 + 86400)
    assert requests == []
    [row] = ledger(resources)
    assert (row.status, row.attempts) == ("failed", 2)
    assert row.reason.startswith("run_failed: 2 of 2 attempts failed, last: step profile_import")
