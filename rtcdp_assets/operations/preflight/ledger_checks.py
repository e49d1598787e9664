"""Preflight of the file ledger's database: reachable, and its table present or creatable.

Nothing is created here: the ledger creates its table on first use (resources/file_ledger.py),
so the check only asks the database whether that will be allowed.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from resources.file_ledger import file_versions
from rtcdp_assets.operations.preflight.instance_checks import masked_url
from rtcdp_assets.operations.preflight.report import CheckResult, fail, ok, one_line

LEDGER_FIX = (
    "check RTCDP_LEDGER_URL (postgresql+psycopg2://USER:PASSWORD@HOST:5432/DB); the role and "
    "database must exist: `CREATE ROLE rtcdp_ledger LOGIN PASSWORD '...'; CREATE DATABASE "
    "rtcdp_ledger OWNER rtcdp_ledger;` (docs/preflight.md)"
)


def _creatable(conn: sa.Connection) -> bool:
    if conn.dialect.name == "postgresql":
        allowed = conn.execute(sa.text("SELECT has_schema_privilege(current_schema(), 'CREATE')"))
        return bool(allowed.scalar())
    if conn.dialect.name == "sqlite":
        database = conn.engine.url.database or ""
        return not database or Path(database).parent.is_dir()
    return True  # other databases: the first run will tell


def ledger_checks(url: str) -> list[CheckResult]:
    where = masked_url(url)
    try:
        engine = sa.create_engine(url)
    except Exception as exc:
        return [fail("ledger", f"{where}: {one_line(exc)}", LEDGER_FIX)]
    try:
        with engine.connect() as conn:
            if sa.inspect(conn).has_table(file_versions.name):
                conn.execute(sa.select(file_versions.c.zone).limit(1)).first()
                return [ok("ledger", f"{where}: reachable, table {file_versions.name} present")]
            if _creatable(conn):
                return [
                    ok(
                        "ledger",
                        f"{where}: reachable, table {file_versions.name} will be created on "
                        "first use",
                    )
                ]
            return [
                fail(
                    "ledger",
                    f"{where}: table {file_versions.name} absent and the role may not create it",
                    "`GRANT CREATE ON SCHEMA public TO <ledger role>` (or create the database "
                    "owned by that role)",
                )
            ]
    except Exception as exc:
        return [fail("ledger", f"{where}: {one_line(exc)}", LEDGER_FIX)]
    finally:
        engine.dispose()
