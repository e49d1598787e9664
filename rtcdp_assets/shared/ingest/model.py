"""What an export is: field specs, layouts, CSV options, the reject schema and a file's result."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

FieldKind = Literal["int", "string", "timestamp", "date", "email", "bool"]

ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
    "email": pa.string(),
    "bool": pa.bool_(),
}

SOURCE_FILE = "_source_file"
LINE_NUMBER = "_line_number"

REJECT_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("line_number", pa.int64()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("column", pa.string()),
        pa.field("raw", pa.string()),
    ]
)


@dataclass(frozen=True)
class FieldSpec:
    """One canonical field of a dataset, whatever the source layout calls it."""

    name: str
    kind: FieldKind
    required: bool = False
    allowed: frozenset[str] | None = None  # allowed raw values (after trimming), e.g. codes
    personal: bool = False  # masked in every preview and metadata shown in the UI
    description: str = ""
    # The column must be in the header even where `required` is False because some rows may
    # leave it empty (a direct-mail row's address): its absence makes the layout unknown.
    column_required: bool = False


@dataclass(frozen=True)
class Layout:
    """How one Campaign flavour names the columns: source header -> canonical field name."""

    name: str
    columns: Mapping[str, str]

    def matches(self, header: Sequence[str], required: set[str]) -> bool:
        present = {self.columns[h] for h in header if h in self.columns}
        return required <= present


@dataclass(frozen=True)
class CsvOptions:
    delimiter: str = ","
    quote_char: str = '"'
    encoding: str = "utf-8"
    # Campaign export workflows write one record per line. With True, quoted values may span
    # lines and line numbers become CSV record numbers.
    newlines_in_values: bool = True
    block_size: int = 2 << 20  # peak memory follows the block size (bench/README.md)


@dataclass(frozen=True)
class ExportFormat:
    """Everything needed to read one Campaign export dataset."""

    dataset: str
    fields: tuple[FieldSpec, ...]
    layouts: tuple[Layout, ...]
    csv: CsvOptions = field(default_factory=CsvOptions)

    @property
    def required(self) -> set[str]:
        """Fields whose column every layout must carry."""
        return {f.name for f in self.fields if f.required or f.column_required}

    @property
    def personal_fields(self) -> set[str]:
        return {f.name for f in self.fields if f.personal}

    @property
    def personal_columns(self) -> frozenset[str]:
        """Personal fields under every name they have: canonical and each layout's header
        (a quarantined row keeps its source column names)."""
        personal = self.personal_fields
        sources = {h for layout in self.layouts for h, f in layout.columns.items() if f in personal}
        return frozenset(personal | sources)

    @property
    def typed_schema(self) -> pa.Schema:
        cols = [pa.field(f.name, ARROW_TYPES[f.kind], nullable=not f.required) for f in self.fields]
        cols += [
            pa.field(SOURCE_FILE, pa.string(), nullable=False),
            pa.field(LINE_NUMBER, pa.int64(), nullable=False),
        ]
        return pa.schema(cols)

    def field(self, name: str) -> FieldSpec:
        return next(f for f in self.fields if f.name == name)


class UnreadableFile(Exception):
    """The file as a whole cannot be ingested; `reason` is a stable code for the quarantine."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class FileResult:
    """What became of one file: the counts reconcile as rows_in == rows_out + rows_rejected."""

    source_file: str
    layout: str
    rows_in: int = 0
    rows_out: int = 0
    rows_rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    bytes_in: int = 0
    # The file ends in a row with fewer fields than the header and no line end (still being
    # written?); the caller decides (campaign_to_aep/export_flow/source_readiness.py).
    cut_last_line: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "source_file": self.source_file,
            "layout": self.layout,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_rejected": self.rows_rejected,
            "reasons": dict(sorted(self.reasons.items())),
            "bytes_in": self.bytes_in,
        }


def detect_layout(fmt: ExportFormat, header: Sequence[str]) -> Layout:
    for layout in fmt.layouts:
        if layout.matches(header, fmt.required):
            return layout
    names = ", ".join(layout.name for layout in fmt.layouts)
    missing = {
        layout.name: sorted(
            fmt.required - {layout.columns[h] for h in header if h in layout.columns}
        )
        for layout in fmt.layouts
    }
    raise UnreadableFile(
        "unknown_layout",
        f"header matches none of the {fmt.dataset} layouts ({names}); missing required "
        f"columns per layout: {json.dumps(missing)}",
    )
