"""The Campaign SFTP server as a drop zone (paramiko, strict host keys, key authentication).

Why not dagster-ssh's SSHResource: it auto-adds unknown host keys by default and reads only the
system known_hosts. Here the host key must be in the project's own known_hosts file, and an
unknown or changed key is refused (`RejectPolicy`), so a spoofed server never receives a login
or serves files.
"""

from __future__ import annotations

import contextlib
import io
import socket
import stat as stat_mod
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from operator import attrgetter
from pathlib import Path, PurePosixPath
from queue import Empty, Full, Queue
from typing import BinaryIO, cast

import paramiko
from pydantic import Field, PrivateAttr
from tenacity import (
    Retrying,
    retry,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from resources.drop_zones import (
    DropZone,
    DropZoneAccessDenied,
    DropZoneUnavailable,
    Entry,
    _entry_from_stat,
    is_safe_name,
    join,
    safe_relpath,
)

# Errors that say "the network or the server hiccuped": retry, then let a sensor skip the tick.
_TRANSIENT = (socket.timeout, TimeoutError, ConnectionError, EOFError, OSError)


def _classify(exc: BaseException) -> DropZoneUnavailable | DropZoneAccessDenied | None:
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


def _reraise_classified(exc: BaseException) -> None:
    classified = _classify(exc)
    if classified is not None:
        raise classified from exc


_retry_transient = retry(
    retry=retry_if_exception_type(DropZoneUnavailable),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.2, max=2),
    reraise=True,
)


class ReadAbandoned(DropZoneUnavailable):
    """A broken download that must not be resumed again: the run fails, a re-run starts over."""


class FileChangedWhileReading(ReadAbandoned):
    """The file got a new size or mtime between a broken read and its resumption."""


# A connection that keeps dropping still makes progress on each resume; this bounds how long
# a run may crawl through a flaky link before it fails with a clear error.
MAX_RESUMES_PER_FILE = 5


# A transfer's own failures; a parser error raised by the caller while reading keeps its type.
_STREAM_ERRORS = (TimeoutError, paramiko.SSHException, EOFError, ConnectionError)

_retry_resume = Retrying(
    retry=retry_if_exception_type(DropZoneUnavailable) & retry_if_not_exception_type(ReadAbandoned),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.2, max=2),
    reraise=True,
)


class _ResumingReader(io.RawIOBase):
    """Streams one remote file; a read broken mid-stream resumes at the same offset.

    A dropped connection costs a reconnect and the bytes in flight, not the download so far;
    the resumed read checks that the file is still the same version (size and mtime), so it
    can never splice two versions together. Retries use the same backoff as the other calls.
    """

    def __init__(self, zone: SftpDropZone, remote: str) -> None:
        self._zone = zone
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
        with self._zone._session() as sftp:
            attrs = sftp.stat(self._remote)
            version = (attrs.st_size, attrs.st_mtime)
            if self._version is not None and version != self._version:
                raise FileChangedWhileReading(
                    f"{self._remote} changed while it was being read "
                    f"(size, mtime {self._version} -> {version}); it will be read again whole"
                )
            self._version = version
            fh = sftp.open(self._remote, "rb")
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
            return self._fh.read(size) if size >= 0 else self._fh.read()
        except _STREAM_ERRORS as exc:
            self._drop()
            classified = _classify(exc)
            if isinstance(classified, DropZoneUnavailable):
                raise DropZoneUnavailable(
                    f"SFTP connection dropped while reading {self._remote} at byte "
                    f"{self._offset}: {classified}"
                ) from exc
            _reraise_classified(exc)
            raise

    def _drop(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(Exception):
                fh.close()
        self._zone.close()  # a broken session must not be reused

    def read(self, size: int = -1) -> bytes:
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


class _ReadAhead(io.RawIOBase):
    """Reads an SFTP file in a background thread, a bounded number of chunks ahead.

    paramiko only takes the server's answers off the connection inside `read()`, so while the
    caller parses a block nothing arrives and transfer and parsing take turns. Reading ahead in
    a thread lets them overlap while either side waits outside the GIL (socket, decryption,
    Arrow kernels); paramiko's packet handling itself is Python, so the overlap is partial
    (figures in bench/README.md). The queue bound keeps memory at `depth` chunks, whatever the
    file size.
    """

    def __init__(self, fh: _ResumingReader, chunk_bytes: int, depth: int) -> None:
        self._fh = fh
        self._chunk_bytes = chunk_bytes
        self._queue: Queue[bytes | BaseException] = Queue(maxsize=depth)
        self._stop = threading.Event()
        self._current = memoryview(b"")
        self._eof = False
        self._thread = threading.Thread(target=self._fetch, name="sftp-read-ahead", daemon=True)
        self._thread.start()

    def _fetch(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._fh.read(self._chunk_bytes)
                self._put(data)
                if not data:
                    return
        except BaseException as exc:  # handed to the reader, which re-raises it
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> None:
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
        if not self._current and not self._eof:
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            self._eof = not item
            self._current = memoryview(item)
        out, self._current = self._current[:size], self._current[size:]
        return out.tobytes()

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


class SftpDropZone(DropZone):
    """Campaign's SFTP server. Configure from the environment (see `.env.example`)."""

    host: str
    port: int = 22
    username: str
    private_key_path: str = Field(description="Path to the client's private key.")
    private_key_passphrase: str | None = Field(
        default=None,
        description="Passphrase of an encrypted private key; set it only through an EnvVar.",
    )
    known_hosts_path: str = Field(
        description="known_hosts file that must already hold the server's host key."
    )
    base_path: str = Field(default="", description="Folder on the server all paths are under.")
    connect_timeout_seconds: float = 10.0
    list_read_aheads: int = Field(
        default=64, description="READDIR requests `list` keeps in flight (each returns ~100 names)."
    )
    read_chunk_bytes: int = Field(
        default=1 << 20,
        ge=32 * 1024,
        # Measured: 4 MiB reads stalled paramiko's prefetch in 2 runs of 3 until the read
        # timed out and resumed (tens of seconds); 1 MiB never did in 8 runs.
        le=1 << 20,
        description="Bytes per read of the background reader of `open_read` (at most 1 MiB).",
    )
    read_ahead_chunks: int = Field(
        default=8,
        description="Chunks `open_read` may fetch ahead of the parser (bounds its memory).",
    )

    _client: paramiko.SSHClient | None = PrivateAttr(default=None)
    _sftp: paramiko.SFTPClient | None = PrivateAttr(default=None)

    # -- connection ------------------------------------------------------------------------
    def _connect(self) -> paramiko.SFTPClient:
        if self._sftp is not None and self._client is not None:
            transport = self._client.get_transport()
            if transport is not None and transport.is_active():
                return self._sftp
            self.close()
        client = paramiko.SSHClient()
        known_hosts = Path(self.known_hosts_path)
        if not known_hosts.is_file():
            raise DropZoneAccessDenied(f"known_hosts file {known_hosts} does not exist")
        client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            pkey = paramiko.PKey.from_path(
                self.private_key_path,
                password=(self.private_key_passphrase or "").encode() or None,
            )
        except (OSError, ValueError, TypeError, paramiko.SSHException) as exc:
            # Only the type: the message of a failed decryption must not echo key material.
            # A wrong passphrase surfaces as ValueError ("broken checksum") from cryptography.
            raise DropZoneAccessDenied(
                f"SFTP private key {self.private_key_path} cannot be loaded "
                f"({type(exc).__name__}): wrong passphrase, unsupported or damaged key file"
            ) from None
        try:
            client.connect(
                self.host,
                port=self.port,
                username=self.username,
                pkey=pkey,
                look_for_keys=False,
                allow_agent=False,
                timeout=self.connect_timeout_seconds,
                banner_timeout=self.connect_timeout_seconds,
                auth_timeout=self.connect_timeout_seconds,
            )
            sftp = client.open_sftp()
        except Exception as exc:
            client.close()
            _reraise_classified(exc)
            raise
        self._client, self._sftp = client, sftp
        return sftp

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

    def teardown_after_execution(self, context: object) -> None:
        self.close()

    def _remote(self, path: str) -> str:
        rel = safe_relpath(path)
        return str(PurePosixPath(self.base_path) / rel) if self.base_path else rel

    @contextmanager
    def _session(self) -> Iterator[paramiko.SFTPClient]:
        try:
            yield self._connect()
        except (DropZoneAccessDenied, DropZoneUnavailable):
            raise
        except FileNotFoundError:
            raise
        except Exception as exc:
            # A broken session must not be reused by the next call.
            self.close()
            _reraise_classified(exc)
            raise

    # -- contract --------------------------------------------------------------------------
    @_retry_transient
    def list(self, folder: str = "") -> list[Entry]:
        remote = self._remote(folder) if folder else (self.base_path or ".")
        entries = []
        with self._session() as sftp:
            try:
                # listdir_iter keeps several READDIR requests in flight instead of one round
                # trip per ~100 names (listdir_attr): about half the time at 10,000 files.
                for a in sftp.listdir_iter(remote, read_aheads=self.list_read_aheads):
                    if a.st_mode is None or not stat_mod.S_ISREG(a.st_mode):
                        continue
                    if not is_safe_name(a.filename):
                        continue  # a server answering `../x` or `a/b` must not lead us out
                    # SFTP v3 only carries whole seconds; size + mtime is the best identity.
                    mtime_ns = int(a.st_mtime or 0) * 1_000_000_000
                    entries.append(
                        _entry_from_stat(join(folder, a.filename), a.st_size or 0, mtime_ns)
                    )
            except FileNotFoundError:
                return []
        # Names are unique in a folder, so sorting by path alone gives the contract's order
        # without comparing whole entries (a third of the listing's time at 10,000 files).
        return sorted(entries, key=attrgetter("path"))

    @_retry_transient
    def list_folders(self, folder: str = "") -> list[str]:
        remote = self._remote(folder) if folder else (self.base_path or ".")
        with self._session() as sftp:
            try:
                attrs = sftp.listdir_attr(remote)
            except FileNotFoundError:
                return []
        return sorted(a.filename for a in attrs if a.st_mode and stat_mod.S_ISDIR(a.st_mode))

    @contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        # Resumes a read broken mid-stream; read ahead in a thread so transfer and parsing
        # overlap.
        reader = _ResumingReader(self, self._remote(path))
        ahead = _ReadAhead(reader, chunk_bytes=self.read_chunk_bytes, depth=self.read_ahead_chunks)
        try:
            yield cast(BinaryIO, ahead)
        finally:
            ahead.close()
            reader.close()

    @_retry_transient
    def write_atomic(self, path: str, source: Path) -> Entry:
        remote = self._remote(path)
        parent = str(PurePosixPath(remote).parent)
        tmp = str(PurePosixPath(parent) / f".{PurePosixPath(remote).name}.{uuid.uuid4().hex}.part")
        with self._session() as sftp:
            self._makedirs(sftp, parent)
            sftp.put(str(source), tmp, confirm=True)
            # posix_rename (OpenSSH extension) replaces atomically; plain SFTP rename cannot
            # overwrite an existing file.
            sftp.posix_rename(tmp, remote)
        entry = self.stat(path)
        assert entry is not None
        return entry

    @_retry_transient
    def move(self, src: str, dst: str) -> None:
        remote_dst = self._remote(dst)
        with self._session() as sftp:
            self._makedirs(sftp, str(PurePosixPath(remote_dst).parent))
            sftp.posix_rename(self._remote(src), remote_dst)

    @_retry_transient
    def stat(self, path: str) -> Entry | None:
        with self._session() as sftp:
            try:
                a = sftp.stat(self._remote(path))
            except FileNotFoundError:
                return None
        return _entry_from_stat(safe_relpath(path), a.st_size or 0, int(a.st_mtime or 0) * 10**9)

    @staticmethod
    def _makedirs(sftp: paramiko.SFTPClient, remote_dir: str) -> None:
        path = PurePosixPath(remote_dir)
        missing: list[PurePosixPath] = []
        for candidate in (path, *path.parents):
            if str(candidate) in ("", ".", "/"):
                break
            try:
                sftp.stat(str(candidate))
                break
            except FileNotFoundError:
                missing.append(candidate)
        for folder in reversed(missing):
            sftp.mkdir(str(folder))

    def describe(self) -> str:
        return f"sftp://{self.username}@{self.host}:{self.port}/{self.base_path}"
