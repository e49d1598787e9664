"""The two doors of the deployments on this machine: two real dagster-webservers (one
`--read-only`) over a temporary instance, and Debian's nginx in front of them with the shipped
deploy/one-host/nginx-rtcdp-ui.conf, rendered onto free loopback ports and temporary secrets.
tests/deployment/test_ui_doors.py knocks on them."""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtcdp_dev.services import LOOPBACK, REPO_ROOT, free_port, require_binary
from rtcdp_dev.services.dagster_webserver import DagsterWebserver
from rtcdp_dev.services.nginx import OPENSSL_BINARY, NginxServer

SHIPPED_PROXY = REPO_ROOT / "deploy" / "one-host" / "nginx-rtcdp-ui.conf"
# What the shipped file says for production, and what the test puts in its place.
READONLY_UPSTREAM = "server 127.0.0.1:3001;"
OPERATOR_UPSTREAM = "server 127.0.0.1:3000;"
REVIEWER_LISTEN = "listen 8443 ssl;"
OPERATOR_LISTEN = "listen 9443 ssl;"
SECRETS_DIR = "/etc/rtcdp/ui/"

# Queued like production (deploy/*/dagster.yaml): a launched run is stored and waits for the
# daemon, which the test does not start, so nothing runs on the shared cores.
INSTANCE_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
telemetry:
  enabled: false
"""

LAUNCH_RUN = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId jobName status } }
    ... on Error { message }
  }
}
"""
PERMISSIONS = "{ permissions { permission value } }"


@dataclass(frozen=True)
class Account:
    user: str
    password: str

    def header(self) -> str:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return f"Basic {token}"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Doors:
    dagster_home: Path
    readonly: DagsterWebserver
    operator: DagsterWebserver
    proxy: NginxServer
    reviewer_port: int
    operator_port: int
    certificate: Path
    reviewer: Account
    operator_account: Account

    def request(
        self,
        port: int,
        path: str,
        account: Account | None = None,
        payload: dict[str, Any] | None = None,
    ) -> Answer:
        """One HTTPS request to the proxy, verified against the test's own certificate."""
        context = ssl.create_default_context(cafile=str(self.certificate))
        connection = http.client.HTTPSConnection(LOOPBACK, port, timeout=60, context=context)
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        if account is not None:
            headers["Authorization"] = account.header()
        body = json.dumps(payload).encode() if payload is not None else None
        try:
            connection.request("POST" if body else "GET", path, body=body, headers=headers)
            response = connection.getresponse()
            return Answer(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()

    def graphql(self, port: int, account: Account, query: str, **variables: Any) -> Any:
        answer = self.request(port, "/graphql", account, {"query": query, "variables": variables})
        assert answer.status == 200, (answer.status, answer.body[:500])
        return answer.json()

    def launch(self, port: int, account: Account, job_name: str) -> dict[str, Any]:
        params = {
            "selector": {
                "repositoryLocationName": "rtcdp",
                "repositoryName": "__repository__",
                "jobName": job_name,
            },
            "runConfigData": {},
        }
        data = self.graphql(port, account, LAUNCH_RUN, executionParams=params)
        assert "errors" not in data, data
        return dict(data["data"]["launchRun"])


def openssl(*args: str, stdin: str | None = None) -> str:
    binary = require_binary(OPENSSL_BINARY, "openssl (Debian package openssl)")
    done = subprocess.run(
        [str(binary), *args], input=stdin, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def write_htpasswd(path: Path, accounts: list[Account]) -> None:
    """An htpasswd file as the guide makes it (`openssl passwd -apr1`), mode 0640."""
    lines = [
        f"{a.user}:{openssl('passwd', '-apr1', '-stdin', stdin=a.password).strip()}\n"
        for a in accounts
    ]
    path.write_text("".join(lines))
    path.chmod(0o640)


def write_certificate(folder: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 (tls.crt, tls.key), as a test stands in for the
    organisation's."""
    openssl(
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
        *("-subj", "/CN=rtcdp-ui-test", "-addext", "subjectAltName=IP:127.0.0.1"),
        *("-keyout", str(folder / "tls.key"), "-out", str(folder / "tls.crt")),
    )
    (folder / "tls.key").chmod(0o600)
    return folder / "tls.crt"


def render_proxy_config(
    shipped: str,
    *,
    readonly_port: int,
    operator_port: int,
    reviewer_door: int,
    operator_door: int,
    secrets_dir: Path,
) -> str:
    """The shipped file with the test's ports and secrets folder; every production value it
    replaces must be there, so a changed template cannot pass unnoticed."""
    replacements = {
        READONLY_UPSTREAM: f"server {LOOPBACK}:{readonly_port};",
        OPERATOR_UPSTREAM: f"server {LOOPBACK}:{operator_port};",
        REVIEWER_LISTEN: f"listen {LOOPBACK}:{reviewer_door} ssl;",
        OPERATOR_LISTEN: f"listen {LOOPBACK}:{operator_door} ssl;",
        SECRETS_DIR: f"{secrets_dir}/",
    }
    for production, local in replacements.items():
        assert production in shipped, f"{SHIPPED_PROXY.name} no longer has {production!r}"
        shipped = shipped.replace(production, local)
    return shipped


def embedded_environment(data_dir: Path) -> dict[str, str]:
    """This process's environment without its RTCDP_/DAGSTER_ settings, in embedded mode."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RTCDP_", "DAGSTER_"))}
    env.update(RTCDP_ENV="embedded", RTCDP_DATA_DIR=str(data_dir))
    return env


@contextmanager
def ui_doors(workdir: Path) -> Iterator[Doors]:
    home = workdir / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    secrets = workdir / "secrets"
    secrets.mkdir(mode=0o750)
    reviewer = Account("rita.reviewer", "reviewer-pass-1")
    operator_account = Account("otto.operator", "operator-pass-1")
    write_htpasswd(secrets / "reviewers.htpasswd", [reviewer])
    write_htpasswd(secrets / "operators.htpasswd", [operator_account])
    certificate = write_certificate(secrets)
    environment = embedded_environment(workdir / "data")
    logs = workdir / "logs"
    with ExitStack() as stack:
        readonly = stack.enter_context(
            DagsterWebserver(home, logs, environment=environment, read_only=True)
        )
        operator = stack.enter_context(DagsterWebserver(home, logs, environment=environment))
        reviewer_door, operator_door = free_port(), free_port()
        site = workdir / "rtcdp-ui.conf"
        site.write_text(
            render_proxy_config(
                SHIPPED_PROXY.read_text(),
                readonly_port=readonly.port,
                operator_port=operator.port,
                reviewer_door=reviewer_door,
                operator_door=operator_door,
                secrets_dir=secrets,
            )
        )
        proxy = NginxServer(site, workdir / "nginx", probe_port=reviewer_door)
        proxy.check_config()
        stack.enter_context(proxy)
        yield Doors(
            dagster_home=home,
            readonly=readonly,
            operator=operator,
            proxy=proxy,
            reviewer_port=reviewer_door,
            operator_port=operator_door,
            certificate=certificate,
            reviewer=reviewer,
            operator_account=operator_account,
        )
