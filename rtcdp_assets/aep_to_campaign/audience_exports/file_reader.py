"""Reading one AEP export file (CSV, JSON Lines, Parquet) through the shared `ingest_file`."""

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from resources.audience_settings import AepDestinationOptions
from resources.drop_zones import DropZone, Entry
from resources.settings import PipelineSettings
from rtcdp_assets.aep_to_campaign.audience_exports.aep_csv_stream import AepCsvStream
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import SEGMENT_EXPORTS, STATUSES
from rtcdp_assets.aep_to_campaign.audience_exports.file_names import ExportFileName
from rtcdp_assets.aep_to_campaign.audience_exports.join_identities import (
    JOIN_FIELDS,
    column_forms,
    identity_columns,
)
from rtcdp_assets.shared.ingest import (
    REJECT_SCHEMA,
    SOURCE_FILE,
    ExportFormat,
    FieldSpec,
    FileResult,
    IngestedBatch,
    Layout,
    StreamLimits,
    UnreadableFile,
    _GuardedStream,
    ingest_file,
)
from rtcdp_assets.shared.row_json import nested_json


def status_columns(audience_id: str, options: AepDestinationOptions) -> list[str]:
    if options.status_column:
        return column_forms(options.status_column)
    # Dots in XDM paths become `_` in CSV headers (docs/formats.md §a2); accept both spellings.
    return [
        f"segmentMembership_ups_{audience_id}_status",
        f"segmentMembership.ups.{audience_id}.status",
        "segmentMembershipStatus",
    ]


def qualification_columns(audience_id: str, options: AepDestinationOptions) -> list[str]:
    if options.qualification_time_column:
        return column_forms(options.qualification_time_column)
    return [
        f"segmentMembership_ups_{audience_id}_lastQualificationTime",
        f"segmentMembership.ups.{audience_id}.lastQualificationTime",
    ]


def audience_format(
    audience_id: str, options: AepDestinationOptions, join_identity: str | None
) -> ExportFormat:
    """The ExportFormat of one audience's export: the columns depend on the audience ID, and
    the join identity (`None`: the storage format, where no identity is required) is the one
    field a row cannot lack."""
    fields = (
        FieldSpec(
            "external_id",
            "string",
            required=join_identity == "external_id",
            personal=True,
            description="Campaign external ID (the AEP `external_id` identity).",
        ),
        FieldSpec(
            "email",
            "email" if join_identity == "email" else "string",
            required=join_identity == "email",
            personal=True,
            description="Email address as AEP exported it.",
        ),
        FieldSpec(
            "phone",
            "string",
            required=join_identity == "phone",
            personal=True,
            description="Mobile phone as AEP exported it (E.164 expected to join by phone).",
        ),
        FieldSpec(
            "status",
            "string",
            allowed=frozenset(STATUSES),
            description="segmentMembership status: realized / existing / exited.",
        ),
        FieldSpec(
            "last_qualification_time",
            "timestamp",
            description="segmentMembership lastQualificationTime.",
        ),
    )
    columns = {
        column: JOIN_FIELDS[identity]
        for identity in JOIN_FIELDS
        for column in identity_columns(identity, options)
    }
    columns |= dict.fromkeys(status_columns(audience_id, options), "status")
    columns |= dict.fromkeys(qualification_columns(audience_id, options), "last_qualification_time")
    return ExportFormat(
        dataset=SEGMENT_EXPORTS,
        fields=fields,
        layouts=(Layout("aep_audience_export", columns),),
    )


def _relabel(part: IngestedBatch, name: str) -> IngestedBatch:
    """Name the original file (`x.csv.gz`) in rows read from its decompressed stream."""
    good, bad = part.good, part.rejects
    i = good.schema.get_field_index(SOURCE_FILE)
    good = good.set_column(i, SOURCE_FILE, pa.repeat(pa.scalar(name), good.num_rows))
    j = bad.schema.get_field_index("source_file")
    bad = bad.set_column(j, REJECT_SCHEMA.field("source_file"), pa.repeat(name, bad.num_rows))
    return IngestedBatch(good=good, rejects=bad)


def _flatten(table: pa.Table) -> pa.Table:
    """Nested XDM paths → the CSV header names AEP would use (`person.name.firstName` →
    `person_name_firstName`); every scalar value as text for the shared validation."""
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    columns, names = [], []
    for name, column in zip(table.column_names, table.columns, strict=True):
        names.append(name.replace(".", "_"))
        if pa.types.is_list(column.type) or pa.types.is_map(column.type):
            # Arrays are flattened by AEP itself for files; a list here (identityMap's, say) is
            # kept as JSON text, as json.dumps writes it.
            column = nested_json(column)
        columns.append(column.cast(pa.string()))
    return pa.Table.from_arrays(columns, names=names)


def _columnar_to_csv(
    raw: BinaryIO, parsed: ExportFileName, max_bytes: int, limits: StreamLimits, tmp: Path
) -> tuple[Path, list[str]]:
    """JSON Lines or Parquet → a local RFC 4180 CSV for `ingest_file`."""
    local = tmp / f"{parsed.name}.src"
    with local.open("wb") as out:
        # Parquet is binary: only the decompression ratio applies here, not line lengths.
        ratio_only = replace(limits, max_row_bytes=0)
        stream = _GuardedStream(raw, parsed.compressed, max_bytes, ratio_only)  # type: ignore[arg-type]
        while chunk := stream.read(4 << 20):
            out.write(chunk)
    csv_path = tmp / f"{parsed.name}.as.csv"
    try:
        table = pq.read_table(local) if parsed.kind == "parquet" else pajson.read_json(local)
    except (pa.ArrowInvalid, OSError) as exc:
        reason = "corrupt_parquet" if parsed.kind == "parquet" else "corrupt_json"
        raise UnreadableFile(reason, str(exc).splitlines()[0][:300]) from exc
    if table.num_columns == 0:
        raise UnreadableFile("empty_file", "the file holds no columns")
    flat = _flatten(table)
    pacsv.write_csv(flat, csv_path)
    return csv_path, flat.column_names


def read_export_file(
    zone: DropZone,
    parsed: ExportFileName,
    entry: Entry,
    format_for: Callable[[list[str]], ExportFormat],
    options: AepDestinationOptions,
    settings: PipelineSettings,
    result: FileResult,
    tmp: Path,
) -> Iterator[tuple[IngestedBatch, list[str] | None]]:
    """Typed rows and rejects of one exported file, with the header it had. `format_for` gives
    the format for the file's header (the join identity is chosen from it)."""
    limits = StreamLimits.of(settings)
    with zone.open_read(entry.path) as raw:
        if parsed.kind == "csv":
            # Lines are measured after transcoding, by AepCsvStream and `ingest_file`.
            guarded = _GuardedStream(
                raw,  # type: ignore[arg-type]
                gzip=parsed.compressed,
                max_bytes=settings.max_decompressed_bytes,
                limits=replace(limits, max_row_bytes=0),
            )
            stream = AepCsvStream(guarded, options, max_line_bytes=limits.max_row_bytes)
            fmt = format_for(stream.read_header())
            csv_fmt = ExportFormat(fmt.dataset, fmt.fields, fmt.layouts, stream.csv_options)
            plain = parsed.name[:-3] if parsed.compressed else parsed.name
            for part in ingest_file(
                stream,  # type: ignore[arg-type]
                source_file=plain,
                fmt=csv_fmt,
                max_decompressed_bytes=settings.max_decompressed_bytes,
                result=result,
                limits=limits,
            ):
                yield (_relabel(part, parsed.name) if plain != parsed.name else part), stream.header
            return
        local, header = _columnar_to_csv(raw, parsed, settings.max_decompressed_bytes, limits, tmp)
    fmt = format_for(header)
    with local.open("rb") as fh:
        name = f"{parsed.name}.csv"
        for part in ingest_file(fh, source_file=name, fmt=fmt, result=result, limits=limits):
            yield _relabel(part, parsed.name), header
