"""Preflight of the object-store and local zones: credentials accepted, the container or bucket
there, listing allowed, and a write/delete probe in the zones the platform writes to.

The checks call the storage SDKs directly instead of the zones' own methods: an
`AzureBlobDropZone` creates a missing container on first use, which would hide the most common
mistake (a misspelt container name, so the files land where AEP never reads). Probes are written
under `_rtcdp_preflight/` at the zone's root, outside the landing folder an AEP source dataflow
ingests, and deleted at once.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import boto3
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from resources.azure_blob import AzureBlobDropZone
from resources.drop_zones import DropZone, LocalDropZone, join
from resources.s3 import S3DropZone
from rtcdp_assets.operations.preflight.report import CheckResult, fail, ok, one_line, warn

PROBE_FOLDER = "_rtcdp_preflight"
_NO_SDK_RETRY = {"retry_total": 0}

AZURE_CREDENTIAL_FIX = (
    "AZURE_STORAGE_KEY must be a key of the account in AZURE_STORAGE_ACCOUNT_URL (a non-Azure "
    "endpoint such as Azurite names the account in the path: http://host:10000/<account>; a "
    "custom domain or private endpoint does not: set AZURE_STORAGE_ACCOUNT_NAME), or "
    "AZURE_STORAGE_SAS_TOKEN a valid SAS with read, add, create, write, delete and list"
)
AZURE_NO_ACCOUNT_FIX = (
    "set AZURE_STORAGE_ACCOUNT_NAME to the storage account's name (the URL is a custom domain "
    "or private endpoint that does not name it), or use https://<account>.blob.core.windows.net"
)


def _probe_name() -> str:
    return f"{PROBE_FOLDER}/{uuid.uuid4().hex}.probe"


def azure_checks(role: str, zone: AzureBlobDropZone, writes: bool) -> list[CheckResult]:
    check = f"zone.{role}"
    where = f"container '{zone.container}' at {zone.storage.account_url}"
    try:
        with zone.storage.get_client() as service:
            # The account the key signs for: a wrong one is refused like a wrong key.
            if service.account_name:
                where += f" (account '{service.account_name}')"
            container = service.get_container_client(zone.container)
            container.get_container_properties(**_NO_SDK_RETRY)
            pages = container.list_blobs(
                name_starts_with=zone.prefix.strip("/") or None, results_per_page=1
            ).by_page()
            next(iter(pages), None)
            if not writes:
                return [ok(check, f"{where}: exists, listing allowed")]
            probe = join(zone.prefix, _probe_name())
            try:
                container.upload_blob(probe, b"rtcdp preflight probe\n", **_NO_SDK_RETRY)
            finally:
                with contextlib.suppress(ResourceNotFoundError, HttpResponseError):
                    container.get_blob_client(probe).delete_blob(**_NO_SDK_RETRY)
            return [ok(check, f"{where}: exists, list, write and delete allowed")]
    except ResourceNotFoundError:
        return [
            fail(
                check,
                f"{where} does not exist",
                f"create it (`az storage container create --name {zone.container} "
                f"--account-name <account>`), or correct {role.upper()}_CONTAINER",
            )
        ]
    except ValueError as exc:
        # The SDK's refusal to sign with a key for a URL that names no account, before any call.
        if "account name" not in str(exc):
            raise
        return [fail(check, f"{where}: the URL names no storage account", AZURE_NO_ACCOUNT_FIX)]
    except ClientAuthenticationError as exc:
        return [
            fail(check, f"{where}: credentials refused ({_azure_code(exc)})", AZURE_CREDENTIAL_FIX)
        ]
    except (ServiceRequestError, ServiceResponseError) as exc:
        return [
            fail(
                check,
                f"{where}: unreachable ({type(exc).__name__})",
                "check AZURE_STORAGE_ACCOUNT_URL (https://<account>.blob.core.windows.net, or "
                "the endpoint with the account in its path) and the network path to it",
            )
        ]
    except HttpResponseError as exc:
        if exc.status_code in (401, 403):
            return [
                fail(check, f"{where}: access refused ({_azure_code(exc)})", AZURE_CREDENTIAL_FIX)
            ]
        return [fail(check, f"{where}: {_azure_code(exc)}", "see the storage account's logs")]


def _azure_code(exc: HttpResponseError) -> str:
    # The error code, not the message: a message can quote the request, signature and all.
    code = getattr(exc.error_code, "value", exc.error_code)
    return f"HTTP {exc.status_code} {code or type(exc).__name__}"


def _s3_client(zone: S3DropZone) -> object:
    session = boto3.session.Session(region_name=zone.region_name)
    return session.client(
        "s3",
        endpoint_url=zone.endpoint_url or None,
        config=Config(
            connect_timeout=zone.connect_timeout_seconds,
            read_timeout=zone.read_timeout_seconds,
            retries={"mode": "standard", "total_max_attempts": 1},
            s3={"addressing_style": "path" if zone.endpoint_url else "auto"},
        ),
    )


def s3_checks(role: str, zone: S3DropZone, writes: bool) -> list[CheckResult]:
    check = f"zone.{role}"
    where = f"bucket '{zone.bucket}' at {zone.endpoint_url or f'AWS S3 ({zone.region_name})'}"
    s3 = _s3_client(zone)
    try:
        s3.head_bucket(Bucket=zone.bucket)  # type: ignore[attr-defined]
        s3.list_objects_v2(Bucket=zone.bucket, Prefix=zone.prefix, MaxKeys=1)  # type: ignore[attr-defined]
        if not writes:
            return [ok(check, f"{where}: exists, listing allowed")]
        probe = join(zone.prefix, _probe_name())
        try:
            s3.put_object(Bucket=zone.bucket, Key=probe, Body=b"rtcdp preflight probe\n")  # type: ignore[attr-defined]
        finally:
            with contextlib.suppress(ClientError, BotoCoreError):
                s3.delete_object(Bucket=zone.bucket, Key=probe)  # type: ignore[attr-defined]
        return [ok(check, f"{where}: exists, list, write and delete allowed")]
    except NoCredentialsError:
        return [
            fail(
                check,
                f"{where}: no AWS credentials found",
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or give the host "
                "or pod a role",
            )
        ]
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket", "NotFound"):
            return [
                fail(
                    check,
                    f"{where} does not exist",
                    f"create it (`aws s3 mb s3://{zone.bucket}`), or correct "
                    f"{role.upper()}_BUCKET and AWS_REGION",
                )
            ]
        return [
            fail(
                check,
                f"{where}: refused ({code})",
                "check the AWS credentials and that their policy allows s3:ListBucket, "
                "s3:GetObject, s3:PutObject and s3:DeleteObject on the bucket",
            )
        ]
    except BotoCoreError as exc:
        return [
            fail(
                check,
                f"{where}: unreachable ({type(exc).__name__})",
                "check AWS_ENDPOINT_URL / AWS_REGION and the network path to S3",
            )
        ]


def local_checks(role: str, zone: LocalDropZone, writes: bool) -> list[CheckResult]:
    check = f"zone.{role}"
    root = Path(zone.root)
    if not root.is_dir():
        return [
            fail(check, f"folder {root} does not exist", f"create {root} or set RTCDP_DATA_DIR")
        ]
    if not writes:
        readable = os.access(root, os.R_OK | os.X_OK)
        if readable:
            return [ok(check, f"folder {root} readable")]
        return [fail(check, f"folder {root} not readable", "fix the folder's permissions")]
    probe = root / f".rtcdp-preflight-{uuid.uuid4().hex}"
    renamed = probe.with_suffix(".probe")
    try:
        probe.write_bytes(b"rtcdp preflight probe\n")
        probe.rename(renamed)
        renamed.unlink()
    except OSError as exc:
        return [fail(check, f"folder {root}: {one_line(exc)}", "fix the folder's permissions")]
    finally:
        for leftover in (probe, renamed):
            leftover.unlink(missing_ok=True)
    return [ok(check, f"folder {root}: write, rename and delete")]


def zone_checks(role: str, zone: DropZone, writes: bool) -> list[CheckResult]:
    if isinstance(zone, AzureBlobDropZone):
        return azure_checks(role, zone, writes)
    if isinstance(zone, S3DropZone):
        return s3_checks(role, zone, writes)
    if isinstance(zone, LocalDropZone):
        return local_checks(role, zone, writes)
    return [warn(f"zone.{role}", f"{type(zone).__name__}: no preflight for this kind of zone")]
