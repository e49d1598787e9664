"""Uploading a checked, staged file to a drop zone: only if its bytes are the ones checked,
atomically, then its `.done` marker.
"""

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from dagster import Failure

from resources.drop_zones import DropZone, Entry, join
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.campaign_audience_import.import_file import (
    CAMPAIGN_IMPORT,
    read_import_manifest,
)


def upload_verified(
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    staged: tuple[str, str, str],
    target: str,
    sha256: str,
    marker: Mapping[str, Any],
) -> Entry:
    """Upload a staged import file to Campaign only if its bytes are still the ones the checks
    passed, atomically, then its `.done` marker (the marker says the file is complete)."""
    dataset, folder, name = staged
    with warehouse.local_copy(dataset, folder, name) as local:
        if local is None:
            raise Failure(description=f"Staged import file {name} is missing.")
        digest = hashlib.sha256(local.read_bytes()).hexdigest()
        if digest != sha256:
            raise Failure(
                description=f"Staged {name} changed after it was checked "
                f"(SHA-256 {digest} != {sha256}); not uploading it."
            )
        entry = campaign_sftp.write_atomic(target, local)
    campaign_sftp.write_bytes(
        f"{target}.done", json.dumps(dict(marker), indent=2, sort_keys=True).encode()
    )
    return entry


def publish_import(
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    settings: PipelineSettings,
    audience_id: str,
    stamp: str,
) -> list[dict[str, Any]]:
    manifest = read_import_manifest(warehouse, audience_id, stamp)
    published = []
    for f in manifest["files"]:
        target = join(settings.campaign_import_folder, f["name"])
        marker = {
            "file": f["name"],
            "rows": f["rows"],
            "bytes": f["bytes"],
            "sha256": f["sha256"],
            "part": f["part"],
            "parts": len(manifest["files"]),
            "audience_id": audience_id,
            "audience_name": manifest["audience_name"],
            "export_id": manifest["export_id"],
            "export_time": manifest["export_time"],
            "columns": manifest["columns"],
        }
        entry = upload_verified(
            warehouse,
            campaign_sftp,
            (CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", f["name"]),
            target,
            f["sha256"],
            marker,
        )
        published.append({"path": target, "rows": f["rows"], "bytes": entry.size})
    return published
