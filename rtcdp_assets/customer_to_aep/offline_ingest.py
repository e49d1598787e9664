"""One daily partition of an offline dataset: its files read, mapped, stored, then archived.

The same storage as the Campaign → AEP datasets, so the same checks read it:

* ``<dataset>/<day>/``: the accepted source rows (``_source_file``, ``_line_number``,
  ``_record_id`` and the mapped columns as text), ``rejects.parquet`` (the quarantined rows,
  ``REJECT_SCHEMA``: reason and column, never a value in the reason) and ``manifest.json``
  (per file: rows in, out, rejected; written last, the commit point), which is what
  ``asset_checks/partition_reconciliation.py`` ``reconcile`` recounts;
* ``<dataset>_xdm/<day>/data.parquet``: the XDM records, nested as the schema (date-times as
  timestamps, ``identityMap`` a struct of namespaces), which ``shared/xdm_parquet.py`` turns
  into AEP's XDM Parquet at publication.

Files move ``<folder>/`` → ``<folder>/archive/<day>/`` after the partition is stored (a re-run
reads them there, so it gives the same records), a file that cannot be read at all →
``<folder>/quarantine/<name>@<identity>`` with a ``.reason.json``; nothing is deleted.

Each move is recorded in the file ledger (zone ``customer_source``, dataset ``<dataset>``):
``processed`` in the day's archive, or ``quarantined`` with the reason. A version the run was
requested for that an earlier, failed attempt had already archived is settled here too: the
day is re-read from the archive, so its rows are in this partition.

A day with an unreadable file stays held on every run, not only the first: the manifest also
lists, as ``quarantined``, the day's versions an earlier run quarantined as unreadable (the
ledger's ``quarantined`` rows; the quarantine folder when there is no ledger), so the blocking
``reconciliation`` check fails again on a retry or a hand-launched re-run, which re-read the
archive where that file is not. Retries then end ``failed`` after
``failed_run_max_attempts`` (flagged by ``no_failed_versions``). How an operator resolves a held
day: upload a corrected file under the same name to ``<folder>/``; a version of that name
read by a later run (incoming, or archived after the quarantine) supersedes the unreadable one,
that run publishes the day with both files' rows, and the day's versions that had ended
``failed`` are settled ``processed``. The unreadable version stays in the quarantine folder.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from resources.drop_zones import DropZone, Entry, join
from resources.file_ledger import FileLedger, FileVersion
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.customer_to_aep.offline_files import SUFFIXES, partition_for, read_rows
from rtcdp_assets.customer_to_aep.offline_mapping import OfflineMapping
from rtcdp_assets.customer_to_aep.offline_records import OfflineResult, SourceRow, map_rows
from rtcdp_assets.shared.file_completion import CompletionRule
from rtcdp_assets.shared.ingest import REJECT_SCHEMA, UnreadableFile


@dataclass(frozen=True)
class OfflineDataset:
    """A mapping file made a dataset: names, folders and the landing paths."""

    mapping: OfflineMapping

    @property
    def dataset(self) -> str:
        return self.mapping.dataset

    def for_settings(self, settings: PipelineSettings) -> OfflineDataset:
        """The dataset with its mapping's namespace placeholders filled from the settings:
        ``{campaign}`` is the namespace the Campaign profiles are published with."""
        names = {"campaign": settings.campaign_identity_namespace}
        return OfflineDataset(self.mapping.with_namespaces(names))

    @property
    def xdm_dataset(self) -> str:
        return f"{self.dataset}_xdm"

    @property
    def published_name(self) -> str:
        return f"{self.dataset}_published"

    @property
    def folder(self) -> str:
        return self.mapping.folder

    def archive_folder(self, pk: str) -> str:
        return join(self.folder, "archive", pk)

    def quarantine_folder(self) -> str:
        return join(self.folder, "quarantine")

    def landing_paths(self, landing_folder: str, pk: str, extension: str) -> tuple[str, str]:
        compact = pk.replace("-", "")
        folder = join(landing_folder, self.dataset, compact)
        return join(folder, f"{self.dataset}_{compact}{extension}"), join(folder, "_manifest.json")

    def partition_of(self, name: str) -> str | None:
        return partition_for(name, self.mapping.file_prefix)


def partition_sources(
    ds: OfflineDataset, zone: DropZone, rule: CompletionRule, pk: str, now: datetime
) -> tuple[list[Entry], list[Entry], list[str]]:
    """The partition's files: complete ones in the folder, the archived ones, and notes on
    those left for later (still being written by the zone's completion rule)."""
    listing = zone.list(ds.folder)
    by_path = {e.path: e for e in listing}
    incoming, notes = [], []
    for entry in listing:
        if rule.is_sidecar(entry.name) or ds.partition_of(entry.name) != pk:
            continue
        waiting = rule.wait_reason(entry, by_path, entry.modified, now)
        if waiting:
            notes.append(f"{entry.name}: {waiting}, left for the next run")
        else:
            incoming.append(entry)
    archived = [
        e
        for e in zone.list(ds.archive_folder(pk))
        if e.name.lower().endswith(SUFFIXES) and e.name not in {i.name for i in incoming}
    ]
    return sorted(incoming), sorted(archived), notes


def ingest_offline_partition(
    ds: OfflineDataset,
    zone: DropZone,
    warehouse: Warehouse,
    rule: CompletionRule,
    pk: str,
    now: datetime | None = None,
    *,
    ledger: FileLedger | None = None,
    run_id: str = "",
    requested: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """Read, map and store one partition, then archive its files (recorded in `ledger`, with
    the (name, identity) versions the run was `requested` for); returns the manifest."""
    moment = now or datetime.now(UTC)
    incoming, archived, notes = partition_sources(ds, zone, rule, pk, moment)
    held = still_held(quarantined_versions(ds, zone, pk, ledger), incoming, archived)
    files: list[dict[str, Any]] = []
    rows: list[SourceRow] = []
    unreadable: list[tuple[Entry, UnreadableFile]] = []
    for entry in [*archived, *incoming]:
        try:
            file_rows = list(read_rows(entry.name, zone.read_bytes(entry.path)))
        except UnreadableFile as exc:
            unreadable.append((entry, exc))
            files.append(_file(entry.name, "quarantined", exc.reason))
            continue
        rows.extend(file_rows)
        files.append(_file(entry.name, "processed", None, len(file_rows)))
    for version in held:
        files.append({**_file(version.name, "quarantined", version.reason), "held": True})
        notes.append(
            f"{version.name}: quarantined as unreadable by an earlier run ({version.reason}); "
            f"the day is held until a corrected {version.name} is uploaded to {ds.folder}/"
        )
    result = map_rows(ds.mapping, rows, ds.mapping.timezone)
    accepted = _accepted_rows(ds.mapping, rows, result)
    for item in files:
        if item["status"] == "processed":
            name = item["source_file"]
            item["rows_rejected"] = sum(r["source_file"] == name for r in result.rejects)
            item["rows_out"] = item["rows_in"] - item["rows_rejected"]
    manifest = {
        "dataset": ds.dataset,
        "partition": pk,
        "files": files,
        "reasons": result.reasons,
        "rows_read": result.rows_read,
        "rows_mapped": result.rows_mapped,
        "rows_quarantined": len(result.rejects),
        "records": len(result.records),
        "notes": notes,
    }
    with tempfile.TemporaryDirectory(prefix="rtcdp-offline-") as tmp:
        _put_table(
            warehouse, ds.xdm_dataset, pk, "data.parquet", _xdm_table(ds, result.records), tmp
        )
        _put_table(warehouse, ds.dataset, pk, "data.parquet", accepted, tmp)
        rejects = pa.Table.from_pylist(result.rejects, schema=REJECT_SCHEMA)
        _put_table(warehouse, ds.dataset, pk, "rejects.parquet", rejects, tmp)
    warehouse.put_json(ds.xdm_dataset, pk, "manifest.json", {"records": len(result.records)})
    warehouse.put_json(ds.dataset, pk, "manifest.json", manifest)
    # Only now that the partition is stored do the files leave the incoming folder.
    for entry, exc in unreadable:
        _quarantine(ds, zone, entry, exc, rule)
    for entry in incoming:
        if all(entry.path != u.path for u, _ in unreadable):
            _archive(ds, zone, entry, pk, rule)
    if ledger is not None:
        outcome = _Outcome(ds, zone.describe(), pk, run_id, files)
        outcome.record(ledger, incoming, unreadable, archived, requested)
    return manifest


@dataclass(frozen=True)
class QuarantinedVersion:
    """A version of the day an earlier run quarantined as unreadable."""

    name: str
    identity: str
    reason: str
    # The file's time as the zone listed it: a same-name file listed later replaced it.
    modified: datetime


def quarantined_versions(
    ds: OfflineDataset, zone: DropZone, pk: str, ledger: FileLedger | None = None
) -> list[QuarantinedVersion]:
    """The day's versions quarantined as unreadable: the ledger's ``quarantined`` rows of the
    zone and dataset when there is a ledger (its record of every move), else the quarantine
    folder's ``<name>@<identity>`` files with their ``.reason.json``."""
    if ledger is not None:
        return [
            QuarantinedVersion(r.version.name, r.version.identity, _code(r.reason), r.modified)
            for r in ledger.in_zone(zone.describe(), ("quarantined",))
            if r.dataset == ds.dataset
            and r.version.folder == ds.folder
            and (r.partition or ds.partition_of(r.version.name)) == pk
            and r.modified is not None
        ]
    found = []
    for entry in zone.list(ds.quarantine_folder()):
        name, at, identity = entry.name.partition("@")
        if not at or identity.endswith(".reason.json") or ds.partition_of(name) != pk:
            continue
        sidecar = f"{entry.path}.reason.json"
        reason = None
        if zone.stat(sidecar) is not None:
            reason = json.loads(zone.read_bytes(sidecar)).get("reason")
        found.append(QuarantinedVersion(name, identity, _code(reason), entry.modified))
    return found


def still_held(
    quarantined: Sequence[QuarantinedVersion], incoming: Sequence[Entry], archived: Sequence[Entry]
) -> list[QuarantinedVersion]:
    """The versions no later file of the same name replaced: one in the incoming folder now
    (the unreadable one left it), or one in the day's archive listed as newer."""
    waiting = {e.name for e in incoming}
    in_archive = {e.name: e for e in archived}
    held = []
    for version in sorted(quarantined, key=lambda v: (v.name, v.identity)):
        replacement = in_archive.get(version.name)
        if version.name in waiting or (
            replacement is not None and replacement.modified > version.modified
        ):
            continue
        held.append(version)
    return held


def _code(reason: str | None) -> str:
    return reason or "unreadable"


@dataclass(frozen=True)
class _Outcome:
    """Where a run put the partition's file versions, for the ledger."""

    ds: OfflineDataset
    zone_id: str
    pk: str
    run_id: str
    files: list[dict[str, Any]]

    def record(
        self,
        ledger: FileLedger,
        incoming: Sequence[Entry],
        unreadable: Sequence[tuple[Entry, UnreadableFile]],
        archived: Sequence[Entry],
        requested: Sequence[tuple[str, str]],
    ) -> None:
        bad = {entry.path: exc.reason for entry, exc in unreadable}
        for entry in incoming:
            reason = bad.get(entry.path)
            if reason is None:
                self._processed(ledger, entry.name, entry.identity, entry, self._archived(entry))
            else:
                where = join(self.ds.quarantine_folder(), f"{entry.name}@{entry.identity}")
                self._settle(ledger, entry.name, entry.identity, entry, "quarantined", where,
                             reason=reason)  # fmt: skip
        # Archived by an earlier attempt that then failed (e.g. at publication): read again
        # from the archive by this run. The archive copy may have another identity (a move on
        # an object store is a copy), so the version is the requested one.
        in_archive = {e.name: e for e in archived if e.path not in bad}
        now_incoming = {(e.name, e.identity) for e in incoming}
        for name, identity in requested:
            entry = in_archive.get(name)
            if entry is None or (name, identity) in now_incoming:
                continue
            row = ledger.get(FileVersion(self.zone_id, self.ds.folder, name, identity))
            if row is not None and row.status == "pending":
                self._processed(ledger, name, identity, entry, entry.path)
        if any(f["status"] == "quarantined" for f in self.files):
            return
        # Nothing holds the day any more (a corrected file replaced an unreadable one): the
        # archived versions whose retries ended `failed` while it was held are in it now.
        for row in ledger.in_zone(self.zone_id, ("failed",)):
            entry = in_archive.get(row.version.name)
            if (
                entry is not None
                and row.dataset == self.ds.dataset
                and row.version.folder == self.ds.folder
                and row.partition == self.pk
                and row.location == entry.path
            ):
                self._processed(ledger, row.version.name, row.version.identity, entry, entry.path)

    def _archived(self, entry: Entry) -> str:
        return join(self.ds.archive_folder(self.pk), entry.name)

    def _processed(
        self, ledger: FileLedger, name: str, identity: str, entry: Entry, location: str
    ) -> None:
        rows = next((f["rows_in"] for f in self.files if f["source_file"] == name), None)
        self._settle(ledger, name, identity, entry, "processed", location, rows=rows)

    def _settle(
        self,
        ledger: FileLedger,
        name: str,
        identity: str,
        entry: Entry,
        status: str,
        location: str,
        **fields: Any,
    ) -> None:
        ledger.record(
            FileVersion(self.zone_id, self.ds.folder, name, identity),
            entry,
            dataset=self.ds.dataset,
            status=status,
            location=location,
            in_folder=False,
            partition=self.pk,
            run_id=self.run_id,
            **fields,
        )


def _file(name: str, status: str, reason: str | None, rows_in: int | None = None) -> dict[str, Any]:
    return {
        "source_file": name,
        "status": status,
        "reason": reason,
        "rows_in": rows_in,
        "rows_out": None,
        "rows_rejected": None,
    }


def _accepted_rows(
    mapping: OfflineMapping, rows: list[SourceRow], result: OfflineResult
) -> pa.Table:
    """The source rows that made a record, with that record's ``_id`` (for the recount)."""
    columns = [c.column for c in mapping.columns]
    out: dict[str, list[Any]] = {"_source_file": [], "_line_number": [], "_record_id": []}
    out.update({c: [] for c in columns})
    for row in rows:
        record_id = result.row_records.get((row.source_file, row.line_number))
        if record_id is None:
            continue  # quarantined: it is in rejects.parquet
        out["_source_file"].append(row.source_file)
        out["_line_number"].append(row.line_number)
        out["_record_id"].append(record_id)
        for column in columns:
            value = row.values.get(column)
            out[column].append(None if value is None else str(value))
    schema = pa.schema(
        [("_source_file", pa.string()), ("_line_number", pa.int64()), ("_record_id", pa.string())]
        + [(c, pa.string()) for c in columns]
    )
    return pa.table(out, schema=schema)


def _xdm_table(ds: OfflineDataset, records: list[dict[str, Any]]) -> pa.Table:
    if not records:
        return pa.table({})
    schema = ds.mapping.xdm_schema().compiled_schema
    stored = [_stored(record, schema) for record in records]
    return pa.Table.from_struct_array(pa.array(stored))


def _stored(value: Any, node: Mapping[str, Any] | None) -> Any:
    """A JSON record in the stored form: date-time text as a timestamp, the rest as is."""
    if node is None:
        return value
    if isinstance(value, dict):
        props = node.get("properties") or {}
        extra = node.get("additionalProperties")
        child = extra if isinstance(extra, Mapping) else None
        return {k: _stored(v, props.get(k, child)) for k, v in value.items()}
    if isinstance(value, list):
        items = node.get("items")
        return [_stored(v, items if isinstance(items, Mapping) else None) for v in value]
    if isinstance(value, str) and node.get("format") == "date-time":
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def _put_table(
    warehouse: Warehouse, dataset: str, pk: str, name: str, table: pa.Table, tmp: str
) -> None:
    local = Path(tmp) / f"{dataset}-{name}"
    # No statistics and fixed options: the same rows give the same bytes on a re-run.
    pq.write_table(table, local, compression="zstd", write_statistics=False)
    warehouse.put_file(dataset, pk, name, local)


def _quarantine(
    ds: OfflineDataset, zone: DropZone, entry: Entry, exc: UnreadableFile, rule: CompletionRule
) -> None:
    dest = join(ds.quarantine_folder(), f"{entry.name}@{entry.identity}")
    sidecar = {"file": entry.name, "reason": exc.reason, "dataset": ds.dataset}
    zone.write_bytes(f"{dest}.reason.json", json.dumps(sidecar, indent=2).encode())
    zone.move(entry.path, dest)
    _move_marker(zone, entry, ds.quarantine_folder(), rule)


def _archive(
    ds: OfflineDataset, zone: DropZone, entry: Entry, pk: str, rule: CompletionRule
) -> None:
    folder = ds.archive_folder(pk)
    target = join(folder, entry.name)
    older = zone.stat(target)
    if older is not None:  # a corrected file of the same name: the earlier one is kept aside
        zone.move(target, join(folder, "superseded", f"{older.name}@{older.identity}"))
    zone.move(entry.path, target)
    _move_marker(zone, entry, folder, rule)


def _move_marker(zone: DropZone, entry: Entry, folder: str, rule: CompletionRule) -> None:
    marker = f"{entry.path}{rule.marker_suffix}"
    if zone.stat(marker) is not None:
        zone.move(marker, join(folder, f"{entry.name}{rule.marker_suffix}"))
