"""Dagster resources and the one place that picks them per environment.

`RTCDP_ENV=embedded` (the default) needs nothing installed: local folders under `RTCDP_DATA_DIR`
stand in for the Campaign SFTP server and the Azure Blob containers. `RTCDP_ENV=production`
reads every location and credential from environment variables through `EnvVar`, so secrets
are resolved in the run process and never appear in code, config or the UI (see `.env.example`).

In either environment each exchange role (`aep_landing`, `aep_destination`, `customer_source`,
the warehouse) can live in an S3 bucket instead: `<ROLE>_ZONE=s3` with `<ROLE>_BUCKET`
(see `zone_for_role`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import EnvVar

from resources.audience_settings import (
    AepDestinationOptions,
    AudienceSettings,
    join_identities_from_env,
)
from resources.drop_zones import (
    DropZone,
    DropZoneAccessDenied,
    DropZoneError,
    DropZoneUnavailable,
    Entry,
    LocalDropZone,
)
from resources.file_ledger import FileLedger
from resources.settings import PipelineSettings
from resources.sftp import SftpDropZone
from resources.warehouse import Warehouse

if TYPE_CHECKING:
    from resources.azure_blob import AzureBlobAccount, AzureBlobDropZone
    from resources.s3 import S3DropZone

__all__ = [
    "AepDestinationOptions",
    "AudienceSettings",
    "AzureBlobDropZone",
    "DropZone",
    "DropZoneAccessDenied",
    "DropZoneError",
    "DropZoneUnavailable",
    "Entry",
    "FileLedger",
    "LocalDropZone",
    "PipelineSettings",
    "S3DropZone",
    "SftpDropZone",
    "Warehouse",
    "embedded_resources",
    "environment_resources",
    "production_resources",
    "zone_for_role",
]

DEFAULT_DATA_DIR = ".rtcdp"


def __getattr__(name: str) -> Any:
    # dagster_azure imports the whole Azure SDK (about 1 s, a third of loading the definitions)
    # and boto3 its own; only the roles that use them need them, so they load on first use.
    if name == "AzureBlobDropZone":
        from resources.azure_blob import AzureBlobDropZone

        return AzureBlobDropZone
    if name == "S3DropZone":
        from resources.s3 import S3DropZone

        return S3DropZone
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def data_dir() -> Path:
    return Path(os.environ.get("RTCDP_DATA_DIR", DEFAULT_DATA_DIR)).resolve()


def embedded_resources(root: Path | None = None, **settings: Any) -> dict[str, Any]:
    """Local folders for every zone: what a newcomer runs and most tests use."""
    base = (root or data_dir()).resolve()
    zones = ("campaign_sftp", "aep_landing", "aep_destination", "warehouse", "customer_source")
    for name in (*zones, "aep_dataset_export"):
        (base / name).mkdir(parents=True, exist_ok=True)

    def local(role: str) -> DropZone:
        return zone_for_role(role, default=lambda: LocalDropZone(root=str(base / role)))

    return {
        "campaign_sftp": LocalDropZone(root=str(base / "campaign_sftp")),
        "aep_landing": local("aep_landing"),
        "aep_destination": local("aep_destination"),
        "warehouse": Warehouse(zone=local("warehouse")),
        "customer_source": local("customer_source"),
        "file_ledger": FileLedger(url=f"sqlite:///{base / 'ledger.sqlite'}"),
        "aep_dataset_export": local("aep_dataset_export"),
        "settings": PipelineSettings(**{"file_settle_seconds": 2.0, **settings}),
        "audience_settings": AudienceSettings(),
    }


def _azure_storage() -> AzureBlobAccount:
    from dagster_azure.blob import (
        AzureBlobStorageDefaultCredential,
        AzureBlobStorageKeyCredential,
        AzureBlobStorageSASTokenCredential,
    )

    from resources.azure_blob import AzureBlobAccount

    # Which credential to use is decided by which variables exist; the values themselves are
    # EnvVars, resolved only inside the run or sensor process.
    if os.environ.get("AZURE_STORAGE_KEY"):
        credential: Any = AzureBlobStorageKeyCredential(key=EnvVar("AZURE_STORAGE_KEY"))
    elif os.environ.get("AZURE_STORAGE_SAS_TOKEN"):
        credential = AzureBlobStorageSASTokenCredential(token=EnvVar("AZURE_STORAGE_SAS_TOKEN"))
    else:
        credential = AzureBlobStorageDefaultCredential()
    # Not a secret, and only needed where the URL does not name the account (a custom domain,
    # a private endpoint alias): read here, as the credential's kind is.
    return AzureBlobAccount(
        account_url=EnvVar("AZURE_STORAGE_ACCOUNT_URL"),
        credential=credential,
        account_name=os.environ.get("AZURE_STORAGE_ACCOUNT_NAME", "").strip(),
    )


def _blob_zone(role: str) -> AzureBlobDropZone:
    from resources.azure_blob import AzureBlobDropZone

    return AzureBlobDropZone(
        storage=_azure_storage(), container=EnvVar(f"{role.upper()}_CONTAINER")
    )


def zone_for_role(role: str, default: Callable[[], DropZone]) -> DropZone:
    """The zone of one exchange role, chosen by `<ROLE>_ZONE` (e.g. `AEP_DESTINATION_ZONE`).

    `s3` puts the role in the bucket `<ROLE>_BUCKET` (optional `<ROLE>_PREFIX`) in `AWS_REGION`,
    through `AWS_ENDPOINT_URL` when set; AWS credentials come from boto3's own chain. Unset, the
    environment's default applies (local folders embedded, Azure Blob in production).
    """
    name = role.upper()
    kind = os.environ.get(f"{name}_ZONE", "").strip().lower()
    if kind == "s3":
        from resources.s3 import S3DropZone

        return S3DropZone(
            bucket=EnvVar(f"{name}_BUCKET"),
            prefix=os.environ.get(f"{name}_PREFIX", ""),
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        )
    if kind == "azure":
        return _blob_zone(role)
    if kind:
        raise ValueError(f"{name}_ZONE must be 'azure' or 's3', not {kind!r}")
    return default()


def production_resources() -> dict[str, Any]:
    sftp = SftpDropZone(
        host=EnvVar("CAMPAIGN_SFTP_HOST"),
        port=EnvVar.int("CAMPAIGN_SFTP_PORT"),
        username=EnvVar("CAMPAIGN_SFTP_USER"),
        private_key_path=EnvVar("CAMPAIGN_SFTP_KEY_PATH"),
        known_hosts_path=EnvVar("CAMPAIGN_SFTP_KNOWN_HOSTS"),
        private_key_passphrase=(
            EnvVar("CAMPAIGN_SFTP_KEY_PASSPHRASE")
            if os.environ.get("CAMPAIGN_SFTP_KEY_PASSPHRASE")
            else None
        ),
        base_path=os.environ.get("CAMPAIGN_SFTP_BASE_PATH", ""),
        # Opt-in: a second SSH connection per large read (docs/deployment.md).
        read_in_child_process=os.environ.get("CAMPAIGN_SFTP_READ_IN_CHILD_PROCESS", "false").lower()
        in ("1", "true", "yes"),
    )

    def blob(role: str) -> DropZone:
        return zone_for_role(role, default=lambda: _blob_zone(role))

    return {
        "campaign_sftp": sftp,
        "aep_landing": blob("aep_landing"),
        "aep_destination": blob("aep_destination"),
        "warehouse": Warehouse(zone=blob("warehouse")),
        "customer_source": blob("customer_source"),
        # The ledger belongs beside Dagster's own storage (the deployment's Postgres).
        "file_ledger": FileLedger(url=EnvVar("RTCDP_LEDGER_URL")),
        # AEP dataset exports (push tokens of the Mobile SDK route).
        "aep_dataset_export": blob("aep_dataset_export"),
        "settings": PipelineSettings(
            campaign_timezone=os.environ.get("RTCDP_CAMPAIGN_TIMEZONE", "UTC"),
            campaign_identity_namespace=os.environ.get(
                "RTCDP_CAMPAIGN_IDENTITY_NAMESPACE", "external_id"
            ),
            broadlog_default_channel=os.environ.get("RTCDP_BROADLOG_DEFAULT_CHANNEL", "email"),
            tracking_log_default_channel=os.environ.get(
                "RTCDP_TRACKING_LOG_DEFAULT_CHANNEL", "email"
            ),
            phone_default_country_code=os.environ.get("RTCDP_PHONE_DEFAULT_COUNTRY_CODE", ""),
            aep_publication_format=os.environ.get("RTCDP_AEP_PUBLICATION_FORMAT", "parquet"),
            **completion_settings_from_env(),
            # The limits an operator is told to change when a file or partition is refused.
            max_row_bytes=int(os.environ.get("RTCDP_MAX_ROW_BYTES", 1 << 20)),
            max_decompression_ratio=float(os.environ.get("RTCDP_MAX_DECOMPRESSION_RATIO", 100)),
            reject_rate_warn_above=float(os.environ.get("RTCDP_REJECT_RATE_WARN_ABOVE", 0.01)),
            reject_rate_block_above=float(os.environ.get("RTCDP_REJECT_RATE_BLOCK_ABOVE", 0.2)),
            # The Campaign contract's SFTP storage and how long our files may stay there.
            campaign_sftp_quota_bytes=int(os.environ.get("RTCDP_CAMPAIGN_SFTP_QUOTA_BYTES") or 0),
            archive_retention_days=float(os.environ.get("RTCDP_ARCHIVE_RETENTION_DAYS") or 15),
            campaign_import_max_age_days=float(
                os.environ.get("RTCDP_CAMPAIGN_IMPORT_MAX_AGE_DAYS") or 15
            ),
            # The contract's count of Campaign profiles (`active_profiles`); empty: not set.
            contracted_profiles=int(os.environ.get("RTCDP_CONTRACTED_PROFILES") or 0) or None,
            # How failed work comes back: runs per file version, wait before the next one.
            failed_run_max_attempts=int(os.environ.get("RTCDP_FAILED_RUN_MAX_ATTEMPTS") or 3),
            failed_run_retry_backoff_seconds=float(
                os.environ.get("RTCDP_FAILED_RUN_RETRY_BACKOFF_SECONDS") or 900
            ),
        ),
        "audience_settings": AudienceSettings(
            destination_folder=os.environ.get("AEP_DESTINATION_FOLDER", ""),
            join_identities=join_identities_from_env(
                os.environ.get("RTCDP_AUDIENCE_JOIN_IDENTITIES")
                or os.environ.get("RTCDP_AUDIENCE_JOIN_IDENTITY")
            ),
            # Opt-in: the Campaign import waits for the approved activation_dry_run.
            campaign_import_review_first=os.environ.get(
                "RTCDP_CAMPAIGN_IMPORT_REVIEW_FIRST", "false"
            ).lower()
            in ("1", "true", "yes"),
        ),
    }


def completion_settings_from_env() -> dict[str, Any]:
    """The completion-rule settings of a production deployment (docs/deployment.md,
    "Completion").

    `RTCDP_COMPLETION_RULE` (marker | rename | stability) picks the Campaign export folder's
    rule. Unset, the variables of earlier versions decide as they did: a
    `RTCDP_STABILITY_WINDOW_SECONDS` above 0 means `stability`; otherwise `marker`, the safe
    default (an empty `RTCDP_COMPLETION_MARKER_SUFFIX` now means `.done`, not "no marker").
    """
    window = float(os.environ.get("RTCDP_STABILITY_WINDOW_SECONDS") or 0)
    rule = os.environ.get("RTCDP_COMPLETION_RULE", "").strip().lower()
    values: dict[str, Any] = {
        "campaign_export_completion": rule or ("stability" if window > 0 else "marker"),
        "completion_marker_suffix": os.environ.get("RTCDP_COMPLETION_MARKER_SUFFIX") or ".done",
    }
    if window > 0:
        values["stability_window_seconds"] = window
    customer = os.environ.get("RTCDP_CUSTOMER_SOURCE_COMPLETION_RULE", "").strip().lower()
    if customer:
        values["customer_source_completion"] = customer
    grace = os.environ.get("RTCDP_INCOMPLETE_FILE_GRACE_SECONDS")
    if grace:
        values["incomplete_file_grace_seconds"] = float(grace)
    patterns = os.environ.get("RTCDP_TEMPORARY_NAME_PATTERNS", "")
    values["temporary_name_patterns"] = [p.strip() for p in patterns.split(",") if p.strip()]
    return values


def environment_resources() -> dict[str, Any]:
    env = os.environ.get("RTCDP_ENV", "embedded")
    if env == "embedded":
        return embedded_resources()
    if env == "production":
        return production_resources()
    raise ValueError(f"RTCDP_ENV must be 'embedded' or 'production', not {env!r}")
