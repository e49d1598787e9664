"""`rtcdp-ledger`: the file versions waiting on failed runs, and an operator's retry.

    rtcdp-ledger pending          pending versions (waiting, or retried after a failed run)
    rtcdp-ledger failed           versions whose runs failed `failed_run_max_attempts` times
    rtcdp-ledger retry <version>  request one again (as printed: <folder>/<name>@<identity>)

A retry marks the version pending with its attempts reset and a retry due now; the next tick of
the sensor that watches its folder (the Campaign export sensors, `aep_audience_export_sensor`,
`customer_source_sensor`, `offline_data_sensor` for the offline data days) requests it under a
new run key (the due time is part of the key, so Dagster's run-key de-duplication does not
swallow it). Lines show file names, which hold no personal data (Campaign export, AEP export,
customer and offline data file names), and reasons, masked when
they were recorded. The ledger is `RTCDP_LEDGER_URL`, else the embedded SQLite file.
"""

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from resources import data_dir
from resources.file_ledger import FileLedger, LedgerRow


def ledger_url() -> str:
    return os.environ.get("RTCDP_LEDGER_URL") or f"sqlite:///{data_dir() / 'ledger.sqlite'}"


def describe(row: LedgerRow) -> str:
    retry = f" retry_at={row.retry_after:%Y-%m-%dT%H:%M:%SZ}" if row.retry_after else ""
    return (
        f"{row.status} {row.dataset} {row.version} attempts={row.attempts or 0}{retry} "
        f"since={row.first_seen:%Y-%m-%dT%H:%M:%SZ} reason={row.reason or '-'}"
    )


def main(argv: Sequence[str] | None = None, now: datetime | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rtcdp-ledger", description="Pending and failed file versions, and retries."
    )
    parser.add_argument("--ledger-url", default=None, help="default: RTCDP_LEDGER_URL")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("pending", help="list pending versions")
    commands.add_parser("failed", help="list failed versions")
    retry = commands.add_parser("retry", help="request a pending or failed version again")
    retry.add_argument("version", help="<folder>/<name>@<identity>, as listed")
    retry.add_argument("--zone", help="the zone, when the same version is in several")
    args = parser.parse_args(argv)
    ledger = FileLedger(url=args.ledger_url or ledger_url())
    if args.command in ("pending", "failed"):
        rows = [r for r in ledger.rows() if r.status == args.command]
        for row in rows:
            print(describe(row))
        print(f"{len(rows)} {args.command} file versions")
        return 0
    matches = [
        r
        for r in ledger.rows()
        if r.status in ("pending", "failed")
        and str(r.version) == args.version
        and (args.zone is None or r.version.zone == args.zone)
    ]
    if len(matches) != 1:
        zones = ", ".join(sorted(r.version.zone for r in matches))
        problem = f"in zones {zones}: add --zone" if matches else "not pending or failed"
        print(f"{args.version}: {problem}", file=sys.stderr)
        return 1
    (row,) = matches
    ledger.request_retry(row.version, now or datetime.now(UTC))
    print(
        f"{row.version} ({row.dataset}) is pending with a retry due now: the next tick of its "
        "sensor requests it under a new run key"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
