"""Limits that keep a hostile file from taking the process's memory: the longest row and the
decompression ratio, both refused with a reason an operator can act on.

The checks run once per chunk of bytes handed to the CSV parser (a few `find` calls, in C),
never once per row, so they do not slow the ingest down (bench/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rtcdp_assets.shared.ingest.model import UnreadableFile

DEFAULT_MAX_ROW_BYTES = 1 << 20
DEFAULT_MAX_DECOMPRESSION_RATIO = 100.0
DEFAULT_RATIO_FLOOR_BYTES = 64 << 20


class LimitSettings(Protocol):
    """The PipelineSettings fields the limits come from (kept structural: this package does
    not import Dagster)."""

    @property
    def max_row_bytes(self) -> int: ...

    @property
    def max_decompression_ratio(self) -> float: ...

    @property
    def decompression_ratio_floor_bytes(self) -> int: ...


@dataclass(frozen=True)
class StreamLimits:
    """`max_row_bytes`: the longest line (bytes between line ends) the parser is given; 0 = no
    limit (binary files). `max_ratio`: decompressed ÷ compressed bytes a gzip file may reach,
    checked once more than `ratio_floor_bytes` came out of it (small files are never refused);
    0 = no limit."""

    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES
    max_ratio: float = DEFAULT_MAX_DECOMPRESSION_RATIO
    ratio_floor_bytes: int = DEFAULT_RATIO_FLOOR_BYTES

    @classmethod
    def of(cls, settings: LimitSettings) -> StreamLimits:
        return cls(
            max_row_bytes=settings.max_row_bytes,
            max_ratio=settings.max_decompression_ratio,
            ratio_floor_bytes=settings.decompression_ratio_floor_bytes,
        )


def _mib(n: float) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def check_ratio(limits: StreamLimits, bytes_out: int, bytes_in: int) -> None:
    """Refuse a gzip stream whose output has outgrown its input `max_ratio` times over."""
    if limits.max_ratio <= 0 or bytes_out <= limits.ratio_floor_bytes:
        return
    if bytes_out <= limits.max_ratio * max(bytes_in, 1):
        return
    raise UnreadableFile(
        "decompression_bomb",
        f"the gzip file inflated to more than {_mib(bytes_out)} from {_mib(bytes_in)} of "
        f"compressed bytes read so far, a ratio of {bytes_out / max(bytes_in, 1):,.0f}:1; the "
        f"limit is {limits.max_ratio:,.0f}:1 (setting max_decompression_ratio, checked once a "
        f"file exceeds decompression_ratio_floor_bytes = {limits.ratio_floor_bytes:,} bytes). "
        "CSV exports compress about 2-20:1: ask the sender what the file is before raising it.",
    )


class RowLengthGuard:
    """Follows the line ends in the bytes handed to the parser and refuses a line longer than
    `max_bytes`, before the parser buffers it (pyarrow would otherwise keep reading and fail
    with "straddling object ... block size", having grown by the file's size).

    The text is scanned in slices of at most `max_bytes`: a line inside one slice is shorter
    than the limit, so only the line that runs across slice ends needs counting. A file with
    bare CR line ends (old Mac tools) is followed by its CRs.
    """

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._run = 0  # bytes since the last line end
        self._offset = 0  # bytes seen so far

    def check(self, data: bytes) -> None:
        if self._max <= 0:
            return
        size = len(data)
        for start in range(0, size, self._max):
            end = min(start + self._max, size)
            sep = b"\n"
            first = data.find(sep, start, end)
            if first < 0:
                sep = b"\r"
                first = data.find(sep, start, end)
            if first < 0:
                self._run += end - start
                if self._run > self._max:
                    self._refuse(self._offset + end, self._run)
                continue
            if self._run + first - start > self._max:
                self._refuse(self._offset + first, self._run + first - start)
            self._run = end - data.rfind(sep, start, end) - 1
        self._offset += size

    def _refuse(self, seen_until: int, length: int) -> None:
        raise row_too_large(
            self._max,
            f"no line end in the {length:,} bytes from byte "
            f"{seen_until - length:,} of the (decompressed) file on",
        )


def row_too_large(limit: int, found: str, limit_name: str = "") -> UnreadableFile:
    """The quarantine reason for a row over `limit` bytes; `found` says where it was seen,
    `limit_name` what sets the limit (default: the max_row_bytes setting)."""
    name = limit_name or f"the setting max_row_bytes = {limit:,}"
    return UnreadableFile(
        "row_too_large",
        f"a row longer than {limit:,} bytes ({_mib(limit)}) was found: {found}; the limit is "
        f"{name}. Raise it only if the export really holds rows that long; otherwise the file "
        "is not an export of this kind, or it is corrupt.",
    )
