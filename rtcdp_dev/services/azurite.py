"""Azurite: the Azure Blob API."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import IO

from azure.storage.blob import BlobServiceClient

from rtcdp_dev.services.base import (
    AZURITE_ACCOUNT_KEY,
    AZURITE_ACCOUNT_NAME,
    AZURITE_BLOB_BINARY,
    free_port,
    require_binary,
)
from rtcdp_dev.services.http_child import _HttpChildServer


class AzuriteServer(_HttpChildServer):
    """Azurite's blob service on 127.0.0.1, persisting to `workdir` so that data survives a
    stop()/start() (fault tests restart it)."""

    name = "Azurite"
    account_name: str = AZURITE_ACCOUNT_NAME
    account_key: str = AZURITE_ACCOUNT_KEY

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        azurite_binary: Path = AZURITE_BLOB_BINARY,
    ) -> None:
        self._binary = require_binary(azurite_binary, "Azurite (npm package azurite)")
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir: Path = workdir.resolve()
        self.data_dir: Path = self.workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.log_path: Path = self.workdir / "azurite.log"
        self.port: int = port if port is not None else free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def account_url(self) -> str:
        return f"http://{self.host}:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={self.account_name};"
            f"AccountKey={self.account_key};"
            f"BlobEndpoint={self.account_url};"
        )

    def blob_service_client(self) -> BlobServiceClient:
        return BlobServiceClient(
            self.account_url,
            credential={"account_name": self.account_name, "account_key": self.account_key},
        )

    def _command(self) -> list[str]:
        return [
            str(self._binary),
            "--blobHost",
            self.host,
            "--blobPort",
            str(self.port),
            "--location",
            str(self.data_dir),
            # The SDK sends a newer API version than Azurite knows; without this flag every
            # request fails.
            "--skipApiVersionCheck",
            "--loose",
            # There is no outside network; telemetry would only log failed lookups.
            "--disableTelemetry",
            "--silent",
        ]

    def _probe_path(self) -> str:
        return f"/{self.account_name}?comp=list"

    def __repr__(self) -> str:
        return f"AzuriteServer({self.account_url}, data={self.data_dir})"
