"""Downloads that resume after a dropped connection, the read-ahead thread and the GIL switch."""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from queue import Empty, Full, Queue

import paramiko
from tenacity import (
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from resources.byte_queue import ByteQueue
from resources.errors import DropZoneUnavailable
from resources.sftp_transfer.connection import (
    MAX_RESUMES_PER_FILE,
    FileChangedWhileReading,
    ReadAbandoned,
    _read_request_bytes,
    classify,
    reraise_classified,
)

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
