"""The warehouse: typed and XDM datasets as Parquet, one folder per asset partition.

Layout: `<dataset>/<partition key>/{data.parquet, rejects.parquet, manifest.json}`. The manifest
is written last and names what belongs to the partition, so it is the commit point: a re-run
replaces every file atomically and then the manifest. The warehouse sits on any `DropZone`
(a local folder by default, an Azure Blob container in production).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import ConfigurableResource

from resources.drop_zones import DropZone, Entry, join

# Writer settings measured in performance-notes.md: zstd, dictionaries only where they pay.
PARQUET_OPTIONS: dict[str, object] = {"compression": "zstd", "use_dictionary": True}


def partition_folder(dataset: str, partition_key: str) -> str:
    return join(dataset, partition_key)


class Warehouse(ConfigurableResource):
    """Parquet datasets on a drop zone."""

    zone: DropZone

    def path(self, dataset: str, partition_key: str, name: str) -> str:
        return join(partition_folder(dataset, partition_key), name)

    def put_file(self, dataset: str, partition_key: str, name: str, local: Path) -> Entry:
        return self.zone.write_atomic(self.path(dataset, partition_key, name), local)

    def put_json(self, dataset: str, partition_key: str, name: str, payload: object) -> Entry:
        data = json.dumps(payload, indent=2, sort_keys=True, default=str).encode()
        return self.zone.write_bytes(self.path(dataset, partition_key, name), data)

    def get_json(self, dataset: str, partition_key: str, name: str) -> dict | None:
        path = self.path(dataset, partition_key, name)
        if self.zone.stat(path) is None:
            return None
        return json.loads(self.zone.read_bytes(path))

    @contextmanager
    def local_copy(self, dataset: str, partition_key: str, name: str) -> Iterator[Path | None]:
        """Parquet needs random access, so remote files are read from a local copy."""
        path = self.path(dataset, partition_key, name)
        if self.zone.stat(path) is None:
            yield None
            return
        with tempfile.TemporaryDirectory(prefix="rtcdp-wh-") as tmp:
            local = Path(tmp) / name
            with self.zone.open_read(path) as src, local.open("wb") as dst:
                while chunk := src.read(4 << 20):
                    dst.write(chunk)
            yield local

    def iter_batches(
        self, dataset: str, partition_key: str, name: str = "data.parquet", batch_size: int = 65536
    ) -> Iterator[pa.RecordBatch]:
        with self.local_copy(dataset, partition_key, name) as local:
            if local is None:
                return
            yield from pq.ParquetFile(local).iter_batches(batch_size=batch_size)

    def row_count(self, dataset: str, partition_key: str, name: str = "data.parquet") -> int | None:
        with self.local_copy(dataset, partition_key, name) as local:
            return None if local is None else pq.ParquetFile(local).metadata.num_rows

    def read_table(self, dataset: str, partition_key: str, name: str = "data.parquet") -> pa.Table:
        with self.local_copy(dataset, partition_key, name) as local:
            if local is None:
                raise FileNotFoundError(self.path(dataset, partition_key, name))
            return pq.read_table(local)


class ParquetSink:
    """Streams batches into a local Parquet file that is published atomically afterwards."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self._writer = pq.ParquetWriter(path, schema, **PARQUET_OPTIONS)  # type: ignore[arg-type]

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_rows:
            table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
            self._writer.write_table(table.cast(self.schema))
            self.rows += batch.num_rows

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> ParquetSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
