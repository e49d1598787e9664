"""The SFTP connection: settings, error classification, the session and its receive queue."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import paramiko
from paramiko.buffered_pipe import BufferedPipe, PipeTimeout
from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY, SFTPError

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
