"""Drop zones on the real test services, for integration tests."""

from __future__ import annotations

import uuid

from dagster_azure.blob import AzureBlobStorageKeyCredential, AzureBlobStorageResource

from resources import AzureBlobDropZone, SftpDropZone
from resources.s3 import S3DropZone


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


def s3_zone(moto_s3, bucket: str | None = None, prefix: str = "", **overrides) -> S3DropZone:
    """A zone in a fresh bucket (created here: the zone itself never creates buckets)."""
    name = bucket or moto_s3.create_bucket(f"b-{uuid.uuid4().hex[:12]}")
    config = {
        "bucket": name,
        "prefix": prefix,
        "region_name": moto_s3.region,
        "endpoint_url": moto_s3.endpoint_url,
        "connect_timeout_seconds": 5,
        **overrides,
    }
    return S3DropZone(**config)
