"""What the check wings share: the spec of a check on a 4-hour partition, and the per-file
recount of a stored partition against its manifest (`reconciliation`).
"""

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    PartitionsDefinition,
)

from asset_checks.check_descriptions import count, plural
from resources.warehouse import Warehouse
from rtcdp_assets.shared.partitions import four_hourly_partitions


def partition_check_spec(
    name: str,
    asset: AssetKey,
    description: str,
    *,
    blocking: bool,
    source: str,
    limit: str = "",
    partitions_def: PartitionsDefinition | None = four_hourly_partitions,
) -> AssetCheckSpec:
    """A check on one partition (a 4-hour window unless `partitions_def` says otherwise; None:
    not partitioned), with the guardrail catalog's source and limit."""
    return AssetCheckSpec(
        name=name,
        asset=asset,
        blocking=blocking,
        description=description,
        partitions_def=partitions_def,
        metadata={"guardrail/source": source, "guardrail/limit": limit},
    )


def reconcile(dataset: str, warehouse: Warehouse, pk: str) -> AssetCheckResult:
    """Counts from the manifest against what is actually stored, file by file."""
    key = AssetKey(dataset)
    manifest = warehouse.get_json(dataset, pk, "manifest.json")
    if manifest is None:
        return AssetCheckResult(
            asset_key=key,
            check_name="reconciliation",
            passed=False,
            description="The partition has no manifest: nothing to recount.",
            metadata={"error": "partition has no manifest"},
        )
    counted, mismatches = recount_files(warehouse, dataset, pk, manifest["files"], "source_file")
    quarantined = [
        f"{f['source_file']}: {f['reason']}"
        for f in manifest["files"]
        if f["status"] == "quarantined"
    ]
    rows_in = sum(f["rows_in"] or 0 for f in manifest["files"])
    rows_out, rejected = sum(counted["good"].values()), sum(counted["rejected"].values())
    return AssetCheckResult(
        asset_key=key,
        check_name="reconciliation",
        passed=not mismatches and not quarantined,
        severity=AssetCheckSeverity.ERROR,
        description=recount_description(rows_in, rows_out, rejected, mismatches, quarantined),
        metadata={
            "rows_in": rows_in,
            "rows_out": rows_out,
            "rows_rejected": rejected,
            "rejects_by_reason": MetadataValue.json(manifest["reasons"]),
            "files_quarantined": MetadataValue.json(quarantined),
            "mismatches": MetadataValue.json(mismatches),
        },
    )


def recount_description(
    rows_in: int, rows_out: int, rejected: int, mismatches: list[str], quarantined: list[str]
) -> str:
    """ "1,991 rows in = 1,989 stored + 2 rejected", and what does not add up."""
    line = f"{count(rows_in)} rows in = {count(rows_out)} stored + {count(rejected)} rejected"
    if rows_in != rows_out + rejected:
        line = line.replace(" = ", ", ", 1)
    if mismatches:
        line += f"; {plural(len(mismatches), 'file')} whose stored rows differ from its manifest"
    if quarantined:
        line += f"; {plural(len(quarantined), 'file')} quarantined whole"
    return line


def recount_files(
    warehouse: Warehouse,
    dataset: str,
    pk: str,
    files: list[dict[str, Any]],
    name_key: str,
) -> tuple[dict[str, Counter[str]], list[str]]:
    """Rows actually stored per source file (typed and rejected), and every processed file
    whose stored rows differ from the counts its manifest entry claims."""
    counted: dict[str, Counter[str]] = {"good": Counter(), "rejected": Counter()}
    for kind, name, col in (
        ("good", "data.parquet", "_source_file"),
        ("rejected", "rejects.parquet", "source_file"),
    ):
        with warehouse.parquet_source(dataset, pk, name) as source:
            if source is None:
                continue
            for value, n in stored_value_counts(source, col).items():
                counted[kind][value] = n
    mismatches = []
    for f in files:
        if f["status"] != "processed":
            continue
        good, bad = counted["good"][f[name_key]], counted["rejected"][f[name_key]]
        if f["rows_in"] != good + bad or f["rows_out"] != good or f["rows_rejected"] != bad:
            mismatches.append(f"{f[name_key]}: {f['rows_in']} in, {good} stored + {bad} rejected")
    return counted, mismatches


def stored_value_counts(source: pa.NativeFile | Path, column: str) -> dict[Any, int]:
    """Rows per value of one column of a Parquet file (None: the nulls). Text columns are read
    as dictionaries: a file name repeated on every row is counted, not copied a million times."""
    text = pa.types.is_string(pq.read_schema(source).field(column).type)
    table = pq.read_table(source, columns=[column], read_dictionary=[column] if text else None)
    return {i["values"]: i["counts"] for i in pc.value_counts(table.column(column)).to_pylist()}
