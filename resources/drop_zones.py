"""One interface for every place files are exchanged or stored.

Sensors and assets only talk to `DropZone`: list entries, stream one out, write one atomically,
move one to an archive or quarantine folder. The embedded default is `LocalDropZone`; the
Campaign SFTP server (`resources.sftp.SftpDropZone`) and Azure Blob
(`resources.azure_blob.AzureBlobDropZone`) implement the same contract, and the contract tests
in `tests/resources/test_drop_zone_contract.py` run the same assertions against all three.

A drop zone adds, replaces atomically and moves. `delete` exists for one caller only: the
Campaign SFTP housekeeping (rtcdp_assets/operations/sftp_housekeeping.py), which removes
archived exports past their retention once the warehouse holds their rows and the ledger their
checksum, and import files Campaign has consumed; each deletion is recorded in the file ledger.
`walk` lists a folder tree with sizes, which is how the platform's footprint is measured.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from dagster import ConfigurableResource

# Re-exported: callers import the errors with the contract.
from resources.errors import DropZoneAccessDenied as DropZoneAccessDenied
from resources.errors import DropZoneError as DropZoneError
from resources.errors import DropZoneUnavailable as DropZoneUnavailable

# Writers that follow the upload-then-rename convention use names like these while a file is
# still being written; a reader must never pick them up.
TEMPORARY_NAME_MARKERS: tuple[str, ...] = (".part", ".tmp", ".filepart", ".partial", ".uploading")


class UnsafePathError(DropZoneError, ValueError):
    """A path that would escape the zone's root (absolute, `..`, NUL or backslash)."""


@dataclass(frozen=True, order=True)
class Entry:
    """One file version in a zone.

    `identity` changes whenever the content may have changed (ETag on Blob, size + mtime on
    file systems), so `(path, identity)` names one version of one file.
    """

    path: str
    size: int
    modified: datetime
    identity: str

    # Sensors evaluate these for every file of a zone on every tick: keep them cheap.
    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @cached_property
    def modified_ts(self) -> float:
        return self.modified.timestamp()


def safe_relpath(path: str) -> str:
    """Normalise a zone-relative path and refuse anything that could leave the zone.

    File names come from outside (a drop zone is written by other systems), so a name such as
    `../../etc/passwd` or `/abs` must never reach a file-system or SFTP call.
    """
    if not path or "\x00" in path or "\\" in path:
        raise UnsafePathError(f"unsafe path {path!r}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("..", "") for part in pure.parts):
        raise UnsafePathError(f"unsafe path {path!r}")
    normalised = str(pure)
    if normalised in (".", ""):
        raise UnsafePathError(f"unsafe path {path!r}")
    return normalised


def is_safe_name(name: str) -> bool:
    """A single path component a listing may return: no separator, not `.` or `..`."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\x00")


def join(*parts: str) -> str:
    """Join zone-relative path parts with `/`, skipping empty ones."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def is_temporary_name(name: str) -> bool:
    base = PurePosixPath(name).name
    return base.startswith((".", "~")) or base.lower().endswith(TEMPORARY_NAME_MARKERS)


class DropZone(ConfigurableResource):
    """The contract every zone implements. Paths are relative to the zone's root, `/`-separated."""

    @abstractmethod
    def list(self, folder: str = "") -> list[Entry]:
        """Files directly inside `folder` (not recursive), sorted by path."""

    @abstractmethod
    @contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        """A streaming, forward-only binary reader; never the whole file in memory."""

    @abstractmethod
    def write_atomic(self, path: str, source: Path) -> Entry:
        """Publish the local file `source` at `path`; readers see the old or the new file, never
        a part of one."""

    @abstractmethod
    def move(self, src: str, dst: str) -> None:
        """Move a file within the zone (archive, quarantine), replacing `dst` if it exists."""

    @abstractmethod
    def stat(self, path: str) -> Entry | None:
        """The entry at `path`, or None if there is none."""

    def write_bytes(self, path: str, data: bytes) -> Entry:
        with tempfile.TemporaryDirectory(prefix="rtcdp-") as tmp:
            local = Path(tmp) / "payload"
            local.write_bytes(data)
            return self.write_atomic(path, local)

    def read_bytes(self, path: str) -> bytes:
        with self.open_read(path) as fh:
            return fh.read()

    def describe(self) -> str:
        """Where this zone points, for logs and metadata (never a secret)."""
        return type(self).__name__

    def local_path(self, path: str) -> Path | None:
        """The file at `path` as a path on this machine when the zone is a local folder (read
        in place, no copy); None for remote zones."""
        return None

    def list_folders(self, folder: str = "") -> list[str]:
        """Names of the sub-folders directly inside `folder`, sorted. Needed where another
        system nests files in folders it names (AEP dataset exports:
        `<datasetId>/exportTime=YYYYMMDDHHMM/`); zones that cannot tell raise."""
        raise NotImplementedError(f"{type(self).__name__} cannot list folders")

    def walk(self, folder: str = "") -> Iterator[Entry]:
        """Every file under `folder`, at any depth, with its size (folder by folder)."""
        yield from self.list(folder)
        for sub in self.list_folders(folder):
            if is_safe_name(sub):
                yield from self.walk(join(folder, sub))

    def delete(self, path: str) -> bool:
        """Remove the file at `path`; False if there was none. Only the SFTP housekeeping
        calls it, after the ledger says the file may go (see the module docstring)."""
        raise NotImplementedError(f"{type(self).__name__} cannot delete")


def _entry_from_stat(relpath: str, size: int, mtime_ns: int) -> Entry:
    modified = datetime.fromtimestamp(mtime_ns / 1e9, tz=UTC)
    return Entry(path=relpath, size=size, modified=modified, identity=f"{size}-{mtime_ns}")


class LocalDropZone(DropZone):
    """A local folder standing in for SFTP or Blob: the embedded default for newcomers."""

    root: str

    def _abs(self, path: str) -> Path:
        return Path(self.root) / safe_relpath(path)

    def list(self, folder: str = "") -> list[Entry]:
        base = Path(self.root) / safe_relpath(folder) if folder else Path(self.root)
        if not base.is_dir():
            return []
        entries = []
        with os.scandir(base) as it:
            for item in it:
                if not item.is_file(follow_symlinks=False):
                    continue
                st = item.stat(follow_symlinks=False)
                entries.append(
                    _entry_from_stat(join(folder, item.name), st.st_size, st.st_mtime_ns)
                )
        return sorted(entries)

    def list_folders(self, folder: str = "") -> list[str]:
        base = Path(self.root) / safe_relpath(folder) if folder else Path(self.root)
        if not base.is_dir():
            return []
        with os.scandir(base) as it:
            return sorted(i.name for i in it if i.is_dir(follow_symlinks=False))

    @contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        with self._abs(path).open("rb") as fh:
            yield fh

    def write_atomic(self, path: str, source: Path) -> Entry:
        target = self._abs(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Same directory, so the final rename never crosses a file system.
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        shutil.copyfile(source, tmp)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        tmp.replace(target)
        entry = self.stat(path)
        assert entry is not None
        return entry

    def move(self, src: str, dst: str) -> None:
        target = self._abs(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._abs(src).replace(target)

    def delete(self, path: str) -> bool:
        try:
            self._abs(path).unlink()
        except FileNotFoundError:
            return False
        return True

    def stat(self, path: str) -> Entry | None:
        p = self._abs(path)
        try:
            st = p.stat()
        except FileNotFoundError:
            return None
        return _entry_from_stat(safe_relpath(path), st.st_size, st.st_mtime_ns)

    def local_path(self, path: str) -> Path | None:
        target = self._abs(path)
        return target if target.is_file() else None

    def describe(self) -> str:
        return f"local folder {self.root}"
