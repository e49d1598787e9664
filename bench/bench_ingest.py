"""broadLog ingestion speed against baselines measured in the same run, on the same file.

    .venv/bin/python bench/bench_ingest.py --rows 1000000 [--rows 5000000 ...] [--repeat 3]

For each size it generates one clean broadLog CSV with `stream_broadlog_csv` (streaming, so a
20 M-row file never sits in memory), then runs every approach in a fresh subprocess (so peak
RSS, read from `VmHWM`, is that approach's own). Approaches run interleaved, round after round,
so a change of load on the shared machine hits all of them alike; the figures are medians.

- plain_pyarrow (baseline): `pyarrow.csv.read_csv` with the same column types as ours (integers
  as int64, timestamps as timestamp[us], the rest as text) + `pyarrow.parquet.write_table`
  with pyarrow's defaults and the same codec (zstd). No validation, no streaming.
- ingest: `ingest_file` (streaming parse, validate, quarantine split) → typed Parquet and
  rejects Parquet through `ParquetSink`: what the typed asset does per file.
- ingest_rules: `ingest` plus the partition rules (`duplicate_row`, `timestamp_in_future`:
  `partition_rules`), their row digests taken during the pass, as the typed asset
  runs them.
- ingest_xdm (the target): the same pass also maps each good batch to XDM
  (`broadlog_to_xdm`) → typed, rejects and XDM Parquet, each file read once.
- xdm_only: parse + validate + XDM map → XDM Parquet and rejects only, no typed copy.
- assets: what the `broadlog_ingest` op runs when the sensor requests a partition: the flow's
  `ingest_partition` with the XDM mapper, on a local zone holding the file (SHA-256 of the
  source, the one pass → typed, rejects and XDM Parquet, the partition rules, the warehouse
  writes, the move to the archive).
- assets_two_pass: the typed asset alone (as `ingest_rules`), then the `_xdm` asset alone
  re-reading the typed Parquet in 65,536-row batches (what the assets did before they shared
  one op; still what a typed-only run followed by an XDM-only run costs).
- per_row_python: the same work one row at a time, written as one would without Arrow:
  `csv.reader`, per row strip every value, check required values, `int()` the integer
  columns, check the code lists, a compiled `re` for timestamp shape and email, then
  `datetime.fromisoformat` and the same XDM dict that `broadlog_to_xdm` builds (ids, identity
  map, measures, labels); rejects get a reason; records go to Parquet through
  `Table.from_pylist` every 20,000 rows. It runs on the first `--per-row-rows` rows of the
  file (default 200,000) and its rows/s is taken as the rate of the whole file.

Absolute figures drift ±25 % between runs on a shared 2-core machine; compare the ratios.
`CPU s/M` (CPU seconds of the process per million rows, all threads) says how much work an
approach does whatever the load; rows/s also shows how well it overlaps work on two cores.
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

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

APPROACHES = (
    "plain_pyarrow",
    "ingest",
    "ingest_rules",
    "ingest_xdm",
    "xdm_only",
    "assets",
    "assets_two_pass",
    "per_row_python",
)
TARGET = "ingest_xdm"
PER_ROW_CHUNK = 20_000


def run_approach(name: str, csv_path: Path, out_dir: Path, per_row_rows: int) -> dict[str, float]:
    from resources.settings import PipelineSettings
    from rtcdp_assets.campaign_to_aep import broadlog  # noqa: F401  (imported before the clock starts)

    settings = PipelineSettings()
    # Every approach's imports happen before this point: a run process loads the code once,
    # so the figures are per-row work only.
    start, cpu_start = time.perf_counter(), time.process_time()
    if name == "plain_pyarrow":
        rows = _plain_pyarrow(csv_path, out_dir)
    elif name in ("ingest", "ingest_xdm", "xdm_only"):
        rows = _ingest(csv_path, out_dir, settings, typed=name != "xdm_only", xdm=name != "ingest")
    elif name == "ingest_rules":
        rows = _ingest(csv_path, out_dir, settings, typed=True, xdm=False, rules=True)
    elif name == "assets":
        rows = _assets(csv_path, out_dir, settings)
    elif name == "assets_two_pass":
        rows = _ingest(csv_path, out_dir, settings, typed=True, xdm=False, rules=True)
        _xdm_from_typed(out_dir / "typed.parquet", out_dir / "xdm.parquet", settings)
    elif name == "per_row_python":
        rows = _per_row_python(csv_path, out_dir, settings, per_row_rows)
    else:
        raise ValueError(name)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"rows": rows, "seconds": seconds, "cpu_s": cpu, "peak_rss_mib": _peak_rss_mib()}


def _plain_pyarrow(csv_path: Path, out_dir: Path) -> int:
    import pyarrow.csv as pacsv

    from rtcdp_assets.campaign_to_aep.broadlog import BROADLOG_FORMAT, CLASSIC

    kinds = {f.name: f.kind for f in BROADLOG_FORMAT.fields}
    arrow = {"int": pa.int64(), "timestamp": pa.timestamp("us")}
    types = {src: arrow.get(kinds[dst], pa.string()) for src, dst in CLASSIC.columns.items()}
    table = pacsv.read_csv(csv_path, convert_options=pacsv.ConvertOptions(column_types=types))
    pq.write_table(table, out_dir / "plain.parquet", compression="zstd")
    return table.num_rows


def _ingest(
    csv_path: Path, out_dir: Path, settings: object, *, typed: bool, xdm: bool, rules: bool = False
) -> int:
    from datetime import timedelta

    from resources.warehouse import ParquetSink
    from rtcdp_assets.campaign_to_aep.broadlog import (
        BROADLOG_FORMAT,
        _allowed_codes,
        broadlog_to_xdm,
    )
    from rtcdp_assets.shared.ingest import REJECT_SCHEMA, FileResult, ingest_file
    from rtcdp_assets.shared.partition_rules import RowDigests, window_end_from_stamp

    # The typed asset's partition rules (duplicate_row, timestamp_in_future): digests taken
    # during the pass, as `ingest_partition` takes them.
    tolerance = timedelta(hours=1)
    window_end = window_end_from_stamp(csv_path.stem.split("_", 1)[1])
    digest = (
        RowDigests(BROADLOG_FORMAT, window_end + tolerance, spill_dir=_scratch(out_dir))
        if rules and window_end
        else None
    )
    result = FileResult(source_file=csv_path.name, layout="")
    typed_sink = ParquetSink(out_dir / "typed.parquet", BROADLOG_FORMAT.typed_schema)
    rejects = ParquetSink(out_dir / "rejects.parquet", REJECT_SCHEMA)
    xdm_sink = None
    with csv_path.open("rb") as fh, typed_sink, rejects:
        for part in ingest_file(
            fh,
            source_file=csv_path.name,
            fmt=BROADLOG_FORMAT,
            allowed_overrides=_allowed_codes(settings),  # type: ignore[arg-type]
            result=result,
        ):
            if typed:
                typed_sink.write(part.good)
            rejects.write(part.rejects)
            if digest is not None:
                digest.add(part.good)
            if xdm and part.good.num_rows:
                mapped = broadlog_to_xdm(part.good, settings)  # type: ignore[arg-type]
                if xdm_sink is None:
                    xdm_sink = ParquetSink(out_dir / "xdm.parquet", mapped.schema, statistics=False)
                xdm_sink.write(mapped)
        if xdm_sink is not None:
            xdm_sink.close()
    assert result.rows_in == result.rows_out + result.rows_rejected
    if digest is not None:
        from rtcdp_assets.shared.partition_rules import apply_partition_rules

        entry = {"source_file": csv_path.name, "rows_out": 0, "rows_rejected": 0, "reasons": {}}
        apply_partition_rules(
            BROADLOG_FORMAT,
            [out_dir / "typed.parquet"],
            [out_dir / "rejects.parquet"],
            [entry],
            latest_time=lambda _name: window_end,
            tolerance=tolerance,
            digests=[digest],
        )
    return result.rows_in


def _assets(csv_path: Path, out_dir: Path, settings: object) -> int:
    from resources import LocalDropZone, Warehouse
    from rtcdp_assets.campaign_to_aep.broadlog import broadlog_flow

    zone_root = out_dir / "zone"
    (zone_root / "export").mkdir(parents=True)
    os.link(csv_path, zone_root / "export" / csv_path.name)
    out = broadlog_flow.ingest_partition(
        LocalDropZone(root=str(zone_root)),
        Warehouse(zone=LocalDropZone(root=str(out_dir / "warehouse"))),
        settings,  # type: ignore[arg-type]
        broadlog_flow.partition_for(csv_path.name),  # type: ignore[arg-type]
        to_xdm=broadlog_flow.to_xdm,
    )
    return int(out.manifest["rows_in"])


def _scratch(out_dir: Path) -> Path:
    """Working files (the rules' digests), not counted as output."""
    scratch = out_dir / "scratch"
    scratch.mkdir(exist_ok=True)
    return scratch


def _xdm_from_typed(typed_path: Path, out: Path, settings: object) -> None:
    """The `<dataset>_xdm` asset's loop, on a local file instead of the warehouse."""
    from resources.warehouse import ParquetSink
    from rtcdp_assets.campaign_to_aep.broadlog import broadlog_to_xdm

    sink = None
    for batch in pq.ParquetFile(typed_path).iter_batches(batch_size=65536):
        mapped = broadlog_to_xdm(batch, settings)  # type: ignore[arg-type]
        if sink is None:
            sink = ParquetSink(out, mapped.schema, statistics=False)
        sink.write(mapped)
    if sink is not None:
        sink.close()


def _peak_rss_mib() -> float:
    # VmHWM starts afresh at exec; ru_maxrss would carry the parent's peak (the generator's).
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _per_row_python(csv_path: Path, out_dir: Path, settings: object, limit: int) -> int:
    """Validation and XDM mapping a dict at a time (see the module docstring)."""
    import csv
    import json as json_mod
    import re
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from rtcdp_assets.campaign_to_aep.broadlog import (
        BROADLOG_FORMAT,
        CLASSIC,
        FAILURE_REASONS,
        STATUS_LABELS,
        _allowed_codes,
    )
    from rtcdp_assets.shared.ingest import _EMAIL_RE, _TS_RE

    ts_re, email_re, int_re = re.compile(_TS_RE), re.compile(_EMAIL_RE), re.compile(r"^[+-]?\d+$")
    fields = BROADLOG_FORMAT.fields
    allowed = {f.name: f.allowed for f in fields}
    allowed.update(_allowed_codes(settings))  # type: ignore[arg-type]
    failure_types: dict[str, str] = settings.failure_type_codes  # type: ignore[attr-defined]
    namespace: str = settings.campaign_identity_namespace  # type: ignore[attr-defined]
    zone = ZoneInfo(settings.campaign_timezone)  # type: ignore[attr-defined]
    records: list[dict[str, object]] = []
    rejects: list[dict[str, object]] = []
    writer = None
    rows = 0
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        position = {CLASSIC.columns[h]: i for i, h in enumerate(header) if h in CLASSIC.columns}
        for line, raw in enumerate(reader, start=2):
            if rows >= limit:
                break
            rows += 1
            if len(raw) != len(header):
                rejects.append({"line_number": line, "reason": "wrong_column_count"})
                continue
            row: dict[str, object] = {}
            reason = None
            for f in fields:
                value = raw[position[f.name]].strip()
                if not value:
                    if f.required:
                        reason = reason or ("missing_required_value", f.name)
                    row[f.name] = None
                    continue
                codes = allowed.get(f.name)
                if codes is not None and value not in codes:
                    reason = reason or (f"unknown_code:{f.name}", f.name)
                if f.kind == "int":
                    if not int_re.match(value):
                        reason = reason or ("invalid_integer", f.name)
                        continue
                    row[f.name] = int(value)
                elif f.kind == "timestamp":
                    try:
                        if not ts_re.match(value):
                            raise ValueError(value)
                        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
                    except ValueError:
                        reason = reason or ("invalid_timestamp", f.name)
                        continue
                    row[f.name] = (ts if ts.tzinfo else ts.replace(tzinfo=zone)).astimezone(UTC)
                elif f.kind == "email":
                    value = value.lower()
                    if not email_re.match(value):
                        reason = reason or ("invalid_email", f.name)
                    row[f.name] = value
                else:
                    row[f.name] = value
            if reason is not None:
                rejects.append(
                    {
                        "line_number": line,
                        "reason": reason[0],
                        "column": reason[1],
                        "raw": json_mod.dumps(dict(zip(header, raw, strict=True))),
                    }
                )
                continue
            records.append(
                _per_row_xdm(row, failure_types, namespace, STATUS_LABELS, FAILURE_REASONS)
            )
            if len(records) >= PER_ROW_CHUNK:
                writer = _write_rows(writer, records, out_dir / "per_row.parquet")
                records = []
    writer = _write_rows(writer, records, out_dir / "per_row.parquet")
    if writer is not None:
        writer.close()
    return rows


def _per_row_xdm(
    row: dict[str, object],
    failure_types: dict[str, str],
    namespace: str,
    status_labels: dict[str, str],
    failure_reasons: dict[str, str],
) -> dict[str, object]:
    status = status_labels.get(str(row["status"]))
    ftype = failure_types.get(str(row["failure_type"])) if row["failure_type"] is not None else None
    failed = status == "failed"
    hard, soft = failed and ftype == "hard", failed and ftype == "soft"
    event_date = row["event_date"]
    micros = int(event_date.timestamp()) * 1_000_000 + event_date.microsecond  # type: ignore[attr-defined]
    recipient = row["external_id"] or str(row["recipient_id"])
    reason = row["failure_reason"]

    def measure(flag: bool) -> dict[str, float] | None:
        return {"value": 1.0} if flag else None

    return {
        "_id": f"campaign-broadlog-{row['broadlog_id']}-{row['status']}-{micros}",
        "timestamp": event_date,
        "eventType": "directMarketing.emailBounced"
        if hard
        else "directMarketing.emailBouncedSoft"
        if soft
        else "directMarketing.emailSent",
        "producedBy": "system",
        "identityMap": {
            "Email": [{"id": row["address"], "authenticatedState": "ambiguous", "primary": False}],
            namespace: [{"id": recipient, "authenticatedState": "ambiguous", "primary": True}],
        },
        "directMarketing": {
            "sends": measure(status == "sent"),
            "bounces": measure(hard or soft),
            "nonDeliverables": measure(hard),
            "notSent": measure(status in ("pending", "cancelled")),
            "excludes": measure(failed and not (hard or soft)),
        },
        "_experience": {
            "campaign": {
                "broadlogID": str(row["broadlog_id"]),
                "deliveryID": str(row["delivery_id"]),
                "recipientID": str(row["recipient_id"]),
                "externalID": recipient,
                "campaignID": row["campaign_id"],
                "deliveryLabel": row["delivery_label"],
                "channel": "email",
                "status": status,
                "reason": failure_reasons.get(str(reason)) if reason is not None else None,
                "quarantine": hard,
            }
        },
    }


def _write_rows(
    writer: pq.ParquetWriter | None, records: list[dict[str, object]], path: Path
) -> pq.ParquetWriter | None:
    if not records:
        return writer
    table = pa.Table.from_pylist(records)
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema, compression="zstd")
    writer.write_table(table.cast(writer.schema))
    return writer


def _child(name: str, csv_path: str, out_dir: str, per_row_rows: str) -> None:
    print(json.dumps(run_approach(name, Path(csv_path), Path(out_dir), int(per_row_rows))))


def _run_once(name: str, csv_path: Path, per_row_rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="rtcdp-bench-", dir=csv_path.parent) as out:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, str(csv_path), out, str(per_row_rows)],
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
        run = json.loads(proc.stdout.strip().splitlines()[-1])
        # The source's link in the `assets` zone is input, scratch files are neither.
        outputs = [
            p
            for p in Path(out).rglob("*")
            if p.is_file() and not {"zone", "scratch"} & set(p.relative_to(out).parts)
        ]
        run["output_mib"] = sum(p.stat().st_size for p in outputs) / 2**20
        return run


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, action="append", help="file sizes (repeatable)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--per-row-rows", type=int, default=200_000)
    parser.add_argument("--approach", action="append", choices=APPROACHES, help="default: all")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    # Imported after the --child branch on purpose: the measured child stays free of the
    # generator (and of the Dagster definitions it loads).
    from rtcdp_dev.sample_data import stream_broadlog_csv

    approaches = args.approach or list(APPROACHES)
    if "plain_pyarrow" not in approaches:
        approaches.insert(0, "plain_pyarrow")
    for n in args.rows or [1_000_000]:
        # ~170 bytes of CSV a row, plus the Parquet outputs of one run at a time.
        needed, free = n * 250, shutil.disk_usage(args.dir).free
        if needed > free:
            print(
                f"{n:,} rows need ~{needed / 2**30:.1f} GiB in {args.dir}, {free / 2**30:.1f} free"
            )
            return 1
        tmp = Path(tempfile.mkdtemp(prefix="rtcdp-bench-data-", dir=args.dir))
        try:
            csv_path = tmp / "broadLog_20261102_0800.csv"
            # A clean file: the typed baseline cannot read a defective row at all.
            stream_broadlog_csv(csv_path, n, seed=42, defect_rate=0.0)
            size = csv_path.stat().st_size
            print(f"\n{n:,} rows, {size / 2**20:,.0f} MiB of CSV; load before: {_load()}")
            runs: dict[str, list[dict[str, float]]] = {a: [] for a in approaches}
            for _ in range(args.repeat):
                for name in approaches:
                    runs[name].append(_run_once(name, csv_path, args.per_row_rows))
            print(f"load after: {_load()}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        base = [r["rows"] / r["seconds"] for r in runs["plain_pyarrow"]]
        base_median = statistics.median(base)
        print(
            f"{'approach':<16} {'rows':>11} {'rows/s':>11} {'CPU s/M':>8} {'peak RSS':>9} "
            f"{'output':>8} {'vs plain':>9}  per-round ratios"
        )
        medians: dict[str, float] = {}
        for name, rs in runs.items():
            rates = [r["rows"] / r["seconds"] for r in rs]
            medians[name] = statistics.median(rates)
            per_round = " ".join(f"{a / b:.2f}" for a, b in zip(rates, base, strict=True))
            print(
                f"{name:<16} {int(rs[0]['rows']):>11,} {medians[name]:>11,.0f} "
                f"{statistics.median(r['cpu_s'] / r['rows'] * 1e6 for r in rs):>8.2f} "
                f"{max(r['peak_rss_mib'] for r in rs):>5.0f} MiB "
                f"{statistics.median(r['output_mib'] for r in rs):>4.0f} MiB "
                f"{medians[name] / base_median:>8.2f}x  {per_round}"
            )
        if TARGET in medians and "per_row_python" in medians:
            print(f"{TARGET} vs per_row_python: {medians[TARGET] / medians['per_row_python']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
