"""The Campaign audience import file as CSV: the shared writer with this file's columns."""

import pyarrow as pa

from rtcdp_assets.aep_to_campaign.campaign_audience_import.import_file import IMPORT_COLUMNS
from rtcdp_assets.shared import campaign_import_files


def csv_bytes(table: pa.Table, columns: tuple[str, ...] = IMPORT_COLUMNS) -> bytes:
    """`table` as the bytes of a Campaign import file (header line, then one line per row)."""
    return campaign_import_files.csv_bytes(table, columns)
