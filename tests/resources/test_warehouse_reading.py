"""Reading the warehouse: `read_ahead` and `iter_batches(prefetch=True)` give the same items in
order, raise errors where the caller reads and leave no thread behind; `parquet_source` reads a
local zone's file in place (a re-run's replacement leaves the reader the old file whole) and
copies from zones without local paths."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources import LocalDropZone, Warehouse
from resources.warehouse import read_ahead


def _threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "read-ahead")


def test_items_arrive_in_order_and_the_thread_ends() -> None:
    assert list(read_ahead(iter(range(1000)))) == list(range(1000))
    assert list(read_ahead(iter([]))) == []
    assert _threads() == 0


def test_an_error_of_the_source_is_raised_in_the_caller_after_the_items_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("disk gone")

    seen: list[int] = []
    with pytest.raises(OSError, match="disk gone"):
        for item in read_ahead(failing()):
            seen.append(item)
    assert seen == [1, 2]
    assert _threads() == 0


def test_a_caller_stopping_early_stops_the_producer() -> None:
    produced: list[int] = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    items = read_ahead(endless())
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert _threads() == 0
    assert len(produced) <= 5  # the caller's three, one queued, one being made


def test_prefetched_batches_are_the_files_batches(tmp_path: Path) -> None:
    warehouse = Warehouse(zone=LocalDropZone(root=str(tmp_path)))
    table = pa.table({"n": range(10_000), "s": [str(i) for i in range(10_000)]})
    local = tmp_path / "data.parquet"
    pq.write_table(table, local, row_group_size=3000)
    warehouse.put_file("ds", "pk", "data.parquet", local)
    plain = list(warehouse.iter_batches("ds", "pk", batch_size=1000))
    ahead = list(warehouse.iter_batches("ds", "pk", batch_size=1000, prefetch=True))
    assert [b.num_rows for b in ahead] == [b.num_rows for b in plain] and len(plain) > 3
    assert pa.Table.from_batches(ahead).equals(table)
    batches = warehouse.iter_batches("ds", "pk", batch_size=1000, prefetch=True)
    assert next(batches).equals(plain[0])
    batches.close()  # stops the reader before the local copy goes
    assert _threads() == 0
    assert list(warehouse.iter_batches("ds", "missing", prefetch=True)) == []


class RemoteLikeZone(LocalDropZone):
    """A zone that cannot hand out local paths: the warehouse copies its files."""

    def local_path(self, path: str) -> Path | None:
        return None


def test_a_local_file_is_read_in_place_and_a_replacement_leaves_the_reader_whole(
    tmp_path: Path,
) -> None:
    warehouse = Warehouse(zone=LocalDropZone(root=str(tmp_path / "wh")))
    old, new = pa.table({"n": range(5000)}), pa.table({"n": range(7)})
    for name, table in (("old", old), ("new", new)):
        pq.write_table(table, tmp_path / f"{name}.parquet", row_group_size=1000)
    warehouse.put_file("ds", "pk", "data.parquet", tmp_path / "old.parquet")
    with warehouse.parquet_source("ds", "pk") as source:
        assert isinstance(source, pa.NativeFile)  # no copy
        reader = pq.ParquetFile(source)
        first = next(reader.iter_batches(batch_size=1000))
        warehouse.put_file("ds", "pk", "data.parquet", tmp_path / "new.parquet")  # a re-run
        rest = list(reader.iter_batches(batch_size=1000))
    assert pa.Table.from_batches([first]).equals(old.slice(0, 1000))
    assert pa.Table.from_batches(rest).equals(old)
    assert warehouse.read_table("ds", "pk").equals(new)
    assert warehouse.row_count("ds", "pk") == 7
    with warehouse.parquet_source("ds", "missing") as source:
        assert source is None


def test_a_zone_without_local_paths_is_read_from_a_copy(tmp_path: Path) -> None:
    warehouse = Warehouse(zone=RemoteLikeZone(root=str(tmp_path / "wh")))
    table = pa.table({"s": ["a", None, "c"]})
    pq.write_table(table, tmp_path / "t.parquet")
    warehouse.put_file("ds", "pk", "data.parquet", tmp_path / "t.parquet")
    with warehouse.parquet_source("ds", "pk") as source:
        assert isinstance(source, Path) and not str(source).startswith(str(tmp_path / "wh"))
        assert pq.read_table(source).equals(table)
    assert pa.Table.from_batches(list(warehouse.iter_batches("ds", "pk", prefetch=True))).equals(
        table
    )
    assert warehouse.row_count("ds", "missing") is None
