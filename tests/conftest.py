"""Session fixtures: the real services the integration tests talk to."""

from __future__ import annotations

import pytest

from tests.services import AzuriteServer, SshdServer


# ---- real services ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    server = SshdServer(
        root=tmp_path_factory.mktemp("sftp_root"), workdir=tmp_path_factory.mktemp("sshd")
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    server = AzuriteServer(workdir=tmp_path_factory.mktemp("azurite"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
