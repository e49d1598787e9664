"""Audience match: AEP audience members against Campaign profiles, the asset's own code path.

    .venv/bin/python bench/bench_audience_match.py --members 10000000 --profiles 50000000

Generates, vectorised (pyarrow), the warehouse the `campaign_audience_import` asset reads:
`profiles/<4-hour partition>/data.parquet` (Campaign recipients; some recipients appear again in
a later partition with a newer `last_modified`, some external IDs are shared by two recipients),
`audience_membership/<audience>/<stamp>/members.parquet` (sorted by key, as the asset writes it)
with its manifest, the `segment_exports` record of the export, and `suppression_list`. Then, each
in a fresh process (peak RSS from VmHWM):

- plain_join (baseline): `pyarrow` inner join of the profiles' external_id column (all
  partitions read into one table) with the members' key column, nothing else;
- build_import: `campaign_audience_import.build_import`, what the asset runs: latest version
  of each recipient, ambiguity, suppression, the staged import CSV files, quarantine and
  exclusions Parquet, manifest.

Target: 10 M members against 50 M profiles in at most 60 s and 4 GiB. Absolute times
drift +-25 % between runs on a shared 2-core machine; the ratio to the plain join is the figure
to compare. The inputs take about 2 GB under the temp folder and are deleted afterwards.
"""

import argparse
import json
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

AUDIENCE = "11111111-2222-3333-4444-555555555555"
STAMP = "20261102_080000"
PARTITIONS = 10


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _ids(prefix: str, numbers: object) -> object:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def generate(root: Path, members: int, profiles: int, seed: int = 7) -> dict[str, int]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from resources import LocalDropZone, Warehouse
    from rtcdp_assets.aep_to_campaign.audience_exports.membership import MEMBERS_SCHEMA
    from rtcdp_assets.campaign_to_aep.profiles import profiles_flow

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    warehouse = Warehouse(zone=LocalDropZone(root=str(root)))
    typed = profiles_flow.fmt.typed_schema
    # 2 % of the rows are a newer version of a recipient seen in an earlier partition; 0.1 % of
    # the recipients share their external ID with another recipient (ambiguous in Campaign).
    distinct = profiles - profiles // 50
    per_part = -(-profiles // PARTITIONS)
    base = np.datetime64("2026-01-01T00:00:00", "us").astype(np.int64)
    pks = []
    for p in range(PARTITIONS):
        n = min(per_part, profiles - p * per_part)
        start = p * per_part
        recipient = np.arange(start, start + n, dtype=np.int64)
        if p > 0:
            again = rng.random(n) < 0.02 * PARTITIONS / max(PARTITIONS - 1, 1)
            recipient[again] = rng.integers(0, start, int(again.sum()))
        recipient = np.where(recipient < distinct, recipient, rng.integers(0, distinct, n))
        external = recipient.copy()
        shared = rng.random(n) < 0.001
        external[shared] = (recipient[shared] + 1) % distinct
        modified = base + (p * 4 * 3600 + rng.integers(0, 4 * 3600, n)) * 1_000_000
        columns = {
            "recipient_id": _ids("", recipient),
            "external_id": _ids("EXT-", external),
            "email": pc.binary_join_element_wise(_ids("user", recipient), "@example.com", ""),
            "last_modified": pa.array(modified, pa.timestamp("us", tz="UTC")),
            "_source_file": pa.array(np.full(n, f"profiles_{p}.csv")),
            "_line_number": pa.array(np.arange(2, n + 2)),
        }
        arrays = [
            columns[f.name].cast(f.type) if f.name in columns else pa.nulls(n, f.type)
            for f in typed
        ]
        table = pa.Table.from_arrays(arrays, schema=typed)
        pk = f"2026-01-{1 + p // 6:02d}-{(p % 6) * 4:02d}:00"
        pks.append(pk)
        local = root / "_gen.parquet"
        pq.write_table(table, local, compression="zstd")
        warehouse.put_file("profiles", pk, "data.parquet", local)
        local.unlink()
        del table, arrays, columns

    # Members: 90 % are Campaign recipients (by external ID), 10 % are not.
    known = rng.choice(distinct, int(members * 0.9), replace=False)
    unknown = np.arange(distinct, distinct + members - known.size)
    numbers = np.concatenate([known, unknown])
    key = _ids("EXT-", numbers)
    order = pc.sort_indices(key)
    key = key.take(order)
    numbers = numbers[order.to_numpy()]
    status = pa.array(np.array(["realized", "existing", "exited"])[rng.integers(0, 3, members)])
    lqt = base + rng.integers(0, 300 * 86400, members) * 1_000_000
    lqt_valid = rng.random(members) > 0.01
    members_table = pa.Table.from_arrays(
        [
            key,
            key,
            pc.binary_join_element_wise(_ids("user", numbers), "@example.com", ""),
            status,
            pc.if_else(pc.equal(status, "exited"), pa.scalar(None, pa.string()), status),
            pa.array(lqt, pa.timestamp("us", tz="UTC"), mask=~lqt_valid),
            pa.array(np.full(members, STAMP)),
            pa.array(rng.random(members) < 0.9),
        ],
        schema=MEMBERS_SCHEMA,
    )
    local = root / "_gen.parquet"
    pq.write_table(members_table, local, compression="zstd")
    warehouse.put_file("audience_membership", f"{AUDIENCE}/{STAMP}", "members.parquet", local)
    in_export = int(pc.sum(members_table.column("in_export")).as_py())
    del members_table

    # 1 % of the recipients' addresses are suppressed, for several reasons.
    suppressed = rng.choice(distinct, distinct // 100, replace=False)
    reasons = np.array(["quarantine", "denylisted", "opted_out"])[
        rng.integers(0, 3, suppressed.size)
    ]
    suppression = pa.table(
        {
            "channel": pa.array(np.full(suppressed.size, "email")),
            "address": pc.binary_join_element_wise(_ids("user", suppressed), "@example.com", ""),
            "reason": pa.array(reasons),
        }
    )
    pq.write_table(suppression, local, compression="zstd")
    warehouse.put_file("suppression_list", "current", "data.parquet", local)
    local.unlink()

    warehouse.put_json(
        "segment_exports",
        f"{AUDIENCE}/{STAMP}",
        "export.json",
        {
            "audience_id": AUDIENCE,
            "export_id": "bench-export",
            "export_time": "2026-11-02T08:00:00Z",
            "mode": "full",
            "status": "processed",
            "rows_in": in_export,
            "reasons": {},
        },
    )
    membership = {"duplicate_member": 0, "exited_non_member": 0, "mode": "full"}
    warehouse.put_json(
        "audience_membership",
        AUDIENCE,
        "manifest.json",
        {"audience_id": AUDIENCE, "exports": {STAMP: membership}, "latest": STAMP},
    )
    (root / "_partitions.json").write_text(json.dumps(pks))
    return {"members": members, "profiles": profiles}


def run_approach(name: str, root: Path) -> dict[str, object]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from resources import AudienceSettings, LocalDropZone, Warehouse
    from rtcdp_assets.aep_to_campaign.campaign_audience_import.import_build import build_import

    pks = json.loads((root / "_partitions.json").read_text())
    start, cpu = time.perf_counter(), time.process_time()
    if name == "plain_join":
        members = pq.read_table(
            root / "audience_membership" / AUDIENCE / STAMP / "members.parquet", columns=["key"]
        )
        profiles = pa.concat_tables(
            pq.read_table(root / "profiles" / pk / "data.parquet", columns=["external_id"])
            for pk in pks
        )
        # Arrow builds its hash table on the right side: the members, the smaller one.
        joined = profiles.join(members, keys="external_id", right_keys="key", join_type="inner")
        result: dict[str, object] = {"matched": joined.num_rows}
    else:
        warehouse = Warehouse(zone=LocalDropZone(root=str(root)))
        manifest = build_import(warehouse, AudienceSettings(), set(pks), AUDIENCE, STAMP)
        result = {
            "rows": manifest["rows"],
            "excluded": manifest["excluded"],
            "quarantined": manifest["quarantined"],
            "balanced": manifest["reconciliation"]["balanced"],
        }
    return {
        "seconds": time.perf_counter() - start,
        # all threads: with other work on the machine it varies much less than wall-clock time
        "cpu_seconds": time.process_time() - cpu,
        "peak_rss_mib": _peak_rss_mib(),
        **result,
    }


def measure(name: str, root: Path, repeat: int) -> dict[str, object]:
    runs = []
    for _ in range(repeat):
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, str(root)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            proc.check_returncode()
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    out = dict(runs[-1])
    out["seconds"] = statistics.median(r["seconds"] for r in runs)  # type: ignore[misc]
    out["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)  # type: ignore[type-var]
    out["cpu_seconds"] = statistics.median(r["cpu_seconds"] for r in runs)  # type: ignore[misc]
    out["runs"] = [round(r["seconds"], 1) for r in runs]  # type: ignore[arg-type]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=10_000_000)
    parser.add_argument("--profiles", type=int, default=50_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", help="generate into this folder and keep it (no cleanup)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_approach(args.child[0], Path(args.child[1]))))
        return 0

    with tempfile.TemporaryDirectory(prefix="rtcdp-bench-match-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        if not (root / "_partitions.json").exists():
            t0 = time.perf_counter()
            generate(root, args.members, args.profiles)
            print(f"generated in {time.perf_counter() - t0:.0f} s under {root}")
        results = {n: measure(n, root, args.repeat) for n in ("plain_join", "build_import")}
    base = results["plain_join"]
    print(
        f"{args.members:,} members against {args.profiles:,} profiles rows, "
        f"median of {args.repeat} fresh processes"
    )
    for name, r in results.items():
        print(
            f"{name:<13} {r['seconds']:>7.1f} s {r['peak_rss_mib']:>7.0f} MiB "
            f"{r['seconds'] / base['seconds']:>5.2f}x  CPU {r['cpu_seconds']:.1f} s  "
            f"runs {r['runs']}"  # type: ignore[operator]
        )
        skip = ("seconds", "cpu_seconds", "peak_rss_mib", "runs")
        print("   ", {k: v for k, v in r.items() if k not in skip})
    return 0


if __name__ == "__main__":
    sys.exit(main())
