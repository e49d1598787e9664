"""Mobile push reading speed against baselines measured in the same run, on the same input.

    .venv/bin/python bench/bench_push.py [--rows 1000000] [--records 100000] [--repeat 2]

- push_subscriptions: `ingest_file` with the per-platform token rule, against the same ingest
  without the rule and against plain `pyarrow.csv.read_csv` of the same generated CSV;
- aep_push_tokens: `ingest_window` (per-record parsing, chunked token checks, typed Parquet and
  rejects), against `pyarrow.json.read_json` of the same JSON-lines export file.

Absolute figures drift ±25 % between runs on a shared 2-core machine; compare the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) if repeat > 1 else statistics.fmean(times)


def bench_subscriptions(rows: int, repeat: int, tmp: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from resources.settings import PipelineSettings
    from rtcdp_assets.campaign_to_aep.push_subscriptions import push_subscriptions_flow as flow
    from rtcdp_assets.shared.ingest import ingest_file
    from rtcdp_dev import sample_data as sd

    settings = PipelineSettings()
    path = tmp / "appSubscriptions_20261102_0800.csv"
    sd.stream_dataset("push_subscriptions", path, rows, seed=1, defect_rate=0.005)

    def plain() -> None:
        header = path.open().readline().strip().split(",")
        types = dict.fromkeys(header, pa.string())
        pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(invalid_row_handler=lambda _row: "skip"),
            convert_options=pacsv.ConvertOptions(column_types=types),
        )

    def ingest(rules: bool) -> None:
        with path.open("rb") as fh:
            for _ in ingest_file(
                fh,
                source_file=path.name,
                fmt=flow.fmt,
                allowed_overrides=flow.allowed_codes(settings),
                row_rules=flow.row_rules(settings) if rules else None,
            ):
                pass

    base = _best(plain, repeat)
    without = _best(lambda: ingest(False), repeat)
    with_rule = _best(lambda: ingest(True), repeat)
    print(f"push_subscriptions, {rows:,} rows ({path.stat().st_size / 1e6:.0f} MB CSV)")
    for name, secs in (
        ("plain pyarrow read_csv (baseline)", base),
        ("ingest without the token rule", without),
        ("ingest with the token rule", with_rule),
    ):
        print(f"  {name:<36} {rows / secs:>12,.0f} rows/s  {base / secs:5.2f}x baseline")


def bench_aep(records: int, repeat: int, tmp: Path) -> None:
    import pyarrow.json as pajson

    from resources import embedded_resources
    from rtcdp_assets.mobile_push import aep_push_tokens as aep
    from rtcdp_dev import sample_data as sd

    resources = embedded_resources(tmp / "zones", file_settle_seconds=0)
    export = sd.aep_push_token_export(
        [],
        seed=1,
        export_time=datetime(2026, 11, 23, 9, tzinfo=UTC),
        overlap=0,
        aep_only=records,
    )
    (path,) = export.write(tmp / "zones" / "aep_dataset_export")
    base = _best(lambda: pajson.read_json(path), repeat)
    ours = _best(
        lambda: aep.ingest_window(
            resources["aep_dataset_export"],
            resources["warehouse"],
            resources["settings"],
            export.partition,
        ),
        repeat,
    )
    print(f"aep_push_tokens, {records:,} records ({path.stat().st_size / 1e6:.0f} MB JSON lines)")
    for name, secs in (("pyarrow read_json (baseline)", base), ("ingest_window", ours)):
        print(f"  {name:<36} {records / secs:>12,.0f} rec/s   {base / secs:5.2f}x baseline")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    # Before the benchmarks import the pipeline (in their bodies, on purpose): its Dagster
    # preview/beta warnings would otherwise interleave with the figures.
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="bench-push-") as tmp:
        bench_subscriptions(args.rows, args.repeat, Path(tmp))
        bench_aep(args.records, args.repeat, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
