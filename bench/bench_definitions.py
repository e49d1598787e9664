"""How long a fresh process takes to load the code location's definitions.

    .venv/bin/python bench/bench_definitions.py [--repeat 5]

Times, each in a fresh process (what the daemon, the webserver and every run worker pay):

- import_dagster (baseline): `import dagster` and nothing else;
- load_defs: import `rtcdp_assets.definitions` and resolve `defs` (every asset, check, sensor
  and job built and validated, as the code server does);
- validate_cli: `dagster definitions validate -w workspace.yaml`, end to end (CLI start-up,
  loading the workspace, validation).

Target: definitions load in at most 3 s. Medians of `--repeat` runs; absolute times
drift +-25 % between runs on a shared 2-core machine, so compare the ratio to `import dagster`.

Bytecode: a deployed code location has its modules compiled (pip and the image build write
`.pyc` files). Where `PYTHONDONTWRITEBYTECODE` is set (as on the project's dev machines) every
process would compile the project's ~30 modules again (about 0.8 s), so the children get a
temporary `PYTHONPYCACHEPREFIX` and one warm-up run first; `--no-bytecode-cache` measures the
uncached case instead.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LOAD_DEFS = (
    "import warnings; warnings.filterwarnings('ignore'); "
    "from rtcdp_assets.definitions import defs; "
    "defs.get_repository_def().load_all_definitions()"
)
COMMANDS = {
    "import_dagster": [sys.executable, "-c", "import dagster"],
    "load_defs": [sys.executable, "-c", LOAD_DEFS],
    "validate_cli": [
        str(Path(sys.executable).with_name("dagster")),
        "definitions",
        "validate",
        "-w",
        "workspace.yaml",
    ],
}


def time_once(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
        proc.check_returncode()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-bytecode-cache", action="store_true")
    args = parser.parse_args()
    runs: dict[str, list[float]] = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory(prefix="rtcdp-bench-pyc-") as pyc:
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        if not args.no_bytecode_cache:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = pyc
            for cmd in COMMANDS.values():  # warm-up: writes the bytecode
                time_once(cmd, env)
        # Interleaved, so a burst of load from other jobs hits every approach alike.
        for _ in range(args.repeat):
            for name, cmd in COMMANDS.items():
                runs[name].append(time_once(cmd, env))
    base = statistics.median(runs["import_dagster"])
    cache = "without" if args.no_bytecode_cache else "with"
    print(f"median of {args.repeat} fresh processes each, {cache} bytecode cache")
    for name, values in runs.items():
        median = statistics.median(values)
        print(
            f"{name:<15} {median:6.2f} s  {median / base:5.2f}x import dagster   "
            f"runs {[round(v, 2) for v in values]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
