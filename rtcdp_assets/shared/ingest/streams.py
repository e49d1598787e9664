"""Byte streams: decompression with a bomb guard, and a reader that replays a peeked header."""

from __future__ import annotations

import io
import zlib
from typing import BinaryIO

from resources.byte_queue import ByteQueue
from rtcdp_assets.shared.ingest.model import CsvOptions, UnreadableFile


class _GuardedStream(io.RawIOBase):
    """Decompresses gzip on the fly (if asked), counts bytes and refuses a gzip bomb.

    What it has read but not handed out waits in a `ByteQueue`, in the pieces it came in.
    """

    def __init__(self, raw: BinaryIO, gzip: bool, max_bytes: int) -> None:
        self._raw = raw
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16) if gzip else None
        self._max = max_bytes
        self._pending = ByteQueue()
        self._eof = False
        self.bytes_out = 0
        self.bytes_in = 0

    def readable(self) -> bool:
        return True

    def _fill(self, want: int) -> None:
        while len(self._pending) < want and not self._eof:
            chunk = self._raw.read(max(want - len(self._pending), 1 << 20))
            self.bytes_in += len(chunk)
            if self._inflate is None:
                if not chunk:
                    self._eof = True
                self._pending.append(chunk)
                continue
            if chunk:
                # Bound the output of each step so one tiny compressed chunk cannot expand
                # into gigabytes in memory before the limit is checked.
                data = self._inflate.decompress(chunk, 1 << 24)
                while self._inflate.unconsumed_tail:
                    self._pending.append(data)
                    self._check()
                    data = self._inflate.decompress(self._inflate.unconsumed_tail, 1 << 24)
                self._pending.append(data)
            else:
                if not self._inflate.eof:
                    raise UnreadableFile(
                        "truncated_gzip", "the gzip stream ends before its end marker"
                    )
                self._eof = True
            if self._inflate.eof and self._inflate.unused_data:
                # A concatenated gzip member follows (gzip allows several): keep going.
                rest = self._inflate.unused_data
                self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
                self._pending.append(self._inflate.decompress(rest))
            self._check()

    def _check(self) -> None:
        if self.bytes_out + len(self._pending) > self._max:
            raise UnreadableFile(
                "decompressed_size_exceeded",
                f"the file inflates beyond {self._max} bytes (possible gzip bomb)",
            )

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
