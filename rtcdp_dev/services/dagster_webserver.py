"""dagster-webserver: the Dagster UI on one instance, for browser tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from rtcdp_dev.services.base import REPO_ROOT, _descendants, _pid_alive, free_port
from rtcdp_dev.services.http_child import _HttpChildServer


class DagsterWebserver(_HttpChildServer):
    """`dagster-webserver -w workspace.yaml` on 127.0.0.1 against the instance in
    `dagster_home`, without the daemon: no sensor, schedule or automation runs while a test
    looks at the pages, so they show exactly what the instance holds.

    `environment` is the child's whole environment (default: this process's), from which the
    code location picks its resources (`RTCDP_ENV`, `RTCDP_DATA_DIR`, ...); DAGSTER_HOME is
    always `dagster_home`. With `read_only` it is `dagster-webserver --read-only`, the
    reviewers' door of the deployments (docs/ui-access.md)."""

    name = "dagster-webserver"
    # The webserver answers quickly; loading the code location on two busy cores takes longer.
    startup_timeout_seconds = 120.0

    def __init__(
        self,
        dagster_home: Path,
        log_dir: Path,
        *,
        environment: Mapping[str, str] | None = None,
        port: int | None = None,
        workspace: Path = REPO_ROOT / "workspace.yaml",
        read_only: bool = False,
    ) -> None:
        self.read_only: bool = read_only
        log_dir.mkdir(parents=True, exist_ok=True)
        self.dagster_home: Path = dagster_home.resolve()
        self.workspace: Path = workspace.resolve()
        # The checkout is the working directory, as for `dagster dev` in the demo.
        self.workdir: Path = self.workspace.parent
        log_name = "dagster-webserver-readonly.log" if read_only else "dagster-webserver.log"
        self.log_path: Path = log_dir.resolve() / log_name
        self.port: int = port if port is not None else free_port()
        self.environment: dict[str, str] | None = (
            dict(environment) if environment is not None else None
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dagster_webserver",
            "-w",
            str(self.workspace),
            "-h",
            self.host,
            "-p",
            str(self.port),
            *(["--read-only"] if self.read_only else []),
        ]

    def _probe_path(self) -> str:
        return "/server_info"

    def _environment(self) -> Mapping[str, str]:
        base = self.environment if self.environment is not None else os.environ
        return {**base, "DAGSTER_HOME": str(self.dagster_home)}

    def stop(self) -> None:
        # The webserver stops its code server on SIGTERM; whatever outlives it (a code server
        # still starting) is ended here, so a test run never leaves processes behind.
        children = _descendants(self._process.pid) if self.is_running() and self._process else []
        super().stop()
        for pid in children:
            if _pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
