#!/usr/bin/env bash
# The one test command: sets up a fresh machine (venv, openssh-server, Azurite) and runs the
# whole suite, integration tests against the real sshd and Azurite included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install_test_services.sh
.venv/bin/ruff check .
# The import contracts in pyproject.toml: layers, independent wings, no cycles.
.venv/bin/lint-imports
.venv/bin/python -m dagster definitions validate -w workspace.yaml >/dev/null
# Two workers, one per core; a test file stays on one worker (its module fixtures start once).
exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
