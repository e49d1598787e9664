"""The transfer process: the child's side (`child_main`) and the parent's reader of its pipe."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from resources.errors import DropZoneAccessDenied, DropZoneUnavailable
from resources.sftp_transfer.connection import (
    FileChangedWhileReading,
    ReadAbandoned,
    SftpSession,
    SftpSettings,
)
from resources.sftp_transfer.resuming_reader import ReadAhead, ResumingReader

# resources/sftp_child.py, beside this package.
CHILD_SCRIPT = Path(__file__).resolve().parents[1] / "sftp_child.py"

# Exception classes the status pipe can name, most specific first; the parent raises the same
# class with the same message as an in-process read would.
_ERROR_KINDS: dict[str, type[Exception]] = {
    "file_changed": FileChangedWhileReading,
    "read_abandoned": ReadAbandoned,
    "access_denied": DropZoneAccessDenied,
    "unavailable": DropZoneUnavailable,
    "not_found": FileNotFoundError,
    "permission": PermissionError,
}

# Only what Python and the locale need; the run process's environment holds secrets (the
# passphrase itself is one of its variables in production).
_CHILD_ENV_NAMES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "PYTHONPATH", "SYSTEMROOT")
# Pipes above this need privileges (Linux's default /proc/sys/fs/pipe-max-size).
MAX_PIPE_BYTES = 1 << 20
_STDERR_TAIL_BYTES = 2000


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "[redacted]") if secret else text


def _error_record(exc: BaseException, secret: str | None) -> dict[str, Any]:
    for kind, cls in _ERROR_KINDS.items():
        if isinstance(exc, cls):
            if isinstance(exc, OSError):
                message = exc.strerror if exc.strerror is not None else str(exc)
                return {
                    "event": "error",
                    "kind": kind,
                    "message": _scrub(message, secret),
                    "errno": exc.errno,
                }
            return {"event": "error", "kind": kind, "message": _scrub(str(exc), secret)}
    return {
        "event": "error",
        "kind": "unexpected",
        "message": _scrub(f"{type(exc).__name__}: {exc}", secret),
    }


class _ParentGone(Exception):
    """The parent closed its end of the data pipe (it stopped reading, or it died)."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except BrokenPipeError:
        raise _ParentGone from None


def _exit_when_parent_goes() -> None:
    # stdin stays open in the parent for the whole read; its end of file means the parent
    # closed the reader or died, and nobody will read what this process fetches. Raw reads:
    # a daemon thread holding sys.stdin's lock would abort the interpreter's shutdown.
    with contextlib.suppress(OSError):
        while os.read(0, 4096):
            pass
    os._exit(0)


def child_main(argv: list[str]) -> int:
    """The transfer process: stream one file to stdout, report on the status pipe."""
    status = open(int(argv[0]), "wb", buffering=0)  # noqa: PTH123, SIM115 (an inherited fd)
    # Anything a library prints must not end up among the file's bytes.
    data_fd = os.dup(1)
    os.dup2(2, 1)
    request = json.loads(sys.stdin.buffer.readline(1 << 20))
    settings = SftpSettings(**request["settings"])
    secret = settings.private_key_passphrase
    threading.Thread(target=_exit_when_parent_goes, name="parent-watch", daemon=True).start()

    def send(record: dict[str, Any]) -> None:
        with contextlib.suppress(BrokenPipeError):
            status.write(json.dumps(record).encode() + b"\n")

    session = SftpSession(settings)
    sent = 0
    try:
        reader = ResumingReader(session.session, session.close, request["remote"])
        send({"event": "open"})
        # paramiko only takes data off the connection inside read(): while this process waits
        # for room in the pipe, a thread keeps downloading, `read_ahead` chunks ahead.
        ahead = ReadAhead(reader, request["chunk_bytes"], request["read_ahead"])
        try:
            while data := ahead.read(request["chunk_bytes"]):
                _write_all(data_fd, data)
                sent += len(data)
        finally:
            ahead.close()
    except _ParentGone:
        return 0
    except BaseException as exc:  # reported to the parent, which raises it
        send(_error_record(exc, secret))
        return 1
    finally:
        session.close()
    os.close(data_fd)
    send({"event": "done", "bytes": sent})
    return 0


def _child_env(secret: str | None) -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if name in _CHILD_ENV_NAMES and not (secret and secret in value)
    }


def _set_pipe_size(fd: int, size: int) -> None:
    import fcntl

    # Best effort: the default pipe (64 KiB) works, a larger one smooths the hand-over.
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)


class ChildProcessReader(io.RawIOBase):
    """Reads a remote file that a child process downloads and writes into a pipe.

    Raises what an in-process `ResumingReader` raises, at the same moments: opening the file
    (missing file, refused host key or login) fails in the constructor; a download broken for
    good fails the read that reaches the point it broke. Closing it early (the parser failed)
    terminates and reaps the child.
    """

    def __init__(
        self, settings: SftpSettings, remote: str, chunk_bytes: int, read_ahead: int
    ) -> None:
        self._remote = remote
        self._secret = settings.private_key_passphrase
        self._received = 0
        self._error: BaseException | None = None
        self._finished = False
        self._proc: subprocess.Popen[bytes] | None = None
        data_r, data_w = os.pipe()
        status_r, status_w = os.pipe()
        _set_pipe_size(data_w, min(chunk_bytes * read_ahead, MAX_PIPE_BYTES))
        self._data_fd = data_r
        self._status = open(status_r, "rb")  # noqa: PTH123, SIM115 (closed in close())
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        try:
            self._proc = subprocess.Popen(  # noqa: S603 (our interpreter, our script)
                [sys.executable, "-P", str(CHILD_SCRIPT), str(status_w)],
                stdin=subprocess.PIPE,
                stdout=data_w,
                stderr=self._stderr,
                pass_fds=(status_w,),
                env=_child_env(self._secret),
            )
        except BaseException:
            self.close()
            raise
        finally:
            # The child holds its own copies; the parent's would hide the child's end of file.
            os.close(data_w)
            os.close(status_w)
        request = {
            "settings": dataclasses.asdict(settings),
            "remote": remote,
            "chunk_bytes": chunk_bytes,
            "read_ahead": read_ahead,
        }
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
            self._proc.stdin.flush()
            opened = self._next_status()
            if opened.get("event") != "open":
                raise self._failure(opened)
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def readable(self) -> bool:
        return True

    def _next_status(self) -> dict[str, Any]:
        line = self._status.readline(1 << 16)
        if not line:
            return {}
        record: dict[str, Any] = json.loads(line)
        return record

    def _failure(self, record: dict[str, Any]) -> BaseException:
        """The exception a status record (or its absence) stands for."""
        if record.get("event") == "error":
            kind, message = record.get("kind"), str(record.get("message", ""))
            cls = _ERROR_KINDS.get(str(kind))
            if cls is not None and issubclass(cls, OSError):
                return cls(record.get("errno"), message)
            if cls is not None:
                return cls(message)
            return RuntimeError(f"SFTP transfer process failed reading {self._remote}: {message}")
        code = self._reap()
        return DropZoneUnavailable(
            f"SFTP transfer process reading {self._remote} ended (exit code {code}) without "
            f"reporting; its last output: {self._stderr_tail() or '(none)'}"
        )

    def _reap(self, grace_seconds: float = 5) -> int:
        """Wait for the child to exit, killing it if it does not within the grace period."""
        assert self._proc is not None
        try:
            return self._proc.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return self._proc.wait()

    def _stderr_tail(self) -> str:
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - _STDERR_TAIL_BYTES))
        text = self._stderr.read().decode(errors="replace").strip()
        return _scrub(text, self._secret)

    def _end_of_stream(self) -> None:
        """The data pipe is at its end: the child finished, failed, or died."""
        self._finished = True
        record = self._next_status()
        if record.get("event") == "done" and record.get("bytes") == self._received:
            self._reap()
            return
        if record.get("event") == "done":
            record = {
                "event": "error",
                "kind": "unavailable",
                "message": f"SFTP transfer of {self._remote} delivered {self._received} of "
                f"{record.get('bytes')} bytes",
            }
        self._error = self._failure(record)
        raise self._error

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if self._error is not None:
            raise self._error
        if self._finished or size == 0:
            return b""
        data = os.read(self._data_fd, size)
        if not data:
            self._end_of_stream()
        self._received += len(data)
        return data

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        # Closing the pipes first: a child blocked writing gets EPIPE, its watcher end of file.
        with contextlib.suppress(OSError):
            os.close(self._data_fd)
        if self._proc is not None:
            with contextlib.suppress(OSError):
                if self._proc.stdin is not None:
                    self._proc.stdin.close()
            if self._proc.poll() is None:
                self._proc.terminate()
            self._reap()
        self._status.close()
        self._stderr.close()
        super().close()
