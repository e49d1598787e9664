"""PostgreSQL: the storage of a production Dagster instance."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from rtcdp_dev.services.base import (
    INSTALL_SCRIPT,
    LOOPBACK,
    STARTUP_TIMEOUT_SECONDS,
    _Service,
    _tail,
    free_port,
    require_binary,
)

POSTGRES_BIN_DIRS = "/usr/lib/postgresql/*/bin"  # Debian's postgresql-<major> package
POSTGRES_OS_USER = "postgres"


def postgres_binary(name: str) -> Path:
    """The newest installed major version's `name` (initdb, pg_ctl, ...)."""
    candidates = sorted(
        Path("/").glob(POSTGRES_BIN_DIRS.lstrip("/") + f"/{name}"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise RuntimeError(
            f"PostgreSQL's {name} not found under {POSTGRES_BIN_DIRS}: run "
            f"`bash {INSTALL_SCRIPT}` (as root) to install the real test services"
        )
    return require_binary(candidates[-1], f"PostgreSQL's {name}")


class PostgresServer(_Service):
    """A private PostgreSQL cluster on 127.0.0.1: its own data directory, a free port, password
    authentication over TCP (a wrong password fails as it would in production).

    The server refuses to run as root, so when the tests run as root initdb and pg_ctl run as
    the `postgres` OS user, and the data directory is a fresh folder that user owns (pytest's
    temporary folders are private to root). `stop()` removes the data directory.
    """

    host: str = LOOPBACK
    superuser: str = "postgres"

    def __init__(self, port: int | None = None, password: str = "rtcdp-test-only") -> None:
        self.port: int = port if port is not None else free_port()
        self.password = password
        self._initdb = postgres_binary("initdb")
        self._pg_ctl = postgres_binary("pg_ctl")
        self._run_as: pwd.struct_passwd | None = (
            pwd.getpwnam(POSTGRES_OS_USER) if os.geteuid() == 0 else None
        )
        self.workdir: Path = Path(tempfile.mkdtemp(prefix="rtcdp-postgres-"))
        self.data_dir: Path = self.workdir / "data"
        self.log_path: Path = self.workdir / "postgres.log"
        if self._run_as is not None:
            os.chown(self.workdir, self._run_as.pw_uid, self._run_as.pw_gid)

    def _run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        user = self._run_as
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=timeout,
            cwd=self.workdir,
            **(
                {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
                if user is not None
                else {}
            ),
        )

    def start(self) -> None:
        if not self.data_dir.exists():
            pwfile = self.workdir / "pwfile"
            pwfile.write_text(self.password + "\n")
            if self._run_as is not None:
                os.chown(pwfile, self._run_as.pw_uid, self._run_as.pw_gid)
            init = self._run(
                [
                    str(self._initdb),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.superuser,
                    f"--pwfile={pwfile}",
                    # TCP needs the password, as in production; the socket is not used.
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",  # a throwaway cluster: no need to wait for the disk
                ]
            )
            pwfile.unlink()
            if init.returncode != 0:
                raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        options = (
            f"-p {self.port} -c listen_addresses={self.host} -k {self.workdir} "
            # Durability does not matter for a test cluster; fsync would only slow every commit.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        started = self._run(
            [
                str(self._pg_ctl),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-o",
                options,
                "-w",
                "-t",
                str(int(STARTUP_TIMEOUT_SECONDS)),
                "start",
            ]
        )
        if started.returncode != 0:
            raise RuntimeError(
                f"PostgreSQL failed to start on {self.host}:{self.port}\n"
                f"{started.stdout}\n{started.stderr}\n{self.log_text()}"
            )

    def is_running(self) -> bool:
        if not self.data_dir.exists():
            return False
        return self._run([str(self._pg_ctl), "-D", str(self.data_dir), "status"]).returncode == 0

    def stop(self, *, remove: bool = True) -> None:
        if self.is_running():
            self._run([str(self._pg_ctl), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def connect(self, db_name: str = "postgres") -> Any:
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.superuser,
            password=self.password,
            dbname=db_name,
        )

    def create_database(self, name: str) -> str:
        """A fresh, empty database (one per test keeps tests independent)."""
        conn = self.connect()
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return name

    def log_text(self) -> str:
        return _tail(self.log_path)

    def __repr__(self) -> str:
        return f"PostgresServer({self.host}:{self.port}, data={self.data_dir})"
