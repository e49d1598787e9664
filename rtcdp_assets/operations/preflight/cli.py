"""`rtcdp-doctor`: check a deployment's configuration against the real services before the
daemon starts (docs/preflight.md).

    rtcdp-doctor            one line per check; exit 1 when any check failed
    rtcdp-doctor --json     the same as JSON, for scripts and readiness probes

It builds the resources exactly as the code location does (`environment_resources()`, from
RTCDP_ENV and the variables docs/deployment.md lists) without loading the Dagster definitions,
then checks each configured zone, the file ledger, the Dagster instance in DAGSTER_HOME and its
pools. No secret is printed: values of secret variables are masked in every line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from resources import environment_resources
from resources.drop_zones import DropZone
from resources.settings import PipelineSettings
from resources.sftp import SftpDropZone
from resources.warehouse import Warehouse
from rtcdp_assets.operations.preflight.instance_checks import instance_checks, missing_variables
from rtcdp_assets.operations.preflight.ledger_checks import ledger_checks
from rtcdp_assets.operations.preflight.report import (
    CheckResult,
    exit_code,
    fail,
    ok,
    one_line,
    render_json,
    render_text,
    scrubbed,
    secret_values,
)
from rtcdp_assets.operations.preflight.sftp_checks import sftp_checks
from rtcdp_assets.operations.preflight.zone_checks import local_checks, zone_checks

# Exchange roles and whether the platform writes there (True) or only lists and reads.
ZONE_ROLES = {
    "aep_landing": True,
    "aep_destination": False,
    "warehouse": True,
    "customer_source": False,
    "aep_dataset_export": False,
}


def _config_failure(name: str, exc: BaseException) -> CheckResult:
    names = missing_variables(exc)
    if names:
        return fail(
            f"config.{name}",
            f"unset environment variables: {', '.join(names)}",
            f"set {', '.join(names)} (docs/deployment.md lists each variable)",
        )
    return fail(f"config.{name}", one_line(exc), "correct the variable named in the message")


def _resolve(stack: ExitStack, name: str, resource: Any) -> tuple[Any, CheckResult | None]:
    """The resource with its EnvVars read, as a run would initialize it."""
    try:
        return stack.enter_context(resource.process_config_and_initialize_cm()), None
    except Exception as exc:
        return None, _config_failure(name, exc)


def _campaign_checks(zone: Any, settings: PipelineSettings) -> list[CheckResult]:
    if isinstance(zone, SftpDropZone):
        return sftp_checks(zone, settings)
    if isinstance(zone, DropZone):
        return zone_checks("campaign_sftp", zone, writes=True)
    return local_checks("campaign_sftp", zone, writes=True)


def run_checks() -> list[CheckResult]:
    env = os.environ.get("RTCDP_ENV", "embedded")
    production = env == "production"
    try:
        resources = environment_resources()
    except Exception as exc:
        return [
            fail(
                "environment",
                f"RTCDP_ENV={env}: {one_line(exc)}",
                "RTCDP_ENV is 'embedded' or 'production'; each <ROLE>_ZONE 'azure' or 's3'",
            ),
            *instance_checks(production),
        ]
    results = [ok("environment", f"RTCDP_ENV={env}")]
    with ExitStack() as stack:
        settings, failure = _resolve(stack, "settings", resources["settings"])
        if failure is not None:
            return [*results, failure, *instance_checks(production)]
        campaign, failure = _resolve(stack, "campaign_sftp", resources["campaign_sftp"])
        results += [failure] if failure else _campaign_checks(campaign, settings)
        for role, writes in ZONE_ROLES.items():
            zone, failure = _resolve(stack, role, resources[role])
            if isinstance(zone, Warehouse):
                zone = zone.zone
            results += [failure] if failure else zone_checks(role, zone, writes)
        ledger, failure = _resolve(stack, "file_ledger", resources["file_ledger"])
        results += [failure] if failure else ledger_checks(ledger.url)
    return results + instance_checks(production)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rtcdp-doctor",
        description=(
            "Check the deployment's SFTP, Blob/S3, file ledger, Dagster storage and pools "
            "before starting it; exit 1 when anything failed."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    secrets = secret_values()
    results = [scrubbed(r, secrets) for r in run_checks()]
    sys.stdout.write(render_json(results) + "\n" if args.json else render_text(results))
    return exit_code(results)


if __name__ == "__main__":
    sys.exit(main())
