"""A broadLog uploaded in three pieces over the real sshd with OpenSSH's own `sftp` client
(batch mode), under each completion rule, with the sensor's clock stepped past every default
(settle, stability window, grace, plus 40 s) between the pieces: nothing is requested or
published before the upload is complete, and the whole file is published once after.

The stability rule cannot tell a long pause from the end of a file: a piece ending on a row
boundary is published as the whole export (the last test shows it; docs/deployment.md warns)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterInstance

from resources import PipelineSettings
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_flow
from tests.campaign_to_aep.completion_steps import (
    NAME,
    PK,
    broadlog_export,
    run_request,
    thirds_mid_row,
    thirds_on_row_boundaries,
    tick_at,
)
from tests.results import read_published


def sftp_batch(sshd, tmp_path, commands: list[str]) -> subprocess.CompletedProcess:
    batch = tmp_path / "batch.txt"
    batch.write_text("\n".join(commands) + "\n")
    return subprocess.run(
        sshd.sftp_command(batch), capture_output=True, text=True, timeout=60, check=False
    )


class Uploader:
    """Campaign's side: `put` the first piece, `reput` (append) the next ones."""

    def __init__(self, sshd, tmp_path, base: str, remote_name: str) -> None:
        self.sshd, self.tmp_path = sshd, tmp_path
        self.remote = f"{base}/export/{remote_name}"
        self.local = tmp_path / "upload.csv"
        self.sent = b""
        done = sftp_batch(sshd, tmp_path, [f"-mkdir {base}", f"-mkdir {base}/export"])
        assert done.returncode == 0, done.stderr

    def send(self, piece: bytes) -> subprocess.CompletedProcess:
        first = not self.sent
        self.sent += piece
        # reput sends what the remote file lacks of the local one: the local file holds all.
        self.local.write_bytes(self.sent)
        verb = "put" if first else "reput"
        return sftp_batch(self.sshd, self.tmp_path, [f"{verb} {self.local} {self.remote}"])

    def command(self, *commands: str) -> None:
        done = sftp_batch(self.sshd, self.tmp_path, list(commands))
        assert done.returncode == 0, done.stderr


def pause(settings: PipelineSettings) -> timedelta:
    """Longer than every default: settle + stability window + grace + 40 s."""
    return timedelta(
        seconds=settings.file_settle_seconds
        + settings.stability_window_seconds
        + settings.incomplete_file_grace_seconds
        + 40
    )


def published_rows(services, settings) -> int | None:
    data_path, _ = broadlog_flow.landing_paths(settings, PK)
    records = read_published(services["aep_landing"], data_path)
    return None if records is None else len(records)


@pytest.fixture
def rig(services, sshd, tmp_path, monkeypatch):
    def make(rule: str, remote_name: str = NAME):
        settings = PipelineSettings(campaign_export_completion=rule)
        resources = {**services, "settings": settings}
        uploader = Uploader(sshd, tmp_path, services["campaign_sftp"].base_path, remote_name)
        instance = DagsterInstance.ephemeral()
        state = {"cursor": None, "now": datetime.now(UTC)}

        def tick(step: timedelta):
            state["now"] += step
            requests, state["cursor"], skip = tick_at(
                monkeypatch, resources, instance, state["cursor"], state["now"]
            )
            return requests, skip

        return settings, resources, uploader, instance, tick

    return make


def test_marker_rule_reads_the_file_only_after_its_marker(rig):
    settings, resources, uploader, instance, tick = rig("marker")
    content = broadlog_export()
    for piece in thirds_on_row_boundaries(content):
        assert uploader.send(piece).returncode == 0
        requests, skip = tick(pause(settings))
        assert requests == [], "requested before the marker"
        assert f"no completion marker {NAME}.done yet" in skip
    marker = uploader.tmp_path / "empty.done"
    marker.write_bytes(b"")
    uploader.command(f"put {marker} {uploader.remote}.done")  # the workflow's second transfer
    [request], _ = tick(timedelta(seconds=1))
    assert run_request(resources, instance, request).success
    assert published_rows(resources, settings) == len(content.splitlines()) - 1
    assert tick(pause(settings))[0] == []  # once


def test_rename_rule_reads_the_file_only_after_the_rename(rig):
    settings, resources, uploader, instance, tick = rig("rename", f"{NAME}.part")
    content = broadlog_export()
    for piece in thirds_mid_row(content):
        assert uploader.send(piece).returncode == 0
        requests, skip = tick(pause(settings))
        assert requests == [] and skip == "no new export files"
    final = uploader.remote.removesuffix(".part")
    uploader.command(f"rename {uploader.remote} {final}")
    [request], _ = tick(timedelta(seconds=1))
    assert run_request(resources, instance, request).success
    assert published_rows(resources, settings) == len(content.splitlines()) - 1


def test_stability_rule_waits_out_pauses_that_stop_inside_a_row(rig):
    """Pauses longer than the window and settle but shorter than window + grace: each piece
    ending inside a row is requested, read, found cut and left in place; nothing is published
    until the last piece, then the whole file once."""
    settings, resources, uploader, instance, tick = rig("stability")
    content = broadlog_export()
    *pieces, last = thirds_mid_row(content)
    wait = timedelta(seconds=settings.stability_window_seconds + 40)
    for piece in pieces:
        assert uploader.send(piece).returncode == 0
        assert tick(timedelta(seconds=1))[0] == []  # first listing of this version
        [request], _ = tick(wait)
        run = run_request(resources, instance, request)
        assert not run.success  # cut last line: still being written
        assert published_rows(resources, settings) is None
    assert uploader.send(last).returncode == 0  # the append still finds its file
    assert tick(timedelta(seconds=1))[0] == []
    [request], _ = tick(wait)
    assert run_request(resources, instance, request).success
    assert published_rows(resources, settings) == len(content.splitlines()) - 1


def test_stability_rule_cannot_see_a_long_pause_on_a_row_boundary(rig):
    """What the README must warn about: under `stability`, a pause longer than the window that
    ends on a row boundary looks like a complete export. The first third is published and
    archived, and the uploader's next append fails (the file was moved away). `marker` and
    `rename` are safe against this; `stability` is not."""
    settings, resources, uploader, instance, tick = rig("stability")
    content = broadlog_export()
    first, second, _ = thirds_on_row_boundaries(content)
    assert uploader.send(first).returncode == 0
    assert tick(timedelta(seconds=1))[0] == []
    [request], _ = tick(pause(settings))
    assert run_request(resources, instance, request).success
    assert published_rows(resources, settings) == len(first.splitlines()) - 1
    appended = uploader.send(second)
    assert appended.returncode != 0, "the append found its file"
    assert "No such file" in appended.stderr or "not found" in appended.stderr, appended.stderr
