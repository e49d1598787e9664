"""The Campaign SFTP server as a drop zone (paramiko, strict host keys, key authentication).

Why not dagster-ssh's SSHResource: it auto-adds unknown host keys by default and reads only the
system known_hosts. Here the host key must be in the project's own known_hosts file, and an
unknown or changed key is refused (`RejectPolicy`), so a spoofed server never receives a login
or serves files. The transfer process of `open_read` checks host keys with the same code
(`resources.sftp_transfer.connect`).
"""

from __future__ import annotations

import stat as stat_mod
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from operator import attrgetter
from pathlib import Path, PurePosixPath
from typing import BinaryIO, cast

import paramiko
from pydantic import Field, PrivateAttr
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from resources.drop_zones import (
    DropZone,
    DropZoneUnavailable,
    Entry,
    _entry_from_stat,
    is_safe_name,
    join,
    safe_relpath,
)

# The connection and the resuming read live in a module without dagster, which the transfer
# process imports; the errors are re-exported here, where callers have always found them.
from resources.sftp_transfer import MAX_RESUMES_PER_FILE as MAX_RESUMES_PER_FILE
from resources.sftp_transfer import (
    ChildProcessReader,
    ReadAhead,
    ResumingReader,
    SftpSession,
    SftpSettings,
    classified_session,
    gil_switch_interval,
)
from resources.sftp_transfer import FileChangedWhileReading as FileChangedWhileReading
from resources.sftp_transfer import ReadAbandoned as ReadAbandoned

_retry_transient = retry(
    retry=retry_if_exception_type(DropZoneUnavailable),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.2, max=2),
    reraise=True,
)


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
        description="Bytes per read of the downloader of `open_read` (at most 1 MiB).",
    )
    read_ahead_chunks: int = Field(
        default=8,
        description=(
            "Chunks `open_read` may fetch ahead of the parser (bounds its memory); the transfer "
            "process holds them, plus up to 1 MiB in its pipe."
        ),
    )
    gil_switch_interval_seconds: float | None = Field(
        default=0.001,
        ge=0,
        description=(
            "Python's GIL switch interval while `open_read` downloads in a thread of the run "
            "process (the default 0.005 s made the download wait behind the parser; 0.001 s "
            "was 10 % faster end to end, bench/README.md); None or 0 leaves Python's setting."
        ),
    )
    read_in_child_process: bool = Field(
        # Off by default: on 2 cores with the server's own encryption on the same machine, the
        # child's start-up and CPU cost what the overlap gains (bench/README.md); it pays where
        # the run has a core to spare and the server is remote. It also holds a second SSH
        # connection per read.
        default=False,
        description=(
            "Download in a child process that streams the file through a pipe, so that "
            "paramiko (Python, holding the GIL) and the parser run on two cores; False reads "
            "in a thread of the calling process."
        ),
    )

    child_process_min_bytes: int = Field(
        default=1 << 20,
        ge=0,
        description=(
            "Files smaller than this are read in-process even with read_in_child_process: the "
            "child's start-up and SSH handshake (about 0.2 s) outweigh the overlap it buys on "
            "a small file (markers, small exports). 0: every file through the child."
        ),
    )

    _connection: SftpSession | None = PrivateAttr(default=None)

    # -- connection ------------------------------------------------------------------------
    def _settings(self) -> SftpSettings:
        return SftpSettings(
            host=self.host,
            port=self.port,
            username=self.username,
            private_key_path=self.private_key_path,
            known_hosts_path=self.known_hosts_path,
            connect_timeout_seconds=self.connect_timeout_seconds,
            private_key_passphrase=self.private_key_passphrase,
        )

    def _connect(self) -> paramiko.SFTPClient:
        if self._connection is None:
            self._connection = SftpSession(self._settings())
        return self._connection.connect()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def teardown_after_execution(self, context: object) -> None:
        self.close()

    def _remote(self, path: str) -> str:
        rel = safe_relpath(path)
        return str(PurePosixPath(self.base_path) / rel) if self.base_path else rel

    @contextmanager
    def _session(self) -> Iterator[paramiko.SFTPClient]:
        with classified_session(self._connect, self.close) as sftp:
            yield sftp

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
        # Resumes a read broken mid-stream. The download runs ahead of the parser, in a child
        # process (own core, own GIL) or a thread, so that transfer and parsing overlap.
        remote = self._remote(path)
        if self.read_in_child_process and self._worth_a_child(path):
            child = ChildProcessReader(
                self._settings(),
                remote,
                chunk_bytes=self.read_chunk_bytes,
                read_ahead=self.read_ahead_chunks,
            )
            try:
                yield cast(BinaryIO, child)
            finally:
                child.close()
            return
        with gil_switch_interval(self.gil_switch_interval_seconds):
            reader = ResumingReader(self._session, self.close, remote)
            ahead = ReadAhead(
                reader, chunk_bytes=self.read_chunk_bytes, depth=self.read_ahead_chunks
            )
            try:
                yield cast(BinaryIO, ahead)
            finally:
                ahead.close()
                reader.close()

    def _worth_a_child(self, path: str) -> bool:
        if self.child_process_min_bytes == 0:
            return True
        # A missing file is read in-process too, which raises the same FileNotFoundError.
        entry = self.stat(path)
        return entry is not None and entry.size >= self.child_process_min_bytes

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
    def delete(self, path: str) -> bool:
        with self._session() as sftp:
            try:
                sftp.remove(self._remote(path))
            except FileNotFoundError:
                return False
        return True

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
        make_remote_dirs(sftp, remote_dir)

    def describe(self) -> str:
        return f"sftp://{self.username}@{self.host}:{self.port}/{self.base_path}"


def make_remote_dirs(sftp: paramiko.SFTPClient, remote_dir: str) -> bool:
    """Create `remote_dir` and its missing parents; True if any was missing."""
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
    return bool(missing)
