"""SFTP connection and resuming downloads, free of dagster and pydantic; the transfer process.

paramiko handles every SSH packet in Python while holding the GIL, so a download in a thread of
the run process (`ReadAhead`, the default) and the parser in its main thread take turns for it;
the download's receive path (`_ReceiveQueue`) is built to copy as little as it can while it
holds it. With `read_in_child_process`, `SftpDropZone.open_read` streams the file from a child
process instead (`ChildProcessReader`): the child runs the download (`ResumingReader`) with its
own GIL and writes the bytes into a pipe the parser reads. The child imports only this module,
`resources.errors`, paramiko and tenacity (about 0.2 s of start-up); the `resources` package
`__init__` imports dagster (1.3 s), which is why the child is launched through
`resources/sftp_child.py` instead of `python -m`.

Protocol between the two processes:

- stdin (parent -> child): one JSON line with the connection settings, the passphrase included
  (never argv or the environment: both are readable in /proc by the same user), the remote path
  and the read size. The parent keeps stdin open; end of file tells the child its parent is gone.
- stdout (child -> parent): the file's bytes, nothing else. Pipe backpressure bounds memory.
- status pipe (child -> parent, its fd number in argv): JSON lines, `{"event": "open"}` once the
  file is open, then `{"event": "done", "bytes": n}` or `{"event": "error", "kind": ...}`. The
  parent maps the kind back to the exception class the in-process read raises, same message.
- stderr: a temporary file, read (scrubbed, last 2 kB) only when the child dies without a
  status record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from queue import Empty, Full, Queue
from typing import Any

import paramiko
from paramiko.buffered_pipe import BufferedPipe, PipeTimeout
from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY, SFTPError
from tenacity import (
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from resources.byte_queue import ByteQueue
from resources.errors import DropZoneAccessDenied, DropZoneUnavailable

# Errors that say "the network or the server hiccuped": retry, then let a sensor skip the tick.
_TRANSIENT = (socket.timeout, TimeoutError, ConnectionError, EOFError, OSError)


def classify(exc: BaseException) -> DropZoneUnavailable | DropZoneAccessDenied | None:
    """Tell a transient failure from one a person must fix.

    A rotated key or a changed host key must not look like "no new files", so those are
    `DropZoneAccessDenied`; network trouble is `DropZoneUnavailable`.
    """
    if isinstance(exc, paramiko.BadHostKeyException):
        return DropZoneAccessDenied(
            f"SFTP host key mismatch for {exc.hostname}: the server presented a "
            f"{exc.key.get_name()} key that differs from the known_hosts entry; refusing to "
            "connect (possible man-in-the-middle or an unannounced key rotation)"
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return DropZoneAccessDenied(f"SFTP authentication failed: {exc}")
    if isinstance(exc, paramiko.SSHException):
        text = str(exc)
        if "known_hosts" in text:
            return DropZoneAccessDenied(
                f"SFTP host key refused: {text}. Add the server's key to the configured "
                "known_hosts file after verifying it out of band (keys are never auto-added)"
            )
        return DropZoneUnavailable(f"SFTP session error: {text}")
    if isinstance(exc, _TRANSIENT):
        return DropZoneUnavailable(f"SFTP server unreachable: {type(exc).__name__}: {exc}")
    return None


def reraise_classified(exc: BaseException) -> None:
    classified = classify(exc)
    if classified is not None:
        raise classified from exc


class ReadAbandoned(DropZoneUnavailable):
    """A broken download that must not be resumed again: the run fails, a re-run starts over."""


class FileChangedWhileReading(ReadAbandoned):
    """The file got a new size or mtime between a broken read and its resumption."""


# A connection that keeps dropping still makes progress on each resume; this bounds how long
# a run may crawl through a flaky link before it fails with a clear error.
MAX_RESUMES_PER_FILE = 5


@dataclasses.dataclass(frozen=True)
class SftpSettings:
    """What a connection needs; `SftpDropZone` fields without dagster, sendable to the child."""

    host: str
    port: int
    username: str
    private_key_path: str
    known_hosts_path: str
    connect_timeout_seconds: float
    private_key_passphrase: str | None = dataclasses.field(default=None, repr=False)


# AES-GCM first: one AEAD pass per packet instead of AES-CTR plus a separate HMAC, about a
# tenth less CPU for paramiko's packet handling (bench/README.md); then AES-CTR with the MACs
# paramiko prefers. CBC and 3DES are left out: no current server needs them.
_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
# paramiko's per-packet work is Python: fewer, larger packets cost less CPU per byte. The
# channel accepts packets of up to 256 KiB (OpenSSH's own limit); SFTP reads of that size
# are asked for only when the server says it serves them (`_read_request_bytes`).
_MAX_PACKET_BYTES = 256 * 1024
_DEFAULT_READ_REQUEST_BYTES = 32 * 1024
_MAX_READ_REQUEST_BYTES = 255 * 1024
# paramiko acknowledges received data (a window-adjust packet, written to the socket by the
# reading thread) after each tenth of the window: 2 MiB, paramiko's default, meant ~850 such
# writes per 177 MB file. The window also bounds what the channel buffers: 8 MiB per session.
_WINDOW_BYTES = 8 * 1024 * 1024


class _ReceiveQueue(BufferedPipe):
    """The SFTP channel's receive buffer, keeping each packet's bytes as they arrived.

    paramiko's `BufferedPipe` appends every packet to one array and, on each read, copies the
    bytes out and shifts the rest down: megabytes moved for a 4-byte read when the window is
    full. Its reads also return whatever has arrived, so paramiko's SFTP layer glues a 255 KiB
    answer together from eight 32 KiB packets, copying it again each time. Here a read waits
    until it can return everything it asks for (up to `fill_bytes`; the SFTP layer always
    wants exactly that many) and joins just those bytes once. All of it runs holding the GIL,
    next to the parser.
    """

    def __init__(self, fill_bytes: int) -> None:
        super().__init__()
        self._fill_bytes = fill_bytes
        self._bytes = ByteQueue()

    def feed(self, data: bytes | str) -> None:
        chunk = data.encode() if isinstance(data, str) else bytes(data)
        with self._lock:
            if self._event is not None:
                self._event.set()
            self._bytes.append(chunk)
            self._cv.notify_all()

    def read_ready(self) -> bool:
        with self._lock:
            return len(self._bytes) > 0

    def read(self, nbytes: int, timeout: float | None = None) -> bytes:
        want = min(nbytes, self._fill_bytes)
        with self._lock:
            if not self._bytes and not self._closed and timeout == 0.0:
                raise PipeTimeout()
            deadline = None if timeout is None else time.monotonic() + timeout
            while len(self._bytes) < want and not self._closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    if not self._bytes:
                        raise PipeTimeout()
                    break  # what there is, as BufferedPipe would
                self._cv.wait(left)
            out = self._bytes.take(nbytes)
            if not self._bytes and self._event is not None and not self._closed:
                self._event.clear()
            return out

    def empty(self) -> bytes:
        with self._lock:
            out = self._bytes.take(len(self._bytes))
            if self._event is not None and not self._closed:
                self._event.clear()
            return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._bytes)


def _open_sftp(transport: paramiko.Transport) -> paramiko.SFTPClient:
    """`SFTPClient.from_transport`, with the larger window and the leaner receive buffer."""
    channel = transport.open_session(window_size=_WINDOW_BYTES, max_packet_size=_MAX_PACKET_BYTES)
    # Before any data can arrive: the subsystem request below is the first the server answers.
    channel.in_buffer = _ReceiveQueue(fill_bytes=_WINDOW_BYTES // 4)
    channel.invoke_subsystem("sftp")
    return paramiko.SFTPClient(channel)


def _transport(sock: Any, **kwargs: Any) -> paramiko.Transport:
    transport = paramiko.Transport(sock, **kwargs)
    options = transport.get_security_options()
    options.ciphers = tuple(c for c in _CIPHERS if c in options.ciphers)
    return transport


def _read_request_bytes(sftp: paramiko.SFTPClient) -> int:
    """The largest read the server serves whole, from OpenSSH's `limits@openssh.com`.

    A server that answers large reads short would make paramiko's prefetch wait for the rest
    of the file and read synchronously from there on, so without the extension reads stay at
    the 32 KiB every server serves.
    """
    try:
        # paramiko has no call for it; posix_rename goes through the same private request.
        kind, msg = sftp._request(CMD_EXTENDED, "limits@openssh.com")
    except (OSError, SFTPError):
        return _DEFAULT_READ_REQUEST_BYTES
    if kind != CMD_EXTENDED_REPLY:
        return _DEFAULT_READ_REQUEST_BYTES
    msg.get_int64()  # max packet length
    max_read = msg.get_int64()  # 0: not stated
    if max_read < _DEFAULT_READ_REQUEST_BYTES:
        return _DEFAULT_READ_REQUEST_BYTES
    return min(max_read, _MAX_READ_REQUEST_BYTES)


def connect(settings: SftpSettings) -> tuple[paramiko.SSHClient, paramiko.SFTPClient]:
    """A new SFTP session; the server's key must already be in the project's known_hosts."""
    client = paramiko.SSHClient()
    known_hosts = Path(settings.known_hosts_path)
    if not known_hosts.is_file():
        raise DropZoneAccessDenied(f"known_hosts file {known_hosts} does not exist")
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        pkey = paramiko.PKey.from_path(
            settings.private_key_path,
            password=(settings.private_key_passphrase or "").encode() or None,
        )
    except (OSError, ValueError, TypeError, paramiko.SSHException) as exc:
        # Only the type: the message of a failed decryption must not echo key material.
        # A wrong passphrase surfaces as ValueError ("broken checksum") from cryptography.
        raise DropZoneAccessDenied(
            f"SFTP private key {settings.private_key_path} cannot be loaded "
            f"({type(exc).__name__}): wrong passphrase, unsupported or damaged key file"
        ) from None
    try:
        client.connect(
            settings.host,
            port=settings.port,
            username=settings.username,
            pkey=pkey,
            look_for_keys=False,
            allow_agent=False,
            timeout=settings.connect_timeout_seconds,
            banner_timeout=settings.connect_timeout_seconds,
            auth_timeout=settings.connect_timeout_seconds,
            transport_factory=_transport,
        )
        transport = client.get_transport()
        assert transport is not None
        sftp = _open_sftp(transport)
    except Exception as exc:
        client.close()
        reraise_classified(exc)
        raise
    return client, sftp


@contextmanager
def classified_session(
    connect: Callable[[], paramiko.SFTPClient], reset: Callable[[], None]
) -> Iterator[paramiko.SFTPClient]:
    """The session from `connect`; errors inside become drop-zone errors and drop the session."""
    try:
        yield connect()
    except (DropZoneAccessDenied, DropZoneUnavailable):
        raise
    except FileNotFoundError:
        raise
    except Exception as exc:
        # A broken session must not be reused by the next call.
        reset()
        reraise_classified(exc)
        raise


class SftpSession:
    """One SSH connection, reused while it is alive and opened again after it broke."""

    def __init__(self, settings: SftpSettings) -> None:
        self.settings = settings
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def connect(self) -> paramiko.SFTPClient:
        if self._sftp is not None and self._client is not None:
            transport = self._client.get_transport()
            if transport is not None and transport.is_active():
                return self._sftp
            self.close()
        self._client, self._sftp = connect(self.settings)
        return self._sftp

    def close(self) -> None:
        sftp, client = self._sftp, self._client
        self._sftp = None
        self._client = None
        # Closing a session whose connection just dropped can itself raise (EOFError from
        # paramiko); that must not hide the error that made us close it.
        for resource in (sftp, client):
            if resource is not None:
                with contextlib.suppress(Exception):
                    resource.close()

    def session(self) -> AbstractContextManager[paramiko.SFTPClient]:
        return classified_session(self.connect, self.close)


# A transfer's own failures; a parser error raised by the caller while reading keeps its type.
# OSError covers paramiko's "Socket is closed", raised when a read past the data the channel
# had buffered must send a request on a connection that has dropped.
_STREAM_ERRORS = (paramiko.SSHException, EOFError, OSError)

_retry_resume = Retrying(
    retry=retry_if_exception_type(DropZoneUnavailable) & retry_if_not_exception_type(ReadAbandoned),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.2, max=2),
    reraise=True,
)


class ResumingReader(io.RawIOBase):
    """Streams one remote file; a read broken mid-stream resumes at the same offset.

    A dropped connection costs a reconnect and the bytes in flight, not the download so far;
    the resumed read checks that the file is still the same version (size and mtime), so it
    can never splice two versions together. Retries use the same backoff as the other calls.
    `session` yields a live SFTP session; `reset` drops it so the next one reconnects.
    """

    def __init__(
        self,
        session: Callable[[], AbstractContextManager[paramiko.SFTPClient]],
        reset: Callable[[], None],
        remote: str,
    ) -> None:
        self._session = session
        self._reset = reset
        self._remote = remote
        self._offset = 0
        self._version: tuple[int | None, int | None] | None = None
        self._fh: paramiko.SFTPFile | None = None
        self._retry = _retry_resume.copy()
        self.resumes = 0
        self._retry(self._open)

    def readable(self) -> bool:
        return True

    def _open(self) -> None:
        with self._session() as sftp:
            attrs = sftp.stat(self._remote)
            version = (attrs.st_size, attrs.st_mtime)
            if self._version is not None and version != self._version:
                raise FileChangedWhileReading(
                    f"{self._remote} changed while it was being read "
                    f"(size, mtime {self._version} -> {version}); it will be read again whole"
                )
            self._version = version
            fh = sftp.open(self._remote, "rb")
            fh.MAX_REQUEST_SIZE = _read_request_bytes(sftp)
            fh.seek(self._offset)
            # Prefetch pipelines the reads; without it paramiko runs at a few MB/s.
            fh.prefetch(attrs.st_size)
        self._fh = fh

    def _read_once(self, size: int) -> bytes:
        if self._fh is None:
            if self.resumes >= MAX_RESUMES_PER_FILE:
                raise ReadAbandoned(
                    f"SFTP connection dropped {self.resumes + 1} times while reading "
                    f"{self._remote}; giving up after {self._offset} bytes"
                )
            self.resumes += 1
            self._open()
        assert self._fh is not None
        try:
            if size < 0:
                return self._fh.read()
            # One prefetched answer per call: paramiko then hands over its bytes object as is,
            # where a larger read would glue answers together, copying all of it each time.
            return self._fh.read(min(size, self._fh.MAX_REQUEST_SIZE))
        except _STREAM_ERRORS as exc:
            self._drop()
            classified = classify(exc)
            if isinstance(classified, DropZoneUnavailable):
                raise DropZoneUnavailable(
                    f"SFTP connection dropped while reading {self._remote} at byte "
                    f"{self._offset}: {classified}"
                ) from exc
            reraise_classified(exc)
            raise

    def _drop(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(Exception):
                fh.close()
        self._reset()  # a broken session must not be reused

    def read(self, size: int | None = -1) -> bytes:
        data: bytes = self._retry(self._read_once, -1 if size is None else size)
        self._offset += len(data)
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(Exception):
                self._fh.close()
            self._fh = None
        super().close()


class ReadAhead(io.RawIOBase):
    """Reads an SFTP file in a background thread, a bounded number of chunks ahead.

    paramiko only takes the server's answers off the connection inside `read()`, so while the
    consumer is busy (the transfer process waiting for room in its pipe; the parser, when
    `open_read` reads in-process) nothing arrives. The thread keeps reading meanwhile. In the
    run process the overlap is partial, since paramiko's packet handling is Python holding the
    GIL (figures in bench/README.md). The queue bound keeps memory at `depth` chunks of about
    `chunk_bytes`, whatever the file size. A chunk is the list of what the reads returned, and
    a read that takes a whole piece gets it without a copy.
    """

    def __init__(self, fh: io.RawIOBase, chunk_bytes: int, depth: int) -> None:
        self._fh = fh
        self._chunk_bytes = chunk_bytes
        self._queue: Queue[list[bytes] | BaseException] = Queue(maxsize=depth)
        self._stop = threading.Event()
        self._pieces = ByteQueue()
        self._eof = False
        self._thread = threading.Thread(target=self._fetch, name="sftp-read-ahead", daemon=True)
        self._thread.start()

    def _fetch(self) -> None:
        chunk: list[bytes] = []
        try:
            while not self._stop.is_set():
                size = 0
                while size < self._chunk_bytes:
                    data = self._fh.read(self._chunk_bytes - size)
                    if not data:
                        break
                    chunk.append(data)
                    size += len(data)
                done, chunk = chunk, []
                self._put(done)
                if not done:
                    return
        except BaseException as exc:  # handed to the reader, which re-raises it
            if chunk:  # the bytes read before the error come first
                self._put(chunk)
            self._put(exc)

    def _put(self, item: list[bytes] | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except Full:
                continue

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(1 << 20), b""))
        if size == 0:
            return b""
        if not self._pieces and not self._eof:
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            self._eof = not item
            for piece in item:
                self._pieces.append(piece)
        # At most one piece per read, as a raw stream may return less than asked: the parser's
        # stream keeps pieces as they come, so a join here would only copy them once more.
        return self._pieces.take_piece(size)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stop.set()
        # Unblock the fetcher if it waits for room, then let it finish its current read.
        while self._thread.is_alive():
            with contextlib.suppress(Empty):
                self._queue.get(timeout=0.1)
        self._thread.join()
        super().close()


_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.0


@contextmanager
def gil_switch_interval(seconds: float | None) -> Iterator[None]:
    """Python's GIL switch interval set to `seconds` while at least one such block runs.

    A download in a thread of the run process takes the GIL for every SSH packet (two socket
    reads and a decryption for each of ~5,700 packets per 177 MB); at Python's default 5 ms
    a waiting thread may sit behind the parser's Python for that long each time, and the
    download, not the parser, paced the run (bench/README.md). The interval is process-wide,
    so nested or concurrent blocks share one setting and the last one out restores it.
    None or 0 leaves it alone.
    """
    global _switch_users, _switch_saved
    if not seconds:
        yield
        return
    with _switch_lock:
        if _switch_users == 0:
            _switch_saved = sys.getswitchinterval()
            sys.setswitchinterval(seconds)
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_saved)


# ---- the transfer process ---------------------------------------------------------------------
CHILD_SCRIPT = Path(__file__).with_name("sftp_child.py")

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
