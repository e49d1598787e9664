"""Azure Blob as a drop zone, through dagster-azure's `AzureBlobStorageResource`.

Used for the AEP landing container (files AEP's Azure Blob source connector ingests), the AEP
destination container (audience exports) and, in production, the warehouse. Blob has no rename,
but a block-blob upload is committed in one step, so `write_atomic` uploads straight to the
final name: a reader sees the previous blob or the new one, never a part.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any, BinaryIO

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobServiceClient, ContainerClient
from dagster_azure.blob import AzureBlobStorageResource
from pydantic import Field
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from resources.drop_zones import (
    DropZone,
    DropZoneAccessDenied,
    DropZoneUnavailable,
    Entry,
    join,
    safe_relpath,
)

# The SDK's own retry policy waits 15 s, 18 s, 24 s between attempts; under tenacity that
# would multiply into minutes (longer than a sensor tick may take). Calls below pass
# `retry_total=0` so tenacity is the one retry layer, as for SFTP. Downloads keep the SDK's
# retries: it resumes a broken download at the byte where it stopped.
_NO_SDK_RETRY: dict[str, int] = {"retry_total": 0}

_retry_transient = retry(
    retry=retry_if_exception_type(DropZoneUnavailable),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.2, max=2),
    reraise=True,
)


def _classified(exc: Exception) -> Exception:
    if isinstance(exc, ClientAuthenticationError):
        return DropZoneAccessDenied(f"Azure Blob authentication failed: {exc.message}")
    if isinstance(exc, (ServiceRequestError, ServiceResponseError, ConnectionError)):
        return DropZoneUnavailable(f"Azure Blob unreachable: {type(exc).__name__}")
    if isinstance(exc, HttpResponseError) and (exc.status_code or 0) >= 500:
        return DropZoneUnavailable(f"Azure Blob server error {exc.status_code}")
    if isinstance(exc, HttpResponseError) and exc.status_code in (401, 403):
        return DropZoneAccessDenied(f"Azure Blob refused access ({exc.status_code})")
    return exc


class AzureBlobAccount(AzureBlobStorageResource):
    """dagster-azure's Blob resource, with the account name given rather than derived.

    With an account key the SDK signs with the account name, which it takes from the URL: the
    host's first label for `<account>.blob.core.<cloud>`, the path for 127.0.0.1/localhost.
    A custom domain, a private endpoint alias or an emulator under another host name yields
    none ("Unable to determine account name"); `account_name` then names it. A SAS token or
    an Entra ID credential does not sign with the name: left as they are.
    """

    account_name: str = Field(
        default="",
        description="Storage account name (AZURE_STORAGE_ACCOUNT_NAME); empty: from the URL.",
    )

    def _raw_credential(self) -> Any:
        raw = super()._raw_credential()
        if self.account_name and self.credential.credential_type == "key":
            return {"account_name": self.account_name, "account_key": raw}
        return raw


class _StreamingBlobReader:
    """Forward-only file object over `StorageStreamDownloader.chunks()` for pyarrow/gzip."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._buffer, *self._chunks]
            self._buffer, self._eof = b"", True
            return b"".join(parts)
        while len(self._buffer) < size and not self._eof:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                self._eof = True
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def close(self) -> None:
        self._eof = True

    @property
    def closed(self) -> bool:
        return self._eof and not self._buffer


class AzureBlobDropZone(DropZone):
    """One container (and optional prefix) of an Azure Storage account."""

    storage: AzureBlobStorageResource
    container: str
    prefix: str = ""
    max_concurrency: int = 4

    @contextmanager
    def _container(self) -> Iterator[ContainerClient]:
        with self.storage.get_client() as service:
            yield self._ensure_container(service)

    def _ensure_container(self, service: BlobServiceClient) -> ContainerClient:
        container = service.get_container_client(self.container)
        try:
            container.create_container(**_NO_SDK_RETRY)
        except ResourceExistsError:
            pass
        except Exception as exc:
            raise _classified(exc) from exc
        return container

    def _blob(self, path: str) -> str:
        return join(self.prefix, safe_relpath(path))

    def _rel(self, blob_name: str) -> str:
        return blob_name[len(self.prefix.strip("/")) + 1 :] if self.prefix.strip("/") else blob_name

    @staticmethod
    def _entry(rel: str, props: object) -> Entry:
        modified = props.last_modified.astimezone(UTC)  # type: ignore[attr-defined]
        etag = str(props.etag).strip('"')  # type: ignore[attr-defined]
        return Entry(path=rel, size=int(props.size), modified=modified, identity=etag)  # type: ignore[attr-defined]

    @_retry_transient
    def list(self, folder: str = "") -> list[Entry]:
        base = join(self.prefix, safe_relpath(folder)) if folder else self.prefix.strip("/")
        starts_with = f"{base}/" if base else ""
        entries = []
        try:
            with self._container() as container:
                for item in container.walk_blobs(
                    name_starts_with=starts_with, delimiter="/", **_NO_SDK_RETRY
                ):
                    if item.name.endswith("/"):  # a virtual folder (BlobPrefix)
                        continue
                    entries.append(self._entry(self._rel(item.name), item))
        except (DropZoneAccessDenied, DropZoneUnavailable):
            raise
        except Exception as exc:
            raise _classified(exc) from exc
        return sorted(entries)

    @_retry_transient
    def list_folders(self, folder: str = "") -> list[str]:
        base = join(self.prefix, safe_relpath(folder)) if folder else self.prefix.strip("/")
        starts_with = f"{base}/" if base else ""
        try:
            with self._container() as container:
                return sorted(
                    item.name[len(starts_with) :].rstrip("/")
                    for item in container.walk_blobs(name_starts_with=starts_with, delimiter="/")
                    if item.name.endswith("/")  # a virtual folder (BlobPrefix)
                )
        except (DropZoneAccessDenied, DropZoneUnavailable):
            raise
        except Exception as exc:
            raise _classified(exc) from exc

    @contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        try:
            with self._container() as container:
                downloader = container.get_blob_client(self._blob(path)).download_blob(
                    max_concurrency=1
                )
                yield _StreamingBlobReader(downloader.chunks())  # type: ignore[misc]
        except ResourceNotFoundError as exc:
            raise FileNotFoundError(path) from exc
        except (ServiceRequestError, ServiceResponseError, ClientAuthenticationError) as exc:
            raise _classified(exc) from exc

    @_retry_transient
    def write_atomic(self, path: str, source: Path) -> Entry:
        try:
            with self._container() as container, source.open("rb") as fh:
                container.upload_blob(
                    self._blob(path),
                    fh,
                    overwrite=True,
                    max_concurrency=self.max_concurrency,
                    **_NO_SDK_RETRY,
                )
        except (DropZoneAccessDenied, DropZoneUnavailable):
            raise
        except Exception as exc:
            raise _classified(exc) from exc
        entry = self.stat(path)
        assert entry is not None
        return entry

    @_retry_transient
    def move(self, src: str, dst: str) -> None:
        # Blob has no rename: copy server-side, then remove the source only after the copy
        # has succeeded, so the file always exists under at least one name.
        try:
            with self._container() as container:
                source = container.get_blob_client(self._blob(src))
                target = container.get_blob_client(self._blob(dst))
                target.start_copy_from_url(source.url, **_NO_SDK_RETRY)
                props = target.get_blob_properties()
                for _ in range(600):
                    if props.copy.status != "pending":
                        break
                    time.sleep(0.1)
                    props = target.get_blob_properties()
                if props.copy.status not in (None, "success"):
                    raise DropZoneUnavailable(f"copy of {src} to {dst}: {props.copy.status}")
                source.delete_blob(**_NO_SDK_RETRY)
        except (DropZoneAccessDenied, DropZoneUnavailable):
            raise
        except ResourceNotFoundError as exc:
            raise FileNotFoundError(src) from exc
        except Exception as exc:
            raise _classified(exc) from exc

    @_retry_transient
    def delete(self, path: str) -> bool:
        try:
            with self._container() as container:
                container.get_blob_client(self._blob(path)).delete_blob(**_NO_SDK_RETRY)
        except ResourceNotFoundError:
            return False
        except Exception as exc:
            raise _classified(exc) from exc
        return True

    @_retry_transient
    def stat(self, path: str) -> Entry | None:
        try:
            with self._container() as container:
                blob = container.get_blob_client(self._blob(path))
                props = blob.get_blob_properties(**_NO_SDK_RETRY)
        except ResourceNotFoundError:
            return None
        except Exception as exc:
            raise _classified(exc) from exc
        return self._entry(safe_relpath(path), props)

    def describe(self) -> str:
        return f"azure blob {self.storage.account_url}/{self.container}/{self.prefix}".rstrip("/")
