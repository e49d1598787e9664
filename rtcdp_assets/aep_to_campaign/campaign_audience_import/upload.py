"""Publishing a staged Campaign audience import: each checked file and its `.done` marker."""

from typing import Any

from resources.drop_zones import DropZone, join
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.campaign_audience_import.import_file import (
    CAMPAIGN_IMPORT,
    read_import_manifest,
)
from rtcdp_assets.shared.campaign_import_files import upload_verified
from rtcdp_assets.shared.campaign_sftp_storage import UploadGuard


def publish_import(
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    settings: PipelineSettings,
    audience_id: str,
    stamp: str,
    guard: UploadGuard | None = None,
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
            guard,
        )
        published.append({"path": target, "rows": f["rows"], "bytes": entry.size})
    return published
