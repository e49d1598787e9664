"""What the warehouse records of processed exports: the per-audience index, each export's
record, and which export a run works on.
"""

from collections.abc import Mapping
from typing import Any

from dagster import Failure

from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import (
    SEGMENT_EXPORTS,
    TAG_AUDIENCE,
    TAG_EXPORT_TIME,
)


def read_index(warehouse: Warehouse, dataset: str, audience_id: str) -> dict[str, Any]:
    return warehouse.get_json(dataset, audience_id, "manifest.json") or {
        "audience_id": audience_id,
        "exports": {},
        "latest": None,
    }


def latest_stamp(exports: Mapping[str, Mapping[str, Any]], status: str | None = None) -> str | None:
    stamps = [s for s, e in exports.items() if status is None or e.get("status") == status]
    return max(stamps) if stamps else None


def export_stamp_for_run(tags: Mapping[str, str], warehouse: Warehouse, audience_id: str) -> str:
    """The export a run works on: the one named in its tags, else the one segment_exports
    processed last (in a run without tags, the one it just picked)."""
    if tags.get(TAG_AUDIENCE) == audience_id and tags.get(TAG_EXPORT_TIME):
        return tags[TAG_EXPORT_TIME]
    index = read_index(warehouse, SEGMENT_EXPORTS, audience_id)
    latest = index.get("last_processed") or index["latest"]
    if latest is None:
        raise Failure(description=f"Audience {audience_id} has no processed export yet.")
    return latest


def read_export_record(warehouse: Warehouse, audience_id: str, stamp: str) -> dict[str, Any]:
    record = warehouse.get_json(SEGMENT_EXPORTS, f"{audience_id}/{stamp}", "export.json")
    if record is None:
        raise Failure(
            description=f"Export {stamp} of audience {audience_id} was not ingested "
            "(segment_exports has no record of it)."
        )
    return record
