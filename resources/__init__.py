"""Dagster resources and the one place that picks them per environment.

`RTCDP_ENV=embedded` (the default) needs nothing installed: local folders under `RTCDP_DATA_DIR`
stand in for the Campaign SFTP server and the Azure Blob containers. `RTCDP_ENV=production`
reads every location and credential from environment variables through `EnvVar`, so secrets
are resolved in the run process and never appear in code, config or the UI (see `.env.example`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import EnvVar

from resources.audience_settings import AepDestinationOptions, AudienceSettings
from resources.drop_zones import (
    DropZone,
    DropZoneAccessDenied,
    DropZoneError,
    DropZoneUnavailable,
    Entry,
    LocalDropZone,
)
from resources.settings import PipelineSettings
from resources.sftp import SftpDropZone
from resources.warehouse import Warehouse

if TYPE_CHECKING:
    from dagster_azure.blob import AzureBlobStorageResource

    from resources.azure_blob import AzureBlobDropZone

__all__ = [
    "AepDestinationOptions",
    "AudienceSettings",
    "AzureBlobDropZone",
    "DropZone",
    "DropZoneAccessDenied",
    "DropZoneError",
    "DropZoneUnavailable",
    "Entry",
    "LocalDropZone",
    "PipelineSettings",
    "SftpDropZone",
    "Warehouse",
    "embedded_resources",
    "environment_resources",
    "production_resources",
]

DEFAULT_DATA_DIR = ".rtcdp"


def __getattr__(name: str) -> Any:
    # dagster_azure imports the whole Azure SDK (about 1 s, a third of loading the definitions);
    # only the production resources need it, so it is imported on first use.
    if name == "AzureBlobDropZone":
        from resources.azure_blob import AzureBlobDropZone

        return AzureBlobDropZone
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def data_dir() -> Path:
    return Path(os.environ.get("RTCDP_DATA_DIR", DEFAULT_DATA_DIR)).resolve()


def embedded_resources(root: Path | None = None, **settings: Any) -> dict[str, Any]:
    """Local folders for every zone: what a newcomer runs and most tests use."""
    base = (root or data_dir()).resolve()
    for name in ("campaign_sftp", "aep_landing", "aep_destination", "warehouse", "customer_source"):
        (base / name).mkdir(parents=True, exist_ok=True)
    return {
        "campaign_sftp": LocalDropZone(root=str(base / "campaign_sftp")),
        "aep_landing": LocalDropZone(root=str(base / "aep_landing")),
        "aep_destination": LocalDropZone(root=str(base / "aep_destination")),
        "warehouse": Warehouse(zone=LocalDropZone(root=str(base / "warehouse"))),
        "customer_source": LocalDropZone(root=str(base / "customer_source")),
        "settings": PipelineSettings(**{"file_settle_seconds": 2.0, **settings}),
        "audience_settings": AudienceSettings(),
    }


def _azure_storage() -> AzureBlobStorageResource:
    from dagster_azure.blob import (
        AzureBlobStorageDefaultCredential,
        AzureBlobStorageKeyCredential,
        AzureBlobStorageResource,
        AzureBlobStorageSASTokenCredential,
    )

    # Which credential to use is decided by which variables exist; the values themselves are
    # EnvVars, resolved only inside the run or sensor process.
    if os.environ.get("AZURE_STORAGE_KEY"):
        credential: Any = AzureBlobStorageKeyCredential(key=EnvVar("AZURE_STORAGE_KEY"))
    elif os.environ.get("AZURE_STORAGE_SAS_TOKEN"):
        credential = AzureBlobStorageSASTokenCredential(token=EnvVar("AZURE_STORAGE_SAS_TOKEN"))
    else:
        credential = AzureBlobStorageDefaultCredential()
    return AzureBlobStorageResource(
        account_url=EnvVar("AZURE_STORAGE_ACCOUNT_URL"), credential=credential
    )


def production_resources() -> dict[str, Any]:
    from resources.azure_blob import AzureBlobDropZone

    storage = _azure_storage()
    sftp = SftpDropZone(
        host=EnvVar("CAMPAIGN_SFTP_HOST"),
        port=EnvVar.int("CAMPAIGN_SFTP_PORT"),
        username=EnvVar("CAMPAIGN_SFTP_USER"),
        private_key_path=EnvVar("CAMPAIGN_SFTP_KEY_PATH"),
        known_hosts_path=EnvVar("CAMPAIGN_SFTP_KNOWN_HOSTS"),
        base_path=os.environ.get("CAMPAIGN_SFTP_BASE_PATH", ""),
    )
    return {
        "campaign_sftp": sftp,
        "aep_landing": AzureBlobDropZone(
            storage=storage, container=EnvVar("AEP_LANDING_CONTAINER")
        ),
        "aep_destination": AzureBlobDropZone(
            storage=storage, container=EnvVar("AEP_DESTINATION_CONTAINER")
        ),
        "warehouse": Warehouse(
            zone=AzureBlobDropZone(storage=storage, container=EnvVar("WAREHOUSE_CONTAINER"))
        ),
        "customer_source": AzureBlobDropZone(
            storage=storage, container=EnvVar("CUSTOMER_SOURCE_CONTAINER")
        ),
        "settings": PipelineSettings(
            campaign_timezone=os.environ.get("RTCDP_CAMPAIGN_TIMEZONE", "UTC"),
            campaign_identity_namespace=os.environ.get(
                "RTCDP_CAMPAIGN_IDENTITY_NAMESPACE", "external_id"
            ),
        ),
        "audience_settings": AudienceSettings(
            destination_folder=os.environ.get("AEP_DESTINATION_FOLDER", ""),
            join_identity=os.environ.get("RTCDP_AUDIENCE_JOIN_IDENTITY", "external_id"),
        ),
    }


def environment_resources() -> dict[str, Any]:
    env = os.environ.get("RTCDP_ENV", "embedded")
    if env == "embedded":
        return embedded_resources()
    if env == "production":
        return production_resources()
    raise ValueError(f"RTCDP_ENV must be 'embedded' or 'production', not {env!r}")
