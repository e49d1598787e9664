"""broadLog end to end over the real sshd (Campaign SFTP) and Azurite (AEP landing, warehouse)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context, materialize

from asset_checks.campaign_to_aep.dataset_checks import campaign_export_checks
from resources import DropZoneAccessDenied, FileLedger, PipelineSettings
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs, broadlog_flow
from rtcdp_assets.shared.xdm_conformance import XdmSchema
from tests.results import read_published
from tests.zones import sftp_zone

pytestmark = pytest.mark.integration

PK = "2026-11-23-08:00"
HEADER = (
    "iBroadLogId,iDeliveryId,iRecipientId,sExternalId,sAddress,iStatus,iFailureType,"
    "iFailureReason,tsEvent\n"
)
ROWS = [
    f"{i},77,{1000 + i},CUST-{i:05d},user{i}@example.com,{1 if i % 10 else 2},"
    f"{2 if i % 20 == 0 else 1},{1 if i % 20 == 0 else 5},2026-11-23 08:{i % 60:02d}:00"
    for i in range(1, 301)
]
BAD = ["301,77,1301,,broken-address,1,0,0,2026-11-23 09:00:00", "302,77,1302"]


def materialize_partition(resources, instance, pk=PK):
    return materialize(
        [*broadlog_defs.assets, *campaign_export_checks(broadlog_defs.flow)],
        partition_key=pk,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def test_file_on_sftp_becomes_validated_xdm_in_blob_and_reruns_identically(services):
    sftp = services["campaign_sftp"]
    sftp.write_bytes(
        "export/broadLog_20261123_0800.csv", (HEADER + "\n".join(ROWS + BAD) + "\n").encode()
    )
    time.sleep(1.1)  # SFTP mtimes have whole seconds; the sensor's settle window is 0 here
    instance = DagsterInstance.ephemeral()
    with build_sensor_context(instance=instance, resources=services) as ctx:
        tick = broadlog_defs.sensor(ctx)
    assert isinstance(tick, SensorResult)
    assert [r.partition_key for r in tick.run_requests] == [PK]

    result = materialize_partition(services, instance, tick.run_requests[0].partition_key)
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert all(c.passed for c in checks.values()), {k: c.metadata for k, c in checks.items()}
    assert checks["reconciliation"].metadata["rows_in"].value == 302
    assert checks["reconciliation"].metadata["rows_rejected"].value == 2

    landing = services["aep_landing"]
    data_path, manifest_path = broadlog_flow.landing_paths(services["settings"], PK)
    published = landing.read_bytes(data_path)
    records = read_published(landing, data_path)
    assert len(records) == 300
    schema = XdmSchema.compose(broadlog_flow.xdm_class, list(broadlog_flow.xdm_field_groups))
    assert [schema.errors(r) for r in records if schema.errors(r)] == []
    manifest = json.loads(landing.read_bytes(manifest_path))
    assert manifest["records"] == 300

    # the export moved to the archive on the SFTP server; nothing was deleted
    assert sftp.list("export") == []
    assert len(sftp.list("export/archive/broadlog")) == 1

    rerun = materialize_partition(services, instance)
    assert rerun.success
    assert landing.read_bytes(data_path) == published
    assert json.loads(landing.read_bytes(manifest_path))["sha256"] == manifest["sha256"]


def test_unknown_host_key_is_refused_with_a_clear_error(sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    zone = sftp_zone(sshd, known_hosts_path=str(empty))
    with pytest.raises(DropZoneAccessDenied, match="known_hosts"):
        zone.list("export")
    assert empty.read_text() == ""  # never auto-added


def test_wrong_host_key_is_refused_with_a_clear_error(sshd, tmp_path):
    # Another ed25519 key under the server's name: what a man in the middle would present.
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True
    )
    other = (tmp_path / "other.pub").read_text().split()[1]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[{sshd.host}]:{sshd.port} ssh-ed25519 {other}\n")
    zone = sftp_zone(sshd, known_hosts_path=str(wrong))
    with pytest.raises(DropZoneAccessDenied, match="host key mismatch"):
        zone.list("export")


def test_sensor_fails_loudly_on_a_host_key_problem(sshd, tmp_path):
    """A host-key or credential problem must not look like 'no new files'."""
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    resources = {
        "campaign_sftp": sftp_zone(sshd, known_hosts_path=str(empty)),
        "settings": PipelineSettings(),
        "file_ledger": FileLedger(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}"),
    }
    with (
        build_sensor_context(instance=DagsterInstance.ephemeral(), resources=resources) as ctx,
        pytest.raises(DropZoneAccessDenied),
    ):
        broadlog_defs.sensor(ctx)
