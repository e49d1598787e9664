"""The XDM checks computed over columns give the verdicts the per-record computation gave.

`reference_evaluate_xdm` is `evaluate_xdm` as it was before the columnar tallies (every record
cleaned, serialised and counted in Python, `_id`s in a set). Both run on the same partitions:
the real pipeline's XDM of every Campaign dataset, and broadLog partitions made invalid (records
over the size limit, more than 20 identities, `_id`s repeated across batches, null `_id`s),
read in several batches. Passed, description and metadata must be identical.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from dagster import AssetCheckResult, AssetKey, MetadataValue

from asset_checks.campaign_to_aep.export_checks import (
    MAX_IDENTITIES_PER_RECORD,
    evaluate_xdm,
    xdm_check_names,
)
from asset_checks.campaign_to_aep.xdm_tallies import DuplicateCounter, string_hashes
from asset_checks.check_descriptions import count, of, plural
from resources import LocalDropZone, PipelineSettings, Warehouse
from rtcdp_assets.shared import xdm
from tests.campaign_to_aep.xdm_partitions import FLOWS, PK, ingest_generated


# --- the per-record reference (evaluate_xdm before issue 20) ---------------------------------
def _identity_counts(records: list[dict[str, Any]]) -> list[int]:
    return [sum(len(items) for items in (r.get("identityMap") or {}).values()) for r in records]


def reference_evaluate_xdm(flow, warehouse, settings, pk) -> list[AssetCheckResult]:
    key = AssetKey(flow.xdm_dataset)
    schema = flow.xdm_schema()
    is_event = flow.record_kind == "event"
    limit = settings.max_event_bytes if is_event else settings.max_profile_bytes
    now = datetime.now(UTC) + timedelta(seconds=settings.future_tolerance_seconds)
    checked = invalid = oversize = future = too_many_ids = duplicates = largest = 0
    most_ids = 0
    examples: list[str] = []
    kinds: Counter[str] = Counter()
    ids_seen: set[str] = set()
    for batch in warehouse.iter_batches(flow.xdm_dataset, pk):
        records = xdm.to_records(batch)
        report = schema.validate_many(records, max_examples=20)
        invalid += report.invalid
        kinds.update(report.error_counts)
        examples.extend(f"record {checked + i}: {m}" for i, m in report.examples)
        if "_id" in batch.schema.names:
            for v in batch.column("_id").to_pylist():
                duplicates += v in ids_seen
                ids_seen.add(v)
        if is_event and "timestamp" in batch.schema.names:
            ts = batch.column("timestamp")
            future += pc.sum(pc.greater(ts, pa.scalar(now, ts.type)).cast(pa.int64())).as_py() or 0
        for r, n_ids in zip(records, _identity_counts(records), strict=True):
            size = len(xdm.dumps(r).encode())
            largest = max(largest, size)
            oversize += size > limit
            most_ids = max(most_ids, n_ids)
            too_many_ids += n_ids > MAX_IDENTITIES_PER_RECORD
        checked += batch.num_rows
    top_error = f" (most often: {kinds.most_common(1)[0][0]})" if kinds else ""
    descriptions = {
        "xdm_conformance": f"{of(invalid, checked, 'records')} fail XDM validation{top_error}",
        "id_unique": f"{plural(duplicates, 'duplicate _id')} among {plural(checked, 'record')}",
        "no_future_timestamp": f"{of(future, checked, 'events')} have a timestamp in the future",
        "record_size": (
            f"{of(oversize, checked, 'records')} over {count(limit)} bytes "
            f"(largest {count(largest)} bytes)"
        ),
        "identity_count": (
            f"{of(too_many_ids, checked, 'records')} carry more than "
            f"{MAX_IDENTITIES_PER_RECORD} identities (most in one record: {most_ids})"
        ),
    }
    results = {
        "xdm_conformance": (
            invalid == 0,
            {
                "records_checked": checked,
                "records_invalid": invalid,
                "errors_by_kind": MetadataValue.json(dict(kinds.most_common(50))),
                "examples": MetadataValue.json(examples[:20]),
            },
        ),
        "id_unique": (duplicates == 0, {"records_checked": checked, "duplicate_ids": duplicates}),
        "no_future_timestamp": (
            future == 0,
            {"records_checked": checked, "future_timestamps": future},
        ),
        "record_size": (
            oversize == 0,
            {
                "records_checked": checked,
                "records_over_limit": oversize,
                "limit_bytes": limit,
                "largest_record_bytes": largest,
            },
        ),
        "identity_count": (
            too_many_ids == 0,
            {
                "records_checked": checked,
                "records_over_limit": too_many_ids,
                "limit": MAX_IDENTITIES_PER_RECORD,
                "most_identities_in_a_record": most_ids,
            },
        ),
    }
    return [
        AssetCheckResult(
            asset_key=key, check_name=name, passed=passed, description=descriptions[name],
            metadata=meta,
        )
        for name in xdm_check_names(flow)
        for passed, meta in [results[name]]
    ]  # fmt: skip


# --- helpers ---------------------------------------------------------------------------------
class SmallBatchWarehouse(Warehouse):
    """Reads partitions in batches of 400 rows, so duplicates span batches."""

    def iter_batches(
        self,
        dataset: str,
        partition_key: str,
        name: str = "data.parquet",
        batch_size: int = 400,
        *,
        columns: Sequence[str] | None = None,
        prefetch: bool = False,
    ) -> Iterator[pa.RecordBatch]:
        yield from super().iter_batches(
            dataset, partition_key, name, batch_size=400, columns=columns, prefetch=prefetch
        )


def verdicts(results: list[AssetCheckResult]) -> list[tuple[Any, ...]]:
    return [(r.check_name, r.passed, r.description, r.metadata) for r in results]


def assert_same_verdicts(flow, warehouse: Warehouse) -> list[AssetCheckResult]:
    settings = PipelineSettings()
    new = evaluate_xdm(flow, warehouse, settings, PK)
    assert verdicts(new) == verdicts(reference_evaluate_xdm(flow, warehouse, settings, PK))
    return new


def small_batch_partition(tmp_path: Path, dataset: str) -> SmallBatchWarehouse:
    warehouse = SmallBatchWarehouse(zone=LocalDropZone(root=str(tmp_path / "warehouse")))
    return ingest_generated(tmp_path, dataset, warehouse=warehouse)  # type: ignore[return-value]


def store(warehouse: Warehouse, tmp_path: Path, dataset: str, table: pa.Table) -> None:
    local = tmp_path / f"{dataset}-edited.parquet"
    pq.write_table(table, local)
    warehouse.put_file(dataset, PK, "data.parquet", local)


def replace_rows(table: pa.Table, column: str, edits: dict[int, Any]) -> pa.Table:
    values = table.column(column).to_pylist()
    for row, value in edits.items():
        values[row] = value
    index = table.schema.get_field_index(column)
    return table.set_column(index, column, pa.array(values, table.schema.field(column).type))


# --- tests -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset", sorted(FLOWS))
def test_valid_partitions_of_every_dataset_give_the_same_verdicts(tmp_path, dataset):
    flow = FLOWS[dataset]
    results = assert_same_verdicts(flow, small_batch_partition(tmp_path, dataset))
    by_name = {r.check_name: r for r in results}
    assert by_name["id_unique"].passed and by_name["record_size"].passed
    assert by_name["identity_count"].passed


def test_invalid_broadlog_partition_gives_the_same_verdicts(tmp_path):
    flow = FLOWS["broadlog"]
    warehouse = small_batch_partition(tmp_path, "broadlog")
    table = warehouse.read_table(flow.xdm_dataset, PK)
    assert table.num_rows > 2000
    ids = table.column("_id").to_pylist()
    # Repeated across batches (row 5 again at 900 and 1700), within a batch, and null ids.
    id_edits = {900: ids[5], 1700: ids[5], 12: ids[11], 30: None, 1500: None, 2500: None}
    table = replace_rows(table, "_id", id_edits)
    # Oversize records: escapes and multi-byte characters count, as in the published JSON.
    long_text = 'é"\n\\ 🎉' * 1200
    table = replace_rows(table, "eventType", {3: long_text, 2001: long_text[:2000], 7: ""})
    item = {"id": "x@example.com", "authenticatedState": "ambiguous", "primary": False}
    identity = table.column("identityMap").to_pylist()
    identity[40] = {**identity[40], "Email": [item] * 21}
    identity[41] = {"Email": [item] * 20, "Phone": []}
    identity[42] = {"Email": [None] * 25, "Phone": None}
    identity[43] = None
    table = replace_rows(table, "identityMap", dict(enumerate(identity)))
    store(warehouse, tmp_path, flow.xdm_dataset, table)

    by_name = {r.check_name: r for r in assert_same_verdicts(flow, warehouse)}
    assert by_name["id_unique"].metadata["duplicate_ids"].value == 5
    assert by_name["record_size"].metadata["records_over_limit"].value == 1
    assert by_name["identity_count"].metadata["records_over_limit"].value == 2
    assert by_name["identity_count"].metadata["most_identities_in_a_record"].value == 25
    assert not by_name["xdm_conformance"].passed


def test_a_profile_partition_over_the_profile_limit_gives_the_same_verdicts(tmp_path):
    flow = FLOWS["profiles"]
    warehouse = small_batch_partition(tmp_path, "profiles")
    table = warehouse.read_table(flow.xdm_dataset, PK)
    table = replace_rows(table, "_id", {1: None, 2: None, 800: table.column("_id")[1].as_py()})
    store(warehouse, tmp_path, flow.xdm_dataset, table)
    assert_same_verdicts(flow, warehouse)


def test_duplicates_count_as_a_set_does_and_hash_collisions_are_told_apart(monkeypatch):
    batches = [
        pa.array(["a", "b", None, "c"]),
        pa.array(["b", None, "", "é", "a"]),
        pa.array([], pa.string()),
        pa.array(["", "d", "d", None]),
    ]
    seen: set[str | None] = set()
    expected = 0
    for batch in batches:
        for value in batch.to_pylist():
            expected += value in seen
            seen.add(value)
    counter = DuplicateCounter()
    for batch in batches:
        counter.add(batch)
    assert counter.duplicates(lambda: batches) == expected == 6

    # Every string hashing alike: only the comparison by value tells them apart.
    monkeypatch.setattr(
        "asset_checks.campaign_to_aep.xdm_tallies.string_hashes",
        lambda values: __import__("numpy").zeros(len(pc.drop_null(values)), "uint64"),
    )
    colliding = DuplicateCounter()
    for batch in batches:
        colliding.add(batch)
    assert colliding.duplicates(lambda: batches) == expected


def test_string_hashes_differ_for_distinct_ids_and_agree_for_equal_ones():
    ids = pa.array([f"campaign-broadlog-{i}-1-20261123" for i in range(200_000)] + ["", "a"])
    hashes = string_hashes(ids)
    assert len(set(hashes.tolist())) == len(ids)
    again = string_hashes(pa.array(ids.to_pylist()[100:150]).slice(10))
    assert again.tolist() == hashes[110:150].tolist()


def test_string_hashes_over_word_boundaries_zero_bytes_and_large_strings():
    """Hashes go 8 bytes at a time: strings that differ only past a word boundary, by a
    trailing zero byte or by length, and non-ASCII text, still hash apart; the same strings
    hash alike whatever the array's type, offset or neighbours."""
    tricky = ["", "\x00", "\x00\x00", "a", "a\x00", "abcdefgh", "abcdefgh\x00", "abcdefghi"]
    tricky += ["abcdefgi", "é", "é\x00", "🙂" * 5, "x" * 4000, "x" * 4001, "x" * 3999 + "y"]
    tricky += [f"id-{i:06d}-" + "z" * (i % 23) for i in range(5000)]
    hashes = string_hashes(pa.array(tricky))
    assert len(set(hashes.tolist())) == len(tricky)
    large = string_hashes(pa.array([None, *tricky, None], pa.large_string()).slice(1))
    assert large.tolist() == hashes.tolist()
    one_by_one = [int(string_hashes(pa.array(["pad" * 9, t]).slice(1))[0]) for t in tricky[:40]]
    assert one_by_one == hashes[:40].tolist()


def test_no_check_builds_records_for_a_valid_partition(tmp_path, monkeypatch):
    """On a valid partition no check turns a batch into records: conformance screens the
    columns and would build records only for the rows its screen flags (none here)."""
    calls: list[int] = []
    real = xdm.to_records
    monkeypatch.setattr(xdm, "to_records", lambda b: calls.append(b.num_rows) or real(b))
    warehouse = small_batch_partition(tmp_path, "broadlog")
    results = evaluate_xdm(FLOWS["broadlog"], warehouse, PipelineSettings(), PK)
    batches = sum(1 for _ in warehouse.iter_batches(FLOWS["broadlog"].xdm_dataset, PK))
    assert batches > 1
    assert all(r.passed for r in results)
    assert calls == []
