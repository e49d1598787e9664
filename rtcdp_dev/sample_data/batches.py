"""Window plans and batches: what the files of every dataset share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from resources.settings import PipelineSettings
from rtcdp_assets.shared.ingest import Layout
from rtcdp_dev.sample_data.common import (
    _ID_ORIGIN,
    _ID_STRIDE,
    _T,
    MAX_BATCH_ROWS,
    WINDOW_SECONDS,
    Column,
    GenerationStats,
    _epoch_seconds,
    as_utc,
    body_chunks,
    floor_window,
    join_lines,
    rng_for,
    window_index,
)
from rtcdp_dev.sample_data.defect_kinds import DEFECT_KINDS
from rtcdp_dev.sample_data.defects import inject_defects
from rtcdp_dev.sample_data.deliveries import Delivery, deliveries_for_window
from rtcdp_dev.sample_data.pipeline import DATASET_LAYOUTS, FAILURE_REASONS
from rtcdp_dev.sample_data.recipients import RecipientPool, recipient_pool

_STATUS_CODES = ("1", "2", "6", "7")  # sent, failed, pending, cancelled (§b3)
_STATUS_WEIGHTS = (0.935, 0.047, 0.011, 0.007)
_FAILURE_TYPES = ("hard", "soft", "ignored")
_FAILURE_TYPE_WEIGHTS = (0.3, 0.45, 0.25)
# failureReason per failure type, following the §b3 table (weights: how often each shows up).
_REASONS_BY_TYPE: dict[str, tuple[tuple[str, float], ...]] = {
    "hard": (("1", 0.55), ("8", 0.1), ("9", 0.15), ("3", 0.05), ("4", 0.1), ("20", 0.05)),
    "soft": (("5", 0.4), ("2", 0.15), ("3", 0.2), ("4", 0.1), ("20", 0.15)),
    "ignored": (
        ("10", 0.35),
        ("11", 0.1),
        ("12", 0.1),
        ("14", 0.1),
        ("15", 0.1),
        ("25", 0.05),
        ("127", 0.2),
    ),
}
assert all(r in FAILURE_REASONS for rs in _REASONS_BY_TYPE.values() for r, _ in rs)


def _failure_type_codes() -> dict[str, str]:
    """hard/soft/ignored -> the code the pipeline is configured with (UNCONFIRMED upstream)."""
    by_label = {label: code for code, label in PipelineSettings().failure_type_codes.items()}
    return {t: by_label[t] for t in (*_FAILURE_TYPES, "undefined")}


@dataclass(frozen=True)
class _Plan:
    """Everything a window's batches share."""

    dataset: str
    seed: int
    window: datetime
    layout: Layout
    org_unit: str
    t_lo: int  # first possible time of the file's date column (epoch s)
    t_hi: int  # dates < t_hi: the window end, or one second past `now`
    now_s: int
    deliveries: list[Delivery]
    pool: RecipientPool
    failure_codes: dict[str, str]


def _plan(
    dataset: str,
    window_start: datetime,
    *,
    seed: int,
    layout: str,
    org_unit: str,
    now: datetime | None,
) -> _Plan:
    layouts = DATASET_LAYOUTS[dataset]
    if layout not in layouts:
        raise ValueError(f"layout must be one of {sorted(layouts)}, not {layout!r}")
    if "," in org_unit or '"' in org_unit or "\n" in org_unit:
        raise ValueError("org_unit must not contain commas, quotes or line breaks")
    window = as_utc(window_start)
    if window != floor_window(window):
        raise ValueError(f"{window.isoformat()} is not the start of a 4-hour UTC window")
    if window < _ID_ORIGIN:
        raise ValueError("windows before 2000-01-01 are not supported")
    now_utc = as_utc(now) if now is not None else datetime.now(UTC)
    t_lo = _epoch_seconds(window)
    now_s = int(now_utc.timestamp())  # floor: a time equal to it is not in the future
    if now_s < t_lo:
        raise ValueError(
            f"window {window.isoformat()} starts after now ({now_utc.isoformat()}): "
            "a log cannot be written in the future"
        )
    return _Plan(
        dataset=dataset,
        seed=seed,
        window=window,
        layout=layouts[layout],
        org_unit=org_unit,
        t_lo=t_lo,
        t_hi=min(t_lo + WINDOW_SECONDS, now_s + 1),
        now_s=now_s,
        deliveries=deliveries_for_window(seed, window),
        pool=recipient_pool(seed),
        failure_codes=_failure_type_codes(),
    )


def _first_id(window: datetime) -> int:
    return (window_index(window) - window_index(_ID_ORIGIN)) * _ID_STRIDE


# (rng, first row of the batch, rows, lo, hi) -> that many valid rows (canonical field ->
# values) whose date column lies in [lo, hi).
BatchColumns = Callable[[np.random.Generator, int, int, int, int], dict[str, Column]]


@dataclass(frozen=True)
class _Source:
    """How one file's rows are made. Batches get consecutive slices of [t_first, t_end) for
    their dates, so dates rise through the file as in an export sorted by date (a source may
    instead slice a file-wide sorted sample, as trackingLog does); `columns` is called for
    the batches in order and may keep state (the last id) between calls."""

    columns: BatchColumns
    t_first: int
    t_end: int


@dataclass(frozen=True)
class _References:
    """What a file refers to in other datasets' files of the same seed."""

    history_windows: int = 0  # trackingLog: earlier windows whose sends may get reactions
    broadlog_rows: int | None = None  # rows of the broadLog files referred to (None: the same)
    broadlog_defect_rate: float | None = None  # their defect rate (None: the same)


def _check_sizes(rows: int, defect_rate: float, batch_rows: int) -> None:
    if not 0 <= defect_rate <= 1:
        raise ValueError("defect_rate must be within [0, 1]")
    if rows < 0 or not 1 <= batch_rows <= MAX_BATCH_ROWS:
        # A batch becomes one Arrow string array, whose 32-bit offsets stop at 2 GiB.
        raise ValueError(f"rows must be >= 0 and batch_rows within [1, {MAX_BATCH_ROWS}]")


def _slices(
    rows: int, batch_rows: int, t_first: int, t_end: int
) -> Iterator[tuple[int, int, int, int, int]]:
    """(batch number, first row, rows, lo, hi) per batch: each its share of [t_first, t_end)."""
    span = t_end - t_first
    for b, r0 in enumerate(range(0, rows, batch_rows)):
        n = min(batch_rows, rows - r0)
        lo = t_first + span * r0 // rows
        yield b, r0, n, lo, max(t_first + span * (r0 + n) // rows, lo + 1)


def _defects_rng(plan: _Plan, batch: int) -> np.random.Generator:
    # One definition for the writer and for the replays that must know a file's defective
    # rows without writing it (trackingLog skips broadLog's, profiles place people around its own).
    return rng_for(plan.seed, f"{plan.dataset}-defects", window_index(plan.window), batch)


def _iter_batches(
    plan: _Plan, source: _Source, rows: int, defect_rate: float, batch_rows: int
) -> Iterator[tuple[list[memoryview | bytes], list[tuple[int, str]]]]:
    """Per batch: CSV body chunks (no header) and its defects as (record number, reason)."""
    widx = window_index(plan.window)
    kinds = DEFECT_KINDS[plan.dataset]
    for b, r0, n, lo, hi in _slices(rows, batch_rows, source.t_first, source.t_end):
        # Streams keyed by dataset, window and batch only: layout and compression change
        # nothing but the header and the bytes on disk.
        columns = source.columns(rng_for(plan.seed, plan.dataset, widx, b), r0, n, lo, hi)
        defects = inject_defects(
            columns,
            n,
            plan.layout,
            kinds,
            defect_rate,
            _defects_rng(plan, b),
        )
        lines = join_lines([columns[name] for name in plan.layout.columns.values()])
        yield (
            body_chunks(lines, {d.row: d.line for d in defects}),
            [(r0 + d.row + 2, d.reason) for d in defects],  # record numbers: header is 1
        )


def _prefetch(items: Iterator[_T]) -> Iterator[_T]:
    """Yield `items`, computing the next one on another thread meanwhile: Arrow kernels and
    zlib release the GIL, so generating batch b+1 overlaps writing/compressing batch b on a
    second core. `items` is still advanced by one thread at a time, in order."""
    end = object()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sample-data") as pool:
        pending = pool.submit(next, items, end)
        while (item := pending.result()) is not end:
            pending = pool.submit(next, items, end)
            yield item  # type: ignore[misc]


def _stats(rows: int, defects: list[tuple[int, str]], bytes_written: int = 0) -> GenerationStats:
    counts = Counter(reason for _, reason in defects)
    return GenerationStats(
        rows=rows,
        expected_valid=rows - len(defects),
        expected_rejects=dict(sorted(counts.items())),
        reject_lines=dict(defects),
        bytes_written=bytes_written,
    )


def _timestamps(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    """n sorted epoch seconds in [lo, hi): a batch's dates."""
    return np.sort(rng.integers(lo, hi, size=n, dtype=np.int64))


def _uniform_ints(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """One integer in [lo_i, hi_i] per row, for bounds that differ from row to row."""
    return lo + (rng.random(lo.size) * (hi - lo + 1)).astype(np.int64)


def _distinct_sample(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """n pool indices, each at most once while n <= size (one export row per person), then
    round after round when more rows than people are asked for."""
    rounds = -(-n // size) if n else 0
    return np.concatenate([rng.permutation(size) for _ in range(rounds)] or [np.empty(0, int)])[:n]
