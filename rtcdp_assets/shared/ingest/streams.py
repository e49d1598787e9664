"""Byte streams: decompression with a bomb guard, and a reader that replays a peeked header."""

from __future__ import annotations

import io
import zlib
from typing import BinaryIO

from resources.byte_queue import ByteQueue
from rtcdp_assets.shared.ingest.limits import RowLengthGuard, StreamLimits, check_ratio
from rtcdp_assets.shared.ingest.model import CsvOptions, UnreadableFile

_INFLATE_STEP = 8 << 20  # most bytes one step may inflate (4 MiB cost 10 % more CPU)


class _GuardedStream(io.RawIOBase):
    """Decompresses gzip on the fly (if asked), counts bytes and refuses a gzip bomb.

    What it has read but not handed out waits in a `ByteQueue`, in the pieces it came in. Only
    about what the reader asks for is inflated at a time, so memory stays bounded whatever the
    ratio. With `limits`, it also refuses an overlong row and an outsized decompression ratio
    (limits.py).
    """

    def __init__(
        self, raw: BinaryIO, gzip: bool, max_bytes: int, limits: StreamLimits | None = None
    ) -> None:
        self._raw = raw
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16) if gzip else None
        self._max = max_bytes
        self._limits = limits
        self._rows = RowLengthGuard(limits.max_row_bytes) if limits is not None else None
        self._pending = ByteQueue()
        self._eof = False
        self.bytes_out = 0
        self.bytes_in = 0

    def readable(self) -> bool:
        return True

    def _read_raw(self, want: int) -> bytes:
        chunk = self._raw.read(max(want - len(self._pending), 1 << 20))
        self.bytes_in += len(chunk)
        return chunk

    def _fill(self, want: int) -> None:
        while len(self._pending) < want and not self._eof:
            if self._inflate is None:
                chunk = self._read_raw(want)
                self._eof = not chunk
                self._pending.append(chunk)
            else:
                self._inflate_step(self._inflate, want)
            self._check()

    def _inflate_step(self, inflate: zlib._Decompress, want: int) -> None:
        if inflate.eof and inflate.unused_data:
            # A concatenated gzip member follows (gzip allows several): keep going.
            source = inflate.unused_data
            inflate = self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif inflate.unconsumed_tail:
            source = inflate.unconsumed_tail
        else:
            source = self._read_raw(want)
            if not source:
                if not inflate.eof:
                    raise UnreadableFile(
                        "truncated_gzip", "the gzip stream ends before its end marker"
                    )
                self._eof = True
                return
        # Bound each step's output and keep the rest of the input for the next read: one
        # compressed MiB of a bomb inflates to a GiB, and only what the reader asked for
        # may sit in memory.
        self._pending.append(inflate.decompress(source, _INFLATE_STEP))

    def _check(self) -> None:
        bytes_out = self.bytes_out + len(self._pending)
        if bytes_out > self._max:
            raise UnreadableFile(
                "decompressed_size_exceeded",
                f"the file inflates beyond {self._max} bytes (possible gzip bomb); the limit is "
                "the setting max_decompressed_bytes",
            )
        if self._limits is not None and self._inflate is not None:
            unread = len(self._inflate.unconsumed_tail) + len(self._inflate.unused_data)
            check_ratio(self._limits, bytes_out, self.bytes_in - unread)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while True:
                part = self.read(1 << 20)
                if not part:
                    return b"".join(chunks)
                chunks.append(part)
        try:
            self._fill(size)
        except zlib.error as exc:
            raise UnreadableFile("corrupt_gzip", str(exc)) from exc
        out = self._pending.take(size)
        self.bytes_out += len(out)
        if self._rows is not None:
            self._rows.check(out)
        return out

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Replay(io.RawIOBase):
    """Yields `prefix` first, then the rest of `stream`: lets us peek at the header."""

    def __init__(self, prefix: bytes, stream: _GuardedStream) -> None:
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size is None or size < 0:
                out, self._prefix = self._prefix + self._stream.read(), b""
                return out
            out, self._prefix = self._prefix[:size], self._prefix[size:]
            return out
        return self._stream.read(size)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _read_header(stream: _GuardedStream, opts: CsvOptions) -> tuple[list[str], bytes]:
    """Read up to the first line break; return the parsed header names and the bytes read."""
    buf = b""
    while b"\n" not in buf:
        chunk = stream.read(64 * 1024)
        if not chunk:
            break
        buf += chunk
        if len(buf) > 1 << 20:
            raise UnreadableFile("header_too_long", "no line break in the first MiB")
    if not buf.strip():
        raise UnreadableFile("empty_file", "the file has no header row")
    line = buf.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = line.decode(opts.encoding)
    except UnicodeDecodeError as exc:
        raise UnreadableFile("bad_encoding", f"header is not {opts.encoding}") from exc
    text = text.lstrip("\ufeff")  # a UTF-8 BOM is legal and common in exports from Windows tools
    import csv

    header = next(csv.reader([text], delimiter=opts.delimiter, quotechar=opts.quote_char))
    return [h.strip() for h in header], buf
