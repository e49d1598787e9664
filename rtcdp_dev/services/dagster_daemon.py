"""dagster-daemon: the sensors, automation, run queue and run monitoring of one instance, as a
real process, for the one-host deployment test."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from rtcdp_dev.services.base import REPO_ROOT, _descendants, _pid_alive, _Service, _tail

# The daemon finishes its current iterations and stops its code server on SIGINT; a run still
# in progress is a process of its own and is ended after this too.
DAEMON_STOP_TIMEOUT_SECONDS = 60.0


class DagsterDaemon(_Service):
    """`dagster-daemon run -w workspace.yaml` against the instance in `dagster_home`, as the
    one-host systemd unit starts it.

    `environment` is the child's whole environment (the env file of a deployment), from which
    the code location picks its resources and which every run inherits; DAGSTER_HOME is always
    `dagster_home`. The daemon answers no port: `start` returns once the process runs, and the
    caller watches its effects (ticks, runs)."""

    name = "dagster-daemon"

    def __init__(
        self,
        dagster_home: Path,
        log_dir: Path,
        *,
        environment: Mapping[str, str],
        workspace: Path = REPO_ROOT / "workspace.yaml",
    ) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.dagster_home: Path = dagster_home.resolve()
        self.workspace: Path = workspace.resolve()
        self.log_path: Path = log_dir.resolve() / "dagster-daemon.log"
        self.environment: dict[str, str] = dict(environment)
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    def _command(self) -> list[str]:
        # The interpreter's own environment holds the dagster-daemon entry point.
        return [
            str(Path(sys.executable).parent / "dagster-daemon"),
            "run",
            "-w",
            str(self.workspace),
        ]

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.is_running() and self._process else None

    def start(self) -> None:
        """Start the daemon; a no-op when running."""
        if self.is_running():
            return
        self._close_log()
        self._log_file = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self._command(),
            # The checkout is the working directory, as in the systemd unit.
            cwd=self.workspace.parent,
            env={**self.environment, "DAGSTER_HOME": str(self.dagster_home)},
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        """SIGINT (the daemon's clean shutdown), then SIGKILL for whatever outlives it: the
        code server, a run process."""
        process = self._process
        if process is not None and process.poll() is None:
            children = _descendants(process.pid)
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=DAEMON_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=DAEMON_STOP_TIMEOUT_SECONDS)
            for pid in children:
                if _pid_alive(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        self._close_log()

    def exit_code(self) -> int | None:
        """The exit code once the process has ended (None while it runs or before start)."""
        return None if self._process is None else self._process.poll()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        return _tail(self.log_path)

    def __repr__(self) -> str:
        return f"DagsterDaemon(home={self.dagster_home}, pid={self.pid})"
