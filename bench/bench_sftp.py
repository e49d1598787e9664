"""SFTP fetch overlapped with parsing, on a real sshd, against baselines from the same run.

    .venv/bin/python bench/bench_sftp.py --rows 1000000 [--repeat 3]

Generates one clean broadLog CSV, serves it from a private OpenSSH sshd on 127.0.0.1
(rtcdp_dev.services' SshdServer) and times, each in a fresh process (peak RSS from VmHWM):

- openssh: OpenSSH's own `sftp` client fetching the file to /dev/null (the transfer baseline);
- transfer: our `SftpDropZone.open_read` read to the end and thrown away (transfer alone);
- parse: the `broadlog_ingest` op's `ingest_partition` on a `LocalDropZone` holding the same
  file (parse + validate + typed and XDM Parquet in one pass + warehouse, no network;
  `--typed-only` leaves the XDM mapping out, as the typed asset ran before it shared an op);
- end_to_end: the same `ingest_partition` on the `SftpDropZone`, the parser reading the SFTP file
  object as it arrives (no temporary copy of the source).

transfer and end_to_end use `open_read` as configured by default: the download runs in a thread of
the run process, reading ahead of the parser. `--child-process` adds both with
`read_in_child_process=True` (the download in a child process streaming through a pipe, its
start-up included) for comparison.

Target: end_to_end at most 1.2 x max(transfer, parse). The transfer rate is reported
as a ratio to OpenSSH's client. Approaches run interleaved, round after round, each in a fresh
process; each figure is the median of `--repeat` runs, and the ratio is also given per round.
Absolute times drift +-25 % between runs on a shared 2-core machine, so compare the ratios.

A second table says where the time went: the CPU seconds of the run process (its transfer
process included) and of the sshd, the cores they kept busy, and the main thread's wall time
split into on a CPU, runnable but waiting for a core, and other waits (GIL, queues, network),
from /proc/thread-self/schedstat. On a machine whose cores the parse alone keeps busy, the
download's CPU shows up as the parser waiting for a core.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore")

FILE_NAME = "broadLog_20261102_0800.csv"
APPROACHES = ("transfer", "parse", "end_to_end")
CHILD = "_child"


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _main_thread_times() -> tuple[float, float]:
    """This thread's seconds on a CPU and seconds runnable but waiting for one (Linux only)."""
    try:
        on_cpu, runqueue = Path("/proc/thread-self/schedstat").read_text().split()[:2]
    except (OSError, ValueError):
        return float("nan"), float("nan")
    return int(on_cpu) / 1e9, int(runqueue) / 1e9


def _cpu_seconds(*who: int) -> float:
    """User + system CPU seconds of `resource.RUSAGE_SELF` and/or `RUSAGE_CHILDREN` (finished
    children: the transfer process, OpenSSH's client)."""
    return sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage, who))


def _process_cpu() -> float:
    return _cpu_seconds(resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)


def _server_cpu(pid: int | None) -> float:
    """CPU seconds of the sshd listener's finished children: the SFTP sessions it served."""
    if pid is None:
        return float("nan")
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def _server_cpu_since(pid: int | None, before: float) -> float:
    """The sshd's CPU seconds since `before`, once it has reaped the session (at most 2 s)."""
    deadline = time.monotonic() + 2
    while (spent := _server_cpu(pid) - before) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    return spent


def _sftp_zone(conn: dict[str, object], child: bool = False) -> object:
    from resources.sftp import SftpDropZone

    return SftpDropZone(**conn, read_in_child_process=child)  # type: ignore[arg-type]


def run_approach(
    name: str, conn: dict[str, object], zone_root: Path, work: Path, typed_only: bool
) -> dict:
    from resources import LocalDropZone, PipelineSettings, Warehouse
    from rtcdp_assets.campaign_to_aep.broadlog import broadlog_flow

    settings = PipelineSettings()
    source = f"{settings.campaign_export_folder}/{FILE_NAME}"
    child = name.endswith(CHILD)
    name = name.removesuffix(CHILD)
    cpu_before, (on_before, wait_before) = _process_cpu(), _main_thread_times()
    start = time.perf_counter()
    rows = None
    if name == "transfer":
        zone = _sftp_zone(conn, child)
        nbytes = 0
        with zone.open_read(source) as fh:  # type: ignore[attr-defined]
            # the same read size the parser's stream uses
            while chunk := fh.read(1 << 20):
                nbytes += len(chunk)
        zone.close()  # type: ignore[attr-defined]
    else:
        zone = (
            _sftp_zone(conn, child) if name == "end_to_end" else LocalDropZone(root=str(zone_root))
        )
        warehouse = Warehouse(zone=LocalDropZone(root=str(work / "warehouse")))
        pk = broadlog_flow.partition_for(FILE_NAME)
        to_xdm = None if typed_only else broadlog_flow.to_xdm
        manifest = broadlog_flow.ingest_partition(
            zone,  # type: ignore[arg-type]
            warehouse,
            settings,
            pk,  # type: ignore[arg-type]
            to_xdm=to_xdm,
        ).manifest
        rows = manifest["rows_in"]
        nbytes = manifest["files"][0]["bytes_in"]
        if name == "end_to_end":
            zone.close()  # type: ignore[attr-defined]
    seconds = time.perf_counter() - start
    on_cpu, runqueue = _main_thread_times()
    return {
        "seconds": seconds,
        "bytes": nbytes,
        "rows": rows,
        "peak_rss_mib": _peak_rss_mib(),
        "cpu": _process_cpu() - cpu_before,
        # The main thread (the parser's) split into running, runnable but waiting for a core
        # (CPU contention), and the rest: the GIL, queues, the network.
        "main_on_cpu": on_cpu - on_before,
        "main_runqueue": runqueue - wait_before,
        "main_other_wait": seconds - (on_cpu - on_before) - (runqueue - wait_before),
    }


def _fresh_zone(csv_path: Path, root: Path) -> None:
    """A zone holding only the file in its export folder (the asset moves it to the archive)."""
    if root.exists():
        shutil.rmtree(root)
    (root / "export").mkdir(parents=True)
    os.link(csv_path, root / "export" / FILE_NAME)


def run_once(
    name: str,
    csv_path: Path,
    zone_root: Path,
    conn: dict,
    typed_only: bool,
    sshd_pid: int | None = None,
) -> dict[str, float]:
    """One run of an approach in a fresh process, on a zone holding only the file."""
    _fresh_zone(csv_path, zone_root)
    server_before = _server_cpu(sshd_pid)
    with tempfile.TemporaryDirectory(prefix="rtcdp-bench-sftp-") as work:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                name,
                json.dumps(conn),
                str(zone_root),
                work,
                "typed" if typed_only else "xdm",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["server_cpu"] = 0.0 if name == "parse" else _server_cpu_since(sshd_pid, server_before)
    return result


_CPU_FIGURES = ("cpu", "server_cpu", "main_on_cpu", "main_runqueue", "main_other_wait")


def summary(runs: list[dict[str, float]]) -> dict:
    return {
        **{k: statistics.median(r[k] for r in runs) for k in _CPU_FIGURES},
        "seconds": statistics.median(r["seconds"] for r in runs),
        "bytes": runs[0]["bytes"],
        "rows": runs[0]["rows"],
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "runs": [round(r["seconds"], 2) for r in runs],
    }


def measure_openssh(sshd: object, csv_path: Path, zone_root: Path, repeat: int) -> dict:
    _fresh_zone(csv_path, zone_root)
    cmd = [
        "sftp",
        "-q",
        "-b",
        "-",
        "-i",
        str(sshd.client_key_path),  # type: ignore[attr-defined]
        "-P",
        str(sshd.port),  # type: ignore[attr-defined]
        "-o",
        f"UserKnownHostsFile={sshd.known_hosts_path}",  # type: ignore[attr-defined]
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        f"{sshd.username}@{sshd.host}",  # type: ignore[attr-defined]
    ]
    runs, cpu, server_cpu = [], [], []
    for _ in range(repeat):
        before = _cpu_seconds(resource.RUSAGE_CHILDREN)
        server_before = _server_cpu(sshd.pid)  # type: ignore[attr-defined]
        start = time.perf_counter()
        subprocess.run(
            cmd,
            input=f"get export/{FILE_NAME} /dev/null\n",
            text=True,
            check=True,
            capture_output=True,
        )
        runs.append(time.perf_counter() - start)
        cpu.append(_cpu_seconds(resource.RUSAGE_CHILDREN) - before)
        server_cpu.append(_server_cpu_since(sshd.pid, server_before))  # type: ignore[attr-defined]
    nan = float("nan")
    return {
        "cpu": statistics.median(cpu),
        "server_cpu": statistics.median(server_cpu),
        "main_on_cpu": nan,
        "main_runqueue": nan,
        "main_other_wait": nan,
        "seconds": statistics.median(runs),
        "bytes": csv_path.stat().st_size,
        "rows": None,
        "peak_rss_mib": float("nan"),
        "runs": [round(r, 2) for r in runs],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--child-process",
        action="store_true",
        help="also time the download in a child process (read_in_child_process=True)",
    )
    parser.add_argument(
        "--typed-only",
        action="store_true",
        help="parse without the XDM mapping (the typed asset alone)",
    )
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, conn, zone_root, work, mode = args.child
        result = run_approach(name, json.loads(conn), Path(zone_root), Path(work), mode == "typed")
        print(json.dumps(result))
        return 0

    # Imported after the --child branch on purpose: the measured child stays free of the
    # generator (and of the Dagster definitions it loads) and of the service starters.
    from rtcdp_dev.sample_data import stream_broadlog_csv
    from rtcdp_dev.services import SshdServer

    with tempfile.TemporaryDirectory(prefix="rtcdp-bench-sftp-data-") as tmp:
        csv_path = Path(tmp) / FILE_NAME
        stream_broadlog_csv(csv_path, args.rows, seed=42, defect_rate=0.0)
        size_mb = csv_path.stat().st_size / 1e6
        zone_root = Path(tmp) / "zone"
        zone_root.mkdir()
        with SshdServer(root=zone_root, workdir=Path(tmp) / "sshd") as sshd:
            conn = {
                "host": sshd.host,
                "port": sshd.port,
                "username": sshd.username,
                "private_key_path": str(sshd.client_key_path),
                "known_hosts_path": str(sshd.known_hosts_path),
                "base_path": "",
            }
            load_before = os.getloadavg()
            results = {"openssh": measure_openssh(sshd, csv_path, zone_root, args.repeat)}
            extra = [f"{n}{CHILD}" for n in ("transfer", "end_to_end")]
            names = (*APPROACHES, *(extra if args.child_process else []))
            # Round after round, so that a change of load on the shared machine hits every
            # approach alike; each round's own ratio is printed beside the medians.
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
            for _ in range(args.repeat):
                for name in names:
                    runs[name].append(
                        run_once(name, csv_path, zone_root, conn, args.typed_only, sshd.pid)
                    )
            results.update({name: summary(rs) for name, rs in runs.items()})
            load_after = os.getloadavg()

    work = "typed only" if args.typed_only else "typed + XDM in one pass"
    print(
        f"file: {args.rows:,} rows, {size_mb:,.0f} MB; parse = {work}; "
        f"median of {args.repeat} runs each"
    )
    # Other work on the machine shows in every figure: report it beside them.
    before, after = (" ".join(f"{x:.2f}" for x in load) for load in (load_before, load_after))
    print(f"load average (1, 5, 15 min) before: {before}; after: {after}")
    print(f"{'approach':<22} {'seconds':>8} {'MB/s':>8} {'peak RSS':>10}  runs")
    for name, r in results.items():
        print(
            f"{name:<22} {r['seconds']:>8.2f} {r['bytes'] / 1e6 / r['seconds']:>8.1f} "
            f"{r['peak_rss_mib']:>6.0f} MiB  {r['runs']}"
        )
    _print_cpu(results)
    transfer, parse, e2e = (results[n]["seconds"] for n in APPROACHES)
    openssh = results["openssh"]["seconds"]
    print(f"transfer rate vs OpenSSH sftp: {openssh / transfer:.2f}x")
    print(
        f"end_to_end / max(transfer, parse): {e2e / max(transfer, parse):.2f}x of the medians "
        f"(target <= 1.20); per round: {_per_round(runs, '')}; "
        f"end_to_end / (transfer + parse): {e2e / (transfer + parse):.2f}x"
    )
    if args.child_process:
        t_ch, e_ch = (results[f"{n}{CHILD}"]["seconds"] for n in ("transfer", "end_to_end"))
        print(
            f"child process: end_to_end / max(transfer, parse): {e_ch / max(t_ch, parse):.2f}x "
            f"of the medians; per round: {_per_round(runs, CHILD)}; "
            f"end_to_end / (transfer + parse): {e_ch / (t_ch + parse):.2f}x"
        )
    return 0


def _print_cpu(results: dict[str, dict]) -> None:
    """Where the time went: CPU of both ends and the parser thread's waits (medians)."""
    cores = os.cpu_count() or 1
    print(
        f"\nCPU ({cores} cores; medians): CPU seconds of the run process (its transfer process "
        "included) and of the sshd, busy cores, and the main thread's wall time split into on a "
        "CPU / runnable but waiting for a core / other waits (GIL, queues, network)"
    )
    print(f"{'approach':<22} {'run CPU':>8} {'sshd CPU':>9} {'busy':>6}  main thread")
    for name, r in results.items():
        if "cpu" not in r:
            continue
        busy = (r["cpu"] + r["server_cpu"]) / r["seconds"]
        main = (
            f"{r['main_on_cpu']:.2f} / {r['main_runqueue']:.2f} / {r['main_other_wait']:.2f} s"
            if r["main_on_cpu"] == r["main_on_cpu"]  # not NaN: OpenSSH's client has none
            else "-"
        )
        print(f"{name:<22} {r['cpu']:>8.2f} {r['server_cpu']:>9.2f} {busy:>6.2f}  {main}")
    parse, e2e = results["parse"], results["end_to_end"]
    print(
        f"end_to_end - parse: {e2e['seconds'] - parse['seconds']:+.2f} s; main thread on a CPU "
        f"{e2e['main_on_cpu'] - parse['main_on_cpu']:+.2f} s, waiting for a core "
        f"{e2e['main_runqueue'] - parse['main_runqueue']:+.2f} s, other waits "
        f"{e2e['main_other_wait'] - parse['main_other_wait']:+.2f} s; the download adds "
        f"{e2e['cpu'] - parse['cpu'] + e2e['server_cpu']:.2f} CPU s (both ends)\n"
    )


def _per_round(runs: dict[str, list[dict[str, float]]], suffix: str) -> str:
    """end_to_end / max(transfer, parse) within each round, and their median."""
    ratios = [
        e["seconds"] / max(t["seconds"], p["seconds"])
        for t, p, e in zip(
            runs[f"transfer{suffix}"], runs["parse"], runs[f"end_to_end{suffix}"], strict=True
        )
    ]
    return " ".join(f"{r:.2f}" for r in ratios) + f" (median {statistics.median(ratios):.2f}x)"


if __name__ == "__main__":
    sys.exit(main())
