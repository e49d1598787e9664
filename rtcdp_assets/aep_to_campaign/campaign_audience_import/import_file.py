"""The staged Campaign import file: its dataset, names, columns, manifest and rows."""

from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
from dagster import Failure

from resources.warehouse import Warehouse

CAMPAIGN_IMPORT = "campaign_audience_import"
PUBLISHED = "campaign_audience_import_published"
IMPORT_COLUMNS = (
    "recipient_id",
    "external_id",
    "email",
    "audience_id",
    "audience_name",
    "membership_status",
    "last_qualification_time",
    "export_time",
)
# The member key is the join identity's value (an external ID, email or phone).
PERSONAL_COLUMNS = frozenset({"key", "recipient_id", "external_id", "email"})
QUARANTINE_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("external_id", pa.string()),
        ("email", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("in_export", pa.bool_()),
    ]
)
EXCLUDED_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("recipient_id", pa.string()),
        ("email", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("in_export", pa.bool_()),
    ]
)


def import_file_names(audience_id: str, stamp: str, parts: int) -> list[str]:
    base = f"aep_audience_{audience_id}_{stamp}"
    return [f"{base}.csv" if i == 1 else f"{base}_{i}.csv" for i in range(1, parts + 1)]


def read_import_manifest(warehouse: Warehouse, audience_id: str, stamp: str) -> dict[str, Any]:
    manifest = warehouse.get_json(CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", "manifest.json")
    if manifest is None:
        raise Failure(description=f"No staged Campaign import for audience {audience_id} {stamp}.")
    return manifest


def read_staged_rows(warehouse: Warehouse, audience_id: str, stamp: str) -> list[pa.Table]:
    manifest = read_import_manifest(warehouse, audience_id, stamp)
    tables = []
    for f in manifest["files"]:
        with warehouse.local_copy(CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", f["name"]) as local:
            if local is None:
                tables.append(pa.table({c: pa.array([], pa.string()) for c in IMPORT_COLUMNS}))
                continue
            tables.append(
                pacsv.read_csv(
                    local,
                    convert_options=pacsv.ConvertOptions(
                        column_types=dict.fromkeys(IMPORT_COLUMNS, pa.string()),
                        strings_can_be_null=False,
                    ),
                )
            )
    return tables
