"""Check executions of failed runs are not left PLANNED: a broadLog run that fails in its first
step (the warehouse folder is a plain file) planned its checks; `failed_run_checks_sensor`
records them as not executed in that run, over SQLite and over Postgres storage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from dagster import AssetCheckKey, DagsterInstance
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from resources import embedded_resources
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs
from rtcdp_assets.operations.failed_run_checks import NOT_EXECUTED, failed_run_checks_sensor
from tests.drop_files import drop_campaign_export
from tests.runs import campaign_assets_and_checks, evaluate_sensor, materialize_partition

PK = "2026-11-23-08:00"
HEADER = (
    "iBroadLogId,iDeliveryId,iRecipientId,sExternalId,sAddress,iStatus,iFailureType,"
    "iFailureReason,tsEvent,sDeliveryLabel\n"
)
ROW = "1,10,100,CUST-1,alice@example.com,1,0,0,2026-11-23 08:01:00,Newsletter\n"
BROADLOG = campaign_assets_and_checks(broadlog_defs)


def sqlite_instance(home: Path) -> DagsterInstance:
    home.mkdir()
    return DagsterInstance.from_config(str(home))  # no dagster.yaml: SQLite under home


def postgres_instance(home: Path, postgres) -> DagsterInstance:
    db = postgres.create_database("rtcdp_failed_run_checks")
    storage = {
        "hostname": postgres.host,
        "port": postgres.port,
        "username": postgres.superuser,
        "password": postgres.password,
        "db_name": db,
        "scheme": "postgresql+psycopg2",
    }
    home.mkdir()
    config = {"storage": {"postgres": {"postgres_db": storage}}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return DagsterInstance.from_config(str(home))


def statuses(instance: DagsterInstance, run_id: str) -> dict[str, str]:
    keys = [AssetCheckKey(spec.asset_key, spec.name) for spec in _check_specs()]
    found: dict[str, str] = {}
    for key in keys:
        for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=10):
            if record.run_id == run_id:
                found[f"{key.asset_key.to_user_string()}:{key.name}"] = record.status.value
    return found


def _check_specs():
    return [spec for checks in BROADLOG for spec in checks.check_specs]


def failed_run_leaves_no_planned_check(tmp_path: Path, instance: DagsterInstance) -> None:
    resources = embedded_resources(tmp_path / "zones")
    drop_campaign_export(tmp_path / "zones", "broadLog_20261123_0800.csv", HEADER + ROW)
    shutil.rmtree(tmp_path / "zones" / "warehouse")
    (tmp_path / "zones" / "warehouse").write_text("not a folder\n")
    result = materialize_partition(BROADLOG, resources, PK, instance)
    assert not result.success
    before = statuses(instance, result.run_id)
    planned = {k for k, v in before.items() if v == AssetCheckExecutionRecordStatus.PLANNED.value}
    assert len(planned) == len(before) == len(_check_specs()) > 0  # none ran: all PLANNED

    tick = evaluate_sensor(failed_run_checks_sensor, {}, instance)
    assert tick.skip_reason.skip_message.startswith(f"{len(planned)} planned check evaluations")
    after = statuses(instance, result.run_id)
    assert set(after) == planned
    assert set(after.values()) == {AssetCheckExecutionRecordStatus.FAILED.value}
    key = AssetCheckKey(_check_specs()[0].asset_key, _check_specs()[0].name)
    [record] = [
        r
        for r in instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
        if r.run_id == result.run_id
    ]
    evaluation = record.evaluation
    assert evaluation is not None and evaluation.description.startswith(NOT_EXECUTED)
    assert evaluation.partition == PK
    assert evaluation.severity.value == "WARN"

    # The next tick reads on from its cursor: nothing recorded twice.
    again = evaluate_sensor(failed_run_checks_sensor, {}, instance, tick.cursor)
    assert again.skip_reason.skip_message.startswith("0 planned check evaluations")
    assert statuses(instance, result.run_id) == after


def test_failed_run_checks_are_closed_on_sqlite(tmp_path):
    failed_run_leaves_no_planned_check(tmp_path, sqlite_instance(tmp_path / "home"))


@pytest.mark.integration
def test_failed_run_checks_are_closed_on_postgres(tmp_path, postgres):
    failed_run_leaves_no_planned_check(tmp_path, postgres_instance(tmp_path / "home", postgres))
