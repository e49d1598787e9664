"""The sample flow on a production-style Dagster instance: PostgreSQL storage, the queued run
coordinator and the `campaign_sftp` pool from deploy/kubernetes/dagster.yaml, with the embedded
zones.

Only the run launcher differs from production (Kubernetes Jobs need a cluster): runs execute
synchronously in this process. Everything the daemon would do is driven through Dagster's own
daemon iterations, in-process: the sensor daemon evaluates the export sensors and submits their
run requests to the queue, the run-queue daemon launches them within the concurrency limits,
and the backfill daemon turns partition backfills into runs. That is the production code path
without a daemon process, a gRPC server or a webserver to start, wait for and clean up, and
every step is deterministic (no polling of a background loop).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    BACKFILL_ID_TAG,
    PARTITION_NAME_TAG,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.utils import make_new_backfill_id
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster._daemon.daemon import get_default_daemon_logger
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)
from dagster._daemon.sensor import execute_sensor_iteration

from asset_checks.campaign_to_aep.dataset_checks import campaign_export_checks
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs
from rtcdp_assets.definitions import CAMPAIGN_EXPORTS
from rtcdp_dev.sample_data import write_dataset_files

pytestmark = [
    pytest.mark.integration,
    # raised inside Dagster's daemon code (schedule snapshots, backfill selection), not ours
    pytest.mark.filterwarnings("ignore:.*will be removed in 2.0:DeprecationWarning"),
]

REPO = Path(__file__).resolve().parents[2]
PRODUCTION_INSTANCE = REPO / "deploy" / "kubernetes" / "dagster.yaml"
SYNC_LAUNCHER = {
    "module": "dagster._core.launcher.sync_in_memory_run_launcher",
    "class": "SyncInMemoryRunLauncher",
}
BROADLOG_FLOW = [AssetKey("broadlog"), AssetKey("broadlog_xdm"), AssetKey("broadlog_published")]
WINDOWS = 12  # the sample covers two days of 4-hour windows
EXPORTED = 3  # of which Campaign has exported the last three so far


def production_storage_instance(home: Path) -> DagsterInstance:
    """deploy/kubernetes/dagster.yaml as it is, except the run launcher (and the run monitoring
    that watches Kubernetes pods)."""
    config = yaml.safe_load(PRODUCTION_INSTANCE.read_text())
    config["run_launcher"] = SYNC_LAUNCHER
    config.pop("run_monitoring")
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return DagsterInstance.from_config(str(home))


def workspace(instance: DagsterInstance) -> WorkspaceProcessContext:
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable,
            module_name="tests.deployment.postgres_location",
            attribute="defs",
            working_directory=str(REPO),
        ),
        location_name="rtcdp",
    )
    return WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin))


def launch_queued_runs(context: WorkspaceProcessContext) -> None:
    """What the run-queue daemon does each interval; the sync launcher finishes each run
    before the next is dequeued."""
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    queued = RunsFilter(statuses=[DagsterRunStatus.QUEUED])
    for _ in range(50):
        if not context.instance.get_runs_count(queued):
            return
        list(daemon.run_iteration(context))
    raise AssertionError(f"runs stay queued: {context.instance.get_run_ids(queued)}")


def run_backfill(context: WorkspaceProcessContext, keys: list[str], assets: list[AssetKey]) -> str:
    """Submit an asset backfill the way the UI does and let the backfill daemon and the run
    queue work until it is done."""
    instance = context.instance
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=context.create_request_context().asset_graph,
        partition_names=keys,
        asset_selection=assets,
        backfill_timestamp=time.time(),
        tags={},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=None,
        description=None,
        run_config=None,
    )
    instance.add_backfill(backfill)
    logger = get_default_daemon_logger("BackfillDaemon")
    for _ in range(10):
        list(execute_backfill_iteration(context, logger))
        launch_queued_runs(context)
        status = instance.get_backfill(backfill.backfill_id).status
        if status != BulkActionStatus.REQUESTED:
            break
    assert status == BulkActionStatus.COMPLETED_SUCCESS, status
    return backfill.backfill_id


def write_exports(campaign_sftp: Path, windows: list[datetime], now: datetime) -> list[str]:
    written = []
    for start in windows:
        files = write_dataset_files(
            "broadlog",
            campaign_sftp,
            start=start,
            end=start + timedelta(hours=4),
            rows_per_file=40,
            seed=7,
            # No deliberate defects: one reject in 40 rows would make reject_rate warn, and
            # this test is about the instance's storage, where every check must succeed.
            defect_rate=0,
            now=now,
        )
        written += [f.name for f in files]
    # Written "a minute ago", so the sensor does not take them for files still being written.
    past = now.timestamp() - 60
    for path in campaign_sftp.rglob("*"):
        os.utime(path, (past, past))
    return written


def sql(postgres, db: str, query: str) -> list[tuple]:
    conn = postgres.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall()
    finally:
        conn.close()


def test_sample_flow_sensors_runs_checks_and_backfills_on_postgres(postgres, tmp_path, monkeypatch):
    db = postgres.create_database("rtcdp_sample_flow")
    # The production instance reads its credentials from these, as in the Kubernetes pods.
    for name, value in {
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USERNAME": postgres.superuser,
        "DAGSTER_PG_PASSWORD": postgres.password,
        "DAGSTER_PG_DB": db,
        "RTCDP_ENV": "embedded",
        "RTCDP_DATA_DIR": str(tmp_path / "data"),
        "RTCDP_LEDGER_URL": (
            f"postgresql+psycopg2://{postgres.superuser}:{postgres.password}"
            f"@{postgres.host}:{postgres.port}/{db}"
        ),
    }.items():
        monkeypatch.setenv(name, value)
    data = tmp_path / "data"

    now = datetime.now(UTC)
    # the last closed window, as in the demo: nothing in the sample lies in the future
    last = now.replace(minute=0, second=0, microsecond=0, hour=now.hour - now.hour % 4)
    last -= timedelta(hours=4)
    windows = [last - timedelta(hours=4 * i) for i in reversed(range(WINDOWS))]
    keys = [w.strftime("%Y-%m-%d-%H:%M") for w in windows]
    exported = write_exports(data / "campaign_sftp", windows[-EXPORTED:], now)
    assert len(exported) == EXPORTED

    with (
        production_storage_instance(tmp_path / "dagster_home") as instance,
        workspace(instance) as context,
    ):
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

        # -- sensors: one tick of every sensor, as the sensor daemon does -------------------
        list(
            execute_sensor_iteration(context, get_default_daemon_logger("SensorDaemon"), None, None)
        )
        queued = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.QUEUED]))
        assert sorted(r.tags[PARTITION_NAME_TAG] for r in queued) == keys[-EXPORTED:]
        assert {r.job_name for r in queued} == {"broadlog_job"}
        sensor = (
            context.create_request_context()
            .get_code_location("rtcdp")
            .get_repositories()["__repository__"]
            .get_sensor("broadlog_export_sensor")
        )
        ticks = instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id)
        assert sum(len(t.run_ids) for t in ticks) == EXPORTED

        # -- runs: the queue launches them; every check result lands in Postgres ------------
        launch_queued_runs(context)
        sensor_runs = instance.get_runs(RunsFilter(job_name="broadlog_job"))
        assert [r.status for r in sensor_runs] == [DagsterRunStatus.SUCCESS] * EXPORTED
        checks = sql(
            postgres,
            db,
            "SELECT asset_key, check_name, partition, execution_status FROM asset_check_executions",
        )
        # The job's checks: the dataset's own and those on its publication.
        per_run = [
            spec.key
            for c in campaign_export_checks(broadlog_defs.flow, [d.flow for d in CAMPAIGN_EXPORTS])
            for spec in c.check_specs
        ]
        assert len(checks) == len(per_run) * EXPORTED
        assert {c[3] for c in checks} == {"SUCCEEDED"}
        assert {c[2] for c in checks} == set(keys[-EXPORTED:])
        # The SFTP steps claimed slots of the pool, which took the configured limit from the
        # instance (a pool's slots exist once a step first claims one), and gave them back.
        pool = instance.event_log_storage.get_concurrency_info("campaign_sftp")
        limit = yaml.safe_load(PRODUCTION_INSTANCE.read_text())["concurrency"]["pools"]
        assert pool.slot_count == limit["default_limit"]
        assert pool.claimed_slots == [] and pool.pending_steps == []
        # the sensor's files were ingested and archived, nothing is left in the export folder
        archive = data / "campaign_sftp/export/archive/broadlog"
        assert {p.name.split("@")[0] for p in archive.iterdir()} == set(exported)
        assert not list((data / "campaign_sftp/export").glob("broadLog_*"))
        published = {k: _landing_bytes(data, k) for k in keys[-EXPORTED:]}
        # the file ledger, a table in the same Postgres, holds each version processed once
        ledger = sql(postgres, db, "SELECT name, status, partition FROM rtcdp_file_versions")
        assert sorted(ledger) == sorted(
            (name, "processed", key)
            for name, key in zip(sorted(exported), keys[-EXPORTED:], strict=True)
        )

        # -- a multi-run backfill: re-ingest two windows from the archive, one run each -----
        rerun = keys[-2:]
        multi = run_backfill(context, rerun, BROADLOG_FLOW)
        multi_runs = instance.get_runs(RunsFilter(tags={BACKFILL_ID_TAG: multi}))
        assert sorted(r.tags[PARTITION_NAME_TAG] for r in multi_runs) == rerun
        assert all(r.status == DagsterRunStatus.SUCCESS for r in multi_runs)
        # a re-run of a partition gives the same result
        for k in rerun:
            assert _landing_bytes(data, k) == published[k]

        # -- a single-run backfill of all 12 windows: the report handles the range ----------
        single = run_backfill(context, keys, [AssetKey("data_quality_report")])
        (run,) = instance.get_runs(RunsFilter(tags={BACKFILL_ID_TAG: single}))
        assert run.status == DagsterRunStatus.SUCCESS
        assert run.tags[ASSET_PARTITION_RANGE_START_TAG] == keys[0]
        assert run.tags[ASSET_PARTITION_RANGE_END_TAG] == keys[-1]
        assert instance.get_materialized_partitions(AssetKey("data_quality_report")) == set(keys)
        for k in keys:
            page = (data / "warehouse/data_quality_report" / k / "report.html").read_text()
            if k in keys[-EXPORTED:]:
                assert "<td>broadlog</td><td>reconciliation</td><td>passed</td>" in page
            else:
                assert "<td>broadlog</td><td>reconciliation</td><td>not run</td>" in page

        # the backfills and their runs are rows in Postgres, like everything else
        rows = sql(postgres, db, "SELECT key, status FROM bulk_actions ORDER BY timestamp")
        assert [r[0] for r in rows] == [multi, single]
        assert {r[1] for r in rows} == {"COMPLETED_SUCCESS"}
        (runs_in_db,) = sql(postgres, db, "SELECT count(*) FROM runs")[0]
        assert runs_in_db == EXPORTED + len(rerun) + 1
        # re-materializing from the archive keeps one processed row per version
        statuses = sql(postgres, db, "SELECT status, count(*) FROM rtcdp_file_versions GROUP BY 1")
        assert statuses == [("processed", EXPORTED)]


def _landing_bytes(data: Path, pk: str) -> bytes:
    compact = datetime.strptime(pk, "%Y-%m-%d-%H:%M").strftime("%Y%m%d_%H%M")
    folder = data / "aep_landing" / "campaign" / "broadlog" / compact
    return (folder / f"broadlog_{compact}.parquet").read_bytes()  # the default form
