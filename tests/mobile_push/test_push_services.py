"""Mobile push over the real services: a generated app-subscription export from sshd to the
Azurite landing container, and an AEP push-token dataset export read from an Azurite container
(folders `<datasetId>/exportTime=…/` listed through Blob prefixes)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context, materialize

from asset_checks.campaign_to_aep.dataset_checks import campaign_export_checks
from asset_checks.mobile_push.aep_push_token_checks import (
    aep_push_tokens_checks,
    duplicate_registration_check,
)
from rtcdp_assets.campaign_to_aep.push_subscriptions import (
    push_subscriptions_defs,
    push_subscriptions_flow,
)
from rtcdp_assets.mobile_push import aep_push_tokens as aep
from rtcdp_assets.shared.xdm_conformance import XdmSchema
from rtcdp_dev.sample_data import aep_push_token_export, write_dataset_files
from tests.results import read_published
from tests.zones import blob_zone

pytestmark = pytest.mark.integration

WINDOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
PK = "2026-11-23-08:00"


def test_push_subscriptions_and_aep_tokens_through_sftp_and_blob(services, azurite, tmp_path):
    resources = {**services, "aep_dataset_export": blob_zone(azurite)}
    (generated,) = write_dataset_files(
        "push_subscriptions",
        tmp_path,
        start=WINDOW,
        end=WINDOW.replace(hour=12),
        rows_per_file=800,
        seed=13,
        layout="standard",
        gzip=True,
        defect_rate=0.02,
        now=WINDOW.replace(hour=23),
    )
    resources["campaign_sftp"].write_atomic(f"export/{generated.name}", generated.path)
    time.sleep(1.1)  # SFTP mtimes have whole seconds
    instance = DagsterInstance.ephemeral()
    with build_sensor_context(instance=instance, resources=resources) as ctx:
        tick = push_subscriptions_defs.sensor(ctx)
    assert isinstance(tick, SensorResult)
    assert [r.partition_key for r in tick.run_requests] == [PK]
    result = materialize(
        [*push_subscriptions_defs.assets, *campaign_export_checks(push_subscriptions_defs.flow)],
        partition_key=PK,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    # The sample's 2 % of defective rows is above reject_rate's 1 %: a warning, published.
    assert {k for k, v in checks.items() if not v.passed} == {"reject_rate"}
    assert checks["reject_rate"].severity.value == "WARN"
    assert checks["reconciliation"].metadata["rejects_by_reason"].value == (
        generated.expected_rejects
    )
    data_path, _ = push_subscriptions_flow.landing_paths(resources["settings"], PK)
    records = read_published(resources["aep_landing"], data_path)
    assert len(records) == generated.expected_valid
    schema = XdmSchema.compose(
        push_subscriptions_flow.xdm_class, list(push_subscriptions_flow.xdm_field_groups)
    )
    report = schema.validate_many(records)
    assert report.invalid == 0, report.examples

    # The Mobile SDK route: an AEP dataset export in Blob sharing 5 tokens with Campaign.
    campaign = [
        (r["pushNotificationDetails"][0]["appID"], r["pushNotificationDetails"][0]["token"], p)
        for r in records
        for p in [r["pushNotificationDetails"][0]["platform"]]
    ]
    export = aep_push_token_export(
        campaign,
        seed=13,
        export_time=datetime(2026, 11, 23, 10, 30, tzinfo=UTC),
        overlap=5,
        aep_only=25,
        defects=3,
        parts=2,
    )
    zone = resources["aep_dataset_export"]
    for path, data in export.files.items():
        zone.write_bytes(path, data)
    assert zone.list_folders("aep_dataset_exports") == [
        path.split("/")[1] for path in list(export.files)[:1]
    ]
    with build_sensor_context(instance=instance, resources=resources) as ctx:
        tick = aep.aep_push_tokens_sensor(ctx)
    assert [r.partition_key for r in tick.run_requests] == [PK]
    result = materialize(
        [aep.aep_push_tokens, aep_push_tokens_checks, duplicate_registration_check],
        partition_key=PK,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["reconciliation"].passed
    duplicate = checks["duplicate_registration"]
    assert not duplicate.passed
    assert duplicate.metadata["tokens_registered_through_both_routes"].value == 5
    assert duplicate.metadata["apps_concerned"].value == export.overlap_by_app
