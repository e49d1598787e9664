"""`rtcdp-aep-setup`: the AEP setup plan and its application.

    rtcdp-aep-setup plan --out DIR      write the request files and summary.md into DIR
    rtcdp-aep-setup apply --plan DIR    send them (OAuth server-to-server, idempotent)

`plan` uses the code location's settings (`RTCDP_ENV`, `RTCDP_*`) and the landing zone's
variables; it needs no credential and sends nothing. `apply` needs the variables listed in
.env.example ("AEP setup"); it prints one line per object (`created` / `exists`) and never a
secret or a token.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from resources import environment_resources
from rtcdp_assets.platform_setup.aep.client import AepApiError, MissingCredentials, apply
from rtcdp_assets.platform_setup.aep.landing import landing_from_env
from rtcdp_assets.platform_setup.aep.plan_files import build_plan, read_plan, write_plan


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtcdp-aep-setup", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="write the request bodies and summary.md")
    plan.add_argument("--out", type=Path, required=True)
    applying = commands.add_parser("apply", help="send a plan to AEP")
    applying.add_argument("--plan", type=Path, required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "plan":
        settings = environment_resources()["settings"]
        files = build_plan(settings, landing_from_env())
        write_plan(files, args.out)
        print(f"{len(files) - 1} requests and summary.md written to {args.out}")
        return 0
    try:
        outcomes = apply(read_plan(args.plan), report=print)
    except (MissingCredentials, AepApiError, FileNotFoundError) as error:
        print(f"rtcdp-aep-setup: {error}", file=sys.stderr)
        return 2
    created = sum(o.action == "created" for o in outcomes)
    print(f"{created} created, {len(outcomes) - created} already there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
