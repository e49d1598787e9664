"""Customer-supplied data → Campaign import files: `profile_import` and `personalization_import`.

    customer_source/profiles/*.csv|*.csv.gz|*.parquet        ──▶ profile_import
    customer_source/personalization/*.csv|*.csv.gz|*.parquet ──▶ personalization_import
        validated with the Campaign-export rules (ingest.py), rows that fail quarantined with a
        reason, staged in the warehouse, verified, uploaded atomically to the Campaign SFTP
        import folder (`settings.campaign_import_folder`), then `<name>.done`

The customer drops files in the `customer_source` zone (embedded default: the local folder
`<data dir>/customer_source`; in production any `DropZone`). Each asset reads every settled file
of its folder (a file modified within `settings.file_settle_seconds`, or with a temporary name,
is left out and logged) as one **snapshot**, identified by the SHA-256 of the file names and
contents. The files stay where the customer put them (the customer owns that folder); a new
snapshot is any change of its content. Campaign reconciles on `external_id` and updates, so
importing a snapshot that repeats earlier rows is harmless.

**Columns** (header names exactly as below, any order, other columns ignored; Parquet columns of
any type are read as their text form):

profiles — `external_id` (required, the key), `email` (required, lower-cased), `first_name`,
`last_name`, `mobile_phone` (`+` and 6–15 digits), `birth_date` (YYYY-MM-DD), `country_code`
(two letters, upper-cased), `city`, `zip_code`.

personalization — `external_id` (required), `preferred_channel` (email / sms / push /
direct_mail), `preferred_language` (`en`, `fr-FR`), `send_hour_utc` (0–23, for send-time
orchestration), `loyalty_tier`, `offer_code`, `offer_expiry` (YYYY-MM-DD).

**Quarantine.** Every row that fails is kept with `source_file`, `line_number` (CSV record
number, header = 1; for Parquet the row number + 1), `reason`, `column` and the raw values:
the reasons of ingest.py (`missing_required_value`, `invalid_email`, `invalid_date`,
`invalid_integer`, `unknown_code:<field>`, `wrong_column_count`), plus `invalid_phone`,
`invalid_country_code`, `invalid_language`, `out_of_range:send_hour_utc` and `duplicate_key`
(several rows for one `external_id`: the row of the last file by name, last line, wins — a later
file is the customer's correction; every other copy is quarantined). A file that cannot be read
at all (`unknown_layout` when a required column is missing, `corrupt_gzip`, `bad_encoding`,
`corrupt_parquet`, ...) blocks the snapshot: it is staged with its reason but nothing is
uploaded, so Campaign never gets part of a delivery.

Counts reconcile per file and in total: rows in = imported + quarantined by reason.

**Import file.** CSV written by `campaign_import.csv_bytes` (UTF-8, comma, header, quoting only
where needed, `\\n`), rows sorted by `external_id`, named `customer_<dataset>_<snapshot>.csv`.
Staged at `<asset>/<snapshot>/` in the warehouse with `quarantine.parquet` and `manifest.json`
(written last); the staged bytes are checked against the manifest's SHA-256 before the upload
(`write_atomic`), then `<name>.done` (JSON: file, rows, bytes, sha256, dataset, snapshot_id,
source_files, columns) is written. Nothing depends on the clock, so a re-run of the same
snapshot writes byte-identical files.

**Sensor.** `customer_source_sensor` lists both folders and requests a run of
`customer_import_job` for each dataset whose settled files changed; the run key is the digest of
the file names and their versions (size + mtime / ETag), so one set of files runs once.

Whole tables are held in memory: customer files are expected in the millions of rows at most.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions at definition time.
"""

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSelection,
    DefaultSensorStatus,
    Failure,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    asset_check,
    define_asset_job,
    in_process_executor,
    sensor,
)

from resources.drop_zones import DropZone, DropZoneUnavailable, Entry, is_temporary_name, join
from resources.file_ledger import FileLedger, FileVersion
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.campaign_audience_import import csv_bytes, upload_verified
from rtcdp_assets.shared import governance
from rtcdp_assets.shared.ingest import (
    LINE_NUMBER,
    REJECT_SCHEMA,
    SOURCE_FILE,
    ExportFormat,
    FieldSpec,
    FileResult,
    Layout,
    UnreadableFile,
    ingest_file,
)

GROUP = "customer_to_campaign"
SOURCE_SUFFIXES = (".csv", ".csv.gz", ".parquet")

# Extra rules on typed values: (column, reason, predicate that is true for valid values).
Rule = tuple[str, str, Callable[[pa.Array], pa.Array]]


def _matches(pattern: str) -> Callable[[pa.Array], pa.Array]:
    return lambda values: pc.match_substring_regex(values, pattern)


def _hour(values: pa.Array) -> pa.Array:
    return pc.and_(pc.greater_equal(values, 0), pc.less_equal(values, 23))


@dataclass(frozen=True)
class CustomerDataset:
    """One kind of customer file and the Campaign import it becomes."""

    asset_name: str
    folder: str  # in the customer_source zone
    fields: tuple[FieldSpec, ...]
    rules: tuple[Rule, ...] = ()
    normalise_upper: tuple[str, ...] = ()
    description: str = ""

    @property
    def dataset(self) -> str:
        return self.folder

    @property
    def fmt(self) -> ExportFormat:
        names = {f.name: f.name for f in self.fields}
        return ExportFormat(self.asset_name, self.fields, (Layout("customer", names),))

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def file_name(self, snapshot: str) -> str:
        return f"customer_{self.dataset}_{snapshot}.csv"


PROFILES = CustomerDataset(
    asset_name="profile_import",
    folder="profiles",
    fields=(
        FieldSpec("external_id", "string", required=True, description="Campaign external ID."),
        FieldSpec("email", "email", required=True, personal=True, description="Email."),
        FieldSpec("first_name", "string", personal=True, description="First name."),
        FieldSpec("last_name", "string", personal=True, description="Last name."),
        FieldSpec("mobile_phone", "string", personal=True, description="+ and 6-15 digits."),
        FieldSpec("birth_date", "date", personal=True, description="YYYY-MM-DD."),
        FieldSpec("country_code", "string", description="ISO 3166-1 alpha-2."),
        FieldSpec("city", "string", description="City."),
        FieldSpec("zip_code", "string", personal=True, description="Postal code."),
    ),
    rules=(
        ("mobile_phone", "invalid_phone", _matches(r"^\+?[0-9]{6,15}$")),
        ("country_code", "invalid_country_code", _matches(r"^[A-Za-z]{2}$")),
    ),
    normalise_upper=("country_code",),
    description="Simplified customer profiles from the customer's source folder, as a Campaign "
    "recipient import file (reconcile on external_id).",
)
PERSONALIZATION = CustomerDataset(
    asset_name="personalization_import",
    folder="personalization",
    fields=(
        FieldSpec("external_id", "string", required=True, description="Campaign external ID."),
        FieldSpec(
            "preferred_channel",
            "string",
            allowed=frozenset({"email", "sms", "push", "direct_mail"}),
            description="Channel to orchestrate on.",
        ),
        FieldSpec("preferred_language", "string", description="ISO 639-1 [-region]."),
        FieldSpec("send_hour_utc", "int", description="Preferred send hour, 0-23 UTC."),
        FieldSpec("loyalty_tier", "string", description="Loyalty tier."),
        FieldSpec("offer_code", "string", description="Next-best offer code."),
        FieldSpec("offer_expiry", "date", description="Offer expiry, YYYY-MM-DD."),
    ),
    rules=(
        ("preferred_language", "invalid_language", _matches(r"^[a-z]{2}(-[A-Z]{2})?$")),
        ("send_hour_utc", "out_of_range:send_hour_utc", _hour),
    ),
    description="Orchestration and personalization attributes per recipient from the "
    "customer's source folder, as a Campaign import file (reconcile on external_id).",
)
CUSTOMER_DATASETS = (PROFILES, PERSONALIZATION)


# --------------------------------------------------------------------------------------------
# Reading a snapshot
# --------------------------------------------------------------------------------------------
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
    zone: DropZone, folder: str, settle_seconds: float, now: float
) -> tuple[list[Entry], list[str]]:
    """Source files to read now, and notes on the ones left for later."""
    chosen, notes = [], []
    for entry in zone.list(folder):
        if is_temporary_name(entry.name) or not entry.name.lower().endswith(SOURCE_SUFFIXES):
            notes.append(f"{entry.name}: not a CSV or Parquet file, ignored")
        elif entry.size == 0 or now - entry.modified_ts < settle_seconds:
            notes.append(f"{entry.name}: still being written, left for the next run")
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


# --------------------------------------------------------------------------------------------
# Reconciliation, staging, upload
# --------------------------------------------------------------------------------------------
def _counts(table: pa.Table, column: str) -> dict[str, int]:
    if table.num_rows == 0:
        return {}
    pairs = pc.value_counts(table.column(column)).to_pylist()
    return {p["values"]: p["counts"] for p in sorted(pairs, key=lambda p: p["values"])}


def reconcile(processed: Processed) -> dict[str, Any]:
    """Per file and in total: rows in = imported + quarantined."""
    imported = _counts(processed.good, SOURCE_FILE)
    quarantined = _counts(processed.rejects, "source_file")
    per_file = {}
    for f in processed.files:
        name = f["source_file"]
        rows_in = int(f.get("rows_in", 0))
        per_file[name] = {
            "rows_in": rows_in,
            "imported": imported.get(name, 0),
            "quarantined": quarantined.get(name, 0),
            "balanced": "unreadable" not in f
            and rows_in == imported.get(name, 0) + quarantined.get(name, 0),
        }
    rows_in = sum(v["rows_in"] for v in per_file.values())
    return {
        "rows_in": rows_in,
        "imported": processed.good.num_rows,
        "quarantined": processed.rejects.num_rows,
        "quarantined_by_reason": _counts(processed.rejects, "reason"),
        "unreadable_files": dict(sorted(processed.unreadable.items())),
        "files": per_file,
        "balanced": rows_in == processed.good.num_rows + processed.rejects.num_rows
        and all(v["balanced"] for v in per_file.values()),
    }


def stage(
    warehouse: Warehouse, snapshot: Snapshot, processed: Processed, tmp: Path
) -> dict[str, Any]:
    """Staged import file + quarantine in the warehouse, then the manifest (the commit point)."""
    dataset = snapshot.dataset
    folder = snapshot.snapshot_id
    name = dataset.file_name(folder)
    data = csv_bytes(processed.good.select(list(dataset.columns)), dataset.columns)
    local = tmp / name
    local.write_bytes(data)
    warehouse.put_file(dataset.asset_name, folder, name, local)
    quarantine = tmp / "quarantine.parquet"
    pq.write_table(processed.rejects, quarantine, compression="zstd")
    warehouse.put_file(dataset.asset_name, folder, "quarantine.parquet", quarantine)
    reconciliation = reconcile(processed)
    manifest = {
        "dataset": dataset.dataset,
        "snapshot_id": folder,
        "columns": list(dataset.columns),
        "file": {
            "name": name,
            "rows": processed.good.num_rows,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
        "source_files": processed.files,
        "reconciliation": reconciliation,
        "status": "staged" if reconciliation["balanced"] else "blocked",
    }
    warehouse.put_json(dataset.asset_name, folder, "manifest.json", manifest)
    return manifest


def upload_staged(
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    settings: PipelineSettings,
    asset_name: str,
    manifest: dict[str, Any],
) -> Entry:
    """Verify the staged bytes against the manifest, upload atomically, then the marker."""
    f = manifest["file"]
    marker = {
        "file": f["name"],
        "rows": f["rows"],
        "bytes": f["bytes"],
        "sha256": f["sha256"],
        "part": 1,
        "parts": 1,
        "dataset": manifest["dataset"],
        "snapshot_id": manifest["snapshot_id"],
        "source_files": sorted(s["source_file"] for s in manifest["source_files"]),
        "columns": manifest["columns"],
    }
    return upload_verified(
        warehouse,
        campaign_sftp,
        (asset_name, manifest["snapshot_id"], f["name"]),
        join(settings.campaign_import_folder, f["name"]),
        f["sha256"],
        marker,
    )


def run_import(
    dataset: CustomerDataset,
    customer_source: DropZone,
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    settings: PipelineSettings,
    now: float | None = None,
    log: Callable[[str], None] = lambda _: None,
    ledger: FileLedger | None = None,
    run_id: str | None = None,
) -> dict[str, Any] | None:
    """One snapshot end to end; None when the source folder holds no file to read."""
    files, notes = settled_files(
        customer_source,
        dataset.folder,
        settings.file_settle_seconds,
        now if now is not None else datetime.now(UTC).timestamp(),
    )
    for note in notes:
        log(note)
    if not files:
        return None
    snapshot = Snapshot(dataset, files)
    with tempfile.TemporaryDirectory(prefix="rtcdp-customer-") as tmp:
        processed = process_files(customer_source, snapshot, settings, Path(tmp))
        manifest = stage(warehouse, snapshot, processed, Path(tmp))
    if ledger is not None:
        _record_in_ledger(ledger, customer_source, snapshot, processed, manifest, run_id)
    if manifest["status"] != "staged":
        rec = manifest["reconciliation"]
        raise Failure(
            description=f"{dataset.asset_name} snapshot {snapshot.snapshot_id} is not uploaded: "
            f"unreadable files {rec['unreadable_files']}, counts balanced: {rec['balanced']}. "
            "Fix or remove the files in the customer source folder.",
            metadata={"reconciliation": MetadataValue.json(rec)},
        )
    # Data-usage policies gate the upload: the file never reaches Campaign when a policy denies
    # exporting one of its fields for the destination's marketing actions.
    violations = governance.load().evaluate(dataset.asset_name, manifest["columns"])
    if violations:
        raise Failure(
            description=f"{dataset.asset_name} snapshot {snapshot.snapshot_id} is not uploaded: "
            + "; ".join(v.explain() for v in violations),
            metadata={"violations": MetadataValue.json([v.explain() for v in violations])},
        )
    upload_staged(warehouse, campaign_sftp, settings, dataset.asset_name, manifest)
    return manifest


def _record_in_ledger(
    ledger: FileLedger,
    zone: DropZone,
    snapshot: Snapshot,
    processed: Processed,
    manifest: dict[str, Any],
    run_id: str | None,
) -> None:
    """The customer's files stay in their folder (a snapshot is re-read until replaced)."""
    per_file = manifest["reconciliation"]["files"]
    zone_id = zone.describe()
    for entry in snapshot.files:
        unreadable = processed.unreadable.get(entry.name)
        ledger.record(
            FileVersion(zone_id, snapshot.dataset.folder, entry.name, entry.identity),
            entry,
            dataset=snapshot.dataset.asset_name,
            status="quarantined" if unreadable else "processed",
            location=entry.path,
            in_folder=True,
            partition=snapshot.snapshot_id,
            run_id=run_id,
            reason=unreadable,
            sha256=snapshot.digests.get(entry.name),
            rows=None if unreadable else per_file.get(entry.name, {}).get("rows_in"),
        )


def latest_manifest(warehouse: Warehouse, asset_name: str, snapshot_id: str) -> dict | None:
    return warehouse.get_json(asset_name, snapshot_id, "manifest.json")


# --------------------------------------------------------------------------------------------
# Assets and checks
# --------------------------------------------------------------------------------------------
def _build_asset(dataset: CustomerDataset) -> AssetsDefinition:
    @asset(
        name=dataset.asset_name,
        group_name=GROUP,
        kinds={"csv", "sftp"},
        description=dataset.description,
        pool="campaign_sftp",
    )
    def customer_import(
        context: AssetExecutionContext,
        customer_source: DropZone,
        warehouse: Warehouse,
        campaign_sftp: DropZone,
        settings: PipelineSettings,
        file_ledger: FileLedger,
    ) -> MaterializeResult:
        manifest = run_import(
            dataset,
            customer_source,
            warehouse,
            campaign_sftp,
            settings,
            log=context.log.info,
            ledger=file_ledger,
            run_id=context.run.run_id,
        )
        if manifest is None:
            return MaterializeResult(
                metadata={
                    "dagster/row_count": 0,
                    "status": f"no files in {customer_source.describe()} / {dataset.folder}",
                }
            )
        rec = manifest["reconciliation"]
        return MaterializeResult(
            metadata={
                "dagster/row_count": manifest["file"]["rows"],
                "snapshot_id": manifest["snapshot_id"],
                "rows_in": rec["rows_in"],
                "quarantined": rec["quarantined"],
                "quarantined_by_reason": MetadataValue.json(rec["quarantined_by_reason"]),
                "files": MetadataValue.json(rec["files"]),
                "import_file": join(settings.campaign_import_folder, manifest["file"]["name"]),
                "sha256": manifest["file"]["sha256"],
                "warehouse_path": warehouse.path(
                    dataset.asset_name, manifest["snapshot_id"], "manifest.json"
                ),
            }
        )

    return customer_import


def _snapshot_of_last_materialization(context: AssetCheckExecutionContext, key: Any) -> str | None:
    event = context.instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("snapshot_id")
    return None if value is None else str(value.value)


def import_file_result(
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    settings: PipelineSettings,
    dataset: CustomerDataset,
    snapshot_id: str | None,
) -> AssetCheckResult:
    """Recount what is stored and uploaded: staged file, quarantine and SFTP file agree."""
    if snapshot_id is None:
        return AssetCheckResult(passed=True, metadata={"note": "no snapshot imported yet"})
    manifest = latest_manifest(warehouse, dataset.asset_name, snapshot_id)
    if manifest is None:
        return AssetCheckResult(passed=False, metadata={"problem": "manifest missing"})
    problems = []
    name = manifest["file"]["name"]
    target = join(settings.campaign_import_folder, name)
    if campaign_sftp.stat(target) is None or campaign_sftp.stat(f"{target}.done") is None:
        problems.append(f"{target} or its .done marker is missing on the SFTP server")
    else:
        uploaded = campaign_sftp.read_bytes(target)
        if hashlib.sha256(uploaded).hexdigest() != manifest["file"]["sha256"]:
            problems.append(f"{target} differs from the staged file")
        # Records, not lines: csv_bytes quotes values that hold line breaks.
        rows = pacsv.read_csv(
            pa.BufferReader(uploaded),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in manifest["columns"]}
            ),
        ).num_rows
        marker = json.loads(campaign_sftp.read_bytes(f"{target}.done"))
        if not rows == marker["rows"] == manifest["file"]["rows"]:
            problems.append(f"rows: file {rows}, marker {marker['rows']}")
    quarantined = warehouse.row_count(dataset.asset_name, snapshot_id, "quarantine.parquet") or 0
    rec = manifest["reconciliation"]
    if rec["rows_in"] != manifest["file"]["rows"] + quarantined:
        problems.append(
            f"rows in {rec['rows_in']} != imported {manifest['file']['rows']} + "
            f"quarantined {quarantined}"
        )
    return AssetCheckResult(
        passed=not problems,
        metadata={
            "snapshot_id": snapshot_id,
            "rows_in": rec["rows_in"],
            "imported": manifest["file"]["rows"],
            "quarantined": quarantined,
            "problems": MetadataValue.json(problems),
        },
    )


def _build_check(dataset: CustomerDataset, asset_def: AssetsDefinition) -> Any:
    @asset_check(
        asset=asset_def,
        name="import_reconciliation",
        blocking=False,
        description="Rows in = imported + quarantined, recounted from the stored quarantine; "
        "the uploaded file and its .done marker match the staged file.",
        metadata={"guardrail/source": "project: counts reconcile", "guardrail/limit": "0"},
    )
    def customer_import_reconciliation(
        context: AssetCheckExecutionContext,
        warehouse: Warehouse,
        campaign_sftp: DropZone,
        settings: PipelineSettings,
    ) -> AssetCheckResult:
        snapshot_id = _snapshot_of_last_materialization(context, asset_def.key)
        return import_file_result(warehouse, campaign_sftp, settings, dataset, snapshot_id)

    return customer_import_reconciliation


profile_import = _build_asset(PROFILES)
personalization_import = _build_asset(PERSONALIZATION)
profile_import_checks = _build_check(PROFILES, profile_import)
personalization_import_checks = _build_check(PERSONALIZATION, personalization_import)

customer_import_job = define_asset_job(
    "customer_import_job",
    selection=AssetSelection.assets(profile_import, personalization_import),
    executor_def=in_process_executor,
    description="Validate the customer's profile and personalization files and upload them as "
    "Campaign import files.",
)


ASSETS_BY_DATASET = {
    PROFILES.asset_name: profile_import,
    PERSONALIZATION.asset_name: personalization_import,
}


def plan_customer_tick(
    zone: DropZone, settle_seconds: float, now: float
) -> tuple[list[RunRequest], list[str]]:
    """One run per dataset whose settled files changed; the run key names the file versions."""
    requests, notes = [], []
    for dataset in CUSTOMER_DATASETS:
        files, waiting = settled_files(zone, dataset.folder, settle_seconds, now)
        notes += waiting
        if not files:
            continue
        versions = "\n".join(f"{e.name}@{e.identity}" for e in sorted(files))
        digest = hashlib.sha256(versions.encode()).hexdigest()[:16]
        requests.append(
            RunRequest(
                run_key=f"{dataset.asset_name}:{digest}",
                asset_selection=[ASSETS_BY_DATASET[dataset.asset_name].key],
                tags={"rtcdp/customer_dataset": dataset.dataset},
            )
        )
    return requests, notes


@sensor(
    name="customer_source_sensor",
    job=customer_import_job,
    minimum_interval_seconds=120,
    default_status=DefaultSensorStatus.RUNNING,
    description="Watches the customer source folders and requests an import of a dataset "
    "whenever its set of settled files changes (run keys make each set run once).",
)
def customer_source_sensor(
    context: SensorEvaluationContext, customer_source: DropZone, settings: PipelineSettings
) -> SensorResult | SkipReason:
    try:
        requests, notes = plan_customer_tick(
            customer_source, settings.file_settle_seconds, datetime.now(UTC).timestamp()
        )
    except DropZoneUnavailable as exc:
        return SkipReason(f"customer source unavailable, will retry: {exc}")
    for note in notes:
        context.log.info(note)
    if not requests:
        return SkipReason("; ".join(notes[:20]) or "no customer files")
    return SensorResult(run_requests=requests)


@dataclass
class CustomerImportDefinitions:
    assets: list[AssetsDefinition]
    asset_checks: list[Any]
    jobs: list[Any]
    sensors: list[Any]


customer_import_defs = CustomerImportDefinitions(
    assets=[profile_import, personalization_import],
    asset_checks=[profile_import_checks, personalization_import_checks],
    jobs=[customer_import_job],
    sensors=[customer_source_sensor],
)
