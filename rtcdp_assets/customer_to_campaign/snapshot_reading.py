"""Reading a snapshot: the settled files of a folder, validated into typed rows and rejects.

Parquet files are read as text through the same validation as CSV; the dataset's extra rules
and the one-row-per-external_id rule quarantine what ingest.py lets through.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from resources.drop_zones import DropZone, Entry
from resources.settings import PipelineSettings
from rtcdp_assets.customer_to_campaign.customer_datasets import SOURCE_SUFFIXES, CustomerDataset
from rtcdp_assets.shared.file_completion import CompletionRule
from rtcdp_assets.shared.ingest import (
    LINE_NUMBER,
    REJECT_SCHEMA,
    SOURCE_FILE,
    FileResult,
    StreamLimits,
    UnreadableFile,
    ingest_file,
)


@dataclass
class Snapshot:
    dataset: CustomerDataset
    files: list[Entry]
    digests: dict[str, str] = field(default_factory=dict)  # file name -> content SHA-256

    @property
    def snapshot_id(self) -> str:
        text = "\n".join(f"{n}@{d}" for n, d in sorted(self.digests.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Processed:
    good: pa.Table  # typed columns + _source_file, _line_number
    rejects: pa.Table  # REJECT_SCHEMA
    files: list[dict[str, Any]]  # per file: FileResult.as_dict() (+ unreadable reason)
    unreadable: dict[str, str]  # file name -> reason


def settled_files(
    zone: DropZone, folder: str, rule: CompletionRule, now: float
) -> tuple[list[Entry], list[str]]:
    """Source files complete by the zone's rule (shared/file_completion.py), and notes on the
    ones left for later. This zone keeps no ledger, so under `stability` a version counts as
    first seen at its own modification time."""
    chosen, notes = [], []
    entries = zone.list(folder)
    by_path = {e.path: e for e in entries}
    moment = datetime.fromtimestamp(now, tz=UTC)
    for entry in entries:
        if rule.is_sidecar(entry.name):
            continue
        if not entry.name.lower().endswith(SOURCE_SUFFIXES):
            notes.append(f"{entry.name}: not a CSV or Parquet file, ignored")
            continue
        waiting = rule.wait_reason(entry, by_path, entry.modified, moment)
        if waiting or entry.size == 0:
            notes.append(f"{entry.name}: {waiting or 'empty'}, left for the next run")
        else:
            chosen.append(entry)
    return chosen, notes


def _local_copy(zone: DropZone, entry: Entry, tmp: Path) -> tuple[Path, str]:
    local = tmp / entry.name
    digest = hashlib.sha256()
    with zone.open_read(entry.path) as src, local.open("wb") as dst:
        while chunk := src.read(4 << 20):
            digest.update(chunk)
            dst.write(chunk)
    return local, digest.hexdigest()


def _parquet_as_csv(local: Path) -> Path:
    """Parquet → RFC 4180 CSV, so every value goes through the same text validation."""
    try:
        table = pq.read_table(local)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UnreadableFile("corrupt_parquet", str(exc).splitlines()[0][:300]) from exc
    if table.num_columns == 0:
        raise UnreadableFile("empty_file", "the file holds no columns")
    as_text = pa.table({n: pc.cast(table.column(n), pa.string()) for n in table.column_names})
    out = local.with_name(local.name + ".as.csv")
    pacsv.write_csv(as_text, out)
    return out


def _rule_rejects(
    good: pa.Table, dataset: CustomerDataset
) -> tuple[pa.Table, list[tuple[pa.Table, str, str]]]:
    """Apply the dataset's extra rules; returns kept rows and (rows, reason, column) rejected."""
    rejected = []
    for column, reason, valid in dataset.rules:
        values = good.column(column)
        bad = pc.and_(pc.is_valid(values), pc.invert(pc.fill_null(valid(values), False)))
        if pc.any(bad).as_py():
            rejected.append((good.filter(bad), reason, column))
            good = good.filter(pc.invert(bad))
    return good, rejected


def _dedupe(good: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Last file by name, last line wins per external_id; returns (kept, duplicates)."""
    order = pc.sort_indices(
        good,
        sort_keys=[
            ("external_id", "ascending"),
            (SOURCE_FILE, "descending"),
            (LINE_NUMBER, "descending"),
        ],
    )
    ordered = good.take(order)
    n = ordered.num_rows
    if n == 0:
        return ordered, ordered
    keys = ordered.column("external_id").combine_chunks()
    # Sorted by key, the first row of each run of equal keys is the winner.
    keep = pa.concat_arrays([pa.array([True]), pc.not_equal(keys.slice(1), keys.slice(0, n - 1))])
    return ordered.filter(keep), ordered.filter(pc.invert(keep))


def _as_rejects(rows: pa.Table, reason: str, column: str | None) -> pa.Table:
    payload = rows.drop_columns([SOURCE_FILE, LINE_NUMBER]).to_pylist()
    return pa.table(
        {
            "source_file": rows.column(SOURCE_FILE),
            "line_number": rows.column(LINE_NUMBER),
            "reason": pa.array([reason] * rows.num_rows, pa.string()),
            "column": pa.array([column] * rows.num_rows, pa.string()),
            "raw": pa.array(
                [json.dumps(r, default=str, sort_keys=True) for r in payload], pa.string()
            ),
        },
        schema=REJECT_SCHEMA,
    )


def process_files(
    zone: DropZone, snapshot: Snapshot, settings: PipelineSettings, tmp: Path
) -> Processed:
    dataset = snapshot.dataset
    fmt = dataset.fmt
    goods, rejects, files, unreadable = [], [], [], {}
    for entry in sorted(snapshot.files, key=lambda e: e.name):
        local, digest = _local_copy(zone, entry, tmp)
        snapshot.digests[entry.name] = digest
        result = FileResult(source_file=entry.name, layout="", bytes_in=entry.size)
        try:
            path = _parquet_as_csv(local) if entry.name.lower().endswith(".parquet") else local
            name = entry.name if path is local else f"{entry.name}.csv"
            with path.open("rb") as fh:
                for part in ingest_file(
                    fh,
                    source_file=name,
                    fmt=fmt,
                    max_decompressed_bytes=settings.max_decompressed_bytes,
                    limits=StreamLimits.of(settings),
                    result=result,
                ):
                    goods.append(pa.Table.from_batches([part.good]))
                    rejects.append(pa.Table.from_batches([part.rejects]))
        except UnreadableFile as exc:
            unreadable[entry.name] = exc.reason
            files.append({"source_file": entry.name, "unreadable": exc.reason, "sha256": digest})
            continue
        files.append(result.as_dict() | {"source_file": entry.name, "sha256": digest})
    schema = fmt.typed_schema
    good = pa.concat_tables([g.cast(schema) for g in goods]) if goods else schema.empty_table()
    # The Parquet detour names rows `<file>.csv`; the quarantine names the customer's file.
    good = good.set_column(
        good.schema.get_field_index(SOURCE_FILE),
        SOURCE_FILE,
        pc.replace_substring_regex(good.column(SOURCE_FILE), r"\.parquet\.csv$", ".parquet"),
    )
    reject_tables = [r.cast(REJECT_SCHEMA) for r in rejects]
    for column in dataset.normalise_upper:
        idx = good.schema.get_field_index(column)
        good = good.set_column(idx, column, pc.utf8_upper(good.column(column)))
    good, rule_rejects = _rule_rejects(good, dataset)
    reject_tables += [_as_rejects(rows, reason, col) for rows, reason, col in rule_rejects]
    good, duplicates = _dedupe(good)
    reject_tables.append(_as_rejects(duplicates, "duplicate_key", "external_id"))
    all_rejects = pa.concat_tables(reject_tables) if reject_tables else REJECT_SCHEMA.empty_table()
    all_rejects = all_rejects.set_column(
        0,
        "source_file",
        pc.replace_substring_regex(all_rejects.column(0), r"\.parquet\.csv$", ".parquet"),
    )
    # A stable order, so the staged quarantine is the same bytes on a re-run.
    all_rejects = all_rejects.take(
        pc.sort_indices(
            all_rejects,
            sort_keys=[("source_file", "ascending"), ("line_number", "ascending")],
        )
    )
    return Processed(good=good, rejects=all_rejects, files=files, unreadable=unreadable)
