"""`read_ahead` and `Warehouse.iter_batches(prefetch=True)`: the same items in the same order,
errors raised where the caller reads, and no thread left behind however the caller stops."""

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
