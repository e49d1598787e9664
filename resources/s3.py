"""Amazon S3 (or any S3 API) as a drop zone, through boto3 directly.

Campaign's sources/destinations setup lets an S3 bucket be the exchange location instead of an
Azure Blob container, so any role (AEP destination, AEP landing, customer source, warehouse) can
point at a bucket by configuration (see `resources/__init__.py`).

- Credentials come only from boto3's own chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`,
  `AWS_PROFILE`, web identity, instance or task roles): this resource has no secret field, so
  none can end up in run config, logs or the UI.
- The content identity is the ETag: it changes whenever the bytes change (MD5 for a single-part
  upload, MD5 of the part MD5s for a multipart one).
- S3 has no rename, but an object only becomes visible when its PUT or its
  `CompleteMultipartUpload` succeeds, so `write_atomic` uploads straight to the final key and a
  reader sees the previous object or the new one, never a part. A failed multipart upload is
  aborted (s3transfer registers the abort when it creates the upload), so no parts are billed.
- Why not dagster-aws's `S3Resource`: it would add a dependency only to hand back the same boto3
  client, and its config fields include the access key and secret, which this project keeps out
  of config entirely.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any, BinaryIO

import boto3
import botocore.loaders
import botocore.session
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from pydantic import Field, PrivateAttr
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from resources.drop_zones import (
    DropZone,
    DropZoneAccessDenied,
    DropZoneUnavailable,
    Entry,
    join,
    safe_relpath,
)

# Error codes S3 answers when the credentials, the signature or the bucket are wrong: retrying
# cannot help, a person has to act.
_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AccountProblem",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "NoSuchBucket",
        "SignatureDoesNotMatch",
        "403",  # HEAD answers carry no body, only the status
    }
)
# Throttling and server-side trouble: the next attempt (or the next tick) may well succeed.
_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "RequestTimeout",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
    }
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})

# Dagster builds resources afresh for every run and sensor tick, and reading botocore's service
# models is most of the cost of a new client (about 200 ms against 30 ms with a warm loader).
# The loader only caches those read-only models; credentials are still resolved per client.
_MODEL_LOADER = botocore.loaders.create_loader()

_retry_transient = retry(
    retry=retry_if_exception_type(DropZoneUnavailable),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.2, max=2),
    reraise=True,
)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and _error_code(exc) in _NOT_FOUND_CODES


class S3DropZone(DropZone):
    """One bucket (and optional key prefix) of Amazon S3 or another S3 API."""

    bucket: str
    prefix: str = Field(default="", description="Key prefix all paths are under (a 'folder').")
    region_name: str = "us-east-1"
    endpoint_url: str | None = Field(
        default=None, description="Only for S3-compatible services or a local test server."
    )
    multipart_threshold_bytes: int = Field(
        default=64 * 1024 * 1024, description="Files at least this large upload in parts."
    )
    multipart_chunksize_bytes: int = Field(
        default=16 * 1024 * 1024, description="Part size; S3 requires at least 5 MiB."
    )
    max_concurrency: int = 4
    max_attempts: int = Field(
        default=3, description="botocore's own attempts per request (standard retry mode)."
    )
    list_page_size: int = Field(default=1000, description="Keys per ListObjectsV2 page (max 1000).")
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 60.0

    _client: Any = PrivateAttr(default=None)
    _bucket_seen: bool = PrivateAttr(default=False)

    # -- client -----------------------------------------------------------------------------
    def _s3(self) -> Any:
        # One session per zone: boto3 sessions are not thread-safe to share, clients are.
        if self._client is None:
            core = botocore.session.get_session()
            core.register_component("data_loader", _MODEL_LOADER)
            session = boto3.session.Session(botocore_session=core, region_name=self.region_name)
            self._client = session.client(
                "s3",
                endpoint_url=self.endpoint_url or None,
                config=Config(
                    connect_timeout=self.connect_timeout_seconds,
                    read_timeout=self.read_timeout_seconds,
                    retries={"mode": "standard", "total_max_attempts": self.max_attempts},
                    # Local and S3-compatible servers rarely resolve bucket subdomains.
                    s3={"addressing_style": "path" if self.endpoint_url else "auto"},
                    max_pool_connections=max(10, self.max_concurrency * 2),
                ),
            )
        return self._client

    def _transfer_config(self) -> TransferConfig:
        config = TransferConfig(
            multipart_threshold=self.multipart_threshold_bytes,
            multipart_chunksize=self.multipart_chunksize_bytes,
            max_concurrency=self.max_concurrency,
            # s3transfer's own manager, whose abort-on-failure and errors the tests check; the
            # CRT one (when awscrt is installed) behaves differently.
            preferred_transfer_client="classic",
        )
        # A file object's parts are read into memory; s3transfer's default allows ten of them
        # queued (160 MiB). One per worker plus one being read keeps every worker busy.
        config.max_in_memory_upload_chunks = self.max_concurrency + 1
        return config

    def _where(self) -> str:
        return f"bucket {self.bucket!r} at {self.endpoint_url or f'AWS S3 ({self.region_name})'}"

    def _denied(self, code: str) -> DropZoneAccessDenied:
        return DropZoneAccessDenied(
            f"S3 refused access to {self._where()}: {code}; check the bucket name, its region "
            "and the credentials in the environment"
        )

    def _classified(self, exc: BaseException) -> BaseException:
        """The drop-zone error for a boto3 failure; messages name the bucket, never a secret."""
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return DropZoneAccessDenied(
                f"no usable AWS credentials for {self._where()}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a role"
            )
        if isinstance(exc, CredentialRetrievalError):
            return DropZoneUnavailable(f"AWS credentials could not be fetched: {exc}")
        if isinstance(exc, (BotoConnectionError, HTTPClientError)):
            return DropZoneUnavailable(f"S3 unreachable ({self._where()}): {type(exc).__name__}")
        if isinstance(exc, ClientError):
            code = _error_code(exc)
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in _ACCESS_CODES:
                return self._denied(code)
            if code in _TRANSIENT_CODES or status >= 500:
                return DropZoneUnavailable(f"S3 busy or failing ({self._where()}): {code}")
        # Anything else (a parameter error, an unexpected code) is a bug to see as it is.
        return exc  # type: ignore[return-value]

    @contextmanager
    def _calls(self, missing: str | None = None) -> Iterator[Any]:
        """Run S3 calls with their failures classified; `missing` turns 404 into
        FileNotFoundError."""
        try:
            yield self._s3()
        except (DropZoneAccessDenied, DropZoneUnavailable, FileNotFoundError):
            raise
        except Exception as exc:
            if missing is not None and _is_not_found(exc):
                raise FileNotFoundError(missing) from exc
            classified = self._classified(exc)
            if classified is exc:
                raise
            raise classified from exc

    # -- paths ------------------------------------------------------------------------------
    def _key(self, path: str) -> str:
        return join(self.prefix, safe_relpath(path))

    def _rel(self, key: str) -> str:
        base = self.prefix.strip("/")
        return key[len(base) + 1 :] if base else key

    @staticmethod
    def _entry(rel: str, size: int, modified: Any, etag: str) -> Entry:
        return Entry(
            path=rel, size=int(size), modified=modified.astimezone(UTC), identity=etag.strip('"')
        )

    # -- contract ---------------------------------------------------------------------------
    @_retry_transient
    def list(self, folder: str = "") -> list[Entry]:
        base = join(self.prefix, safe_relpath(folder)) if folder else self.prefix.strip("/")
        entries = []
        with self._calls() as s3:
            pages = s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=f"{base}/" if base else "",
                Delimiter="/",
                PaginationConfig={"PageSize": self.list_page_size},
            )
            for page in pages:
                # Deeper "folders" come back as CommonPrefixes and are not files of this one.
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith("/"):  # a folder marker written by some consoles
                        continue
                    entries.append(
                        self._entry(
                            self._rel(obj["Key"]), obj["Size"], obj["LastModified"], obj["ETag"]
                        )
                    )
        return sorted(entries)

    @_retry_transient
    def list_folders(self, folder: str = "") -> list[str]:
        base = join(self.prefix, safe_relpath(folder)) if folder else self.prefix.strip("/")
        starts_with = f"{base}/" if base else ""
        names: set[str] = set()
        with self._calls() as s3:
            pages = s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=starts_with,
                Delimiter="/",
                PaginationConfig={"PageSize": self.list_page_size},
            )
            for page in pages:
                # S3 has no folders: the key prefixes up to the next "/" stand for them.
                for common in page.get("CommonPrefixes", []):
                    names.add(common["Prefix"][len(starts_with) :].rstrip("/"))
        return sorted(names)

    @contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        key = self._key(path)
        with self._calls(missing=path) as s3:
            body = s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            # botocore's StreamingBody reads from the socket as the caller reads: one object
            # version, never the whole object in memory.
            yield body
        except (BotoConnectionError, HTTPClientError) as exc:
            # Only the transfer's own failures: a parser error raised by the caller while
            # reading keeps its type.
            raise self._classified(exc) from exc
        finally:
            body.close()

    @_retry_transient
    def write_atomic(self, path: str, source: Path) -> Entry:
        key = self._key(path)
        with self._calls() as s3, source.open("rb") as fh:
            # upload_fileobj (unlike upload_file) lets ClientError through unwrapped, so it can
            # be classified; large files go up in parts and appear only on completion.
            s3.upload_fileobj(fh, self.bucket, key, Config=self._transfer_config())
        entry = self.stat(path)
        assert entry is not None
        return entry

    @_retry_transient
    def move(self, src: str, dst: str) -> None:
        source_key, target_key = self._key(src), self._key(dst)
        with self._calls(missing=src) as s3:
            # No rename in S3: a server-side copy (in parts for large objects), and the source
            # is deleted only after the copy succeeded, so the file always exists somewhere.
            s3.copy(
                {"Bucket": self.bucket, "Key": source_key},
                self.bucket,
                target_key,
                Config=self._transfer_config(),
            )
            s3.delete_object(Bucket=self.bucket, Key=source_key)

    @_retry_transient
    def delete(self, path: str) -> bool:
        # S3 answers a delete of a missing key with success: ask first, to say which it was.
        if self.stat(path) is None:
            return False
        with self._calls(missing=path) as s3:
            s3.delete_object(Bucket=self.bucket, Key=self._key(path))
        return True

    @_retry_transient
    def stat(self, path: str) -> Entry | None:
        key = self._key(path)
        try:
            with self._calls(missing=path) as s3:
                head = s3.head_object(Bucket=self.bucket, Key=key)
        except FileNotFoundError:
            # A HEAD answer has no body, so a missing bucket also looks like a missing key; a
            # misspelt bucket must not read as "no such file".
            self._require_bucket()
            return None
        return self._entry(
            safe_relpath(path), head["ContentLength"], head["LastModified"], head["ETag"]
        )

    def _require_bucket(self) -> None:
        if self._bucket_seen:
            return
        try:
            with self._calls(missing=self.bucket) as s3:
                s3.head_bucket(Bucket=self.bucket)
        except FileNotFoundError as exc:
            raise self._denied("NoSuchBucket") from exc
        self._bucket_seen = True

    def describe(self) -> str:
        base = f"{self.endpoint_url.rstrip('/')}/" if self.endpoint_url else "s3://"
        return f"{base}{self.bucket}/{self.prefix}".rstrip("/")
