"""Drop zones on the real test services, for integration tests."""

from __future__ import annotations

import uuid

from dagster_azure.blob import AzureBlobStorageKeyCredential, AzureBlobStorageResource

from resources import AzureBlobDropZone, SftpDropZone


def sftp_zone(sshd, base_path: str | None = None, **overrides) -> SftpDropZone:
    config = {
        "host": sshd.host,
        "port": sshd.port,
        "username": sshd.username,
        "private_key_path": str(sshd.client_key_path),
        "known_hosts_path": str(sshd.known_hosts_path),
        "base_path": base_path if base_path is not None else f"t-{uuid.uuid4().hex[:8]}",
        "connect_timeout_seconds": 5,
    }
    config.update(overrides)
    return SftpDropZone(**config)


def blob_zone(azurite, container: str | None = None, prefix: str = "") -> AzureBlobDropZone:
    storage = AzureBlobStorageResource(
        account_url=azurite.account_url,
        credential=AzureBlobStorageKeyCredential(key=azurite.account_key),
    )
    return AzureBlobDropZone(
        storage=storage, container=container or f"c{uuid.uuid4().hex[:12]}", prefix=prefix
    )
