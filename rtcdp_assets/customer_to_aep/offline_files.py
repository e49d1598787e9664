"""Reading a customer's offline file (CSV or Parquet) into rows, and naming its partition.

CSV: UTF-8 (a byte-order mark, as spreadsheet exports write it, is skipped), comma separated,
RFC 4180 quoting, first line the header; every value is read as text and typed by the mapping.
Parquet: the values keep their Parquet types (a double price, a timestamp) and go through the
same mapping checks. A file that cannot be read at all raises ``UnreadableFile``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Final

import pyarrow.parquet as pq

from rtcdp_assets.customer_to_aep.offline_records import SourceRow
from rtcdp_assets.shared.ingest import UnreadableFile

SUFFIXES: Final = (".csv", ".parquet")
# <dataset>_<YYYYMMDD>[_<HHMM>][_<part>].csv|.parquet, e.g. orders_20261123.csv,
# orders_20261123_0930_eu.parquet: the date names the day (the partition) of the export.
_NAME: Final = re.compile(
    r"^(?P<prefix>[A-Za-z][A-Za-z0-9_-]*)_(?P<date>\d{8})(?:_\d{4})?(?:_[A-Za-z0-9-]+)?"
    r"\.(?:csv|parquet)$",
    re.IGNORECASE,
)


def partition_for(file_name: str, prefix: str) -> str | None:
    """``orders_20261123_0930.csv`` -> ``2026-11-23`` (daily partitions), or None."""
    match = _NAME.match(file_name)
    if not match or match["prefix"].lower() != prefix.lower():
        return None
    try:
        return datetime.strptime(match["date"], "%Y%m%d").strftime("%Y-%m-%d")
    except ValueError:
        return None


def read_rows(name: str, data: bytes) -> Iterator[SourceRow]:
    if name.lower().endswith(".parquet"):
        yield from _parquet_rows(name, data)
    else:
        yield from _csv_rows(name, data)


def _csv_rows(name: str, data: bytes) -> Iterator[SourceRow]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile("not_utf8", f"{name} is not UTF-8 text") from exc
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [column.strip() for column in next(reader)]
    except StopIteration as exc:
        raise UnreadableFile("empty_file", f"{name} has no header") from exc
    except csv.Error as exc:
        raise UnreadableFile("malformed_csv", f"{name}: {exc}") from exc
    if len(set(header)) != len(header) or "" in header:
        raise UnreadableFile("bad_header", f"{name}: empty or repeated column names")
    try:
        for record in reader:
            if not record:
                continue  # a trailing empty line is not a row
            if len(record) != len(header):
                raise UnreadableFile(
                    "ragged_row", f"{name}: record {reader.line_num} has {len(record)} values"
                )
            yield SourceRow(name, reader.line_num, dict(zip(header, record, strict=True)))
    except csv.Error as exc:
        raise UnreadableFile("malformed_csv", f"{name}: {exc}") from exc


def _parquet_rows(name: str, data: bytes) -> Iterator[SourceRow]:
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise UnreadableFile("bad_parquet", f"{name}: {type(exc).__name__}") from exc
    for number, values in enumerate(table.to_pylist(), start=1):
        yield SourceRow(name, number, values)
