"""Streaming ingestion of Campaign CSV exports: parse, validate, split good rows from bad.

Every Campaign dataset (broadLog, trackingLog, non-deliverables, preferences, profiles) goes
through `ingest_file`: the file is streamed with pyarrow (never whole in memory), every value is
read as text and validated with compute kernels, and each row ends up in exactly one of two
places: the typed batches or the rejects, with a reason code and its CSV record number. A file
that cannot be read at all raises `UnreadableFile` with a reason, so the caller can quarantine
it. Nothing in this package touches Dagster; the benchmarks in `bench/` drive it directly.

Modules: `model` (field specs, layouts, formats, results), `streams` (gzip guard, header
replay), `limits` (longest row, decompression ratio), `validation` (compute-kernel rules) and
`file_reader` (`ingest_file`, one file end to end). The underscored names below are
re-exported for the tests and benchmarks that probe them.
"""

from rtcdp_assets.shared.ingest.file_reader import (
    IngestedBatch,
    _decode_utf8,
    empty_batch,
    ingest_file,
)
from rtcdp_assets.shared.ingest.limits import StreamLimits
from rtcdp_assets.shared.ingest.model import (
    ARROW_TYPES,
    LINE_NUMBER,
    REJECT_SCHEMA,
    SOURCE_FILE,
    CsvOptions,
    ExportFormat,
    FieldKind,
    FieldSpec,
    FileResult,
    Layout,
    UnreadableFile,
    detect_layout,
)
from rtcdp_assets.shared.ingest.streams import _GuardedStream
from rtcdp_assets.shared.ingest.validation import (
    _EMAIL_RE,
    _TS_RE,
    RowRules,
    RowValues,
    Rule,
    _empty_mask,
    _trimmed,
    validate_batch,
)

__all__ = [
    "ARROW_TYPES",
    "LINE_NUMBER",
    "REJECT_SCHEMA",
    "SOURCE_FILE",
    "_EMAIL_RE",
    "_TS_RE",
    "CsvOptions",
    "ExportFormat",
    "FieldKind",
    "FieldSpec",
    "FileResult",
    "IngestedBatch",
    "Layout",
    "RowRules",
    "RowValues",
    "Rule",
    "StreamLimits",
    "UnreadableFile",
    "_GuardedStream",
    "_decode_utf8",
    "_empty_mask",
    "_trimmed",
    "detect_layout",
    "empty_batch",
    "ingest_file",
    "validate_batch",
]
