"""Completion rules of the Campaign export folder, with the sensor's clock injected (no
sleeping): marker, rename and stability in the tick planning; an empty file and a cut last line
wait out their grace, then are quarantined whole; a file that changes between the read and the
archive is neither published nor moved, and its new version is requested again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from resources import LocalDropZone, PipelineSettings
from resources.drop_zones import Entry
from resources.file_ledger import Presence
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_flow
from rtcdp_assets.campaign_to_aep.export_flow import plan_tick
from rtcdp_assets.shared.file_completion import INCOMPLETE_IS_FINAL_TAG
from tests.campaign_to_aep.completion_steps import (
    NAME,
    PK,
    broadlog_export,
    run_request,
    step_errors,
    thirds_mid_row,
    thirds_on_row_boundaries,
    tick_at,
)
from tests.drop_files import drop_campaign_export, write_settled
from tests.results import landing_files, read_published

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _entry(name: str, size: int, modified: datetime) -> Entry:
    return Entry(f"export/{name}", size, modified, f"{size}-{int(modified.timestamp() * 1e9)}")


def _plan(entries, settings, known=None, cursor=None, now=T0):
    return plan_tick(broadlog_flow, entries, known or {}, cursor, now, settings)


# ---- the rules in the tick planning --------------------------------------------------------
def test_marker_rule_reads_a_file_only_once_a_marker_no_older_than_it_sits_beside_it():
    settings = PipelineSettings()  # the default: rule marker, suffix .done
    data = _entry(NAME, 5000, T0 - timedelta(minutes=5))
    plan = _plan([data], settings)
    assert plan.run_requests == []
    assert f"no completion marker {NAME}.done yet" in plan.notes[0]
    stale = _entry(f"{NAME}.done", 0, T0 - timedelta(hours=4))  # left from an earlier version
    plan = _plan([data, stale], settings)
    assert plan.run_requests == []
    assert "older than the file" in plan.notes[0]
    marker = _entry(f"{NAME}.done", 0, T0 - timedelta(minutes=4))
    plan = _plan([data, marker], settings)
    assert [r.run_key for r in plan.run_requests] == [f"{data.path}@{data.identity}"]
    # the marker itself is no run, no "unrecognised name" and no ledger version
    assert [e.name for e in plan.new] == [NAME]
    assert plan.notes == []


def test_marker_rule_with_a_configured_suffix():
    settings = PipelineSettings(completion_marker_suffix=".ready")
    data = _entry(NAME, 5000, T0 - timedelta(minutes=5))
    assert _plan([data, _entry(f"{NAME}.done", 0, T0)], settings).run_requests == []
    assert len(_plan([data, _entry(f"{NAME}.ready", 0, T0)], settings).run_requests) == 1


def test_rename_rule_never_reads_temporary_names_and_configured_patterns():
    settings = PipelineSettings(
        campaign_export_completion="rename", temporary_name_patterns=["*.inprogress"]
    )
    old = T0 - timedelta(hours=1)
    temporary = [
        _entry(f"{NAME}.part", 10, old),  # OpenSSH sftp users, lftp
        _entry(f"{NAME}.filepart", 10, old),  # WinSCP
        _entry(f"{NAME}.tmp", 10, old),
        _entry(f"{NAME}.inprogress", 10, old),  # configured
        _entry(f".{NAME}", 10, old),
    ]
    plan = _plan(temporary, settings)
    assert (plan.run_requests, plan.new, plan.notes) == ([], [], [])
    final = _entry(NAME, 5000, old)
    plan = _plan([*temporary, final], settings)
    assert [r.tags["rtcdp/source_file"] for r in plan.run_requests] == [final.path]


def test_stability_rule_needs_two_listings_the_window_apart_by_our_clock():
    settings = PipelineSettings(campaign_export_completion="stability")  # window 120 s
    # The server's clock may say the file is old: only our clock counts.
    entry = _entry(NAME, 5000, T0 - timedelta(days=1))
    first = _plan([entry], settings)
    assert first.run_requests == []
    assert "first listing" in first.notes[0]
    seen = {(NAME, entry.identity): _presence(T0)}
    assert _plan([entry], settings, seen, first.cursor, T0 + timedelta(seconds=119)).notes
    later = _plan([entry], settings, seen, first.cursor, T0 + timedelta(seconds=120))
    assert len(later.run_requests) == 1


def _presence(first_seen: datetime, reason: str | None = None) -> Presence:
    return Presence("pending", first_seen.isoformat(), None, None, reason)


# ---- empty files and cut last lines ----------------------------------------------------------
def test_an_empty_file_waits_its_grace_then_is_quarantined_as_empty_file(
    embedded_env_with_instance, monkeypatch
):
    root, resources, instance = embedded_env_with_instance
    drop_campaign_export(root, NAME, b"")
    grace = resources["settings"].incomplete_file_grace_seconds
    t0 = datetime.now(UTC)
    requests, cursor, skip = tick_at(monkeypatch, resources, instance, None, t0)
    assert requests == []
    assert "empty so far; quarantined as empty_file" in skip
    before = t0 + timedelta(seconds=grace - 1)
    requests, cursor, _ = tick_at(monkeypatch, resources, instance, cursor, before)
    assert requests == []
    [row] = resources["file_ledger"].rows()
    assert row.status == "pending"  # waiting, never silently
    after = t0 + timedelta(seconds=grace + 1)
    [request], cursor, _ = tick_at(monkeypatch, resources, instance, cursor, after)
    assert request.tags[INCOMPLETE_IS_FINAL_TAG] == "true"
    run_request(resources, instance, request)
    [row] = resources["file_ledger"].rows()
    assert (row.status, row.reason) == ("quarantined", "empty_file")
    quarantine = root / "campaign_sftp" / row.location
    assert quarantine.read_bytes() == b""
    reason = json.loads(Path(f"{quarantine}.reason.json").read_text())
    assert (reason["source_file"], reason["reason"]) == (NAME, "empty_file")
    assert landing_files(root) == []
    # settled: never requested again
    requests, _, _ = tick_at(monkeypatch, resources, instance, cursor, after + timedelta(hours=1))
    assert requests == []


def test_a_cut_last_line_waits_then_the_whole_file_is_quarantined_as_truncated_file(
    embedded_env_with_instance, monkeypatch
):
    root, resources, instance = embedded_env_with_instance
    first_piece = thirds_mid_row(broadlog_export())[0]
    # The writer left its marker, but the file stops inside a row: still being written?
    drop_campaign_export(root, NAME, first_piece)
    t0 = datetime.now(UTC)
    [request], cursor, _ = tick_at(monkeypatch, resources, instance, None, t0)
    waited = run_request(resources, instance, request)
    assert not waited.success
    assert "still being written?" in step_errors(waited)
    assert "fewer fields than the header and no line end" in step_errors(waited)
    export = root / "campaign_sftp" / "export"
    assert (export / NAME).read_bytes() == first_piece  # left where it is
    assert not (root / "warehouse" / "broadlog" / PK).exists()  # nothing stored
    [row] = resources["file_ledger"].rows()
    assert row.status == "pending" and row.reason.startswith("incomplete:")
    grace = resources["settings"].incomplete_file_grace_seconds
    requests, cursor, skip = tick_at(
        monkeypatch, resources, instance, cursor, t0 + timedelta(seconds=grace - 1)
    )
    assert requests == []
    assert "quarantined as truncated_file if unchanged" in skip
    [final], cursor, _ = tick_at(
        monkeypatch, resources, instance, cursor, t0 + timedelta(seconds=grace + 1)
    )
    assert final.run_key == f"{request.run_key}#final"
    assert final.tags[INCOMPLETE_IS_FINAL_TAG] == "true"
    run_request(resources, instance, final)
    [row] = resources["file_ledger"].rows()
    assert (row.status, row.reason) == ("quarantined", "truncated_file")
    moved = root / "campaign_sftp" / row.location
    assert moved.read_bytes() == first_piece
    reason = json.loads(Path(f"{moved}.reason.json").read_text())
    assert reason["reason"] == "truncated_file"
    assert landing_files(root) == []  # not published in part
    manifest = json.loads((root / "warehouse/broadlog" / PK / "manifest.json").read_text())
    assert (manifest["rows_out"], manifest["files_quarantined"]) == (0, 1)
    assert not (export / f"{NAME}.done").exists()  # the marker left with its version
    assert list((export / "markers" / "broadlog").iterdir())


# ---- read again before the archive ---------------------------------------------------------
class AppendingZone(LocalDropZone):
    """The uploader appends the rest of the file while a run reads the first part."""

    rest_path: str

    @contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        with super().open_read(path) as fh:
            yield fh
        rest = Path(self.rest_path)
        if rest.exists():
            with (Path(self.root) / path).open("ab") as out:
                out.write(rest.read_bytes())
            rest.rename(rest.with_suffix(".appended"))  # once


def test_a_file_that_changes_between_read_and_archive_is_not_published_and_is_read_again(
    embedded_env_with_instance, monkeypatch, tmp_path
):
    root, resources, instance = embedded_env_with_instance
    content = broadlog_export()
    first, second, third = thirds_on_row_boundaries(content)
    rest = tmp_path / "rest.csv"
    rest.write_bytes(second + third)
    drop_campaign_export(root, NAME, first)
    appending = {
        **resources,
        "campaign_sftp": AppendingZone(root=str(root / "campaign_sftp"), rest_path=str(rest)),
    }
    t0 = datetime.now(UTC)
    [request], cursor, _ = tick_at(monkeypatch, appending, instance, None, t0)
    failed = run_request(appending, instance, request)
    assert not failed.success
    assert "changed while it was read" in step_errors(failed)
    export = root / "campaign_sftp" / "export"
    assert (export / NAME).read_bytes() == content  # stays, whole
    assert not (root / "warehouse" / "broadlog" / PK).exists()
    assert landing_files(root) == []
    # The uploader writes its marker again after the last piece; the next tick asks for the
    # new version (a new identity, so a new run key).
    write_settled(export / f"{NAME}.done", b"", age_seconds=0)
    [again], _, _ = tick_at(monkeypatch, resources, instance, cursor, t0 + timedelta(minutes=1))
    assert again.run_key != request.run_key
    assert run_request(resources, instance, again).success
    data_path = broadlog_flow.landing_paths(resources["settings"], PK)[0]
    rows = len(content.splitlines()) - 1
    assert len(read_published(root / "aep_landing", data_path)) == rows
    assert [p.name for p in landing_files(root)] == ["_manifest.json", data_path.rsplit("/")[-1]]
    statuses = sorted((r.status, r.rows) for r in resources["file_ledger"].rows())
    assert statuses == [("processed", rows), ("superseded", None)]
