"""Every schedule says what it does, the export-freshness schedule is on by default, and the
demo's instance limits the `campaign_sftp` pool that the Campaign ingest steps take a slot of."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance, DefaultScheduleStatus
from dagster._core.instance.config import PoolGranularity

from resources import embedded_resources
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs
from rtcdp_assets.definitions import defs
from rtcdp_dev.demo import DEMO_INSTANCE_CONFIG, DEMO_SFTP_POOL_LIMIT
from tests.drop_files import drop_campaign_export
from tests.runs import campaign_assets_and_checks, materialize_partition

SCHEDULES = list(defs.schedules or [])


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.name)
def test_every_schedule_has_a_description(schedule):
    assert schedule.description and len(schedule.description) > 20


def test_the_export_freshness_schedule_is_on_by_default():
    by_name = {s.name: s for s in SCHEDULES}
    assert by_name["export_freshness_schedule"].default_status == DefaultScheduleStatus.RUNNING


@pytest.fixture
def demo_instance(tmp_path: Path):
    (tmp_path / "dagster.yaml").write_text(DEMO_INSTANCE_CONFIG)
    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        yield instance
    finally:
        instance.dispose()


def test_the_demo_instance_limits_the_campaign_sftp_pool(demo_instance, tmp_path):
    pools = demo_instance.get_concurrency_config().pool_config
    assert pools.default_pool_limit == DEMO_SFTP_POOL_LIMIT
    assert pools.pool_granularity == PoolGranularity.OP
    ingest_pools = {
        node.pool for node in defs.resolve_job_def("broadlog_job").graph.node_defs if node.pool
    }
    assert ingest_pools == {"campaign_sftp"}
    # A real run in that instance: its SFTP step takes a slot of the pool, which then exists
    # with the configured limit (what the UI's pool page shows).
    root = tmp_path / "zones"
    drop_campaign_export(
        root,
        "broadLog_20261123_0800.csv",
        "iBroadLogId,iDeliveryId,iRecipientId,sExternalId,sAddress,iStatus,tsEvent\n"
        "1,10,101,CUST-1,ann@example.com,1,2026-11-23 08:01:00\n",
    )
    result = materialize_partition(
        campaign_assets_and_checks(broadlog_defs),
        embedded_resources(root),
        "2026-11-23-08:00",
        instance=demo_instance,
    )
    assert result.success
    info = demo_instance.event_log_storage.get_concurrency_info("campaign_sftp")
    assert info.slot_count == DEMO_SFTP_POOL_LIMIT
    assert info.active_slot_count == 0  # released after the step
