"""Files of one window: built in memory, or streamed to disk."""

from __future__ import annotations

import gzip as gzip_module
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from rtcdp_dev.sample_data.batches import (
    _check_sizes,
    _iter_batches,
    _Plan,
    _plan,
    _prefetch,
    _References,
    _Source,
    _stats,
)
from rtcdp_dev.sample_data.broadlog_rows import _broadlog_source
from rtcdp_dev.sample_data.common import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_BENCH_WINDOW,
    GeneratedFile,
    GenerationStats,
    as_utc,
    header_line,
)
from rtcdp_dev.sample_data.non_deliverables_rows import _non_deliverables_source
from rtcdp_dev.sample_data.pipeline import FLOWS
from rtcdp_dev.sample_data.preferences_rows import _preferences_source
from rtcdp_dev.sample_data.profiles_rows import _profiles_source
from rtcdp_dev.sample_data.push_subscriptions_rows import _push_subscriptions_source
from rtcdp_dev.sample_data.tracking_log_rows import _tracking_source

_SOURCES: dict[str, Callable[[_Plan, int, float, int, _References], _Source]] = {
    "broadlog": _broadlog_source,
    "tracking_log": _tracking_source,
    "non_deliverables": _non_deliverables_source,
    "preferences": _preferences_source,
    "profiles": _profiles_source,
    "push_subscriptions": _push_subscriptions_source,
}


def dataset_file_name(dataset: str, window_start: datetime, *, gzip: bool = False) -> str:
    """`<prefix>_YYYYMMDD_HHMM.csv[.gz]` with the prefix the pipeline's sensor expects."""
    prefix = FLOWS[dataset].file_prefix
    return f"{prefix}_{as_utc(window_start):%Y%m%d_%H%M}.csv" + (".gz" if gzip else "")


def broadlog_file_name(window_start: datetime, *, gzip: bool = False) -> str:
    return dataset_file_name("broadlog", window_start, gzip=gzip)


def generate_dataset(
    dataset: str,
    window_start: datetime,
    rows: int,
    *,
    seed: int,
    layout: str = "classic",
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    history_windows: int = 0,
    broadlog_rows: int | None = None,
    broadlog_defect_rate: float | None = None,
) -> GeneratedFile:
    """One export file of `dataset` for the 4-hour window starting at `window_start`, in
    memory. Its date column lies in the window and never after `now` (default: the wall
    clock). Raises ValueError for a window that starts after `now`.

    trackingLog and profiles refer to the broadLog file of the same seed that has
    `broadlog_rows` rows and `broadlog_defect_rate` (default: this file's `rows` and
    `defect_rate`, as `write_dataset_files` writes them); trackingLog reacts to the sends of
    this window and of up to `history_windows` windows before it. Other datasets ignore them.
    """
    plan = _plan(dataset, window_start, seed=seed, layout=layout, org_unit=org_unit, now=now)
    _check_sizes(rows, defect_rate, batch_rows)
    refs = _References(history_windows, broadlog_rows, broadlog_defect_rate)
    source = _SOURCES[dataset](plan, rows, defect_rate, batch_rows, refs)
    parts: list[memoryview | bytes] = [header_line(plan.layout)]
    defects: list[tuple[int, str]] = []
    for body, found in _iter_batches(plan, source, rows, defect_rate, batch_rows):
        parts += body
        defects.extend(found)
    stats = _stats(rows, defects)
    return GeneratedFile(
        name=dataset_file_name(dataset, plan.window),
        content=b"".join(parts),
        rows=rows,
        expected_valid=stats.expected_valid,
        expected_rejects=stats.expected_rejects,
        reject_lines=stats.reject_lines,
        dataset=dataset,
        window_start=plan.window,
    )


def generate_broadlog(
    window_start: datetime,
    rows: int,
    *,
    seed: int,
    layout: str = "classic",
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> GeneratedFile:
    """One broadLog export file for the 4-hour window starting at `window_start`, in memory.

    tsEvent lies in the window and never after `now` (default: the wall clock, which changes
    nothing for a past window). Raises ValueError for a window that starts after `now`.
    """
    return generate_dataset(
        "broadlog",
        window_start,
        rows,
        seed=seed,
        layout=layout,
        defect_rate=defect_rate,
        org_unit=org_unit,
        now=now,
        batch_rows=batch_rows,
    )


def generate_tracking_log(
    window_start: datetime,
    rows: int,
    *,
    seed: int,
    layout: str = "classic",
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    history_windows: int = 0,
    broadlog_rows: int | None = None,
    broadlog_defect_rate: float | None = None,
) -> GeneratedFile:
    """trackingLog rows reacting to sent messages of the broadLog files of the same seed:
    this window's and up to `history_windows` earlier ones' (see `generate_dataset`).

    Every row's broadLog, delivery, recipient and external id are those of a broadLog row
    with status sent that the pipeline keeps (no defect there), and tsLog lies after that
    row's tsEvent, inside the window and not after `now`: the orphan check finds nothing as
    long as those broadLog files are ingested. About a third of the sent messages get all
    the reactions: opens (url type 2, url id 1), clicks (1) on example.com links, a few
    mirror pages (6) and opt-outs (3). Raises ValueError when `rows` > 0 and no sent message
    precedes the window's end.
    """
    return generate_dataset(
        "tracking_log",
        window_start,
        rows,
        seed=seed,
        layout=layout,
        defect_rate=defect_rate,
        org_unit=org_unit,
        now=now,
        batch_rows=batch_rows,
        history_windows=history_windows,
        broadlog_rows=broadlog_rows,
        broadlog_defect_rate=broadlog_defect_rate,
    )


def generate_non_deliverables(
    window_start: datetime,
    rows: int,
    *,
    seed: int,
    layout: str = "classic",
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> GeneratedFile:
    """Quarantine entries changed in the window: emails (channel 0) and mobile numbers
    (channel 1) of pool recipients; statuses quarantine / with errors / denylisted / valid
    with failure reasons, error counts and texts that fit them (§b3, §b5); status and channel
    codes as PipelineSettings maps them. An address changes at most once in a second (the XDM
    `_id` is built from both), so a clean file never repeats an `_id`."""
    return generate_dataset(
        "non_deliverables",
        window_start,
        rows,
        seed=seed,
        layout=layout,
        defect_rate=defect_rate,
        org_unit=org_unit,
        now=now,
        batch_rows=batch_rows,
    )


def generate_preferences(
    window_start: datetime,
    rows: int,
    *,
    seed: int,
    layout: str = "classic",
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> GeneratedFile:
    """Opt-out flags of recipients changed in the window, one row per recipient (while
    `rows` <= the pool size): mostly 0; some blackListEmail, few global blackList."""
    return generate_dataset(
        "preferences",
        window_start,
        rows,
        seed=seed,
        layout=layout,
        defect_rate=defect_rate,
        org_unit=org_unit,
        now=now,
        batch_rows=batch_rows,
    )


def generate_profiles(
    window_start: datetime,
    rows: int,
    *,
    seed: int,
    layout: str = "classic",
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    broadlog_rows: int | None = None,
    broadlog_defect_rate: float | None = None,
) -> GeneratedFile:
    """The recipient extract of the window: every recipient of the window's broadLog file
    (see `generate_dataset`) when `rows` allows (it does when both have the same number of
    rows), then other people of the pool. A person keeps the same attributes in every file
    (`recipient_details`)."""
    return generate_dataset(
        "profiles",
        window_start,
        rows,
        seed=seed,
        layout=layout,
        defect_rate=defect_rate,
        org_unit=org_unit,
        now=now,
        batch_rows=batch_rows,
        broadlog_rows=broadlog_rows,
        broadlog_defect_rate=broadlog_defect_rate,
    )


def generate_push_subscriptions(
    window_start: datetime,
    rows: int,
    *,
    seed: int,
    layout: str = "classic",
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> GeneratedFile:
    """App subscriptions changed in the window, one row per subscription: pool recipients
    with an external ID (the subscriber key, `push_devices`), their app, platform (as
    `push_platform_codes` writes it) and a token of the platform's shape; with more rows than
    subscribers, further devices of theirs (`further_push_devices`). Defects include
    malformed tokens (`invalid_push_token`) and unknown platforms."""
    return generate_dataset(
        "push_subscriptions",
        window_start,
        rows,
        seed=seed,
        layout=layout,
        defect_rate=defect_rate,
        org_unit=org_unit,
        now=now,
        batch_rows=batch_rows,
    )


def stream_dataset(
    dataset: str,
    path: Path,
    rows: int,
    *,
    seed: int,
    window_start: datetime = DEFAULT_BENCH_WINDOW,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    layout: str = "classic",
    defect_rate: float = 0.0,
    org_unit: str = "default",
    now: datetime | None = None,
    compresslevel: int = 6,
    history_windows: int = 0,
    broadlog_rows: int | None = None,
    broadlog_defect_rate: float | None = None,
) -> GenerationStats:
    """Write one (large) file of `dataset` batch by batch; memory stays at about two batches
    (plus, for trackingLog, the referenced sends: ~30 bytes per engaged broadLog row).

    gzip-compressed (mtime 0, deterministic) when `path` ends in `.gz`. Same arguments and
    `batch_rows` as `generate_dataset` → the same CSV bytes. The file appears under its name
    only once complete, so a drop-zone sensor never reads half of it.
    """
    plan = _plan(dataset, window_start, seed=seed, layout=layout, org_unit=org_unit, now=now)
    _check_sizes(rows, defect_rate, batch_rows)
    refs = _References(history_windows, broadlog_rows, broadlog_defect_rate)
    source = _SOURCES[dataset](plan, rows, defect_rate, batch_rows, refs)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    defects: list[tuple[int, str]] = []
    try:
        with tmp.open("wb") as raw:
            out: BinaryIO = raw
            if path.name.lower().endswith(".gz"):
                out = gzip_module.GzipFile(  # type: ignore[assignment]
                    filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=compresslevel
                )
            with out:
                out.write(header_line(plan.layout))
                batches = _iter_batches(plan, source, rows, defect_rate, batch_rows)
                for body, found in _prefetch(batches):
                    out.writelines(body)
                    defects.extend(found)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return _stats(rows, defects, path.stat().st_size)


def stream_broadlog(
    path: Path,
    rows: int,
    *,
    seed: int,
    window_start: datetime = DEFAULT_BENCH_WINDOW,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    layout: str = "classic",
    defect_rate: float = 0.0,
    org_unit: str = "default",
    now: datetime | None = None,
    compresslevel: int = 6,
) -> GenerationStats:
    """`stream_dataset` for broadLog: same arguments and `batch_rows` as `generate_broadlog`
    → the same CSV bytes."""
    return stream_dataset(
        "broadlog",
        path,
        rows,
        seed=seed,
        window_start=window_start,
        batch_rows=batch_rows,
        layout=layout,
        defect_rate=defect_rate,
        org_unit=org_unit,
        now=now,
        compresslevel=compresslevel,
    )


def stream_broadlog_csv(
    path: Path,
    rows: int,
    *,
    seed: int,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    defect_rate: float = 0.0,
    window_start: datetime = DEFAULT_BENCH_WINDOW,
    layout: str = "classic",
    compresslevel: int = 6,
) -> int:
    """Benchmark helper: `stream_broadlog` returning just the number of rows written."""
    return stream_broadlog(
        path,
        rows,
        seed=seed,
        window_start=window_start,
        batch_rows=batch_rows,
        layout=layout,
        defect_rate=defect_rate,
        compresslevel=compresslevel,
    ).rows
