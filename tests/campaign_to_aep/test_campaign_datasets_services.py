"""Every Campaign → AEP dataset end to end over the real sshd and Azurite, with generated
realistic exports (both layouts, defects included): rows reconcile exactly with what the
generator says it wrote, and every published record validates against the XDM schemas."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context, materialize

from asset_checks.campaign_to_aep.dataset_checks import campaign_export_checks
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs, broadlog_flow
from rtcdp_assets.campaign_to_aep.non_deliverables import (
    non_deliverables_defs,
    non_deliverables_flow,
)
from rtcdp_assets.campaign_to_aep.preferences import preferences_defs, preferences_flow
from rtcdp_assets.campaign_to_aep.profiles import profiles_defs, profiles_flow
from rtcdp_assets.campaign_to_aep.tracking_log import tracking_log_defs, tracking_log_flow
from rtcdp_assets.shared.xdm_conformance import XdmSchema
from rtcdp_dev.sample_data import write_dataset_files
from tests.results import read_published

pytestmark = pytest.mark.integration

WINDOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
PK = "2026-11-23-08:00"
FLOWS = {
    "broadlog": (broadlog_flow, broadlog_defs),
    "tracking_log": (tracking_log_flow, tracking_log_defs),
    "non_deliverables": (non_deliverables_flow, non_deliverables_defs),
    "preferences": (preferences_flow, preferences_defs),
    "profiles": (profiles_flow, profiles_defs),
}


@pytest.mark.parametrize("layout", ["classic", "standard"])
@pytest.mark.parametrize("dataset", list(FLOWS))
def test_generated_export_through_sftp_and_blob(services, tmp_path, dataset, layout):
    flow, defs = FLOWS[dataset]
    generated = {
        name: write_dataset_files(
            name,
            tmp_path,
            start=WINDOW,
            end=WINDOW.replace(hour=12),
            rows_per_file=600,
            seed=11,
            layout=layout,
            gzip=layout == "standard",
            defect_rate=0.01,
            now=WINDOW.replace(hour=23),
        )[0]
        for name in ({"broadlog", dataset} if dataset == "tracking_log" else {dataset})
    }
    sftp = services["campaign_sftp"]
    instance = DagsterInstance.ephemeral()
    for name in sorted(generated, key=lambda n: n != "broadlog"):  # broadLog before tracking
        file = generated[name]
        sftp.write_atomic(f"export/{file.name}", file.path)
    time.sleep(1.1)  # SFTP mtimes have whole seconds
    with build_sensor_context(instance=instance, resources=services) as ctx:
        tick = defs.sensor(ctx)
    assert isinstance(tick, SensorResult)
    assert [r.partition_key for r in tick.run_requests] == [PK]
    if dataset == "tracking_log":
        assert materialize(
            [*broadlog_defs.assets, *campaign_export_checks(broadlog_defs.flow)],
            partition_key=PK,
            resources=services,
            instance=instance,
        ).success

    result = materialize(
        [*defs.assets, *campaign_export_checks(defs.flow)],
        partition_key=PK,
        resources=services,
        instance=instance,
        raise_on_error=False,
    )
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    failed = {k: v.metadata for k, v in checks.items() if not v.passed}
    assert failed == {}, failed

    expected = generated[dataset]
    recon = checks["reconciliation"].metadata
    assert recon["rows_in"].value == expected.rows
    assert recon["rows_out"].value == expected.expected_valid
    assert recon["rows_rejected"].value == expected.rows - expected.expected_valid
    assert recon["rejects_by_reason"].value == expected.expected_rejects

    landing = services["aep_landing"]
    data_path, manifest_path = flow.landing_paths(services["settings"], PK)
    records = read_published(landing, data_path)
    assert len(records) == expected.expected_valid
    schema = XdmSchema.compose(flow.xdm_class, list(flow.xdm_field_groups))
    report = schema.validate_many(records)
    assert report.invalid == 0, report.examples
    assert json.loads(landing.read_bytes(manifest_path))["records"] == len(records)
