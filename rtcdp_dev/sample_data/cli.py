"""The `rtcdp-sample-data` command line."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rtcdp_dev.sample_data.common import WINDOW, as_utc, floor_window, window_starts
from rtcdp_dev.sample_data.datasets import DATASETS, write_dataset_files
from rtcdp_dev.sample_data.pipeline import LAYOUTS


def _iso(value: str) -> datetime:
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date/time: {value!r}") from exc


def _non_negative_int(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return n


def _positive_int(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return n


def _rate(value: str) -> float:
    f = float(value)
    if not 0 <= f <= 1:
        raise argparse.ArgumentTypeError("must be within [0, 1]")
    return f


def _datasets(value: str) -> list[str]:
    names = [v.strip().lower() for v in value.split(",") if v.strip()]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown dataset(s) {unknown}; available: {', '.join(DATASETS)}"
        )
    return list(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    datasets = "; ".join(f"{d.name}: {d.description}" for d in DATASETS.values())
    parser = argparse.ArgumentParser(
        prog="rtcdp-sample-data",
        description=(
            "Write fake but realistic Adobe Campaign export files into a local drop-zone "
            "folder: one file per dataset and 4-hour UTC window, named after the window "
            "start (e.g. broadLog_YYYYMMDD_HHMM.csv[.gz]) in OUT/EXPORT_FOLDER/. Seeded: the "
            "same arguments give byte-identical files, and the datasets of one run fit "
            "together (the same people; trackingLog reacts to broadLog messages; profiles "
            "cover every broadLog recipient). All personal data is invented and uses "
            "reserved test domains and phone ranges only."
        ),
        epilog=(
            "Time range: windows are 4-hour UTC blocks (00:00, 04:00, ... 20:00). A file is "
            "written for every window whose start lies in [START floored to its window, END). "
            "Without --end, END is the end of the last window completed before --now. Without "
            "--start, START is END minus --windows windows (default 6 = one day); with --start "
            "but without --end, --windows (if given) sets the count. Naive times are UTC. "
            "A window that contains --now is cut at --now; windows after it are refused. "
            f"Datasets: {datasets}. Each written file is reported on one line with its row "
            "count and its expected valid and rejected rows per reason code."
        ),
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="drop-zone root folder (created if missing)",
    )
    parser.add_argument(
        "--export-folder",
        default="export",
        metavar="NAME",
        help="sub-folder of DIR the files go to (default: %(default)s, as "
        "PipelineSettings.campaign_export_folder)",
    )
    parser.add_argument(
        "--start",
        type=_iso,
        metavar="ISO",
        help="first window, e.g. 2026-11-20 or 2026-11-20T08:00 (floored to its 4-hour window)",
    )
    parser.add_argument(
        "--end",
        type=_iso,
        metavar="ISO",
        help="exclusive end of the range (default: last completed window before --now)",
    )
    parser.add_argument(
        "--windows",
        type=_positive_int,
        metavar="N",
        help="number of windows when --start or --end is missing (default 6)",
    )
    parser.add_argument(
        "--rows-per-file",
        type=_non_negative_int,
        default=2000,
        metavar="N",
        help="data rows per file (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="random seed; same seed and arguments -> same bytes (default: %(default)s)",
    )
    parser.add_argument(
        "--layout",
        choices=sorted(LAYOUTS),
        default="classic",
        help="column names: classic = Campaign Classic v7/v8 (iBroadLogId, "
        "tsEvent, ...), standard = Campaign Standard (id, eventDate, ...), as each "
        "dataset's pipeline layouts name them (default: %(default)s)",
    )
    parser.add_argument(
        "--gzip",
        action="store_true",
        help="write .csv.gz (deterministic: mtime 0, no embedded name)",
    )
    parser.add_argument(
        "--defect-rate",
        type=_rate,
        default=0.005,
        metavar="F",
        help="share of rows with one realistic defect the pipeline must "
        "reject (invalid email, empty required value, non-integer id, "
        "malformed timestamp or date, invalid boolean, unknown code, missing "
        "column); 0 disables (default: %(default)s)",
    )
    parser.add_argument(
        "--org-unit",
        default="default",
        metavar="NAME",
        help="Campaign organizational unit written to sOrgUnit / orgUnit (default: %(default)s)",
    )
    parser.add_argument(
        "--datasets",
        type=_datasets,
        default=list(DATASETS),
        metavar="LIST",
        help=f"comma-separated datasets to write (available and default: {','.join(DATASETS)})",
    )
    parser.add_argument(
        "--now",
        type=_iso,
        metavar="ISO",
        help="the generation's 'now' (default: the current time); no timestamp is written after it",
    )
    return parser


def resolve_range(
    start: datetime | None, end: datetime | None, windows: int | None, now: datetime
) -> tuple[datetime, datetime]:
    """The CLI's --start/--end/--windows/--now rules, as (start, exclusive end)."""
    if start is not None and end is not None:
        if windows is not None:
            raise ValueError("--windows cannot be combined with both --start and --end")
        return floor_window(start), as_utc(end)
    if start is not None:
        first = floor_window(start)
        return first, first + WINDOW * windows if windows is not None else floor_window(now)
    last_end = as_utc(end) if end is not None else floor_window(now)
    # The last window is the one that starts before `end`, even if `end` is not on a boundary.
    last_start = floor_window(last_end - timedelta(microseconds=1))
    return last_start - WINDOW * ((windows or 6) - 1), last_end


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    now = args.now if args.now is not None else datetime.now(UTC)
    try:
        start, end = resolve_range(args.start, args.end, args.windows, now)
    except ValueError as exc:
        parser.error(str(exc))
    starts = window_starts(start, end)
    if not starts:
        parser.error(f"no 4-hour window starts in [{start.isoformat()}, {end.isoformat()})")
    if starts[-1] > now:
        parser.error(f"the window {starts[-1].isoformat()} starts after --now {now.isoformat()}")
    total = 0
    for name in args.datasets:
        try:
            written = write_dataset_files(
                name,
                args.out,
                start,
                end,
                args.rows_per_file,
                seed=args.seed,
                layout=args.layout,
                gzip=args.gzip,
                defect_rate=args.defect_rate,
                org_unit=args.org_unit,
                now=now,
                export_folder=args.export_folder,
            )
        except ValueError as exc:  # e.g. no broadLog message for trackingLog to react to
            parser.error(f"{name}: {exc}")
        for generated in written:
            print(generated.summary())
            total += 1
    print(f"{total} file(s) written to {args.out / args.export_folder}", file=sys.stderr)
    return 0
