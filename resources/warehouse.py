"""The warehouse: typed and XDM datasets as Parquet, one folder per asset partition.

Layout: `<dataset>/<partition key>/{data.parquet, rejects.parquet, manifest.json}`. The manifest
is written last and names what belongs to the partition, so it is the commit point: a re-run
replaces every file atomically and then the manifest. The warehouse sits on any `DropZone`
(a local folder by default, an Azure Blob container in production).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from queue import Empty, Full, Queue
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import ConfigurableResource

from resources.drop_zones import DropZone, Entry, join

# Writer settings measured in bench/README.md: zstd, dictionaries only
# on columns with few distinct values (decided per column by `dictionary_columns`).
PARQUET_OPTIONS: dict[str, object] = {"compression": "zstd"}
# A column gets a dictionary when its first batch has at most this share of distinct values:
# on ids, addresses and other unique text the dictionary is built, overflows and is thrown
# away, which cost 25-40 % of the write time and made the files larger.
DICTIONARY_MAX_DISTINCT_SHARE = 1 / 8
# ... judged on this many rows: counting distinct values over a whole 64 K-row group cost
# 0.16 s for the XDM columns, once per file; 16 K rows gave the same choice for 10 times less.
DICTIONARY_SAMPLE_ROWS = 16 * 1024
# Rows buffered per row group: one group per 4 MiB CSV block (~23,000 rows) encoded 10-15 %
# slower than groups five times that size; memory stays bounded by this, not by the file.
ROW_GROUP_ROWS = 64 * 1024

T = TypeVar("T")


def partition_folder(dataset: str, partition_key: str) -> str:
    return join(dataset, partition_key)


def parquet_batches(
    source: Path | pa.NativeFile, columns: Sequence[str] | None = None, batch_size: int = 65536
) -> Iterator[pa.RecordBatch]:
    """A Parquet file's rows (only `columns` when given) in batches of at most `batch_size`,
    one row group read at a time.

    `ParquetFile.iter_batches` (pyarrow 26) keeps allocations alive across the batches it
    yields: over a 5 M-row XDM partition the Arrow pool grew by ~1.6 MiB a batch, ~150 MiB in
    all. Reading one row group at a time frees each before the next, at the same speed.
    """
    reader = pq.ParquetFile(source)
    selected = list(columns) if columns is not None else None
    for index in range(reader.metadata.num_row_groups):
        group = reader.read_row_group(index, columns=selected)
        yield from group.to_batches(max_chunksize=batch_size)


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

    @contextmanager
    def parquet_source(
        self, dataset: str, partition_key: str, name: str = "data.parquet"
    ) -> Iterator[pa.NativeFile | Path | None]:
        """What pyarrow.parquet reads the file from: a local zone's file opened in place (no
        copy; opened once, so a re-run replacing it, a rename, leaves this reader the old file
        whole; not memory-mapped, which would count the file in the reader's RSS), else
        `local_copy`."""
        in_place = self.zone.local_path(self.path(dataset, partition_key, name))
        if in_place is None:
            with self.local_copy(dataset, partition_key, name) as local:
                yield local
            return
        try:
            opened = pa.OSFile(str(in_place))
        except FileNotFoundError:  # removed since: as for a missing file
            yield None
            return
        with opened:
            yield opened

    def iter_batches(
        self,
        dataset: str,
        partition_key: str,
        name: str = "data.parquet",
        batch_size: int = 65536,
        *,
        columns: Sequence[str] | None = None,
        prefetch: bool = False,
    ) -> Iterator[pa.RecordBatch]:
        """The file's batches in order (only `columns`, dotted paths for nested fields, when
        given), one row group read at a time (`parquet_batches`). `prefetch`: the next batch is
        decoded in one background thread (Arrow releases the GIL) while the caller works on
        this one, and what Arrow freed goes back to the system after each batch: the peak
        stays near a few batches' working set (threads decoding in parallel each kept their
        own freed memory)."""
        with self.parquet_source(dataset, partition_key, name) as source:
            if source is None:
                return
            if not prefetch:
                yield from parquet_batches(source, columns, batch_size)
                return
            # pre_buffer would hold every row group's compressed bytes at once (190 MiB of a
            # 5 M-row XDM file); read one column chunk at a time instead, which costs no time.
            reader = pq.ParquetFile(source, pre_buffer=False)
            batches = reader.iter_batches(batch_size=batch_size, columns=columns, use_threads=False)
            for batch in read_ahead(batches):
                yield batch
                del batch
                pa.default_memory_pool().release_unused()

    def row_count(self, dataset: str, partition_key: str, name: str = "data.parquet") -> int | None:
        with self.parquet_source(dataset, partition_key, name) as source:
            return None if source is None else pq.ParquetFile(source).metadata.num_rows

    def read_table(self, dataset: str, partition_key: str, name: str = "data.parquet") -> pa.Table:
        with self.parquet_source(dataset, partition_key, name) as source:
            if source is None:
                raise FileNotFoundError(self.path(dataset, partition_key, name))
            return pq.read_table(source)


class ParquetSink:
    """Streams batches into a local Parquet file that is published atomically afterwards.

    Encoding runs in a background thread (Arrow releases the GIL), so the caller validates and
    maps the next batch meanwhile; `write` hands over at most two row groups ahead, which
    bounds memory. An error in the writer surfaces in the next `write` or in `close`.
    """

    def __init__(
        self, path: Path, schema: pa.Schema, *, background: bool = True, statistics: bool = True
    ) -> None:
        self.path = path
        self.schema = schema
        # Min/max statistics let readers skip row groups; datasets only ever read whole (the
        # XDM ones) can skip them: 10-15 % of their encoding time.
        self._statistics = statistics
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._queue: Queue[pa.Table | None] | None = Queue(maxsize=1) if background else None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._closed = False

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        self._raise_error()
        if not batch.num_rows:
            return
        if batch.schema != self.schema:
            batch = batch.cast(self.schema)
        self._pending.extend(batch.to_batches() if isinstance(batch, pa.Table) else [batch])
        self._pending_rows += batch.num_rows
        self.rows += batch.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        self._pending, self._pending_rows = [], 0
        if self._queue is None:
            self._write(table)
            return
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._drain, name=f"parquet-{self.path.name}", daemon=True
            )
            self._thread.start()
        self._queue.put(table)
        self._raise_error()

    def _write(self, table: pa.Table) -> None:
        if self._writer is None:
            # Judging which columns get a dictionary counts the distinct values of every
            # column of the first row group: in the writer's thread, off the caller's.
            self._writer = _open_writer(self.path, self.schema, table, self._statistics)
        self._writer.write_table(table, row_group_size=table.num_rows)

    def _drain(self) -> None:
        assert self._queue is not None
        while (table := self._queue.get()) is not None:
            if self._error is None:  # after an error, keep taking tables so `write` never blocks
                try:
                    self._write(table)
                    del table
                    pa.default_memory_pool().release_unused()
                except BaseException as exc:  # re-raised in the caller's thread
                    self._error = exc

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._flush()
        finally:
            if self._thread is not None and self._queue is not None:
                self._queue.put(None)
                self._thread.join()
            if self._writer is None:  # nothing written: still a valid, empty file
                self._writer = pq.ParquetWriter(
                    self.path,
                    self.schema,
                    write_statistics=self._statistics,
                    **PARQUET_OPTIONS,  # type: ignore[arg-type]
                )
            self._writer.close()
        self._raise_error()

    def __enter__(self) -> ParquetSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DONE = object()


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """`items`, each produced in a background thread while the caller holds the previous
    one. The thread has stopped when this generator ends, however it ends (exhausted, closed
    early or failed), so whatever `items` reads may be released afterwards."""
    ready: Queue[object] = Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            ready.put(_DONE)
        except BaseException as exc:  # re-raised in the caller's thread
            ready.put(exc)

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(Empty):
                ready.get(timeout=0.1)
        thread.join()


def dictionary_columns(batch: pa.Table) -> list[str]:
    """Parquet column paths (`a.b.list.element.c`) worth a dictionary, judged on the first
    `DICTIONARY_SAMPLE_ROWS` rows of `batch`."""
    batch = batch.slice(0, DICTIONARY_SAMPLE_ROWS)
    limit = max(1, int(batch.num_rows * DICTIONARY_MAX_DISTINCT_SHARE))
    out: list[str] = []
    for name, column in zip(batch.column_names, batch.columns, strict=True):
        for path, values in _leaves(name, column.combine_chunks()):
            if pa.types.is_boolean(values.type):
                continue  # booleans are bit-packed, never dictionary-encoded
            if pc.count_distinct(values, mode="all").as_py() <= limit:
                out.append(path)
    return out


def _leaves(path: str, values: pa.Array) -> Iterator[tuple[str, pa.Array]]:
    kind = values.type
    if pa.types.is_struct(kind):
        for i, child in enumerate(kind):
            yield from _leaves(f"{path}.{child.name}", values.field(i))
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        yield from _leaves(f"{path}.list.element", values.flatten())
    elif not pa.types.is_nested(kind):
        yield path, values
    # maps and other nested kinds keep the writer's default


def _open_writer(
    path: Path, schema: pa.Schema, first: pa.Table, statistics: bool = True
) -> pq.ParquetWriter:
    return pq.ParquetWriter(
        path,
        schema,
        use_dictionary=dictionary_columns(first),  # type: ignore[arg-type]
        write_statistics=statistics,
        **PARQUET_OPTIONS,  # type: ignore[arg-type]
    )
