"""The metadata the Campaign assets show in Dagster: schemas, masked previews, file tables."""

from typing import Any

import pyarrow as pa
from dagster import MetadataValue, TableColumn, TableSchema

from resources.warehouse import Warehouse
from rtcdp_assets.campaign_to_aep.export_flow.description import CampaignExportDescription
from rtcdp_assets.shared import xdm
from rtcdp_assets.shared.masking import mask_xdm, masked_preview


def table_schema(schema: pa.Schema) -> TableSchema:
    """Top-level columns with their Arrow types (nested XDM structs shown whole)."""
    return TableSchema(columns=[TableColumn(f.name, str(f.type)) for f in schema])


def head_rows(warehouse: Warehouse, dataset: str, pk: str, rows: int = 5) -> pa.Table | None:
    """The first rows only: a preview must not load a multi-gigabyte partition."""
    batch = next(iter(warehouse.iter_batches(dataset, pk, batch_size=rows)), None)
    return pa.Table.from_batches([batch]) if batch is not None and batch.num_rows else None


def xdm_preview(flow: CampaignExportDescription, warehouse: Warehouse, pk: str) -> str:
    """The first records as JSON, masked by `mask_xdm` (personal, identity and unknown paths)."""
    head = head_rows(warehouse, flow.xdm_dataset, pk, rows=3)
    if head is None:
        return "_no records_"
    personal = flow.fmt.personal_fields
    # Constant paths (producedBy, ...) come from no column, personal or not: they are shown.
    known = {**flow.column_lineage, **{path: () for path in flow.constant_columns}}
    lines = [xdm.dumps(mask_xdm(r, known, personal)) for r in xdm.to_records(head)]
    return "```json\n" + "\n".join(lines) + "\n```"


def arrow_type_name(kind: str) -> str:
    return {"int": "int64", "timestamp": "timestamp", "date": "date", "bool": "boolean"}.get(
        kind, "string"
    )


def typed_metadata(
    flow: CampaignExportDescription, manifest: dict[str, Any], warehouse: Warehouse
) -> dict[str, Any]:
    pk = manifest["partition"]
    head = head_rows(warehouse, flow.dataset, pk)
    preview = masked_preview(head, flow.fmt.personal_fields) if head else "_no rows_"
    file_rows = [
        f"| {f['source_file']} | {f['status']} | {f.get('layout', '')} | {f['rows_in']} | "
        f"{f['rows_out']} | {f['rows_rejected']} | {f.get('reason', '')} |"
        for f in manifest["files"]
    ]
    files_md = "\n".join(
        [
            "| file | status | layout | rows in | rows out | rejected | reason |",
            "|---|---|---|---|---|---|---|",
            *file_rows,
        ]
    )
    return {
        "dagster/row_count": manifest["rows_out"],
        "rows_in": manifest["rows_in"],
        "rows_rejected": manifest["rows_rejected"],
        "files_quarantined": manifest["files_quarantined"],
        "rejects_by_reason": MetadataValue.json(manifest["reasons"]),
        "source_files": MetadataValue.md(files_md),
        "preview": MetadataValue.md(preview),
        "dagster/column_schema": table_schema(flow.fmt.typed_schema),
        "warehouse_path": warehouse.path(flow.dataset, pk, "data.parquet"),
        "rejects_path": warehouse.path(flow.dataset, pk, "rejects.parquet"),
    }


# -- sensor ----------------------------------------------------------------------------
