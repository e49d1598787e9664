"""Shared pytest fixtures. Keep each kind of fixture in its own section below."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance

from resources import FileLedger, PipelineSettings, Warehouse, embedded_resources
from rtcdp_dev.services import AzuriteServer, MotoS3Server, PostgresServer, SshdServer
from tests.zones import blob_zone, sftp_zone

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
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3Server]:
    """moto's S3 server; boto3 finds its placeholder keys in the environment, as S3DropZone
    expects real credentials to be found in production."""
    server = MotoS3Server(workdir=tmp_path_factory.mktemp("moto"))
    server.start()
    try:
        with pytest.MonkeyPatch.context() as env:
            for name, value in server.credentials_env().items():
                env.setenv(name, value)
            env.delenv("AWS_PROFILE", raising=False)
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


# ---- a Campaign → AEP run on the real services ------------------------------------------------


@pytest.fixture
def services(sshd, azurite, tmp_path):
    """SFTP on sshd, Blob on Azurite: fresh folders and containers per test, so tests never see
    each other's files."""
    sftp = sftp_zone(sshd)
    resources = {
        "campaign_sftp": sftp,
        "aep_landing": blob_zone(azurite),
        "warehouse": Warehouse(zone=blob_zone(azurite)),
        "file_ledger": FileLedger(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}"),
        # SFTP mtimes have whole seconds; tests sleep past them instead of waiting 30 s. These
        # tests upload whole files: rule `rename` (tests/campaign_to_aep/
        # test_completion_services.py uploads in pieces under every rule).
        "settings": PipelineSettings(file_settle_seconds=0, campaign_export_completion="rename"),
    }
    yield resources
    sftp.close()


# ---- the embedded environment (local folders) -------------------------------------------------


@pytest.fixture
def embedded_env(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """(root, resources): every zone a local folder under the test's tmp_path."""
    return tmp_path, embedded_resources(tmp_path)


@pytest.fixture
def embedded_env_with_instance(
    tmp_path: Path,
) -> tuple[Path, dict[str, Any], DagsterInstance]:
    """(root, resources, instance): `embedded_env` plus an ephemeral instance shared by the
    test's runs and sensor evaluations."""
    return tmp_path, embedded_resources(tmp_path), DagsterInstance.ephemeral()
