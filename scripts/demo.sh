#!/usr/bin/env bash
# The one demo command: sets up a fresh machine and runs the platform on the embedded default
# (local folders for the drop zones, SQLite for Dagster). Without arguments it writes sample
# Campaign exports and opens the Dagster UI on http://127.0.0.1:3000 with the sensors on;
# with --headless it processes the sample partitions once, prints a summary and exits non-zero
# on an unexpected failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m rtcdp_dev.demo "$@"
