"""nginx from Debian: the authenticating proxy in front of the two Dagster webservers
(deploy/one-host/nginx-rtcdp-ui.conf), run in the foreground on a configuration of its own."""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
from pathlib import Path
from typing import IO

from rtcdp_dev.services.base import LOOPBACK, require_binary
from rtcdp_dev.services.http_child import _HttpChildServer

NGINX_BINARY = Path("/usr/sbin/nginx")
OPENSSL_BINARY = Path("/usr/bin/openssl")

# The main configuration around the shipped http-context file: no daemon, every file (pid,
# logs, temporary bodies) under the work folder, never the package's /etc/nginx or /var/log.
MAIN_CONFIG = """\
daemon off;
master_process on;
worker_processes 1;
{user}pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;
events {{
    worker_connections 64;
}}
http {{
    access_log {workdir}/access.log;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    include {site};
}}
"""


class NginxServer(_HttpChildServer):
    """The real nginx binary serving `site` (an http-context file such as the shipped
    deploy/one-host/nginx-rtcdp-ui.conf, rendered for a test), in the foreground. `probe_port`
    is one of the ports the site listens on; `start` returns once it answers HTTPS there (any
    status, a 401 included)."""

    name = "nginx"

    def __init__(self, site: Path, workdir: Path, *, probe_port: int) -> None:
        self.binary: Path = require_binary(NGINX_BINARY, "nginx (Debian package nginx)")
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir: Path = workdir.resolve()
        self.site: Path = site.resolve()
        self.port: int = probe_port
        self.log_path: Path = self.workdir / "nginx.log"
        self.config_path: Path = self.workdir / "nginx.conf"
        self._process = None
        self._log_file: IO[bytes] | None = None

    def _write_config(self) -> None:
        # As root nginx would drop its workers to `nobody`, who cannot read a test's 0700
        # temporary folder; in production Debian's www-data reads the 0640 secret files.
        user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
        self.config_path.write_text(
            MAIN_CONFIG.format(user=user, workdir=self.workdir, site=self.site)
        )

    def check_config(self) -> None:
        """`nginx -t` on the configuration: raises with nginx's own words when it is refused."""
        self._write_config()
        checked = subprocess.run(
            [*self._base_command(), "-t"],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t refused {self.site}:\n{checked.stderr}")

    def _base_command(self) -> list[str]:
        error_log = str(self.workdir / "error.log")
        return [
            str(self.binary),
            *("-p", str(self.workdir), "-c", str(self.config_path), "-e", error_log),
        ]

    def start(self) -> None:
        self._write_config()
        super().start()

    def _command(self) -> list[str]:
        return self._base_command()

    def _probe_path(self) -> str:
        return "/"

    def _answers_http(self) -> bool:
        # The doors speak TLS only; a TCP connection that accepts proves nginx is listening.
        if not self.is_running():
            return super()._answers_http()  # raises with the log
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=2):
                return True
        except OSError:
            return False
