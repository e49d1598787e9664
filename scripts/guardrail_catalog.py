"""Write the guardrail catalog of the code location (docs/guardrails.md) to standard output.

Usage (from the repository root)::

    python scripts/guardrail_catalog.py > docs/guardrails.md
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    # Runnable as a plain script without installing the project.
    sys.path.insert(0, str(REPO_ROOT))

from asset_checks.catalog import guardrails, render  # noqa: E402 - needs the sys.path line above
from rtcdp_assets.definitions import defs  # noqa: E402


def main() -> int:
    sys.stdout.write(render(guardrails(defs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
