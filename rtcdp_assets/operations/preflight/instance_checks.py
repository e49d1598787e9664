"""Preflight of the Dagster instance: its storage reachable and its schema current, and the
concurrency pools the project's steps take slots of limited.

The instance is the one in DAGSTER_HOME, loaded as the daemon and webserver load it. Its run
launcher is not touched (Dagster builds it on first use), so the Kubernetes instance can be
checked from a shell that has no Kubernetes settings.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import sqlalchemy as sa
from dagster import DagsterInstance
from dagster._core.instance.config import PoolGranularity

from rtcdp_assets.operations.preflight.report import CheckResult, fail, ok, one_line, skip, warn

# Every pool a step of this code location declares (`pool=` of the Campaign ingest assets, the
# Campaign import publishers and the SFTP housekeeping); tests/deployment/test_preflight.py
# compares it with the loaded definitions, so a new pool cannot be forgotten here.
PROJECT_POOLS = ("campaign_sftp",)

_MISSING_ENV = re.compile(r'environment variable "?(\w+)"? which is not set')

MIGRATE_FIX = "run `dagster instance migrate` once with this DAGSTER_HOME (the Helm chart's "
MIGRATE_FIX += "migrate job does it on Kubernetes)"
STORAGE_FIX = (
    "check DAGSTER_PG_HOST, DAGSTER_PG_PORT, DAGSTER_PG_USERNAME, DAGSTER_PG_PASSWORD and "
    "DAGSTER_PG_DB; the role and database must exist: `CREATE ROLE dagster LOGIN PASSWORD "
    "'...'; CREATE DATABASE dagster OWNER dagster;` (docs/preflight.md)"
)


def missing_variables(exc: BaseException) -> list[str]:
    """Names of the unset environment variables a Dagster config error complains about."""
    return sorted(set(_MISSING_ENV.findall(str(exc))))


def masked_url(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<not a database URL>"


def open_instance(production: bool) -> tuple[list[CheckResult], DagsterInstance | None]:
    """The DAGSTER_HOME instance (the caller disposes it) and the checks of loading it."""
    severity = fail if production else warn
    home = os.environ.get("DAGSTER_HOME", "")
    if not home:
        failure = severity(
            "dagster.home",
            "DAGSTER_HOME is not set: Dagster would keep runs in a temporary instance",
            "set DAGSTER_HOME to the folder holding the instance's dagster.yaml",
        )
        return [failure], None
    if not (Path(home) / "dagster.yaml").is_file():
        failure = severity(
            "dagster.home",
            f"no dagster.yaml in DAGSTER_HOME ({home}): Dagster would use SQLite there",
            "copy the deployment's instance file (deploy/) to $DAGSTER_HOME/dagster.yaml",
        )
        return [failure], None
    try:
        instance = DagsterInstance.from_config(home)
    except Exception as exc:
        names = missing_variables(exc)
        if names:
            failure = fail(
                "dagster.storage",
                f"{home}/dagster.yaml needs unset variables: {', '.join(names)}",
                f"set {', '.join(names)} in the environment (env file or secret)",
            )
        else:
            failure = fail(
                "dagster.storage", f"cannot open the instance ({one_line(exc)})", STORAGE_FIX
            )
        return [failure], None
    return [ok("dagster.home", f"{home}/dagster.yaml loaded")], instance


def storage_checks(instance: DagsterInstance) -> list[CheckResult]:
    """Connect to each storage and compare its schema revision with this Dagster's."""
    run_storage = instance.run_storage
    url = getattr(run_storage, "postgres_url", None)
    kind = f"postgres {masked_url(url)}" if url else type(run_storage).__name__
    behind = []
    try:
        for name, storage in (
            ("runs", run_storage),
            ("event log", instance.event_log_storage),
            ("schedules", instance.schedule_storage),
        ):
            version = storage.alembic_version() if storage is not None else None
            if version is not None and version[0] != version[1]:
                behind.append(f"{name} at {version[0] or 'no revision'}, expected {version[1]}")
    except Exception as exc:
        return [fail("dagster.storage", f"{kind}: {one_line(exc)}", STORAGE_FIX)]
    if behind:
        return [fail("dagster.schema", f"{kind}: {'; '.join(behind)}", MIGRATE_FIX)]
    return [ok("dagster.storage", f"{kind}: reachable, schema current")]


def pool_checks(instance: DagsterInstance) -> list[CheckResult]:
    config = instance.get_concurrency_config().pool_config
    try:
        limits = {p.name: p for p in instance.event_log_storage.get_pool_limits()}
    except Exception as exc:
        return [fail("pools", f"cannot read the pool limits ({one_line(exc)})", STORAGE_FIX)]
    results = []
    for pool in PROJECT_POOLS:
        check = f"pool.{pool}"
        known = limits.get(pool)
        if known is not None and known.limit <= 0:
            results.append(
                fail(
                    check,
                    f"limit {known.limit}: no step of the pool can ever run",
                    f"`dagster instance concurrency set {pool} 4` (the SFTP account's "
                    "session limit or less)",
                )
            )
        elif known is not None and not known.from_default:
            results.append(ok(check, f"limit {known.limit} (set in the instance's storage)"))
        elif config.default_pool_limit:
            results.append(
                ok(check, f"limit {config.default_pool_limit} (concurrency.pools.default_limit)")
            )
        else:
            results.append(
                fail(
                    check,
                    "no limit: every queued run would open its own SFTP session at once",
                    "set `concurrency: pools: default_limit: 4` in dagster.yaml, or "
                    f"`dagster instance concurrency set {pool} 4`",
                )
            )
    if config.pool_granularity != PoolGranularity.OP:
        granularity = config.pool_granularity.value if config.pool_granularity else "run (default)"
        results.append(
            warn(
                "pool.granularity",
                f"granularity {granularity}: "
                "a run holds its slot while it maps and publishes, not only while it reads SFTP",
                "set `concurrency: pools: granularity: op` in dagster.yaml",
            )
        )
    for name in sorted(set(limits) - set(PROJECT_POOLS)):
        results.append(
            warn(
                f"pool.{name}",
                f"the instance limits pool '{name}', which no step of this code location uses",
                f"a typo of {', '.join(PROJECT_POOLS)}? "
                f"`dagster instance concurrency delete {name}`",
            )
        )
    return results


def instance_checks(production: bool) -> list[CheckResult]:
    results, instance = open_instance(production)
    if instance is None:
        blocked = next((r.check for r in results if r.status in ("FAIL", "WARN")), "dagster")
        return results + [skip(f"pool.{p}", f"{blocked} not usable") for p in PROJECT_POOLS]
    try:
        results += storage_checks(instance)
        if results[-1].status == "FAIL" and results[-1].check == "dagster.storage":
            return results + [skip(f"pool.{p}", "dagster.storage failed") for p in PROJECT_POOLS]
        return results + pool_checks(instance)
    finally:
        instance.dispose()
