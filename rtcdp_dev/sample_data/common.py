"""Window and id constants, result types and the helpers every dataset's rows are built
with (windows, seeds, ids, times, CSV assembly)."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rtcdp_assets.shared.ingest import Layout

WINDOW = timedelta(hours=4)
WINDOW_SECONDS = int(WINDOW.total_seconds())
TS_FORMAT = "%Y-%m-%d %H:%M:%S"
# broadLog ids of window w start at (w - origin) * stride: ids increase across windows and two
# windows never share an id (the XDM `_id` is derived from it) while a window holds fewer
# than ~80 M rows; the origin keeps the numbers to 13 digits instead of 15.
_ID_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
_ID_STRIDE = 100_000_000
POOL_SIZE = 50_000
DEFAULT_BATCH_ROWS = 500_000
MAX_BATCH_ROWS = 5_000_000
# A past window for benchmark files, so that `now=None` never has to clip them.
DEFAULT_BENCH_WINDOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)

_T = TypeVar("_T")


@dataclass(frozen=True)
class GenerationStats:
    """What a generated file holds, in the pipeline's terms, so tests can assert exact counts."""

    rows: int  # data rows written (malformed ones included), header excluded
    expected_valid: int  # rows the validator must accept
    expected_rejects: dict[str, int]  # reason code -> rows; only codes that occur
    reject_lines: dict[int, str] = field(repr=False)  # CSV record number (header = 1) -> reason
    bytes_written: int = 0  # bytes on disk (compressed size for .gz)


@dataclass(frozen=True)
class GeneratedFile:
    """One generated export file: `content` is the uncompressed CSV, whatever lands on disk."""

    name: str
    content: bytes = field(repr=False)
    rows: int
    expected_valid: int
    expected_rejects: dict[str, int]
    reject_lines: dict[int, str] = field(repr=False)
    dataset: str = "broadlog"
    window_start: datetime | None = None
    path: Path | None = None  # set once written to disk

    def summary(self) -> str:
        rejects = ", ".join(f"{k}={v}" for k, v in self.expected_rejects.items()) or "none"
        where = str(self.path) if self.path is not None else self.name
        return (
            f"{where}: {self.rows} rows, {self.expected_valid} valid, "
            f"{self.rows - self.expected_valid} defective ({rejects})"
        )


# --------------------------------------------------------------------------------------------
# Shared helpers: windows, seeds, ids, times, CSV assembly
# --------------------------------------------------------------------------------------------
def as_utc(value: datetime) -> datetime:
    """Naive datetimes are UTC, as in the file names and partition keys."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def floor_window(value: datetime) -> datetime:
    value = as_utc(value)
    return value.replace(hour=value.hour - value.hour % 4, minute=0, second=0, microsecond=0)


def window_starts(start: datetime, end: datetime) -> list[datetime]:
    """Starts of the 4-hour windows that begin in [floor(start), end)."""
    first, end = floor_window(start), as_utc(end)
    out: list[datetime] = []
    current = first
    while current < end:
        out.append(current)
        current += WINDOW
    return out


def _epoch_seconds(value: datetime) -> int:
    return int(as_utc(value).timestamp())


def window_index(window_start: datetime) -> int:
    return _epoch_seconds(window_start) // WINDOW_SECONDS


def _tag(name: str) -> int:
    # crc32 rather than hash(): str hashes are salted per process and would break determinism.
    return zlib.crc32(name.encode())


def rng_for(seed: int, *keys: int | str) -> np.random.Generator:
    """An independent random stream per (seed, keys): one file never shifts another's values."""
    if seed < 0:
        raise ValueError("seed must be >= 0")
    entropy = [seed, *(_tag(k) if isinstance(k, str) else k for k in keys)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def increasing_ids(rng: np.random.Generator, start: int, n: int) -> np.ndarray:
    """Strictly increasing ids after `start`, with the small gaps a shared DB sequence leaves."""
    return start + np.cumsum(rng.geometric(0.8, n).astype(np.int64))


def int_strings(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values, pa.int64()), pa.string())


def ts_strings(epoch_seconds: np.ndarray) -> pa.Array:
    """`YYYY-MM-DD HH:MM:SS` (UTC, no offset), the way Campaign writes dates in exports."""
    return pc.cast(pa.array(epoch_seconds, pa.timestamp("s")), pa.string())


def weighted_choice(rng: np.random.Generator, n: int, weights: Sequence[float]) -> np.ndarray:
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(p.size, size=n, p=p / p.sum())


Column = pa.Array | pa.Scalar


def join_lines(columns: Sequence[Column]) -> pa.Array:
    """One CSV line per row, `\n` included, joined by a compute kernel.

    Values never contain the delimiter, quotes or line breaks, so nothing needs quoting.
    """
    *head, last = columns
    # The line break rides on the last column, so the joined array's data buffer already
    # is the CSV body: no extra pass, no copy.
    if isinstance(last, pa.Scalar):
        last = pa.scalar(f"{last.as_py()}\n")
    else:
        last = pc.binary_join_element_wise(last, pa.scalar(""), "\n")
    return pc.binary_join_element_wise(*head, last, ",")


def body_chunks(lines: pa.Array, replacements: Mapping[int, bytes]) -> list[memoryview | bytes]:
    """The CSV body as zero-copy views of `lines`, with the rows in `replacements` swapped
    for other bytes (defective rows): a handful of slices instead of rebuilding the array."""
    if len(lines) == 0:
        return []
    lines = pa.concat_arrays([lines]) if lines.offset else lines  # rebase a sliced array
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1)
    data = memoryview(lines.buffers()[2])  # type: ignore[arg-type]
    chunks: list[memoryview | bytes] = []
    pos = int(offsets[0])
    for row in sorted(replacements):
        chunks += [data[pos : int(offsets[row])], replacements[row]]
        pos = int(offsets[row + 1])
    chunks.append(data[pos : int(offsets[-1])])
    return chunks


def header_line(layout: Layout) -> bytes:
    return (",".join(layout.columns) + "\n").encode()
