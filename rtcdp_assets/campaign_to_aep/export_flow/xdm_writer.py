"""Typed batches to XDM Parquet: the writer used during ingestion, and the partition-level
results (one file per partition, also when the XDM asset maps a stored typed partition)."""

import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from resources.settings import PipelineSettings
from resources.warehouse import ParquetSink, Warehouse, parquet_batches
from rtcdp_assets.campaign_to_aep.export_flow.description import (
    CampaignExportDescription,
    XdmMapper,
)
from rtcdp_assets.shared.ingest import empty_batch

CHANNEL_PATH = ("_experience", "campaign", "channel")


@dataclass(frozen=True)
class XdmOutput:
    """What an XDM partition holds once written: its record count and Arrow schema, and for
    Campaign events its records per delivery channel (labels and counts, no personal value)."""

    rows: int
    schema: pa.Schema
    rows_by_channel: dict[str, int] | None = None


class XdmWriter:
    """Maps typed batches to XDM records into one local Parquet file.

    The schema is the first mapped batch's (a mapping types its columns the same way for
    every batch); no file is written while no row arrives. Without a mapper it does nothing,
    so one `with` serves the ingestion with and without the XDM asset selected.
    """

    def __init__(self, path: Path, to_xdm: XdmMapper | None, settings: PipelineSettings) -> None:
        self.path = path
        self._to_xdm = to_xdm
        self._settings = settings
        self._sink: ParquetSink | None = None

    @property
    def rows(self) -> int:
        return self._sink.rows if self._sink is not None else 0

    def write(self, batch: pa.RecordBatch) -> None:
        if self._to_xdm is None or not batch.num_rows:
            return
        mapped = self._to_xdm(batch, self._settings)
        if self._sink is None:
            # XDM is read whole (checks, publication): no min/max statistics.
            self._sink = ParquetSink(self.path, mapped.schema, statistics=False)
        self._sink.write(mapped)

    def __enter__(self) -> "XdmWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sink is not None:
            self._sink.close()


def finish_xdm(
    flow: CampaignExportDescription,
    parts: Sequence[Path],
    out: Path,
    to_xdm: XdmMapper,
    settings: PipelineSettings,
) -> XdmOutput:
    """The XDM parts of a partition's files as one Parquet file at `out`."""
    if parts:
        schema = pq.read_schema(parts[0])
        rows = concat_parquet(parts, out, schema)
        return XdmOutput(rows, schema, rows_by_channel(out, schema))
    # No typed rows: still an empty, well-typed dataset for the checks and the publication.
    schema = to_xdm(empty_batch(flow.fmt.typed_schema), settings).schema
    with ParquetSink(out, schema, statistics=False):
        pass
    return XdmOutput(0, schema, {} if _has_channel(schema) else None)


def _has_channel(schema: pa.Schema) -> bool:
    fields: pa.Schema | pa.StructType = schema
    for name in CHANNEL_PATH:
        index = fields.get_field_index(name)
        if index < 0:
            return False
        field_type = fields.field(index).type
        if name != CHANNEL_PATH[-1]:
            if not pa.types.is_struct(field_type):
                return False
            fields = field_type
    return True


def rows_by_channel(path: Path, schema: pa.Schema) -> dict[str, int] | None:
    """Records per `_experience.campaign.channel` value of an XDM Parquet file (None when the
    records have no channel); only that one column is read."""
    if not _has_channel(schema):
        return None
    # Counted a batch at a time: the whole column of a 5 M-record partition held ~270 MiB.
    counts: Counter[str | None] = Counter()
    for batch in parquet_batches(path, columns=[".".join(CHANNEL_PATH)]):
        # struct_field makes a record whose parent struct is null a null channel.
        channel = pc.struct_field(batch.column(0), list(CHANNEL_PATH[1:]))
        for entry in pc.value_counts(channel).to_pylist():
            counts[entry["values"]] += int(entry["counts"])
    return {str(value): counts[value] for value in sorted(counts, key=str)}


def map_partition(
    flow: CampaignExportDescription,
    warehouse: Warehouse,
    settings: PipelineSettings,
    pk: str,
    to_xdm: XdmMapper,
) -> XdmOutput:
    """The XDM partition mapped from the stored typed one (the XDM asset run alone)."""
    with tempfile.TemporaryDirectory(prefix="rtcdp-xdm-") as tmp:
        local = Path(tmp) / "data.parquet"
        with XdmWriter(local, to_xdm, settings) as writer:
            for batch in warehouse.iter_batches(flow.dataset, pk):
                writer.write(batch)
        out = finish_xdm(flow, [local] if writer.rows else [], local, to_xdm, settings)
        warehouse.put_file(flow.xdm_dataset, pk, "data.parquet", local)
    return out


def concat_parquet(parts: Sequence[Path], out: Path, schema: pa.Schema) -> int:
    if len(parts) == 1 and pq.read_schema(parts[0]).equals(schema):
        # One source file, the common case: its Parquet is already the partition's.
        parts[0].replace(out)
        return pq.ParquetFile(out).metadata.num_rows
    with ParquetSink(out, schema) as sink:
        for part in parts:
            for batch in parquet_batches(part):
                sink.write(batch)
    return sink.rows
