"""The broadLog export sensor: one run per file version, cursor from file times only."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import paramiko
import pytest
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context

from resources import LocalDropZone, PipelineSettings, SftpDropZone
from rtcdp_assets.broadlog import broadlog_defs, broadlog_flow

SENSOR = broadlog_defs.sensor
HEADER = b"iBroadLogId,iDeliveryId,iRecipientId,sAddress,iStatus,tsEvent\n"


def tick(zone, cursor=None, settle=0.0):
    resources = {"campaign_sftp": zone, "settings": PipelineSettings(file_settle_seconds=settle)}
    with build_sensor_context(
        instance=DagsterInstance.ephemeral(), cursor=cursor, resources=resources
    ) as ctx:
        result = SENSOR(ctx)
    if isinstance(result, SkipReason):
        return [], cursor, result
    assert isinstance(result, SensorResult)
    return result.run_requests or [], result.cursor, result


def drop(root: Path, name: str, content: bytes, age_seconds: float = 120) -> Path:
    path = root / "export" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    past = time.time() - age_seconds
    os.utime(path, (past, past))
    return path


@pytest.fixture
def zone(tmp_path):
    return LocalDropZone(root=str(tmp_path))


def test_new_file_gives_one_run_request_for_its_partition(zone, tmp_path):
    drop(
        tmp_path,
        "broadLog_20261123_0930.csv",
        HEADER + b"1,2,3,a@example.com,1,2026-11-23 09:30:00\n",
    )
    requests, cursor, _ = tick(zone)
    assert len(requests) == 1
    assert requests[0].partition_key == "2026-11-23-08:00"
    assert requests[0].tags["rtcdp/source_file"] == "export/broadLog_20261123_0930.csv"
    # run_key = name + content identity, never the tick time
    assert requests[0].run_key.startswith("export/broadLog_20261123_0930.csv@")
    assert json.loads(cursor)["mtime"] > 0


def test_same_file_again_gives_no_run(zone, tmp_path):
    drop(tmp_path, "broadLog_20261123_0800.csv", HEADER)
    first, cursor, _ = tick(zone)
    assert len(first) == 1
    again, cursor2, _ = tick(zone, cursor)
    assert again == []
    assert cursor2 == cursor


def test_same_name_with_new_content_gives_a_new_run(zone, tmp_path):
    drop(tmp_path, "broadLog_20261123_0800.csv", HEADER, age_seconds=300)
    first, cursor, _ = tick(zone)
    drop(
        tmp_path,
        "broadLog_20261123_0800.csv",
        HEADER + b"1,2,3,a@example.com,1,2026-11-23 08:01:00\n",
        age_seconds=100,
    )
    second, _, _ = tick(zone, cursor)
    assert len(second) == 1
    assert second[0].run_key != first[0].run_key
    assert second[0].partition_key == first[0].partition_key


def test_files_sharing_one_mtime_are_all_requested_once(zone, tmp_path):
    a = drop(tmp_path, "broadLog_20261123_0800.csv", HEADER)
    b = drop(tmp_path, "broadLog_20261123_1200.csv", HEADER)
    os.utime(b, (a.stat().st_atime, a.stat().st_mtime))
    first, cursor, _ = tick(zone)
    assert sorted(r.partition_key for r in first) == ["2026-11-23-08:00", "2026-11-23-12:00"]
    assert tick(zone, cursor)[0] == []


def test_half_written_files_give_no_run(zone, tmp_path):
    # upload-then-rename writers use a temporary name; others are caught by the settle window
    drop(tmp_path, ".broadLog_20261123_0800.csv.part", HEADER)
    drop(tmp_path, "broadLog_20261123_0800.csv.filepart", HEADER)
    drop(tmp_path, "broadLog_20261123_1200.csv", HEADER, age_seconds=0)
    drop(tmp_path, "broadLog_20261123_1600.csv", b"", age_seconds=600)  # zero bytes so far
    requests, cursor, _ = tick(zone, settle=30)
    assert requests == []
    # the cursor did not move past the unfinished file, so it is picked up once settled
    assert json.loads(cursor)["mtime"] == 0.0
    drop(tmp_path, "broadLog_20261123_1200.csv", HEADER, age_seconds=60)
    later, _, _ = tick(zone, cursor, settle=30)
    assert [r.partition_key for r in later] == ["2026-11-23-12:00"]


def test_unrecognised_names_are_left_alone_and_reported(zone, tmp_path):
    drop(tmp_path, "broadLog_latest.csv", HEADER)
    drop(tmp_path, "trackingLog_20261123_0800.csv", HEADER)
    requests, _, result = tick(zone)
    assert requests == []
    assert "broadLog_latest.csv" in result.skip_reason.skip_message
    assert (tmp_path / "export" / "broadLog_latest.csv").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cursor_survives_a_failed_tick(zone, tmp_path):
    drop(tmp_path, "broadLog_20261123_0800.csv", HEADER, age_seconds=300)
    first, cursor, _ = tick(zone)
    assert len(first) == 1
    drop(tmp_path, "broadLog_20261123_1200.csv", HEADER, age_seconds=60)
    # The SFTP server is down: nothing listens on that port. The tick skips with a reason
    # and hands back no new cursor, so the next good tick still sees the new file.
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    key = tmp_path / "client_key"
    paramiko.RSAKey.generate(2048).write_private_key_file(str(key))
    down = SftpDropZone(
        host="127.0.0.1",
        port=_closed_port(),
        username="campaign",
        private_key_path=str(key),
        known_hosts_path=str(known_hosts),
        connect_timeout_seconds=2,
    )
    failed_requests, failed_cursor, result = tick(down, cursor)
    assert failed_requests == []
    assert isinstance(result, SkipReason)
    assert "unavailable" in result.skip_message
    assert failed_cursor == cursor
    recovered, _, _ = tick(zone, cursor)
    assert [r.partition_key for r in recovered] == ["2026-11-23-12:00"]


def test_partition_for_file_names():
    f = broadlog_flow.partition_for
    assert f("broadLog_20261123_0000.csv") == "2026-11-23-00:00"
    assert f("broadLog_20261123_2359.csv.gz") == "2026-11-23-20:00"
    assert f("broadlog_20261123_040000_part-2.csv") == "2026-11-23-04:00"
    assert f("broadLog_20261323_0000.csv") is None
    assert f("broadLog_20261123_0000.json") is None
    assert f("../broadLog_20261123_0000.csv") is None
