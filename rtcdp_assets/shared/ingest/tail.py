"""The end of a stream, kept while it is read: tells a file cut mid-line from a complete one."""

from __future__ import annotations

import io
from typing import BinaryIO

_KEPT = 512


class TailKeeper(io.RawIOBase):
    """A pass-through reader that remembers the last bytes handed out."""

    def __init__(self, raw: BinaryIO | io.RawIOBase) -> None:
        self._raw = raw
        self.tail = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data:
            self.tail = (self.tail + data)[-_KEPT:]
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def ends_in_cut_row(self, text: str, expected: int, actual: int, encoding: str) -> bool:
        """Whether the stream ends in the malformed row `text` (fewer fields than the header)
        with no line end: what an upload stopped mid-line leaves."""
        if actual >= expected or not self.tail or self.tail.endswith((b"\n", b"\r")):
            return False
        try:
            end = text[-64:].encode(encoding)
        except (UnicodeEncodeError, LookupError):
            return False
        return self.tail.endswith(end)
