"""deploy/one-host/postgres-setup.sql on a real PostgreSQL server, run with `psql` as the guide
says: the two roles can do what Dagster and the file ledger need in their own database (create
and migrate their tables) and nothing else, and running the script again changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import yaml
from dagster import DagsterInstance

from resources.file_ledger import FileLedger
from rtcdp_dev.services.postgres import PostgresServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SETUP_SQL = REPO / "deploy" / "one-host" / "postgres-setup.sql"
KUBERNETES_INSTANCE = REPO / "deploy" / "kubernetes" / "dagster.yaml"
PASSWORDS = {"rtcdp_dagster": "dagster-test-only", "rtcdp_ledger": "ledger-test-only"}


def run_setup(server: PostgresServer, **variables: str) -> subprocess.CompletedProcess[str]:
    psql = shutil.which("psql")
    assert psql, "psql (PostgreSQL's client) is installed with the test services"
    argv = [psql, "-h", server.host, "-p", str(server.port), "-U", server.superuser]
    argv += ["-d", "postgres", "-X", "-q", "-f", str(SETUP_SQL)]
    for name, value in variables.items():
        argv += ["-v", f"{name}={value}"]
    env = {**os.environ, "PGPASSWORD": server.password}
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=60)


def connect(server: PostgresServer, role: str, database: str) -> psycopg2.extensions.connection:
    return psycopg2.connect(
        host=server.host, port=server.port, user=role, password=PASSWORDS[role], dbname=database
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresServer]:
    """A cluster of its own: the script makes cluster-wide roles with fixed names, which other
    tests on the shared `postgres` cluster may make too, with other passwords."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def set_up(cluster: PostgresServer) -> PostgresServer:
    done = run_setup(
        cluster,
        dagster_password=PASSWORDS["rtcdp_dagster"],
        ledger_password=PASSWORDS["rtcdp_ledger"],
    )
    assert done.returncode == 0, done.stderr
    return cluster


def roles_and_databases(server: PostgresServer) -> tuple[list[Any], list[Any]]:
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT rolname, rolpassword FROM pg_authid ORDER BY rolname")
        roles = cur.fetchall()
        cur.execute("SELECT datname FROM pg_database ORDER BY datname")
        return roles, cur.fetchall()


def test_without_passwords_the_script_stops_before_any_change(cluster):
    before = roles_and_databases(cluster)
    stopped = run_setup(cluster, ledger_password="x")
    assert stopped.returncode == 3
    assert "dagster_password" in stopped.stderr
    assert roles_and_databases(cluster) == before


def test_dagster_creates_its_storage_as_its_own_role(set_up, tmp_path, monkeypatch):
    """The instance's storage section as shipped, with the role of the script: Dagster
    creates and stamps its tables (what `dagster instance migrate` needs) and stores a run."""
    storage = yaml.safe_load(KUBERNETES_INSTANCE.read_text())["storage"]
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({"storage": storage}))
    for name, value in {
        "DAGSTER_PG_HOST": set_up.host,
        "DAGSTER_PG_PORT": str(set_up.port),
        "DAGSTER_PG_USERNAME": "rtcdp_dagster",
        "DAGSTER_PG_PASSWORD": PASSWORDS["rtcdp_dagster"],
        "DAGSTER_PG_DB": "rtcdp_dagster",
    }.items():
        monkeypatch.setenv(name, value)
    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        instance.upgrade()
        assert instance.get_runs_count() == 0
    finally:
        instance.dispose()
    with connect(set_up, "rtcdp_dagster", "rtcdp_dagster") as conn, conn.cursor() as cur:
        cur.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'runs'")
        assert cur.fetchall() == [("rtcdp_dagster",)]


def test_the_ledger_creates_its_table_as_its_own_role(set_up):
    url = (
        f"postgresql+psycopg2://rtcdp_ledger:{PASSWORDS['rtcdp_ledger']}"
        f"@{set_up.host}:{set_up.port}/rtcdp_ledger"
    )
    assert FileLedger(url=url).rows() == []
    with connect(set_up, "rtcdp_ledger", "rtcdp_ledger") as conn, conn.cursor() as cur:
        cur.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")
        assert {owner for (owner,) in cur.fetchall()} == {"rtcdp_ledger"}


@pytest.mark.parametrize(
    ("role", "other_database"),
    [("rtcdp_dagster", "rtcdp_ledger"), ("rtcdp_ledger", "rtcdp_dagster")],
)
def test_a_role_cannot_connect_to_the_other_database(set_up, role, other_database):
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        connect(set_up, role, other_database)


def test_the_roles_have_no_administrative_power(set_up):
    with set_up.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls"
            " FROM pg_roles WHERE rolname IN ('rtcdp_dagster', 'rtcdp_ledger') ORDER BY rolname"
        )
        assert cur.fetchall() == [
            ("rtcdp_dagster", False, False, False, False, False),
            ("rtcdp_ledger", False, False, False, False, False),
        ]
        # Others (PUBLIC) may not connect to either database.
        cur.execute(
            "SELECT datname, has_database_privilege('public', datname, 'CONNECT')"
            " FROM pg_database WHERE datname IN ('rtcdp_dagster', 'rtcdp_ledger') ORDER BY datname"
        )
        assert cur.fetchall() == [("rtcdp_dagster", False), ("rtcdp_ledger", False)]


def test_running_the_script_again_keeps_the_tables(set_up):
    FileLedger(
        url=f"postgresql+psycopg2://rtcdp_ledger:{PASSWORDS['rtcdp_ledger']}"
        f"@{set_up.host}:{set_up.port}/rtcdp_ledger"
    ).rows()
    again = run_setup(
        set_up,
        dagster_password=PASSWORDS["rtcdp_dagster"],
        ledger_password=PASSWORDS["rtcdp_ledger"],
    )
    assert again.returncode == 0, again.stderr
    with connect(set_up, "rtcdp_ledger", "rtcdp_ledger") as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_tables WHERE tableowner = 'rtcdp_ledger'")
        (tables,) = cur.fetchone()
        assert tables >= 1
