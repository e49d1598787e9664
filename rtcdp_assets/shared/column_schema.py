"""The `dagster/column_schema` metadata of a dataset, from its Arrow schema."""

import pyarrow as pa
from dagster import TableColumn, TableSchema


def table_schema(schema: pa.Schema) -> TableSchema:
    """Top-level columns with their Arrow types (nested XDM structs shown whole)."""
    return TableSchema(columns=[TableColumn(f.name, str(f.type)) for f in schema])
