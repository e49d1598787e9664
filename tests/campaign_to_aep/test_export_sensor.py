"""The broadLog export sensor: one run per file version, decided by the file ledger."""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paramiko
import pytest
from dagster import DagsterInstance, SensorResult, SkipReason

from resources import FileLedger, LocalDropZone, PipelineSettings, SftpDropZone
from resources.file_ledger import FileVersion
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs, broadlog_flow
from rtcdp_assets.campaign_to_aep.export_flow import plan_tick
from tests.drop_files import write_settled
from tests.runs import evaluate_sensor

SENSOR = broadlog_defs.sensor
HEADER = b"iBroadLogId,iDeliveryId,iRecipientId,sAddress,iStatus,tsEvent\n"


@pytest.fixture
def ledger(tmp_path):
    return FileLedger(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}")


def tick(zone, cursor=None, settle=0.0, ledger=None, **settings):
    # These tests exercise the listing and the ledger: files under their final names are
    # complete (rule `rename`) unless a test picks another rule (tests/campaign_to_aep/
    # test_completion_rules.py covers the rules themselves).
    settings.setdefault("campaign_export_completion", "rename")
    resources = {
        "campaign_sftp": zone,
        "settings": PipelineSettings(file_settle_seconds=settle, **settings),
        "file_ledger": ledger or FileLedger(url=f"sqlite:///{Path(zone.root) / 'ledger.sqlite'}"),
    }
    result = evaluate_sensor(SENSOR, resources, DagsterInstance.ephemeral(), cursor)
    if isinstance(result, SkipReason):
        return [], cursor, result
    assert isinstance(result, SensorResult)
    return result.run_requests or [], result.cursor, result


def drop(root: Path, name: str, content: bytes, age_seconds: float = 120) -> Path:
    """An export file in a LocalDropZone rooted at `root` (no `campaign_sftp` level)."""
    return write_settled(root / "export" / name, content, age_seconds)


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
    assert len(json.loads(cursor)["requested"]) == 1


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
    # nothing is marked as requested, so the file is picked up once settled
    assert json.loads(cursor)["requested"] == []
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


def test_cursor_survives_a_failed_tick(zone, tmp_path, ledger):
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
    failed_requests, failed_cursor, result = tick(down, cursor, ledger=ledger)
    assert failed_requests == []
    assert isinstance(result, SkipReason)
    assert "unavailable" in result.skip_message
    assert failed_cursor == cursor
    recovered, _, _ = tick(zone, cursor)
    assert [r.partition_key for r in recovered] == ["2026-11-23-12:00"]


def test_a_late_file_with_an_old_mtime_is_still_requested(zone, tmp_path):
    # File times never decide what is new: a copy that preserved an older mtime arrives after
    # a newer file was requested and is still picked up.
    drop(tmp_path, "broadLog_20261123_1200.csv", HEADER, age_seconds=60)
    first, cursor, _ = tick(zone)
    assert [r.partition_key for r in first] == ["2026-11-23-12:00"]
    drop(tmp_path, "broadLog_20261123_0800.csv", HEADER, age_seconds=3600)
    late, _, _ = tick(zone, cursor)
    assert [r.partition_key for r in late] == ["2026-11-23-08:00"]


def test_a_processed_version_is_not_requested_again_after_a_cursor_reset(zone, tmp_path, ledger):
    path = drop(tmp_path, "broadLog_20261123_0800.csv", HEADER)
    first, _, _ = tick(zone, ledger=ledger)
    assert len(first) == 1
    # The run recorded the version but died before moving the file out of export/.
    entry = zone.stat("export/broadLog_20261123_0800.csv")
    ledger.record(
        FileVersion(zone.describe(), "export", path.name, entry.identity),
        entry,
        dataset="broadlog",
        status="processed",
        location="export/archive/broadlog/x",
        in_folder=True,
        partition="2026-11-23-08:00",
        run_id="run-1",
    )
    again, _, result = tick(zone, cursor=None, ledger=ledger)  # a reset sensor: no cursor
    assert again == []
    assert "already processed (run run-1)" in result.skip_reason.skip_message


def test_stability_window_waits_for_an_unchanged_size_across_ticks(ledger):
    # For writers that cannot rename: the same size and mtime must be seen by ticks at least
    # the window apart; a file that grows in between starts the window again.
    settings = PipelineSettings(
        file_settle_seconds=0, stability_window_seconds=60, campaign_export_completion="stability"
    )
    t0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    mtime = t0 - timedelta(minutes=5)
    growing = _entry("broadLog_20261123_0800.csv", 100, mtime)
    plan = plan_tick(broadlog_flow, [growing], {}, None, t0, settings)
    assert plan.run_requests == []
    assert "unchanged for 60 s" in plan.notes[0]
    ledger.observe("z", "export", "broadlog", plan.new, seen_at=t0)
    known = ledger.present("z", "export", "broadlog")
    # 30 s later: same version, window not over
    plan = plan_tick(
        broadlog_flow, [growing], known, plan.cursor, t0 + timedelta(seconds=30), settings
    )
    assert plan.run_requests == []
    # it grew meanwhile: a new version, first seen now
    grown = _entry("broadLog_20261123_0800.csv", 250, mtime + timedelta(seconds=40))
    plan = plan_tick(
        broadlog_flow, [grown], known, plan.cursor, t0 + timedelta(seconds=70), settings
    )
    assert plan.run_requests == []
    assert [e.size for e in plan.new] == [250]
    ledger.observe(
        "z",
        "export",
        "broadlog",
        plan.new,
        [FileVersion("z", "export", *key) for key in plan.gone],
        seen_at=t0 + timedelta(seconds=70),
    )
    known = ledger.present("z", "export", "broadlog")
    assert [k[1] for k in known] == [grown.identity]  # the old size is no longer in the folder
    plan = plan_tick(
        broadlog_flow, [grown], known, plan.cursor, t0 + timedelta(seconds=131), settings
    )
    assert [r.run_key for r in plan.run_requests] == [f"{grown.path}@{grown.identity}"]


def test_completion_marker_is_required_when_configured(zone, tmp_path):
    drop(tmp_path, "broadLog_20261123_0800.csv", HEADER)
    waiting, cursor, result = tick(
        zone, completion_marker_suffix=".done", campaign_export_completion="marker"
    )
    assert waiting == []
    assert "no completion marker broadLog_20261123_0800.csv.done" in result.skip_reason.skip_message
    drop(tmp_path, "broadLog_20261123_0800.csv.done", b"")
    ready, _, _ = tick(
        zone, cursor, completion_marker_suffix=".done", campaign_export_completion="marker"
    )
    assert [r.partition_key for r in ready] == ["2026-11-23-08:00"]
    # the marker itself is neither a run nor an "unrecognised name"
    assert len(ready) == 1


def test_a_pending_file_that_vanishes_is_recorded(zone, tmp_path, ledger):
    path = drop(tmp_path, "broadLog_20261123_0800.csv", HEADER, age_seconds=0)
    tick(zone, settle=30, ledger=ledger)  # seen, still settling
    [row] = ledger.rows()
    assert (row.status, row.in_folder) == ("pending", True)
    path.unlink()  # taken away by someone else before it was read
    tick(zone, settle=30, ledger=ledger)
    [row] = ledger.rows()
    assert (row.status, row.in_folder) == ("pending", False)


def _entry(name: str, size: int, modified: datetime):
    from resources.drop_zones import Entry

    return Entry(f"export/{name}", size, modified, f"{size}-{int(modified.timestamp() * 1e9)}")


def test_partition_for_file_names():
    f = broadlog_flow.partition_for
    assert f("broadLog_20261123_0000.csv") == "2026-11-23-00:00"
    assert f("broadLog_20261123_2359.csv.gz") == "2026-11-23-20:00"
    assert f("broadlog_20261123_040000_part-2.csv") == "2026-11-23-04:00"
    assert f("broadLog_20261323_0000.csv") is None
    assert f("broadLog_20261123_0000.json") is None
    assert f("../broadLog_20261123_0000.csv") is None


def test_a_file_of_a_window_before_the_first_partition_is_left_alone_and_reported(zone, tmp_path):
    # The default first window (RTCDP_PARTITIONS_START) is 2026-11-01-00:00.
    old = drop(tmp_path, "broadLog_20261031_2000.csv", HEADER)
    requests, cursor, result = tick(zone)
    assert requests == []
    assert (
        "broadLog_20261031_2000.csv: window 2026-10-31-20:00 is before the first partition "
        "2026-11-01-00:00 (RTCDP_PARTITIONS_START); left in place, not read"
    ) in result.skip_reason.skip_message
    assert old.exists()
    drop(tmp_path, "broadLog_20261101_0000.csv", HEADER)
    requests, _, _ = tick(zone, cursor)
    assert [r.partition_key for r in requests] == ["2026-11-01-00:00"]
