"""The real services that integration tests, benchmarks and the demo run against.

`SshdServer` is OpenSSH's sshd standing in for the Adobe Campaign SFTP server; `AzuriteServer` is
Microsoft's Azure Blob API emulator standing in for the AEP landing zone and the warehouse;
`MotoS3Server` is moto's standalone S3 API server for a bucket as the exchange location.
`PostgresServer` is a private PostgreSQL cluster for a production-style Dagster instance;
`DagsterWebserver` is the Dagster UI on one instance, for the browser tests; `DagsterDaemon` is
the daemon of one instance, for the one-host deployment test. All
listen on a free port on 127.0.0.1 and keep everything they own under a work folder.

Plain Python on purpose (no pytest import) so that `bench/` and the demo can start the same
services the tests use. Both classes are context managers: `with SshdServer(...) as sshd: ...`.
Install the binaries with `scripts/install_test_services.sh`; a missing binary raises
`RuntimeError` rather than letting a test skip, because a skipped integration test proves nothing.
"""

from __future__ import annotations

from rtcdp_dev.services.azurite import (
    AzuriteServer,
)
from rtcdp_dev.services.base import (
    AZURITE_ACCOUNT_KEY,
    AZURITE_ACCOUNT_NAME,
    AZURITE_BLOB_BINARY,
    CHROMIUM_BINARY,
    INSTALL_SCRIPT,
    LOOPBACK,
    REPO_ROOT,
    SFTP_BINARY,
    SSH_KEYGEN_BINARY,
    SSHD_BINARY,
    STARTUP_TIMEOUT_SECONDS,
    STOP_TIMEOUT_SECONDS,
    free_port,
    generate_ed25519_key,
    require_binary,
)
from rtcdp_dev.services.dagster_daemon import (
    DagsterDaemon,
)
from rtcdp_dev.services.dagster_webserver import (
    DagsterWebserver,
)
from rtcdp_dev.services.fault_proxy import (
    FaultyTcpProxy,
)
from rtcdp_dev.services.moto_s3 import (
    MOTO_ACCESS_KEY_ID,
    MOTO_REGION,
    MOTO_SECRET_ACCESS_KEY,
    MotoS3Server,
)
from rtcdp_dev.services.postgres import (
    POSTGRES_BIN_DIRS,
    POSTGRES_OS_USER,
    PostgresServer,
    postgres_binary,
)
from rtcdp_dev.services.sshd import (
    SshdServer,
)

__all__ = [
    "AZURITE_ACCOUNT_KEY",
    "AZURITE_ACCOUNT_NAME",
    "AZURITE_BLOB_BINARY",
    "CHROMIUM_BINARY",
    "INSTALL_SCRIPT",
    "LOOPBACK",
    "MOTO_ACCESS_KEY_ID",
    "MOTO_REGION",
    "MOTO_SECRET_ACCESS_KEY",
    "POSTGRES_BIN_DIRS",
    "POSTGRES_OS_USER",
    "REPO_ROOT",
    "SFTP_BINARY",
    "SSHD_BINARY",
    "SSH_KEYGEN_BINARY",
    "STARTUP_TIMEOUT_SECONDS",
    "STOP_TIMEOUT_SECONDS",
    "AzuriteServer",
    "DagsterDaemon",
    "DagsterWebserver",
    "FaultyTcpProxy",
    "MotoS3Server",
    "PostgresServer",
    "SshdServer",
    "free_port",
    "generate_ed25519_key",
    "postgres_binary",
    "require_binary",
]
