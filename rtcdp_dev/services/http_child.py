"""Services that run as a child process and answer HTTP (Azurite, moto)."""

from __future__ import annotations

import http.client
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from rtcdp_dev.services.base import (
    LOOPBACK,
    STARTUP_TIMEOUT_SECONDS,
    STOP_TIMEOUT_SECONDS,
    _Service,
    _tail,
    _wait_until,
)


class _HttpChildServer(_Service):
    """A service run as a child process that answers HTTP on 127.0.0.1: `start` launches it
    and waits for its first HTTP answer, `stop` terminates it (SIGTERM, then SIGKILL). The
    subclasses say how to launch it and which URL proves it is serving."""

    name: str = "service"
    host: str = LOOPBACK
    # How long `start` waits for the first HTTP answer (a code location takes longer than a
    # storage emulator).
    startup_timeout_seconds: float = STARTUP_TIMEOUT_SECONDS
    port: int
    workdir: Path
    log_path: Path
    _process: subprocess.Popen[bytes] | None
    _log_file: IO[bytes] | None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _probe_path(self) -> str:
        raise NotImplementedError

    def _environment(self) -> Mapping[str, str] | None:
        """The child's environment; None inherits this process's."""
        return None

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.is_running() and self._process else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def running(self) -> bool:
        return self.is_running()

    def start(self) -> None:
        """Start the service (again) on the same port; a no-op when running."""
        if self.is_running():
            return
        self._close_log()
        # A log file rather than pipes: nobody would drain a pipe, and an unclosed pipe makes
        # pytest warn at teardown.
        self._log_file = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self._command(),
            cwd=self.workdir,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until(
                self._answers_http,
                self.startup_timeout_seconds,
                f"{self.name} on {self.host}:{self.port}",
                self.log_text,
            )
        except BaseException:
            self.stop()
            raise

    def _answers_http(self) -> bool:
        if not self.is_running():
            assert self._process is not None
            raise RuntimeError(
                f"{self.name} exited with code {self._process.returncode} during startup\n"
                f"{self.log_text()}"
            )
        conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
        try:
            # Any HTTP answer (even an auth error) proves the service is serving.
            conn.request("GET", self._probe_path())
            conn.getresponse().read()
        except OSError:
            return False
        finally:
            conn.close()
        return True

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            # SIGTERM lets the service flush what it persists (Azurite's metadata database).
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        return _tail(self.log_path)
