"""Faults injected into the real services: nothing lost, nothing partial visible, clear errors.

A `FaultyTcpProxy` in front of sshd or Azurite cuts connections at an exact byte count; sshd
and Azurite are also stopped outright, and a run process is SIGKILLed in the middle of a write.
Every test ends with a re-run or a later tick that completes with the right counts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context
from dagster_azure.blob import AzureBlobStorageKeyCredential, AzureBlobStorageResource

from asset_checks.campaign_to_aep.dataset_checks import campaign_export_checks
from resources import AzureBlobDropZone, DropZoneAccessDenied, PipelineSettings
from resources.sftp import FileChangedWhileReading
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs, broadlog_flow
from rtcdp_dev.services import REPO_ROOT, FaultyTcpProxy, generate_ed25519_key
from tests.results import check_evaluations_by_name, read_published
from tests.runs import campaign_assets_and_checks, materialize_partition
from tests.zones import sftp_zone

pytestmark = pytest.mark.integration

PK = "2026-11-23-08:00"
NAME = "broadLog_20261123_0800.csv"
HEADER = (
    "iBroadLogId,iDeliveryId,iRecipientId,sExternalId,sAddress,iStatus,iFailureType,"
    "iFailureReason,tsEvent,sDeliveryLabel\n"
)


def export(rows: int, bad: int = 0, hour: int = 8) -> bytes:
    """`rows` good rows (about 110 bytes each) and `bad` rows with an invalid address."""
    lines = [
        f"{i},77,{1000 + i},CUST-{i:06d},user{i}@example.com,1,0,0,"
        f"2026-11-23 {hour:02d}:{i % 60:02d}:{(i // 60) % 60:02d},Winter newsletter {i % 7}"
        for i in range(1, rows + 1)
    ]
    lines += [
        f"{i},77,{1000 + i},,broken-address,1,0,0,2026-11-23 {hour:02d}:00:00,X"
        for i in range(rows + 1, rows + bad + 1)
    ]
    return (HEADER + "\n".join(lines) + "\n").encode()


def run(resources, pk=PK, typed_only=False):
    selection = (
        [broadlog_defs.assets[0], campaign_export_checks(broadlog_defs.flow)[0]]
        if typed_only
        else campaign_assets_and_checks(broadlog_defs)
    )
    return materialize_partition(selection, resources, pk)


def step_errors(result) -> str:
    return "\n".join(
        str(e.event_specific_data.error)
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    )


def sftp_through(proxy: FaultyTcpProxy, sshd, tmp_path: Path, base_path: str, **overrides):
    known_hosts = tmp_path / f"known_hosts_{proxy.port}"
    known_hosts.write_text(proxy.known_hosts_line(sshd) + "\n")
    return sftp_zone(
        sshd,
        port=proxy.port,
        known_hosts_path=str(known_hosts),
        base_path=base_path,
        **overrides,
    )


def blob_through(proxy: FaultyTcpProxy, azurite, container: str) -> AzureBlobDropZone:
    storage = AzureBlobStorageResource(
        account_url=azurite.account_url.replace(f":{azurite.port}/", f":{proxy.port}/"),
        credential=AzureBlobStorageKeyCredential(key=azurite.account_key),
    )
    return AzureBlobDropZone(storage=storage, container=container)


@pytest.fixture
def sftp_proxy(sshd):
    with FaultyTcpProxy(sshd.port) as proxy:
        yield proxy


@pytest.fixture
def blob_proxy(azurite):
    with FaultyTcpProxy(azurite.port) as proxy:
        yield proxy


# ---- SFTP: the connection cut in the middle of a download -----------------------------------
def test_download_cut_midway_resumes_and_the_counts_are_right(services, sshd, sftp_proxy, tmp_path):
    direct = services["campaign_sftp"]
    content = export(20_000, bad=3)  # about 2.3 MB
    direct.write_bytes(f"export/{NAME}", content)
    zone = sftp_through(sftp_proxy, sshd, tmp_path, direct.base_path)
    sftp_proxy.cut_download(after_bytes=len(content) // 2)
    resources = {**services, "campaign_sftp": zone}

    result = run(resources, typed_only=True)

    assert result.success, step_errors(result)
    assert sftp_proxy.cuts == 1  # the fault did happen, in the middle of the file
    recon = check_evaluations_by_name(result)["reconciliation"]
    assert recon.passed
    assert (recon.metadata["rows_in"].value, recon.metadata["rows_rejected"].value) == (20_003, 3)
    assert services["warehouse"].row_count("broadlog", PK) == 20_000
    archived = direct.list("export/archive/broadlog")
    assert [e.name.split("@")[0] for e in archived] == [NAME]
    assert direct.read_bytes(archived[0].path) == content
    zone.close()


def test_a_link_that_keeps_dropping_fails_clearly_and_leaves_nothing_partial(
    services, sshd, sftp_proxy, tmp_path
):
    direct = services["campaign_sftp"]
    content = export(20_000)
    direct.write_bytes(f"export/{NAME}", content)
    zone = sftp_through(sftp_proxy, sshd, tmp_path, direct.base_path)
    resources = {**services, "campaign_sftp": zone}
    sftp_proxy.fail_next(100, after_bytes=150_000)  # every connection dies after 150 kB

    failed = run(resources, typed_only=True)

    assert not failed.success
    assert "SFTP connection dropped" in step_errors(failed)
    # nothing of the partition is visible, the file waits in export/ untouched
    warehouse = services["warehouse"]
    assert warehouse.zone.list(f"broadlog/{PK}") == []
    assert [e.name for e in direct.list("export")] == [NAME]
    assert direct.read_bytes(f"export/{NAME}") == content
    assert direct.list("export/quarantine/broadlog") == []

    sftp_proxy.heal()
    rerun = run(resources, typed_only=True)
    assert rerun.success, step_errors(rerun)
    assert check_evaluations_by_name(rerun)["reconciliation"].metadata["rows_in"].value == 20_000
    assert warehouse.row_count("broadlog", PK) == 20_000
    zone.close()


def test_a_resumed_download_never_splices_two_versions_of_a_file(
    services, sshd, sftp_proxy, tmp_path
):
    direct = services["campaign_sftp"]
    # About 17 MB, twice the SSH channel's window, and a short read-ahead: most of the file is
    # still to come when the connection drops.
    direct.write_bytes(f"export/{NAME}", export(160_000))
    zone = sftp_through(
        sftp_proxy, sshd, tmp_path, direct.base_path, read_ahead_chunks=1, read_chunk_bytes=32768
    )
    newer = export(160_001)
    with zone.open_read(f"export/{NAME}") as reader:
        first = reader.read(64 * 1024)
        direct.write_bytes(f"export/{NAME}", newer)  # replaced while being read
        sftp_proxy.drop_connections()
        with pytest.raises(FileChangedWhileReading, match="changed while it was being read"):
            while reader.read(1 << 20):
                pass
    assert first == export(160_000)[: len(first)]
    zone.close()


# ---- retries with backoff on transient failures ----------------------------------------------
def test_a_refused_first_connection_is_retried(
    services, sshd, sftp_proxy, blob_proxy, tmp_path, azurite
):
    services["campaign_sftp"].write_bytes(f"export/{NAME}", export(10))
    zone = sftp_through(sftp_proxy, sshd, tmp_path, services["campaign_sftp"].base_path)
    sftp_proxy.fail_next(1)
    assert [e.name for e in zone.list("export")] == [NAME]
    assert (sftp_proxy.cuts, sftp_proxy.accepted) == (1, 2)
    zone.close()

    landing = services["aep_landing"]
    landing.write_bytes("x/first.json", b"{}")
    proxied = blob_through(blob_proxy, azurite, landing.container)
    blob_proxy.fail_next(1)
    assert [e.path for e in proxied.list("x")] == ["x/first.json"]
    blob_proxy.fail_next(1)
    proxied.write_bytes("x/second.json", b"{}")
    assert blob_proxy.cuts == 2
    assert [e.path for e in landing.list("x")] == ["x/first.json", "x/second.json"]


# ---- sshd stopped during a tick; wrong client key; changed host key --------------------------
def test_sshd_down_during_a_tick_skips_it_and_keeps_the_cursor(services, sshd):
    sftp = services["campaign_sftp"]
    sftp.write_bytes(f"export/{NAME}", export(5))
    time.sleep(1.1)  # whole-second SFTP mtimes
    instance = DagsterInstance.ephemeral()
    with build_sensor_context(instance=instance, resources=services) as ctx:
        first = broadlog_defs.sensor(ctx)
    assert isinstance(first, SensorResult) and len(first.run_requests) == 1
    cursor = first.cursor
    later = "broadLog_20261123_1200.csv"
    sftp.write_bytes(f"export/{later}", export(5, hour=12))
    time.sleep(1.1)
    sftp.list("export")  # the zone holds an open session when the server goes away
    try:
        sshd.stop()
        with build_sensor_context(instance=instance, cursor=cursor, resources=services) as ctx:
            skipped = broadlog_defs.sensor(ctx)
            assert ctx.cursor == cursor
        assert isinstance(skipped, SkipReason)
        assert "Campaign SFTP unavailable" in skipped.skip_message
    finally:
        sshd.start()
    with build_sensor_context(instance=instance, cursor=cursor, resources=services) as ctx:
        back = broadlog_defs.sensor(ctx)
    assert isinstance(back, SensorResult)
    assert [r.partition_key for r in back.run_requests] == ["2026-11-23-12:00"]


def test_a_run_with_a_wrong_client_key_fails_loudly_and_moves_nothing(services, sshd, tmp_path):
    services["campaign_sftp"].write_bytes(f"export/{NAME}", export(5))
    wrong_key = tmp_path / "not_authorized"
    generate_ed25519_key(wrong_key)
    zone = sftp_zone(
        sshd, private_key_path=str(wrong_key), base_path=services["campaign_sftp"].base_path
    )
    result = run({**services, "campaign_sftp": zone}, typed_only=True)
    assert not result.success
    assert "SFTP authentication failed" in step_errors(result)
    assert [e.name for e in services["campaign_sftp"].list("export")] == [NAME]
    with pytest.raises(DropZoneAccessDenied):
        broadlog_flow.resolve_sources(zone, services["settings"], PK)


def test_a_run_against_a_changed_host_key_fails_loudly(services, sshd, tmp_path):
    """Reuses the zone-level host-key tests' setup; here the whole run must fail clearly."""
    services["campaign_sftp"].write_bytes(f"export/{NAME}", export(5))
    rotated = sshd.write_wrong_known_hosts(tmp_path / "known_hosts")
    zone = sftp_zone(
        sshd, known_hosts_path=str(rotated), base_path=services["campaign_sftp"].base_path
    )
    result = run({**services, "campaign_sftp": zone}, typed_only=True)
    assert not result.success
    assert "host key mismatch" in step_errors(result)
    assert [e.name for e in services["campaign_sftp"].list("export")] == [NAME]


# ---- Azurite stopped in the middle of an upload ------------------------------------------------
def landing_blobs(landing) -> list[str]:
    folder = broadlog_flow.landing_paths(PipelineSettings(), PK)[0].rsplit("/", 1)[0]
    return [e.name for e in landing.list(folder)]


# The published file's name in the default form (XDM Parquet).
PUBLISHED_NAME = broadlog_flow.landing_paths(PipelineSettings(), PK)[0].rsplit("/", 1)[-1]


def test_azurite_stopped_mid_upload_publishes_nothing_then_exactly_once(
    services, azurite, blob_proxy
):
    services["campaign_sftp"].write_bytes(f"export/{NAME}", export(1_000))
    landing = services["aep_landing"]
    proxied = blob_through(blob_proxy, azurite, landing.container)
    data_path, manifest_path = broadlog_flow.landing_paths(services["settings"], PK)
    stopped = threading.Event()

    def stop_azurite() -> None:
        azurite.stop()
        stopped.set()

    # 5,000 bytes: well inside the published file of 1,000 records in either form
    blob_proxy.cut_upload(data_path.rsplit("/", 1)[-1].encode(), 5_000, stop_azurite)
    try:
        failed = run({**services, "aep_landing": proxied})
    finally:
        # Azurite may still be flushing when the run gives up: restart only once it is down.
        assert stopped.wait(30)  # the fault happened, mid-upload
        azurite.start()
    assert not failed.success
    assert "Azure Blob unreachable" in step_errors(failed)
    published = {m.asset_key.path[-1] for m in failed.get_asset_materialization_events()}
    assert "broadlog_published" not in published
    assert landing_blobs(landing) == []  # no partial file, no manifest

    rerun = run({**services, "aep_landing": proxied})
    assert rerun.success, step_errors(rerun)
    assert landing_blobs(landing) == ["_manifest.json", PUBLISHED_NAME]
    records = read_published(landing, data_path)
    manifest = json.loads(landing.read_bytes(manifest_path))
    assert len(records) == manifest["records"] == 1_000
    assert len({r["_id"] for r in records}) == 1_000


# ---- the run process killed in the middle of a write -----------------------------------------
@pytest.mark.parametrize(
    ("target", "marker"),
    [
        ("typed partition", b"/broadlog/2026-11-23-08%3A00/data.parquet"),
        ("published file", PUBLISHED_NAME.encode()),
    ],
)
def test_run_killed_mid_write_leaves_nothing_partial_and_the_rerun_completes(
    services, sshd, azurite, blob_proxy, target, marker
):
    sftp = services["campaign_sftp"]
    content = export(1_500, bad=2)
    sftp.write_bytes(f"export/{NAME}", content)
    landing, warehouse = services["aep_landing"], services["warehouse"]
    config = {
        "partition": PK,
        "account_url": azurite.account_url.replace(f":{azurite.port}/", f":{blob_proxy.port}/"),
        "account_key": azurite.account_key,
        "landing_container": landing.container,
        "warehouse_container": warehouse.zone.container,
        "ledger_url": services["file_ledger"].url,
        "sftp": {
            "host": sshd.host,
            "port": sshd.port,
            "username": sshd.username,
            "private_key_path": str(sshd.client_key_path),
            "known_hosts_path": str(sshd.known_hosts_path),
            "base_path": sftp.base_path,
        },
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.campaign_to_aep.fault_runner", json.dumps(config)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    blob_proxy.cut_upload(marker, 5_000, lambda: os.kill(process.pid, signal.SIGKILL))
    try:
        output = process.communicate(timeout=180)[0].decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL, output[-3000:]
    assert blob_proxy.cuts == 1

    # Nothing partial is visible: no half-written blob, no partition without its manifest
    # claiming completeness, nothing published, the source still waiting in export/.
    typed_files = [e.name for e in warehouse.zone.list(f"broadlog/{PK}")]
    if target == "typed partition":
        assert typed_files == []
    else:
        assert sorted(typed_files) == ["data.parquet", "manifest.json", "rejects.parquet"]
        manifest = warehouse.get_json("broadlog", PK, "manifest.json")
        assert manifest["rows_out"] == warehouse.row_count("broadlog", PK) == 1_500
    assert landing_blobs(landing) == []
    # the source moves to the archive only once its rows are stored
    waiting = [e.name for e in sftp.list("export")]
    archived = [e.name.split("@")[0] for e in sftp.list("export/archive/broadlog")]
    assert (waiting, archived) == (([NAME], []) if target == "typed partition" else ([], [NAME]))

    rerun = run(services)
    assert rerun.success, step_errors(rerun)
    recon = check_evaluations_by_name(rerun)["reconciliation"]
    assert (recon.metadata["rows_in"].value, recon.metadata["rows_rejected"].value) == (1_502, 2)
    assert landing_blobs(landing) == ["_manifest.json", PUBLISHED_NAME]
    data_path, manifest_path = broadlog_flow.landing_paths(services["settings"], PK)
    assert json.loads(landing.read_bytes(manifest_path))["records"] == 1_500
    assert len(read_published(landing, data_path)) == 1_500
    assert [e.name.split("@")[0] for e in sftp.list("export/archive/broadlog")] == [NAME]


# ---- a poison file does not hold back the others ---------------------------------------------
def test_a_poison_file_is_quarantined_in_its_own_partition_and_others_publish(services):
    sftp = services["campaign_sftp"]
    poison = "broadLog_20261123_1200.csv.gz"
    sftp.write_bytes(f"export/{NAME}", export(50))
    sftp.write_bytes(f"export/{poison}", b"\x1f\x8b\x08\x00 not gzip at all")
    sftp.write_bytes("export/broadLog_20261123_1600.csv", export(40, hour=16))
    time.sleep(1.1)
    instance = DagsterInstance.ephemeral()
    with build_sensor_context(instance=instance, resources=services) as ctx:
        tick = broadlog_defs.sensor(ctx)
    assert isinstance(tick, SensorResult)
    partitions = sorted(r.partition_key for r in tick.run_requests)
    assert partitions == ["2026-11-23-08:00", "2026-11-23-12:00", "2026-11-23-16:00"]

    outcomes = {pk: run(services, pk=pk) for pk in partitions}

    poisoned = check_evaluations_by_name(outcomes["2026-11-23-12:00"])["reconciliation"]
    assert not poisoned.passed
    assert poisoned.metadata["files_quarantined"].value == [f"{poison}: corrupt_gzip"]
    landing = services["aep_landing"]
    settings = services["settings"]
    assert landing.stat(broadlog_flow.landing_paths(settings, "2026-11-23-12:00")[0]) is None
    for pk, rows in (("2026-11-23-08:00", 50), ("2026-11-23-16:00", 40)):
        assert outcomes[pk].success, step_errors(outcomes[pk])
        manifest = json.loads(landing.read_bytes(broadlog_flow.landing_paths(settings, pk)[1]))
        assert manifest["records"] == rows
    quarantined = sorted(e.name for e in sftp.list("export/quarantine/broadlog"))
    assert [n.split("@")[0] for n in quarantined] == [poison, poison]
    assert quarantined[1].endswith(".reason.json")
    # the next tick does not bring the poison back
    with build_sensor_context(instance=instance, cursor=tick.cursor, resources=services) as ctx:
        again = broadlog_defs.sensor(ctx)
    assert not getattr(again, "run_requests", None)
