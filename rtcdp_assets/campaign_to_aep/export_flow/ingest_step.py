"""The ingest step: read each export file of a partition once, write the typed, rejected and
(optionally) XDM Parquet to the warehouse, then move the sources to the archive or the
quarantine. Nothing is ever deleted."""

import hashlib
import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pyarrow.parquet as pq
from dagster import Failure

from resources.drop_zones import DropZone, join
from resources.file_ledger import FileLedger, FileVersion
from resources.settings import PipelineSettings
from resources.warehouse import ParquetSink, Warehouse, parquet_batches
from rtcdp_assets.campaign_to_aep.export_flow.description import (
    CampaignExportDescription,
    SourceFile,
    XdmMapper,
)
from rtcdp_assets.campaign_to_aep.export_flow.source_readiness import (
    RunRelease,
    changed_sources,
    incoming_is_ready,
    incomplete_reason,
    record_incomplete,
    with_first_seen,
)
from rtcdp_assets.campaign_to_aep.export_flow.xdm_writer import (
    XdmOutput,
    XdmWriter,
    concat_parquet,
    finish_xdm,
)
from rtcdp_assets.shared.file_completion import CompletionRule
from rtcdp_assets.shared.ingest import (
    REJECT_SCHEMA,
    FileResult,
    StreamLimits,
    UnreadableFile,
    ingest_file,
)
from rtcdp_assets.shared.masking import mask_text
from rtcdp_assets.shared.partition_rules import (
    RowDigests,
    apply_partition_rules,
    window_end_from_stamp,
)


@dataclass
class PartitionOutput:
    """`ingest_partition`'s result: the typed partition's manifest and, when mapped in the
    same pass, the XDM partition."""

    manifest: dict[str, Any]
    xdm: XdmOutput | None = None


def resolve_sources(
    flow: CampaignExportDescription,
    zone: DropZone,
    settings: PipelineSettings,
    pk: str,
    release: RunRelease | None = None,
    now: datetime | None = None,
) -> list[SourceFile]:
    """The newest version of each export file of partition `pk`.

    A new version waiting in the export folder wins over archived ones if it is complete
    (source_readiness.py: the version the sensor released, or complete by the zone's rule);
    otherwise the last archived or quarantined version is used, so a re-run reproduces the
    partition from the same bytes after the files were moved.
    """
    rule = CompletionRule.campaign_export(settings)
    release = release or RunRelease()
    now = now or datetime.now(UTC)
    chosen: dict[str, SourceFile] = {}
    listing = zone.list(settings.campaign_export_folder)
    by_path = {e.path: e for e in listing}
    for entry in listing:
        if flow.partition_for(entry.name) != pk:
            continue
        if incoming_is_ready(entry, rule, by_path, release, now):
            chosen[entry.name] = SourceFile(entry.name, entry, "incoming")
    moved: dict[str, SourceFile] = {}
    for location, folder in (
        ("archive", flow.archive_folder(settings)),
        ("quarantine", flow.quarantine_folder(settings)),
    ):
        for entry in zone.list(folder):
            if entry.name.endswith(".reason.json") or "@" not in entry.name:
                continue
            original = entry.name.rsplit("@", 1)[0]
            if flow.partition_for(original) != pk or original in chosen:
                continue
            current = moved.get(original)
            if current is None or entry.modified > current.entry.modified:
                moved[original] = SourceFile(original, entry, location)  # type: ignore[arg-type]
    chosen.update(moved)
    return [chosen[name] for name in sorted(chosen)]


def ingest_partition(
    flow: CampaignExportDescription,
    zone: DropZone,
    warehouse: Warehouse,
    settings: PipelineSettings,
    pk: str,
    log: Any = None,
    ledger: FileLedger | None = None,
    run_id: str | None = None,
    to_xdm: XdmMapper | None = None,
    release: RunRelease | None = None,
    now: datetime | None = None,
) -> PartitionOutput:
    """Type, check and land partition `pk`; with `to_xdm`, also its XDM in the same pass.

    Every version of the partition's files is read once, from the drop zone as it streams
    in. The typed, rejects and (optional) XDM Parquet go to the warehouse, then the typed
    manifest, which says the partition is complete; the sources move to the archive or the
    quarantine last.

    Nothing is stored or moved when a file the run read changed meanwhile, or ends in a cut
    line and the sensor has not called it final (`release`): the run fails, the files stay,
    and the sensor requests the new version (or, after the grace, the final verdict).
    """
    zone_id, folder = zone.describe(), settings.campaign_export_folder
    release = with_first_seen(release or RunRelease(), ledger, zone_id, folder, flow.dataset)
    sources = resolve_sources(flow, zone, settings, pk, release, now)
    if not sources:
        raise Failure(
            description=(
                f"No {flow.dataset} export for partition {pk}: expected a file named like "
                f"{flow.file_prefix}_YYYYMMDD_HHMM.csv[.gz] in "
                f"'{settings.campaign_export_folder}' "
                f"(or already moved to '{flow.archive_folder(settings)}') on {zone.describe()}."
            )
        )
    files: list[dict[str, Any]] = []
    waiting: list[tuple[SourceFile, str]] = []
    outcomes: list[tuple[SourceFile, str, dict[str, Any]]] = []
    first_by_sha: dict[str, str] = {}
    tolerance = timedelta(seconds=settings.export_time_tolerance_seconds)

    def latest_time(name: str) -> datetime | None:
        return window_end_from_stamp(flow.export_stamp(name))

    with tempfile.TemporaryDirectory(prefix="rtcdp-ingest-") as tmp:
        tmpdir = Path(tmp)
        good_parts: list[Path] = []
        bad_parts: list[Path] = []
        xdm_parts: list[Path | None] = []  # None: the file has no typed rows
        digests: list[RowDigests] = []
        for i, src in enumerate(sources):
            good_path, bad_path = tmpdir / f"good-{i}.parquet", tmpdir / f"bad-{i}.parquet"
            xdm_path = tmpdir / f"xdm-{i}.parquet"
            result = FileResult(source_file=src.name, layout="")
            latest = latest_time(src.name)
            digest = RowDigests(
                flow.fmt, None if latest is None else latest + tolerance, spill_dir=tmpdir
            )
            version = FileVersion(zone_id, folder, src.name, src.identity)
            error: UnreadableFile | None = None
            with zone.open_read(src.entry.path) as raw:
                fh = HashingReader(raw)
                try:
                    with (
                        ParquetSink(good_path, flow.fmt.typed_schema) as good,
                        ParquetSink(bad_path, REJECT_SCHEMA) as bad,
                        XdmWriter(xdm_path, to_xdm, settings) as xdm_writer,
                    ):
                        for part in ingest_file(
                            fh,
                            source_file=src.name,
                            fmt=flow.fmt,
                            tz=settings.campaign_timezone,
                            allowed_overrides=flow.allowed_codes(settings),
                            max_decompressed_bytes=settings.max_decompressed_bytes,
                            limits=StreamLimits.of(settings),
                            result=result,
                            row_rules=flow.row_rules(settings),
                            row_values=flow.row_values(settings),
                        ):
                            good.write(part.good)
                            bad.write(part.rejects)
                            digest.add(part.good)
                            xdm_writer.write(part.good)
                except UnreadableFile as exc:
                    error = exc
                fh.drain()  # the ledger's checksum covers every byte, read or not
            sha = fh.hexdigest()
            cut = incomplete_reason(error, result)
            if cut and not release.is_final(src.entry):
                waiting.append((src, cut))
                continue
            if cut and error is None:
                # Unchanged past its grace and still cut: the whole file, never a part of it.
                error = UnreadableFile("truncated_file", cut)
            base = {"source_file": src.name, "identity": src.identity, "sha256": sha}
            if error is not None:
                reason = {"reason": error.reason, "detail": mask_text(error.detail)}
                files.append(
                    {
                        **base,
                        "status": "quarantined",
                        **reason,
                        "rows_in": None,
                        "rows_out": 0,
                        "rows_rejected": 0,
                    }
                )
                outcomes.append((src, "quarantined", {**reason, "sha256": sha}))
                if log:
                    log.warning(f"{src.name} quarantined: {error.reason}: {reason['detail']}")
                continue
            duplicate_of = first_by_sha.get(sha)
            if duplicate_of is None and ledger is not None:
                canonical = ledger.canonical_for(sha, other_than=version)
                duplicate_of = str(canonical.version) if canonical else None
            if duplicate_of is not None:
                # The same bytes under another name (a re-delivery): counted once, archived.
                files.append(
                    {
                        **base,
                        **result.as_dict(),
                        "status": "duplicate",
                        "duplicate_of": duplicate_of,
                        "rows_duplicate": result.rows_in,
                        "rows_in": None,
                        "rows_out": 0,
                        "rows_rejected": 0,
                        "reasons": {},
                    }
                )
                outcomes.append((src, "duplicate", {"sha256": sha, "duplicate_of": duplicate_of}))
                if log:
                    log.warning(f"{src.name} holds the same bytes as {duplicate_of}: skipped")
                continue
            first_by_sha[sha] = str(version)
            good_parts.append(good_path)
            bad_parts.append(sorted_rejects(bad_path))
            xdm_parts.append(xdm_path if xdm_writer.rows else None)
            digests.append(digest)
            files.append({**base, "status": "processed", **result.as_dict()})
            outcomes.append((src, "processed", {"sha256": sha, "rows": result.rows_in}))

        if waiting:
            record_incomplete(ledger, zone_id, folder, flow.dataset, waiting)
            names = "; ".join(f"{src.name}: {why}" for src, why in waiting)
            raise Failure(
                description=(
                    f"{flow.dataset} {pk}: still being written? {names}. Nothing stored or "
                    "moved; the file is quarantined as truncated_file if it stays so past "
                    "incomplete_file_grace_seconds."
                )
            )
        _fail_if_changed(flow, zone, pk, sources)
        # Rules that need the whole partition or the file's name (partition_rules.py).
        ruled_parts, bad_parts = apply_partition_rules(
            flow.fmt,
            good_parts,
            bad_parts,
            [f for f in files if f["status"] == "processed"],
            latest_time=latest_time,
            tolerance=tolerance,
            digests=digests,
        )
        xdm_out: XdmOutput | None = None
        if to_xdm is not None:
            for i, (before, after) in enumerate(zip(good_parts, ruled_parts, strict=True)):
                if after != before:
                    # A rule moved rows out of this file's part (rare): map what is left.
                    with XdmWriter(tmpdir / f"xdm-{i}-ruled.parquet", to_xdm, settings) as w:
                        for batch in parquet_batches(after):
                            w.write(batch)
                    xdm_parts[i] = w.path if w.rows else None
            xdm_local = tmpdir / "xdm.parquet"
            kept = [p for p in xdm_parts if p is not None]
            xdm_out = finish_xdm(flow, kept, xdm_local, to_xdm, settings)
        # Concatenation moves a lone part into place: after the XDM re-mapping above.
        data_local, rejects_local = tmpdir / "data.parquet", tmpdir / "rejects.parquet"
        rows_out = concat_parquet(ruled_parts, data_local, flow.fmt.typed_schema)
        rows_rejected = concat_parquet(bad_parts, rejects_local, REJECT_SCHEMA)
        if xdm_out is not None and xdm_out.rows != rows_out:
            raise Failure(
                description=(
                    f"{flow.xdm_dataset} {pk}: {xdm_out.rows} XDM records for "
                    f"{rows_out} typed rows; the mapping must give one record a row"
                )
            )
        warehouse.put_file(flow.dataset, pk, "data.parquet", data_local)
        warehouse.put_file(flow.dataset, pk, "rejects.parquet", rejects_local)
        if xdm_out is not None:
            warehouse.put_file(flow.xdm_dataset, pk, "data.parquet", xdm_local)

    # Read again just before the moves: a file still growing stays where it is.
    _fail_if_changed(flow, zone, pk, sources)
    for src, status, detail in outcomes:
        target: Literal["archive", "quarantine"] = (
            "quarantine" if status == "quarantined" else "archive"
        )
        dest = source_destination(flow, settings, src, target)
        if ledger is not None:
            # Recorded before the move: should the move fail, the ledger still says the
            # rows are in, and the sensor will not request this version again.
            ledger.record(
                FileVersion(zone_id, folder, src.name, src.identity),
                src.entry,
                dataset=flow.dataset,
                status=status,
                location=dest,
                in_folder=False,
                partition=pk,
                run_id=run_id,
                reason=detail.get("reason"),
                duplicate_of=detail.get("duplicate_of"),
                sha256=detail["sha256"],
                rows=detail.get("rows"),
            )
        reason = (
            {"reason": detail["reason"], "detail": detail["detail"]}
            if status == "quarantined"
            else None
        )
        move_source(
            zone,
            src,
            dest,
            reason,
            rule_marker(settings),
            join(folder, "markers", flow.dataset),
        )
    reasons: Counter[str] = Counter()
    for f in files:
        reasons.update(f.get("reasons") or {})
    manifest = {
        "dataset": flow.dataset,
        "partition": pk,
        "files": files,
        "rows_in": sum(f["rows_in"] or 0 for f in files),
        "rows_out": rows_out,
        "rows_rejected": rows_rejected,
        "reasons": dict(sorted(reasons.items())),
        "files_quarantined": sum(f["status"] == "quarantined" for f in files),
        "files_duplicate": sum(f["status"] == "duplicate" for f in files),
    }
    # Written last: the manifest is what says the partition is complete.
    warehouse.put_json(flow.dataset, pk, "manifest.json", manifest)
    return PartitionOutput(manifest, xdm_out)


def source_destination(
    flow: CampaignExportDescription,
    settings: PipelineSettings,
    src: SourceFile,
    target: Literal["archive", "quarantine"],
) -> str:
    if src.location == target:
        return src.entry.path
    folder = (
        flow.archive_folder(settings) if target == "archive" else flow.quarantine_folder(settings)
    )
    return join(folder, f"{src.name}@{src.identity}")


def move_source(
    zone: DropZone,
    src: SourceFile,
    dest: str,
    reason: dict[str, Any] | None,
    marker_suffix: str | None = None,
    marker_folder: str | None = None,
) -> None:
    if src.entry.path == dest:
        return
    if reason is not None:
        sidecar = {"source_file": src.name, "identity": src.identity, **reason}
        zone.write_bytes(f"{dest}.reason.json", json.dumps(sidecar, indent=2).encode())
    zone.move(src.entry.path, dest)
    marker = f"{src.entry.path}{marker_suffix}" if marker_suffix else None
    if marker_folder and marker and zone.stat(marker) is not None:
        # The marker leaves with its version, to a folder of its own: nothing is deleted, and
        # no marker waits beside the next upload of the same name.
        zone.move(marker, join(marker_folder, f"{src.name}{marker_suffix}@{src.identity}"))


def rule_marker(settings: PipelineSettings) -> str | None:
    rule = CompletionRule.campaign_export(settings)
    return rule.marker_suffix if rule.rule == "marker" else None


def _fail_if_changed(
    flow: CampaignExportDescription, zone: DropZone, pk: str, sources: list[SourceFile]
) -> None:
    changed = changed_sources(zone, sources)
    if changed:
        raise Failure(
            description=(
                f"{flow.dataset} {pk}: " + "; ".join(changed) + ". Nothing from this read is "
                "stored or published and the files stay in the export folder; the sensor "
                "requests the new version once it is complete."
            )
        )


class HashingReader:
    """A pass-through reader that computes the SHA-256 of every byte that goes through it."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._sha.update(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def sorted_rejects(path: Path) -> Path:
    """Rejects in line order, so a re-run writes the same file."""
    table = pq.read_table(path)
    if table.num_rows > 1:
        table = table.sort_by([("line_number", "ascending")])
        pq.write_table(table, path, compression="zstd")
    return path
