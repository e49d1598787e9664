"""Shared pytest fixtures. Keep each kind of fixture in its own section below."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.services import AzuriteServer, PostgresServer, SshdServer

# ---- real services (session-scoped) ----------------------------------------------------------
# One sshd, one Azurite and one PostgreSQL for the whole run: starting them costs about a
# second each. A test that stops a service must start it again in a `finally` (start() is a
# no-op when running).
# The try/finally here stops the processes even when a test or the session fails.


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    server = SshdServer(
        root=tmp_path_factory.mktemp("sftp_root"), workdir=tmp_path_factory.mktemp("sshd")
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    server = AzuriteServer(workdir=tmp_path_factory.mktemp("azurite"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster (Debian's postgresql) for production-style Dagster
    instances; tests create their own database in it with `create_database`."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
