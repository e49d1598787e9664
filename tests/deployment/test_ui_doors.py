"""Who may open the UI (issue 25): Debian's nginx, started from the shipped
deploy/one-host/nginx-rtcdp-ui.conf, in front of two real dagster-webservers over one instance.
Nobody gets in without credentials; reviewers see the read-only UI and cannot launch; operators
can; the webservers answer on loopback only, so the proxy is the only way in."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, RunsFilter

from rtcdp_dev.services import LOOPBACK
from tests.deployment.ui_doors import PERMISSIONS, Account, Doors, ui_doors

# A job that needs no configuration: its launch is queued (no daemon runs in the test).
CHEAP_JOB = "aep_setup_plan"


@pytest.fixture(scope="module")
def doors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Doors]:
    with ui_doors(tmp_path_factory.mktemp("ui-doors")) as served:
        yield served


def runs_of(doors: Doors, job_name: str) -> list[str]:
    with DagsterInstance.from_config(str(doors.dagster_home)) as instance:
        return [r.run_id for r in instance.get_runs(RunsFilter(job_name=job_name))]


def test_no_credentials_no_entry(doors: Doors) -> None:
    for port in (doors.reviewer_port, doors.operator_port):
        for path in ("/", "/graphql", "/server_info"):
            answer = doors.request(port, path)
            assert answer.status == 401, (port, path)
            assert answer.headers["WWW-Authenticate"].startswith("Basic realm=")
        wrong = Account(doors.operator_account.user, "not-the-password")
        assert doors.request(port, "/", wrong).status == 401
        # A GraphQL mutation without credentials never reaches a webserver.
        refused = doors.request(port, "/graphql", payload={"query": PERMISSIONS})
        assert refused.status == 401


def test_a_reviewer_sees_the_read_only_ui_and_cannot_launch(doors: Doors) -> None:
    page = doors.request(doors.reviewer_port, "/", doors.reviewer)
    assert page.status == 200 and b"<html" in page.body.lower()
    info = doors.request(doors.reviewer_port, "/server_info", doors.reviewer)
    assert info.status == 200 and "dagster_webserver_version" in info.json()

    allowed = doors.graphql(doors.reviewer_port, doors.reviewer, PERMISSIONS)
    permissions = {p["permission"]: p["value"] for p in allowed["data"]["permissions"]}
    assert permissions["launch_pipeline_execution"] is False
    assert permissions["wipe_assets"] is False

    result = doors.launch(doors.reviewer_port, doors.reviewer, CHEAP_JOB)
    assert result["__typename"] == "UnauthorizedError", result
    assert "authorization failed" in result["message"].lower()
    assert runs_of(doors, CHEAP_JOB) == []


def test_a_reviewer_cannot_use_the_operators_door(doors: Doors) -> None:
    assert doors.request(doors.operator_port, "/", doors.reviewer).status == 401
    payload = {"query": PERMISSIONS}
    assert doors.request(doors.operator_port, "/graphql", doors.reviewer, payload).status == 401
    # Each door knows its own people only: an operator's name is unknown to the reviewers' door.
    assert doors.request(doors.reviewer_port, "/", doors.operator_account).status == 401


def test_an_operator_launches_a_run(doors: Doors) -> None:
    allowed = doors.graphql(doors.operator_port, doors.operator_account, PERMISSIONS)
    permissions = {p["permission"]: p["value"] for p in allowed["data"]["permissions"]}
    assert permissions["launch_pipeline_execution"] is True

    before = runs_of(doors, CHEAP_JOB)
    result = doors.launch(doors.operator_port, doors.operator_account, CHEAP_JOB)
    assert result["__typename"] == "LaunchRunSuccess", result
    run = result["run"]
    assert run["jobName"] == CHEAP_JOB and run["status"] == "QUEUED"
    assert runs_of(doors, CHEAP_JOB) == [run["runId"], *before]


def listening(pid: int) -> set[str]:
    """The TCP addresses process `pid` listens on, as `ss -ltnp` reports them."""
    shown = subprocess.run(
        ["ss", "-H", "-ltnp"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return {line.split()[3] for line in shown.splitlines() if re.search(rf"pid={pid},", line)}


def outside_address() -> str:
    """This machine's own non-loopback address (the one a route out would use; no packet is
    sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        address = str(probe.getsockname()[0])
    assert not address.startswith("127."), address
    return address


def test_the_webservers_listen_on_loopback_only(doors: Doors) -> None:
    for webserver in (doors.readonly, doors.operator):
        assert webserver.pid is not None
        assert listening(webserver.pid) == {f"{LOOPBACK}:{webserver.port}"}
        command = Path(f"/proc/{webserver.pid}/cmdline").read_bytes().split(b"\0")
        assert command[command.index(b"-h") + 1] == LOOPBACK.encode()
    assert b"--read-only" in Path(f"/proc/{doors.readonly.pid}/cmdline").read_bytes()

    # From this machine's own network address the webservers cannot be reached at all.
    address = outside_address()
    for webserver in (doors.readonly, doors.operator):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, webserver.port), timeout=5).close()
