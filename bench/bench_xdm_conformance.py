"""XDM conformance of broadLog XDM batches: per-record reference against the columnar path.

    .venv/bin/python bench/bench_xdm_conformance.py [--rows 1000000] [--reference-rows 100000]
        [--repeat 3] [--invalid-share 0.01]

Builds the broadLog XDM table the pipeline builds (`stream_broadlog_csv` -> `ingest_file` ->
`broadlog_to_xdm` -> XDM Parquet), then reads it back in the 65,536-row batches the
`broadlog_xdm_checks` check reads (`Warehouse.iter_batches`) and runs, per batch:

- reference: `schema.validate_many(xdm.to_records(batch))`, what the check ran before. It runs on
  the first `--reference-rows` rows only (about 80 s per million rows) and its rows/s is taken
  as the rate of the whole table.
- columnar: `schema.validate_table(batch)` on every row (the columnar screen, then the
  per-record path on the rows it flags).
- screen: `columnar.suspect_rows` alone.

Twice: on the clean table, and on a copy where `--invalid-share` of the rows get an `_id` that
is not a uri-reference and as many a null `timestamp` (a required field). The reports of both
paths are compared on the reference rows (they must be equal). Rounds are interleaved and the
figures are medians; compare ratios, not seconds, on a shared machine.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from resources.settings import PipelineSettings  # noqa: E402
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_flow  # noqa: E402
from rtcdp_assets.shared import xdm  # noqa: E402
from rtcdp_assets.shared.ingest import ingest_file  # noqa: E402
from rtcdp_assets.shared.xdm_conformance import XdmSchema  # noqa: E402
from rtcdp_assets.shared.xdm_conformance.columnar import suspect_rows  # noqa: E402
from rtcdp_dev.sample_data import stream_broadlog_csv  # noqa: E402

BATCH_ROWS = 65536


def build_xdm(rows: int, folder: Path) -> Path:
    csv_path = folder / "broadlog.csv"
    stream_broadlog_csv(csv_path, rows, seed=42, defect_rate=0.0)
    settings = PipelineSettings()
    out = folder / "xdm.parquet"
    writer: pq.ParquetWriter | None = None
    with csv_path.open("rb") as fh:
        for part in ingest_file(
            fh,
            source_file=csv_path.name,
            fmt=broadlog_flow.fmt,
            allowed_overrides=broadlog_flow.allowed_codes(settings),
        ):
            if not part.good.num_rows:
                continue
            mapped = broadlog_flow.to_xdm(part.good, settings)
            if writer is None:
                writer = pq.ParquetWriter(out, mapped.schema)
            writer.write_batch(mapped) if isinstance(mapped, pa.RecordBatch) else writer.write(
                mapped
            )
    assert writer is not None
    writer.close()
    return out


def with_defects(table: pa.Table, share: float) -> pa.Table:
    rng = np.random.default_rng(7)
    bad_id = pa.array(rng.random(table.num_rows) < share)
    no_time = pa.array(rng.random(table.num_rows) < share)
    ids = pc.if_else(bad_id, pa.scalar("not a uri reference"), table.column("_id"))
    times = table.column("timestamp")
    times = pc.if_else(no_time, pa.scalar(None, times.type), times)
    table = table.set_column(table.schema.get_field_index("_id"), "_id", ids)
    return table.set_column(table.schema.get_field_index("timestamp"), "timestamp", times)


def batches(table: pa.Table, rows: int | None = None) -> list[pa.RecordBatch]:
    buffer = io.BytesIO()
    pq.write_table(table if rows is None else table.slice(0, rows), buffer)
    buffer.seek(0)
    return list(pq.ParquetFile(buffer).iter_batches(batch_size=BATCH_ROWS))


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--invalid-share", type=float, default=0.01)
    args = parser.parse_args()
    schema: XdmSchema = broadlog_flow.xdm_schema()
    with tempfile.TemporaryDirectory() as tmp:
        clean = pq.read_table(build_xdm(args.rows, Path(tmp)))
    tables = {"clean": clean, "invalid": with_defects(clean, args.invalid_share)}
    print(f"load average before: {os.getloadavg()[0]:.2f}; {clean.num_rows:,} broadLog XDM rows")
    print()
    print("| table | approach | rows | median s | ms per M rows | vs reference | invalid |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, table in tables.items():
        every = batches(table)
        head = batches(table, args.reference_rows)
        head_rows = sum(b.num_rows for b in head)

        def reference_report(batch: pa.RecordBatch) -> object:
            return schema.validate_many(xdm.to_records(batch))

        reference = [reference_report(b) for b in head]
        assert reference == [schema.validate_table(b) for b in head], "reports differ"
        approaches: dict[str, tuple[int, Callable[[], object]]] = {
            "reference": (head_rows, lambda h=head: [reference_report(b) for b in h]),
            "columnar": (table.num_rows, lambda e=every: [schema.validate_table(b) for b in e]),
            "screen": (table.num_rows, lambda e=every: [suspect_rows(schema, b) for b in e]),
        }
        seconds: dict[str, list[float]] = {name: [] for name in approaches}
        for _ in range(args.repeat):
            for name, (_, run) in approaches.items():
                seconds[name].append(timed(run))
        per_million = {
            name: statistics.median(seconds[name]) / rows * 1e6
            for name, (rows, _) in approaches.items()
        }
        invalid = sum(schema.validate_table(b).invalid for b in every)
        for name, (rows, _) in approaches.items():
            ratio = per_million["reference"] / per_million[name]
            print(
                f"| {label} | {name} | {rows:,} | {statistics.median(seconds[name]):.3f} | "
                f"{per_million[name] * 1000:,.0f} | {ratio:,.0f}× | "
                f"{invalid if name == 'columnar' else ''} |"
            )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
