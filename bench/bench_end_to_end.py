"""What users run, end to end: a sensor tick → every asset and check of the run it requests →
the published file, per flow, on the embedded default, against plain pyarrow on the same file.

    .venv/bin/python bench/bench_end_to_end.py                     # every flow, default sizes
    .venv/bin/python bench/bench_end_to_end.py --flow broadlog --broadlog-rows 1000000 \
        [--publication-format parquet|json-lines] [--repeat K] [--json results.json]

Flows and default sizes: broadLog at 1 M and 5 M rows (`--broadlog-rows`, repeatable); the
other Campaign exports (tracking_log, non_deliverables, preferences, profiles,
push_subscriptions) at 1 M rows (`--rows`); one AEP audience export of 1 M members
(`--members`) against 5 M Campaign profile rows (`--profiles`) through
`campaign_audience_import_published`. Inputs are generated first, in this process: clean
Campaign exports (classic layout, `rtcdp_dev.sample_data.stream_dataset`) with their `.done`
markers; for the audience, bench_audience_match's warehouse (profiles partitions, suppression
list) and the export as AEP's default CSV in the AEP destination zone. A clean generated
export never repeats an XDM `_id`, at any size (tests/dev/test_sample_data_ids.py); a failed
`id_unique` would show in the table as "not published".

Each round, each in a fresh process (peak RSS from `VmHWM` is that process's own):

- baseline: `pyarrow.csv.read_csv` of the same file with declared column types (integers
  int64, timestamps timestamp[us], the rest text) + `write_table` (zstd), as bench_ingest.py's
  `plain_pyarrow`;
- run: the code location's definitions loaded (not timed: a running deployment has them),
  then the flow's sensor evaluated once and each run it requests executed in that process
  with the instance (`execute_in_process`: the in-process executor that `dagster dev`'s run
  worker uses), on local-folder zones and a SQLite instance in a temp data directory. Times:
  the tick, each step (STEP_START → STEP_SUCCESS/FAILURE in the event log), the run
  (RUN_START → end), and end to end: tick start → the published file's last write.

With the default run launcher a user also waits for a fresh run-worker process to import the
definitions; that is measured apart (`--launch-repeat`, bench_definitions.py's commands) and
printed beside the figures. `--publication-format` goes to the run through
`RTCDP_AEP_PUBLICATION_FORMAT` and the settings resource, when PipelineSettings has
`aep_publication_format`; without it the only form (JSON Lines) is used and said so.

The audience flow's per-member rate is printed beside bench_audience_match.py's
`build_import` on the same generated warehouse (`--no-match` skips it) and beside the
10 M × 50 M figure recorded in bench/README.md. Absolute times drift ±25 % between runs on a
shared 2-core machine; compare the ratios.
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.end_to_end_inputs import (  # noqa: E402
    AUDIENCE_FLOW,
    CAMPAIGN_FLOWS,
    FlowInput,
    audience_input,
    campaign_input,
    fresh_root,
    record_campaign_side,
)

# bench/README.md, `bench_audience_match.py --members 10000000 --profiles 50000000` (third
# session): build_import median 40.4 s (38.8–42.6 s).
RECORDED_MATCH = {"members": 10_000_000, "profiles": 50_000_000, "seconds": 40.4}
LAUNCH = (
    "launch: the sensor evaluated once, then each requested run executed in this process with "
    "the instance (execute_in_process, the in-process executor a `dagster dev` run worker "
    "uses); the definitions were imported before the clock started"
)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _child_command(*args: str) -> list[str]:
    return [sys.executable, __file__, "--child", *args]


def _in_child(*args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(_child_command(*args), capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"{args[:2]} failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _child(kind: str, flow: str, path: str, publication_format: str) -> None:
    from bench.end_to_end_run import plain_pyarrow, run_flow

    if kind == "baseline":
        source = Path(path)
        with tempfile.TemporaryDirectory(prefix="rtcdp-bench-plain-", dir=source.parent) as out:
            result = plain_pyarrow(flow, source, Path(out))
    else:
        result = run_flow(flow, Path(path), publication_format or None)
    print(json.dumps(result))


def measure_flow(
    source: FlowInput, work: Path, repeat: int, publication_format: str | None
) -> dict[str, Any]:
    """`repeat` rounds of baseline then run, each run on its own copy of the input."""
    rounds = []
    for number in range(repeat):
        flow_input = fresh_root(source, work / f"round{number}")
        if flow_input.flow == AUDIENCE_FLOW:
            record_campaign_side(flow_input.root, flow_input.profile_partitions)
        try:
            baseline = _in_child("baseline", source.flow, str(flow_input.source), "")
            run = _in_child("run", source.flow, str(flow_input.root), publication_format or "")
        finally:
            shutil.rmtree(flow_input.root, ignore_errors=True)
        rounds.append({"baseline": baseline, "run": run})
    return {
        "flow": source.flow,
        "rows": source.rows,
        "csv_mib": source.source.stat().st_size / 2**20,
        "rounds": rounds,
    }


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def e2e_seconds(run: dict[str, Any]) -> float:
    """Tick start → the published file's last write; the run's return if nothing appeared."""
    appeared = run["published_after_seconds"]
    return float(appeared if appeared is not None else run["e2e_seconds"])


def print_flow(result: dict[str, Any]) -> dict[str, Any]:
    rounds = result["rounds"]
    rows = result["rows"]
    runs = [r["run"] for r in rounds]
    e2e = _median([e2e_seconds(r) for r in runs])
    base = _median([r["baseline"]["seconds"] for r in rounds])
    per_round = " ".join(f"{r['baseline']['seconds'] / e2e_seconds(r['run']):.3f}" for r in rounds)
    last = runs[-1]
    print(
        f"\n== {result['flow']}: {rows:,} rows ({result['csv_mib']:,.0f} MiB of input), "
        f"publication {last['publication_format']}, median of {len(rounds)} round(s)"
    )
    print(f"{'step':<44} {'seconds':>9} {'peak RSS':>10}")
    print(f"{'sensor tick':<44} {_median([r['tick_seconds'] for r in runs]):>9.2f}")
    for number, run in enumerate(last["runs"]):
        for step in run["steps"]:
            seconds = _median(
                [
                    s["seconds"]
                    for r in runs
                    for s in r["runs"][number]["steps"]
                    if s["step"] == step["step"]
                ]
            )
            mark = "" if step["ok"] else "  FAILED"
            peaks = [
                s.get("peak_rss_mib")
                for r in runs
                for s in r["runs"][number]["steps"]
                if s["step"] == step["step"]
            ]
            peak = max((p for p in peaks if p is not None), default=None)
            shown_peak = f"{peak:>6,.0f} MiB" if peak is not None else f"{'-':>10}"
            print(f"  {step['step']:<42} {seconds:>9.2f} {shown_peak}{mark}")
        totals = [r["runs"][number]["run_seconds"] for r in runs]
        run_total = _median([t for t in totals if t is not None])
        print(f"{'run ' + run['job'] + ' ' + str(run['partition']):<44} {run_total:>9.2f}")
    appeared = [r["published_after_seconds"] for r in runs]
    shown = _median([a for a in appeared if a is not None])
    print(f"{'published file present (from tick start)':<44} {shown:>9.2f}")
    for label, seconds in (
        ("end to end (tick start → published file)", e2e),
        ("baseline: plain pyarrow CSV→Parquet", base),
    ):
        print(f"{label:<44} {seconds:>9.2f}   {rows / seconds:>11,.0f} rows/s")
    ratio = base / e2e
    rss = max(r["peak_rss_mib"] for r in runs)
    base_rss = max(r["baseline"]["peak_rss_mib"] for r in rounds)
    print(f"ratio baseline/e2e: {ratio:.3f}× (per round: {per_round})")
    before = max(r.get("rss_before_tick_mib", float("nan")) for r in runs)
    print(
        f"peak RSS: run process {rss:,.0f} MiB (of which {before:,.0f} MiB held before the tick: "
        f"definitions, Dagster, pyarrow); baseline {base_rss:,.0f} MiB"
    )
    checks = [c for run in last["runs"] for c in run["checks_passed"]]
    failed = [c for run in last["runs"] for c in run["checks_failed"]]
    ok = all(run["success"] for r in runs for run in r["runs"]) and bool(last["published"])
    print(
        f"runs {'succeeded' if ok else 'FAILED'}; checks {len(checks)} passed, "
        f"{len(failed)} failed{': ' + ', '.join(failed) if failed else ''}; "
        f"published {', '.join(last['published'])} ({last['published_bytes'] / 2**20:,.1f} MiB)"
    )
    return {
        "flow": result["flow"],
        "rows": rows,
        "e2e": e2e,
        "baseline": base,
        "ratio": ratio,
        "rss": rss,
        "ok": ok and not failed,
        "format": last["publication_format"],
    }


def print_summary(summaries: list[dict[str, Any]]) -> None:
    print(
        f"\n{'flow':<20} {'rows':>11} {'e2e s':>8} {'plain s':>8} {'ratio':>8} "
        f"{'rows/s':>10} {'peak RSS':>9}  publication / outcome"
    )
    for s in summaries:
        outcome = "ok" if s["ok"] else "FAILED (run, check or publication)"
        print(
            f"{s['flow']:<20} {s['rows']:>11,} {s['e2e']:>8.2f} {s['baseline']:>8.2f} "
            f"{s['ratio']:>7.3f}× {s['rows'] / s['e2e']:>10,.0f} {s['rss']:>5,.0f} MiB  "
            f"{s['format']} / {outcome}"
        )


def launch_overhead(repeat: int) -> dict[str, float]:
    """A fresh process importing the code location (what the default run launcher's
    `dagster api execute_run` worker does first) and one importing dagster alone."""
    from bench.bench_definitions import COMMANDS, time_once

    names = ("import_dagster", "load_defs")
    times: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="rtcdp-bench-pyc-") as pyc:
        # Compiled modules, as a deployed code location has them (see bench_definitions.py).
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPYCACHEPREFIX": pyc}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for name in names:
            time_once(COMMANDS[name], env)
        for _ in range(repeat):
            for name in names:
                times[name].append(time_once(COMMANDS[name], env))
    return {name: statistics.median(values) for name, values in times.items()}


def match_rates(warehouse: Path) -> dict[str, Any]:
    """bench_audience_match's build_import and plain join on the audience flow's warehouse."""
    from bench.bench_audience_match import measure

    return {name: measure(name, warehouse, 1) for name in ("plain_join", "build_import")}


def print_audience_rates(
    summary: dict[str, Any], match: dict[str, Any] | None, launch: dict[str, float] | None
) -> None:
    members = summary["rows"]
    print(f"\naudience, members per second ({members:,} members):")
    print(f"  end to end (sensor → import file published): {members / summary['e2e']:>10,.0f}")
    if match:
        build = match["build_import"]["seconds"]
        join = match["plain_join"]["seconds"]
        print(
            f"  bench_audience_match build_import, same warehouse: {members / build:>10,.0f}"
            f"  ({build:.1f} s; its plain join {join:.1f} s)"
        )
    recorded = RECORDED_MATCH["members"] / RECORDED_MATCH["seconds"]
    print(
        f"  bench_audience_match 10 M × 50 M (bench/README.md): {recorded:>10,.0f}"
        f"  ({RECORDED_MATCH['seconds']} s); e2e at {members / summary['e2e'] / recorded:.2f}× "
        "that rate (target ≥ 0.5×)"
    )
    if launch:
        with_launch = members / (summary["e2e"] + launch["load_defs"])
        print(f"  end to end plus a fresh run worker's definitions load: {with_launch:>10,.0f}")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    flows = [*CAMPAIGN_FLOWS, AUDIENCE_FLOW]
    parser.add_argument("--flow", action="append", choices=flows, help="default: all")
    parser.add_argument("--broadlog-rows", type=int, action="append", help="default 1 M and 5 M")
    parser.add_argument("--rows", type=int, default=1_000_000, help="other Campaign exports")
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--profiles", type=int, default=5_000_000)
    parser.add_argument("--publication-format", choices=["parquet", "json-lines"])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--launch-repeat", type=int, default=3, help="0: skip")
    parser.add_argument("--no-match", action="store_true", help="skip bench_audience_match")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = _parse_args()
    if args.child:
        _child(*args.child)
        return 0
    from bench.end_to_end_run import supports_publication_format

    if args.publication_format and not supports_publication_format():
        print(
            f"PipelineSettings has no aep_publication_format: --publication-format "
            f"{args.publication_format} ignored, JSON Lines is the only form"
        )
    flows = args.flow or [*CAMPAIGN_FLOWS, AUDIENCE_FLOW]
    print(LAUNCH)
    print(f"load before: {_load()}; {os.cpu_count()} cores")
    results, summaries, match = [], [], None
    tmp = Path(tempfile.mkdtemp(prefix="rtcdp-bench-e2e-", dir=args.dir))
    try:
        jobs: list[tuple[str, int]] = (
            [("broadlog", n) for n in (args.broadlog_rows or [1_000_000, 5_000_000])]
            if "broadlog" in flows
            else []
        )
        jobs += [(f, args.rows) for f in flows if f not in ("broadlog", AUDIENCE_FLOW)]
        jobs += [(AUDIENCE_FLOW, args.members)] if AUDIENCE_FLOW in flows else []
        for number, (flow, size) in enumerate(jobs):
            work = tmp / f"{number}-{flow}"
            if flow == AUDIENCE_FLOW:
                hook = None if args.no_match else match_rates
                source, match = audience_input(size, args.profiles, work / "source", hook)
            else:
                source = campaign_input(flow, size, work / "source")
            result = measure_flow(source, work, args.repeat, args.publication_format)
            shutil.rmtree(work, ignore_errors=True)
            results.append(result)
            summaries.append(print_flow(result))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload after: {_load()}")
    print_summary(summaries)
    launch = launch_overhead(args.launch_repeat) if args.launch_repeat > 0 else None
    if launch:
        print(
            f"\nrun-worker launch (default run launcher: a fresh process imports the code "
            f"location first), median of {args.launch_repeat}: load definitions "
            f"{launch['load_defs']:.2f} s (import dagster alone {launch['import_dagster']:.2f} s);"
            " add it to each end-to-end figure above"
        )
    audience = [s for s in summaries if s["flow"] == AUDIENCE_FLOW]
    if audience:
        print_audience_rates(audience[0], match, launch)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"results": results, "summaries": summaries, "launch": launch, "match": match},
                indent=2,
                default=str,
            )
        )
    return 0 if all(s["ok"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
