"""The checks of a broadLog run and the XDM JSON encoder, against the ingest step, in one run.

    .venv/bin/python bench/bench_xdm_checks.py --rows 1000000 [--rows 5000000] [--repeat 2]

For each size: one clean broadLog CSV (`stream_broadlog_csv`), ingested once by the flow's
`ingest_partition` (the `broadlog_ingest` op: typed, rejects and XDM Parquet) into a local
warehouse. Then each approach runs in a fresh process on that warehouse (peak RSS from
`VmHWM`), approaches interleaved round by round, medians:

- ingest (the baseline): `ingest_partition` again on the same file, into a fresh warehouse.
- typed_checks: the typed asset's checks (reconciliation, single_org_unit, export_cadence,
  reject_rate) on the stored partition.
- xdm_checks: `evaluate_xdm` as the `broadlog_xdm_checks` step runs it: xdm_conformance
  (columnar screen), id_unique, no_future_timestamp, record_size, identity_count over the
  whole partition.
- xdm_checks_per_record: the same four checks as they were (records cleaned and serialised
  one by one, ids in a set), on the first `--reference-rows` rows; its rate stands for the
  whole partition.
- json_reference: `xdm.dumps` of each record of `xdm.to_records` (first `--reference-rows`).
- json_lines: `xdm_json.json_lines` batch by batch over the whole partition.
- record_lengths: `xdm_json.record_lengths` batch by batch over the whole partition.

`s / M rows` is seconds per million rows; `vs ingest` divides it by the ingest's. The issue's
target for all checks of a Campaign run is 25 % of the ingest step.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PK = "2026-11-02-08:00"
CHECK_STEPS = ("typed_checks", "xdm_checks")  # the run's two check steps
APPROACHES = (
    "ingest",
    "typed_checks",
    "xdm_checks",
    "xdm_checks_per_record",
    "json_reference",
    "json_lines",
    "record_lengths",
)


def _resources(warehouse_dir: Path) -> tuple[Any, Any, Any]:
    from resources import LocalDropZone, PipelineSettings, Warehouse
    from rtcdp_assets.campaign_to_aep.broadlog import broadlog_flow

    warehouse = Warehouse(zone=LocalDropZone(root=str(warehouse_dir)))
    return broadlog_flow, warehouse, PipelineSettings()


def _ingest(csv_path: Path, out: Path) -> int:
    from resources import LocalDropZone

    flow, warehouse, settings = _resources(out / "warehouse")
    (out / "zone" / "export").mkdir(parents=True)
    os.link(csv_path, out / "zone" / "export" / csv_path.name)
    marker = out / "zone" / "export" / f"{csv_path.name}.done"  # the completion marker
    marker.write_bytes(b"")
    settled = time.time() - 3600  # files still being written are left for the next tick
    for path in (marker, out / "zone" / "export" / csv_path.name):
        os.utime(path, (settled, settled))
    result = flow.ingest_partition(
        LocalDropZone(root=str(out / "zone")), warehouse, settings, PK, to_xdm=flow.to_xdm
    )
    return int(result.manifest["rows_in"])


def run_approach(name: str, data: Path, scratch: Path, reference_rows: int) -> dict[str, float]:
    import numpy as np

    from asset_checks.campaign_to_aep import export_checks
    from rtcdp_assets.shared import xdm, xdm_json

    flow, warehouse, settings = _resources(data / "warehouse")
    batches = lambda: warehouse.iter_batches(flow.xdm_dataset, PK)  # noqa: E731
    start, cpu = time.perf_counter(), time.process_time()
    rows = 0
    if name == "ingest":
        rows = _ingest(data / "broadLog_20261102_0800.csv", scratch)
    elif name == "typed_checks":
        export_checks.reconcile(flow.dataset, warehouse, PK)
        export_checks.org_unit_result(flow.dataset, warehouse, settings, PK)
        export_checks.cadence_result(flow, warehouse, settings, PK)
        export_checks.reject_rate_result(flow.dataset, warehouse, settings, PK)
        rows = warehouse.row_count(flow.dataset, PK) or 0
    elif name == "xdm_checks":
        flow.xdm_schema()  # compiled once per process, as in a code server: not the check's
        start, cpu = time.perf_counter(), time.process_time()
        results = export_checks.evaluate_xdm(flow, warehouse, settings, PK)
        rows = results[0].metadata["records_checked"].value
    elif name == "xdm_checks_per_record":
        ids: set[Any] = set()
        largest = most = 0
        for batch in _first(batches(), reference_rows):
            records = xdm.to_records(batch)
            for v in batch.column("_id").to_pylist():
                ids.add(v)
            for r in records:
                largest = max(largest, len(xdm.dumps(r).encode()))
                most = max(most, sum(len(i) for i in (r.get("identityMap") or {}).values()))
            rows += batch.num_rows
    elif name == "json_reference":
        size = 0
        for batch in _first(batches(), reference_rows):
            size += len("".join(xdm.dumps(r) + "\n" for r in xdm.to_records(batch)).encode())
            rows += batch.num_rows
    elif name == "json_lines":
        for batch in batches():
            xdm_json.json_lines(batch)
            rows += batch.num_rows
    elif name == "record_lengths":
        for batch in batches():
            int(np.max(xdm_json.record_lengths(batch).to_numpy()))
            rows += batch.num_rows
    return {
        "rows": rows,
        "seconds": time.perf_counter() - start,
        "cpu_s": time.process_time() - cpu,
        "peak_rss_mib": _peak_rss_mib(),
    }


def _first(batches: Any, rows: int) -> Any:
    seen = 0
    for batch in batches:
        if seen >= rows:
            return
        yield batch.slice(0, rows - seen)
        seen += batch.num_rows


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _run_once(name: str, data: Path, reference_rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="rtcdp-bench-", dir=data) as scratch:
        args = [sys.executable, __file__, "--child", name, str(data), scratch, str(reference_rows)]
        proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO)
        if proc.returncode:
            raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--approach", action="append", choices=APPROACHES)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, data, scratch, reference_rows = args.child
        print(json.dumps(run_approach(name, Path(data), Path(scratch), int(reference_rows))))
        return 0
    from rtcdp_dev.sample_data import stream_broadlog_csv

    approaches = args.approach or list(APPROACHES)
    if "ingest" not in approaches:
        approaches.insert(0, "ingest")
    for n in args.rows or [1_000_000]:
        data = Path(tempfile.mkdtemp(prefix="rtcdp-bench-checks-", dir=args.dir))
        try:
            csv_path = data / "broadLog_20261102_0800.csv"
            stream_broadlog_csv(csv_path, n, seed=42, defect_rate=0.0)
            _ingest(csv_path, data)
            print(f"\n{n:,} broadLog rows; load before: {_load()}")
            runs: dict[str, list[dict[str, float]]] = {a: [] for a in approaches}
            for _ in range(args.repeat):
                for name in approaches:
                    runs[name].append(_run_once(name, data, args.reference_rows))
            print(f"load after: {_load()}")
        finally:
            shutil.rmtree(data, ignore_errors=True)
        _print(runs)
    return 0


def _print(runs: dict[str, list[dict[str, float]]]) -> None:
    def per_million(r: dict[str, float]) -> float:
        return r["seconds"] / r["rows"] * 1e6

    base = statistics.median(per_million(r) for r in runs["ingest"])
    reference = runs.get("json_reference")
    ref_rate = statistics.median(per_million(r) for r in reference) if reference else None
    print(
        f"{'approach':<22} {'rows':>10} {'s / M rows':>10} {'CPU s/M':>8} {'peak RSS':>9} "
        f"{'vs ingest':>9} {'vs json_reference':>17}"
    )
    for name, rs in runs.items():
        rate = statistics.median(per_million(r) for r in rs)
        cpu = statistics.median(r["cpu_s"] / r["rows"] * 1e6 for r in rs)
        rss = max(r["peak_rss_mib"] for r in rs)
        speedup = (
            f"{ref_rate / rate:>16.1f}×" if ref_rate and name.startswith(("json", "rec")) else ""
        )
        print(
            f"{name:<22} {int(rs[0]['rows']):>10,} {rate:>10.2f} {cpu:>8.2f} "
            f"{rss:>7.0f} MiB {rate / base:>8.1%} {speedup:>17}"
        )
    checks = [statistics.median(per_million(r) for r in runs[n]) for n in CHECK_STEPS if n in runs]
    if len(checks) == len(CHECK_STEPS):
        print(f"all checks of the run (typed + XDM): {sum(checks) / base:.1%} of the ingest")


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
