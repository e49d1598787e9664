"""The shape every Campaign → AEP dataset shares, written once.

A dataset module (broadlog.py, tracking_log.py, ...) describes its export: the file names, the
columns of each Campaign layout, the validation rules and the XDM mapping. `CampaignExportFlow`
turns that description into the same Dagster objects for every dataset:

    <dataset>_export_sensor ──▶ <dataset> ──▶ <dataset>_xdm ──▶ <dataset>_published
      (SFTP export folder)     typed rows      XDM records       AEP landing container
                               + quarantine    (checked, blocking)

and into the checks that guard them. `<dataset>` and `<dataset>_xdm` come from one op
(`<dataset>_ingest`, a subsettable multi-asset): each file is read once and written as typed
and XDM Parquet in the same pass. Materializing `<dataset>_xdm` alone maps the stored typed
partition again (after a change of mapping, for example).

Files move `export/` → `export/archive/<dataset>/` after their rows are safely in the
warehouse, or → `export/quarantine/<dataset>/` with a reason when they cannot be read at all.
Nothing is ever deleted.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions (context and resource parameters) at definition time.
"""

import hashlib
import json
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    DefaultSensorStatus,
    Failure,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
    asset,
    define_asset_job,
    in_process_executor,
    multi_asset,
    sensor,
)

from asset_checks.campaign_to_aep.export_checks import build_typed_checks, build_xdm_checks
from resources.drop_zones import (
    DropZone,
    DropZoneUnavailable,
    Entry,
    is_temporary_name,
    join,
)
from resources.file_ledger import FileLedger, FileVersion, Presence
from resources.settings import PipelineSettings
from resources.warehouse import ParquetSink, Warehouse
from rtcdp_assets.shared import xdm
from rtcdp_assets.shared.ingest import (
    REJECT_SCHEMA,
    ExportFormat,
    FileResult,
    RowRules,
    UnreadableFile,
    empty_batch,
    ingest_file,
)
from rtcdp_assets.shared.masking import mask_text, masked_preview
from rtcdp_assets.shared.partition_rules import (
    RowDigests,
    apply_partition_rules,
    window_end_from_stamp,
)
from rtcdp_assets.shared.partitions import PARTITION_KEY_FORMAT, four_hourly_partitions
from rtcdp_assets.shared.xdm_conformance import XdmSchema

XdmMapper = Callable[[pa.RecordBatch, PipelineSettings], pa.RecordBatch]
RecordKind = Literal["event", "profile"]

SOURCE_FILE_TAG = "rtcdp/source_file"
SOURCE_IDENTITY_TAG = "rtcdp/source_identity"


@dataclass(frozen=True)
class XdmOutput:
    """What an XDM partition holds once written: its record count and Arrow schema."""

    rows: int
    schema: pa.Schema


@dataclass
class PartitionOutput:
    """`ingest_partition`'s result: the typed partition's manifest and, when mapped in the
    same pass, the XDM partition."""

    manifest: dict[str, Any]
    xdm: XdmOutput | None = None


@dataclass
class CampaignExportDefinitions:
    assets: list[AssetsDefinition]
    asset_checks: list[Any]
    sensor: Any
    job: Any
    flow: "CampaignExportFlow"


@dataclass(frozen=True)
class SourceFile:
    """The version of one export file a partition is built from, and where it sits now."""

    name: str
    entry: Entry
    location: Literal["incoming", "archive", "quarantine"]

    @property
    def identity(self) -> str:
        """The content identity the version arrived with (kept in the archived name, since a
        move can change an object store's ETag)."""
        if self.location == "incoming":
            return self.entry.identity
        return self.entry.name.rsplit("@", 1)[1]


@dataclass(frozen=True)
class CampaignExportFlow:
    """Everything that differs between the Campaign → AEP datasets."""

    fmt: ExportFormat
    file_prefix: str  # e.g. "broadLog" for broadLog_20261123_0800.csv.gz
    to_xdm: XdmMapper
    xdm_class: str
    xdm_field_groups: tuple[str, ...]
    record_kind: RecordKind = "event"
    description: str = ""
    upstream: tuple[AssetKey, ...] = ()
    # XDM path -> source columns (canonical names) for `dagster/column_lineage`.
    column_lineage: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    allowed_codes: Callable[[PipelineSettings], Mapping[str, frozenset[str]]] = lambda _settings: {}
    # Dataset-specific checks: each builder gets the flow and its typed asset's key.
    extra_checks: tuple[Callable[["CampaignExportFlow", AssetKey], Any], ...] = ()
    # -- optional hooks (push_subscriptions) -----------------------------------------------
    # Row rules over several typed fields (ingest.RowRules), built from the settings.
    row_rules: Callable[[PipelineSettings], RowRules | None] = lambda _settings: None
    # A mapper bound to state outside the partition (e.g. Campaign's quarantined push tokens),
    # built once per XDM materialization (before the files are read when both assets run);
    # `to_xdm` is used when this is None.
    bind_xdm: Callable[[AssetExecutionContext, Warehouse, PipelineSettings], XdmMapper] | None = (
        None
    )
    # Checks on the XDM asset: each builder gets the flow and its XDM asset's key.
    extra_xdm_checks: tuple[Callable[["CampaignExportFlow", AssetKey], Any], ...] = ()

    # -- names ---------------------------------------------------------------------------
    @property
    def dataset(self) -> str:
        return self.fmt.dataset

    @property
    def xdm_dataset(self) -> str:
        return f"{self.dataset}_xdm"

    @property
    def typed_key(self) -> AssetKey:
        return AssetKey(self.dataset)

    @property
    def xdm_key(self) -> AssetKey:
        return AssetKey(self.xdm_dataset)

    @property
    def published_name(self) -> str:
        return f"{self.dataset}_published"

    @property
    def file_pattern(self) -> re.Pattern[str]:
        return re.compile(
            rf"^{re.escape(self.file_prefix)}_(?P<date>\d{{8}})_(?P<time>\d{{4}}(?:\d{{2}})?)"
            r"(?:_[A-Za-z0-9-]+)?\.csv(?:\.gz)?$",
            re.IGNORECASE,
        )

    def export_stamp(self, file_name: str) -> str | None:
        """The export time in a file name (`20261123_0930`); split parts share it."""
        m = self.file_pattern.match(file_name)
        return f"{m['date']}_{m['time']}" if m else None

    def partition_for(self, file_name: str) -> str | None:
        """`broadLog_20261123_0930.csv` → `2026-11-23-08:00` (the 4-hour window of its time)."""
        m = self.file_pattern.match(file_name)
        if not m:
            return None
        d, t = m["date"], m["time"]
        try:  # datetime() validates the calendar; strptime is ten times slower
            when = datetime(int(d[:4]), int(d[4:6]), int(d[6:8]), int(t[:2]), int(t[2:4]))
        except ValueError:
            return None
        return f"{when:%Y-%m-%d}-{when.hour - when.hour % 4:02d}:00"

    # -- folders ---------------------------------------------------------------------------
    def archive_folder(self, settings: PipelineSettings) -> str:
        return join(settings.campaign_export_folder, "archive", self.dataset)

    def quarantine_folder(self, settings: PipelineSettings) -> str:
        return join(settings.campaign_export_folder, "quarantine", self.dataset)

    def xdm_schema(self) -> XdmSchema:
        return XdmSchema.compose(self.xdm_class, list(self.xdm_field_groups))

    # -- the Dagster objects -------------------------------------------------------------
    def build(self) -> CampaignExportDefinitions:
        ingest = self._ingest_assets()
        published = self._published_asset()
        checks = [
            build_typed_checks(self, self.typed_key),
            build_xdm_checks(self, self.xdm_key),
            *[build(self, self.typed_key) for build in self.extra_checks],
            *[build(self, self.xdm_key) for build in self.extra_xdm_checks],
        ]
        # Only this flow's partitioned checks run with a partition; window-spanning checks such
        # as export freshness run on their own schedule.
        job = define_asset_job(
            f"{self.dataset}_job",
            selection=AssetSelection.assets(ingest, published).without_checks()
            | AssetSelection.checks(*checks),
            executor_def=in_process_executor,
            description=f"Ingest, map, check and publish one {self.dataset} partition.",
        )
        return CampaignExportDefinitions(
            assets=[ingest, published],
            asset_checks=checks,
            sensor=self._sensor(job),
            job=job,
            flow=self,
        )

    def _ingest_assets(self) -> AssetsDefinition:
        """`<dataset>` and `<dataset>_xdm`, written by one op in one pass over each file.

        Mapping in a second op meant reading and decoding the typed Parquet again: 5-17 %
        more time for the pair, less on larger files (bench/README.md). Either asset can still
        run alone: the XDM one then maps the stored typed partition.
        """
        flow = self
        typed_key, xdm_key = self.typed_key, self.xdm_key
        columns = [
            TableColumn(f.name, str(_arrow_type_name(f.kind)), description=f.description)
            for f in self.fmt.fields
        ]
        lineage = TableColumnLineage(
            deps_by_column={
                path: [TableColumnDep(asset_key=typed_key, column_name=c) for c in cols]
                for path, cols in self.column_lineage.items()
            }
        )
        typed_spec = AssetSpec(
            key=typed_key,
            group_name="campaign_to_aep",
            kinds={"sftp", "parquet"},
            deps=list(self.upstream),
            description=self.description
            or f"Typed {self.dataset} rows from Campaign exports, with a quarantine.",
            metadata={"dagster/column_schema": TableSchema(columns=columns)},
        )
        xdm_spec = AssetSpec(
            key=xdm_key,
            group_name="campaign_to_aep",
            kinds={"parquet"},
            deps=[typed_key],
            description=f"{self.dataset} as XDM records ({self.xdm_class}).",
            metadata={"dagster/column_lineage": lineage},
        )

        @multi_asset(
            name=f"{self.dataset}_ingest",
            specs=[typed_spec, xdm_spec],
            partitions_def=four_hourly_partitions,
            can_subset=True,
            pool="campaign_sftp",
        )
        def ingest(
            context: AssetExecutionContext,
            campaign_sftp: DropZone,
            warehouse: Warehouse,
            settings: PipelineSettings,
            file_ledger: FileLedger,
        ) -> Iterator[MaterializeResult]:
            pk = context.partition_key
            selected = context.selected_asset_keys
            to_xdm: XdmMapper | None = None
            if xdm_key in selected:
                bind = flow.bind_xdm
                to_xdm = bind(context, warehouse, settings) if bind else flow.to_xdm
            xdm_out: XdmOutput | None = None
            if typed_key in selected:
                out = flow.ingest_partition(
                    campaign_sftp,
                    warehouse,
                    settings,
                    pk,
                    log=context.log,
                    ledger=file_ledger,
                    run_id=context.run.run_id,
                    to_xdm=to_xdm,
                )
                xdm_out = out.xdm
                yield MaterializeResult(
                    asset_key=typed_key, metadata=flow._typed_metadata(out.manifest, warehouse)
                )
            elif to_xdm is not None:
                xdm_out = flow.map_partition(warehouse, settings, pk, to_xdm)
            if xdm_out is not None:
                yield MaterializeResult(
                    asset_key=xdm_key,
                    metadata={
                        "dagster/row_count": xdm_out.rows,
                        "dagster/column_lineage": lineage,
                        "dagster/column_schema": table_schema(xdm_out.schema),
                        "preview": MetadataValue.md(_xdm_preview(warehouse, flow.xdm_dataset, pk)),
                        "xdm_class": flow.xdm_class,
                        "xdm_field_groups": MetadataValue.json(list(flow.xdm_field_groups)),
                        "warehouse_path": warehouse.path(flow.xdm_dataset, pk, "data.parquet"),
                    },
                )

        return ingest

    def map_partition(
        self, warehouse: Warehouse, settings: PipelineSettings, pk: str, to_xdm: XdmMapper
    ) -> XdmOutput:
        """The XDM partition mapped from the stored typed one (the XDM asset run alone)."""
        with tempfile.TemporaryDirectory(prefix="rtcdp-xdm-") as tmp:
            local = Path(tmp) / "data.parquet"
            with XdmWriter(local, to_xdm, settings) as writer:
                for batch in warehouse.iter_batches(self.dataset, pk):
                    writer.write(batch)
            out = self._finish_xdm([local] if writer.rows else [], local, to_xdm, settings)
            warehouse.put_file(self.xdm_dataset, pk, "data.parquet", local)
        return out

    def _finish_xdm(
        self, parts: Sequence[Path], out: Path, to_xdm: XdmMapper, settings: PipelineSettings
    ) -> XdmOutput:
        """The XDM parts of a partition's files as one Parquet file at `out`."""
        if parts:
            schema = pq.read_schema(parts[0])
            return XdmOutput(_concat_parquet(parts, out, schema), schema)
        # No typed rows: still an empty, well-typed dataset for the checks and the publication.
        schema = to_xdm(empty_batch(self.fmt.typed_schema), settings).schema
        with ParquetSink(out, schema, statistics=False):
            pass
        return XdmOutput(0, schema)

    def landing_paths(self, settings: PipelineSettings, pk: str) -> tuple[str, str]:
        compact = datetime.strptime(pk, PARTITION_KEY_FORMAT).strftime("%Y%m%d_%H%M")
        folder = join(settings.aep_landing_folder, self.dataset, compact)
        return join(folder, f"{self.dataset}_{compact}.json"), join(folder, "_manifest.json")

    def _published_asset(self) -> AssetsDefinition:
        flow = self

        @asset(
            name=self.published_name,
            partitions_def=four_hourly_partitions,
            group_name="campaign_to_aep",
            kinds={"azure", "json"},
            # The typed asset too: its blocking checks (reconciliation above all) must pass
            # before anything is published, and they gate only direct dependents.
            deps=[self.xdm_key, self.typed_key],
            description=(
                f"{self.dataset} XDM records as JSON Lines in the AEP landing container, read by "
                "AEP's Azure Blob source connector. Written only after the blocking checks pass."
            ),
        )
        def published_asset(
            context: AssetExecutionContext,
            warehouse: Warehouse,
            aep_landing: DropZone,
            settings: PipelineSettings,
        ) -> MaterializeResult:
            pk = context.partition_key
            data_path, manifest_path = flow.landing_paths(settings, pk)
            digest = hashlib.sha256()
            rows = 0
            with tempfile.TemporaryDirectory(prefix="rtcdp-pub-") as tmp:
                local = Path(tmp) / "data.json"
                with local.open("wb") as out:
                    for batch in warehouse.iter_batches(flow.xdm_dataset, pk):
                        chunk = "".join(xdm.dumps(r) + "\n" for r in xdm.to_records(batch)).encode()
                        digest.update(chunk)
                        out.write(chunk)
                        rows += batch.num_rows
                published = _already_published(aep_landing, data_path, manifest_path, digest)
                if published is not None:
                    # AEP ingests every new or rewritten file: sending the same records again
                    # would duplicate them, so an identical re-run leaves the landing alone.
                    context.log.info(f"{data_path} already holds these {rows} records")
                    return MaterializeResult(
                        metadata={
                            "dagster/row_count": rows,
                            "landing_path": data_path,
                            "landing_zone": aep_landing.describe(),
                            "sha256": digest.hexdigest(),
                            "bytes": published.size,
                            "already_published": True,
                        }
                    )
                entry = aep_landing.write_atomic(data_path, local)
            manifest = {
                "dataset": flow.dataset,
                "partition": pk,
                "xdm_class": flow.xdm_class,
                "xdm_field_groups": list(flow.xdm_field_groups),
                "file": data_path.rsplit("/", 1)[-1],
                "format": "json-lines",
                "records": rows,
                "bytes": entry.size,
                "sha256": digest.hexdigest(),
                "data_identity": entry.identity,
            }
            # The manifest goes last: its presence says the data file is complete.
            aep_landing.write_bytes(
                manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode()
            )
            return MaterializeResult(
                metadata={
                    "dagster/row_count": rows,
                    "landing_path": data_path,
                    "landing_zone": aep_landing.describe(),
                    "sha256": manifest["sha256"],
                    "bytes": entry.size,
                    "already_published": False,
                }
            )

        return published_asset

    # -- ingestion -------------------------------------------------------------------------
    def resolve_sources(
        self, zone: DropZone, settings: PipelineSettings, pk: str
    ) -> list[SourceFile]:
        """The newest version of each export file of partition `pk`.

        A new version waiting in the export folder wins over archived ones; otherwise the
        last archived or quarantined version is used, so a re-run reproduces the partition
        from the same bytes after the files were moved.
        """
        chosen: dict[str, SourceFile] = {}
        for entry in zone.list(settings.campaign_export_folder):
            if is_temporary_name(entry.name) or self.partition_for(entry.name) != pk:
                continue
            chosen[entry.name] = SourceFile(entry.name, entry, "incoming")
        moved: dict[str, SourceFile] = {}
        for location, folder in (
            ("archive", self.archive_folder(settings)),
            ("quarantine", self.quarantine_folder(settings)),
        ):
            for entry in zone.list(folder):
                if entry.name.endswith(".reason.json") or "@" not in entry.name:
                    continue
                original = entry.name.rsplit("@", 1)[0]
                if self.partition_for(original) != pk or original in chosen:
                    continue
                current = moved.get(original)
                if current is None or entry.modified > current.entry.modified:
                    moved[original] = SourceFile(original, entry, location)  # type: ignore[arg-type]
        chosen.update(moved)
        return [chosen[name] for name in sorted(chosen)]

    def ingest_partition(
        self,
        zone: DropZone,
        warehouse: Warehouse,
        settings: PipelineSettings,
        pk: str,
        log: Any = None,
        ledger: FileLedger | None = None,
        run_id: str | None = None,
        to_xdm: XdmMapper | None = None,
    ) -> PartitionOutput:
        """Type, check and land partition `pk`; with `to_xdm`, also its XDM in the same pass.

        Every version of the partition's files is read once, from the drop zone as it streams
        in. The typed, rejects and (optional) XDM Parquet go to the warehouse, then the typed
        manifest, which says the partition is complete; the sources move to the archive or the
        quarantine last.
        """
        sources = self.resolve_sources(zone, settings, pk)
        if not sources:
            raise Failure(
                description=(
                    f"No {self.dataset} export for partition {pk}: expected a file named like "
                    f"{self.file_prefix}_YYYYMMDD_HHMM.csv[.gz] in "
                    f"'{settings.campaign_export_folder}' "
                    f"(or already moved to '{self.archive_folder(settings)}') on {zone.describe()}."
                )
            )
        zone_id, folder = zone.describe(), settings.campaign_export_folder
        files: list[dict[str, Any]] = []
        outcomes: list[tuple[SourceFile, str, dict[str, Any]]] = []
        first_by_sha: dict[str, str] = {}
        tolerance = timedelta(seconds=settings.export_time_tolerance_seconds)

        def latest_time(name: str) -> datetime | None:
            return window_end_from_stamp(self.export_stamp(name))

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
                    self.fmt, None if latest is None else latest + tolerance, spill_dir=tmpdir
                )
                version = FileVersion(zone_id, folder, src.name, src.identity)
                error: UnreadableFile | None = None
                with zone.open_read(src.entry.path) as raw:
                    fh = _HashingReader(raw)
                    try:
                        with (
                            ParquetSink(good_path, self.fmt.typed_schema) as good,
                            ParquetSink(bad_path, REJECT_SCHEMA) as bad,
                            XdmWriter(xdm_path, to_xdm, settings) as xdm_writer,
                        ):
                            for part in ingest_file(
                                fh,
                                source_file=src.name,
                                fmt=self.fmt,
                                tz=settings.campaign_timezone,
                                allowed_overrides=self.allowed_codes(settings),
                                max_decompressed_bytes=settings.max_decompressed_bytes,
                                result=result,
                                row_rules=self.row_rules(settings),
                            ):
                                good.write(part.good)
                                bad.write(part.rejects)
                                digest.add(part.good)
                                xdm_writer.write(part.good)
                    except UnreadableFile as exc:
                        error = exc
                    fh.drain()  # the ledger's checksum covers every byte, read or not
                sha = fh.hexdigest()
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
                    outcomes.append(
                        (src, "duplicate", {"sha256": sha, "duplicate_of": duplicate_of})
                    )
                    if log:
                        log.warning(f"{src.name} holds the same bytes as {duplicate_of}: skipped")
                    continue
                first_by_sha[sha] = str(version)
                good_parts.append(good_path)
                bad_parts.append(_sorted_rejects(bad_path))
                xdm_parts.append(xdm_path if xdm_writer.rows else None)
                digests.append(digest)
                files.append({**base, "status": "processed", **result.as_dict()})
                outcomes.append((src, "processed", {"sha256": sha, "rows": result.rows_in}))

            # Rules that need the whole partition or the file's name (partition_rules.py).
            ruled_parts, bad_parts = apply_partition_rules(
                self.fmt,
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
                            for batch in pq.ParquetFile(after).iter_batches(batch_size=65536):
                                w.write(batch)
                        xdm_parts[i] = w.path if w.rows else None
                xdm_local = tmpdir / "xdm.parquet"
                kept = [p for p in xdm_parts if p is not None]
                xdm_out = self._finish_xdm(kept, xdm_local, to_xdm, settings)
            # Concatenation moves a lone part into place: after the XDM re-mapping above.
            data_local, rejects_local = tmpdir / "data.parquet", tmpdir / "rejects.parquet"
            rows_out = _concat_parquet(ruled_parts, data_local, self.fmt.typed_schema)
            rows_rejected = _concat_parquet(bad_parts, rejects_local, REJECT_SCHEMA)
            if xdm_out is not None and xdm_out.rows != rows_out:
                raise Failure(
                    description=(
                        f"{self.xdm_dataset} {pk}: {xdm_out.rows} XDM records for "
                        f"{rows_out} typed rows; the mapping must give one record a row"
                    )
                )
            warehouse.put_file(self.dataset, pk, "data.parquet", data_local)
            warehouse.put_file(self.dataset, pk, "rejects.parquet", rejects_local)
            if xdm_out is not None:
                warehouse.put_file(self.xdm_dataset, pk, "data.parquet", xdm_local)

        for src, status, detail in outcomes:
            target: Literal["archive", "quarantine"] = (
                "quarantine" if status == "quarantined" else "archive"
            )
            dest = self._destination(settings, src, target)
            if ledger is not None:
                # Recorded before the move: should the move fail, the ledger still says the
                # rows are in, and the sensor will not request this version again.
                ledger.record(
                    FileVersion(zone_id, folder, src.name, src.identity),
                    src.entry,
                    dataset=self.dataset,
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
            self._move_source(zone, src, dest, reason)
        reasons: Counter[str] = Counter()
        for f in files:
            reasons.update(f.get("reasons") or {})
        manifest = {
            "dataset": self.dataset,
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
        warehouse.put_json(self.dataset, pk, "manifest.json", manifest)
        return PartitionOutput(manifest, xdm_out)

    def _destination(
        self, settings: PipelineSettings, src: SourceFile, target: Literal["archive", "quarantine"]
    ) -> str:
        if src.location == target:
            return src.entry.path
        folder = (
            self.archive_folder(settings)
            if target == "archive"
            else self.quarantine_folder(settings)
        )
        return join(folder, f"{src.name}@{src.identity}")

    def _move_source(
        self, zone: DropZone, src: SourceFile, dest: str, reason: dict[str, Any] | None
    ) -> None:
        if src.entry.path == dest:
            return
        if reason is not None:
            sidecar = {"source_file": src.name, "identity": src.identity, **reason}
            zone.write_bytes(f"{dest}.reason.json", json.dumps(sidecar, indent=2).encode())
        zone.move(src.entry.path, dest)

    def _typed_metadata(self, manifest: dict[str, Any], warehouse: Warehouse) -> dict[str, Any]:
        pk = manifest["partition"]
        head = _head(warehouse, self.dataset, pk)
        preview = masked_preview(head, self.fmt.personal_fields) if head else "_no rows_"
        file_rows = [
            f"| {f['source_file']} | {f['status']} | {f.get('layout', '')} | {f['rows_in']} | "
            f"{f['rows_out']} | {f['rows_rejected']} | {f.get('reason', '')} |"
            for f in manifest["files"]
        ]
        files_md = "\n".join(
            [
                "| file | status | layout | rows in | rows out | rejected | reason |",
                "|---|---|---|---|---|---|---|",
                *file_rows,
            ]
        )
        return {
            "dagster/row_count": manifest["rows_out"],
            "rows_in": manifest["rows_in"],
            "rows_rejected": manifest["rows_rejected"],
            "files_quarantined": manifest["files_quarantined"],
            "rejects_by_reason": MetadataValue.json(manifest["reasons"]),
            "source_files": MetadataValue.md(files_md),
            "preview": MetadataValue.md(preview),
            "dagster/column_schema": table_schema(self.fmt.typed_schema),
            "warehouse_path": warehouse.path(self.dataset, pk, "data.parquet"),
            "rejects_path": warehouse.path(self.dataset, pk, "rejects.parquet"),
        }

    # -- sensor ----------------------------------------------------------------------------
    def _sensor(self, job: Any) -> Any:
        flow = self

        @sensor(
            name=f"{self.dataset}_export_sensor",
            job=job,
            minimum_interval_seconds=30,
            default_status=DefaultSensorStatus.RUNNING,
            description=(
                f"Watches the Campaign SFTP export folder for {self.file_prefix}_*.csv[.gz] and "
                "requests one run per file version."
            ),
        )
        def export_sensor(
            context: SensorEvaluationContext,
            campaign_sftp: DropZone,
            settings: PipelineSettings,
            file_ledger: FileLedger,
        ) -> SensorResult | SkipReason:
            folder = settings.campaign_export_folder
            zone_id = campaign_sftp.describe()
            try:
                entries = campaign_sftp.list(folder)
            except DropZoneUnavailable as exc:
                # The cursor is untouched, so nothing is missed once the server is back.
                return SkipReason(f"Campaign SFTP unavailable, will retry: {exc}")
            now = datetime.now(UTC)
            known = file_ledger.present(zone_id, folder, flow.dataset)
            plan = plan_tick(flow, entries, known, context.cursor, now, settings)
            # Recorded before the run requests are returned: if this tick fails, the versions
            # are simply still pending and the next tick requests them.
            gone = [FileVersion(zone_id, folder, name, identity) for name, identity in plan.gone]
            file_ledger.observe(zone_id, folder, flow.dataset, plan.new, gone, seen_at=now)
            for note in plan.notes:
                context.log.info(note)
            if not plan.run_requests:
                return SensorResult(
                    skip_reason=SkipReason("; ".join(plan.notes[:20]) or "no new export files"),
                    cursor=plan.cursor,
                )
            return SensorResult(run_requests=plan.run_requests, cursor=plan.cursor)

        return export_sensor


@dataclass
class TickPlan:
    run_requests: list[RunRequest]
    cursor: str
    notes: list[str]
    new: list[Entry] = field(default_factory=list)  # versions to record as pending
    gone: list[tuple[str, str]] = field(default_factory=list)  # (name, identity) left the folder


def _request_token(run_key: str) -> str:
    # The cursor holds the versions requested but not settled yet; short digests keep it small
    # even when thousands of files arrive at once.
    return hashlib.sha256(run_key.encode()).hexdigest()[:16]


def plan_tick(
    flow: CampaignExportFlow,
    entries: Sequence[Entry],
    known: Mapping[tuple[str, str], Presence],
    cursor: str | None,
    now: datetime,
    settings: PipelineSettings,
) -> TickPlan:
    """Decide which file versions to run, from a listing, the ledger and the cursor.

    A version is requested once: when the ledger has no fate for it yet (not processed,
    quarantined, duplicate or superseded) and the cursor does not hold it as already
    requested. Neither file times nor the wall clock decide what is new, so a file that
    arrives late with an old modification time is still picked up. The run key is the path
    plus the content identity, so a new version of the same name always runs.

    A version is ready when it is not under a temporary name, not empty, not modified within
    `file_settle_seconds`, seen unchanged for `stability_window_seconds` across ticks (for
    writers that cannot rename) and, if configured, has its completion marker beside it.
    """
    state = json.loads(cursor) if cursor else {}
    requested = set(state.get("requested", []))
    still_requested: set[str] = set()
    requests: list[RunRequest] = []
    notes: list[str] = []
    new: list[Entry] = []
    listed: set[tuple[str, str]] = set()
    unrecognised = []
    marker = settings.completion_marker_suffix
    paths = {e.path for e in entries} if marker else set()
    for entry in sorted(entries, key=lambda e: (e.modified_ts, e.path)):
        key = (entry.name, entry.identity)
        row = known.get(key)
        if row is not None:
            listed.add(key)
            if row.status != "pending":
                notes.append(
                    f"{entry.name} is already {row.status} (run {row.run_id}); the next run of "
                    f"{row.partition} moves it out of the export folder"
                )
                continue
            run_key = f"{entry.path}@{entry.identity}"
            token = _request_token(run_key)
            if token in requested:
                # Requested by an earlier tick, not settled yet: the cheap path of idle ticks.
                still_requested.add(token)
                continue
            first_seen = datetime.fromisoformat(row.first_seen)
        else:
            first_seen = now
        if is_temporary_name(entry.name):
            continue
        pk = flow.partition_for(entry.name)
        if pk is None:
            if entry.name.lower().startswith(flow.file_prefix.lower()) and not (
                marker and entry.name.endswith(marker)
            ):
                unrecognised.append(entry.name)
            continue
        if row is None:
            listed.add(key)
            new.append(entry)
        run_key = f"{entry.path}@{entry.identity}"
        waiting = _not_ready(entry, first_seen, now, settings, paths)
        if waiting:
            notes.append(f"{entry.name}: {waiting}; waiting")
            continue
        requests.append(
            RunRequest(
                run_key=run_key,
                partition_key=pk,
                tags={SOURCE_FILE_TAG: entry.path, SOURCE_IDENTITY_TAG: entry.identity},
            )
        )
        still_requested.add(_request_token(run_key))
    if unrecognised:
        notes.append(
            f"left alone, name not recognised as {flow.file_prefix}_YYYYMMDD_HHMM.csv[.gz]: "
            + ", ".join(sorted(unrecognised)[:20])
        )
    return TickPlan(
        requests,
        json.dumps({"requested": sorted(still_requested)}),
        notes,
        new=new,
        gone=[key for key in known if key not in listed],
    )


def _not_ready(
    entry: Entry,
    first_seen: datetime,
    now: datetime,
    settings: PipelineSettings,
    paths: set[str],
) -> str:
    """Why a version must wait, or "" when it can be read."""
    if entry.size == 0:
        return "empty so far (still being written?)"
    if now.timestamp() - entry.modified_ts < settings.file_settle_seconds:
        return "modified moments ago, still being written"
    window = settings.stability_window_seconds
    if window > 0 and (now - first_seen).total_seconds() < window:
        return f"size and time must stay unchanged for {window:g} s across ticks"
    marker = settings.completion_marker_suffix
    if marker and f"{entry.path}{marker}" not in paths:
        return f"no completion marker {entry.name}{marker} yet"
    return ""


def _already_published(
    zone: DropZone, data_path: str, manifest_path: str, digest: Any
) -> Entry | None:
    """The landed data file if it holds exactly these bytes (per its manifest), else None."""
    if zone.stat(manifest_path) is None:
        return None
    data = zone.stat(data_path)
    if data is None:
        return None
    try:
        manifest = json.loads(zone.read_bytes(manifest_path))
    except ValueError:
        return None
    # The identity ties the manifest to the very data file it was written for: a later run
    # that replaced the data file and died before its manifest does not count.
    same = (
        manifest.get("sha256") == digest.hexdigest()
        and manifest.get("data_identity") == data.identity
    )
    return data if same else None


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


class _HashingReader:
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


def table_schema(schema: pa.Schema) -> TableSchema:
    """Top-level columns with their Arrow types (nested XDM structs shown whole)."""
    return TableSchema(columns=[TableColumn(f.name, str(f.type)) for f in schema])


def _head(warehouse: Warehouse, dataset: str, pk: str, rows: int = 5) -> pa.Table | None:
    """The first rows only: a preview must not load a multi-gigabyte partition."""
    batch = next(iter(warehouse.iter_batches(dataset, pk, batch_size=rows)), None)
    return pa.Table.from_batches([batch]) if batch is not None and batch.num_rows else None


def _xdm_preview(warehouse: Warehouse, dataset: str, pk: str) -> str:
    head = _head(warehouse, dataset, pk, rows=3)
    if head is None:
        return "_no records_"
    lines = [mask_text(xdm.dumps(r)) for r in xdm.to_records(head)]
    return "```json\n" + "\n".join(lines) + "\n```"


def _arrow_type_name(kind: str) -> str:
    return {"int": "int64", "timestamp": "timestamp", "date": "date", "bool": "boolean"}.get(
        kind, "string"
    )


def _sorted_rejects(path: Path) -> Path:
    """Rejects in line order, so a re-run writes the same file."""
    table = pq.read_table(path)
    if table.num_rows > 1:
        table = table.sort_by([("line_number", "ascending")])
        pq.write_table(table, path, compression="zstd")
    return path


def _concat_parquet(parts: Sequence[Path], out: Path, schema: pa.Schema) -> int:
    if len(parts) == 1 and pq.read_schema(parts[0]).equals(schema):
        # One source file, the common case: its Parquet is already the partition's.
        parts[0].replace(out)
        return pq.ParquetFile(out).metadata.num_rows
    with ParquetSink(out, schema) as sink:
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches(batch_size=65536):
                sink.write(batch)
    return sink.rows
