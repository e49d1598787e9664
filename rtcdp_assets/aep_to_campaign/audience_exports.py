"""AEP audience exports → audience membership: file names, completeness, the sensor, two assets.

AEP's batch destinations write one file per audience and export into the Azure Blob container
behind the `aep_destination` resource (folder `audience_settings.destination_folder`):

    <destination>_<audience id>[_<optional parts>]_<timestamp>[_<n>].<extension>
    manifest-<destinationId>-<dataflowRunId>.json                 (optional)

with `<extension>` one of csv, csv.gz, json, json.gz, parquet.

- `<timestamp>` is `YYYYMMDD_HHMMSS` (SDK and sample manifest), `MMDDYYYY_HHMMSS` (what the UI
  documentation says) or a 10-digit Unix timestamp (adobe-formats §a1). The two 8+6-digit forms
  cannot be confused: a YYYYMMDD date of this century starts with `20`, which is no month.
  Times are UTC. Every form is normalised to the export stamp `YYYYMMDD_HHMMSS`.
- `<n>` numbers the split files of one export: AEP starts a new file every 5,000,000 rows
  (`name.csv`, `name_2.csv`, `name_3.csv`, …). Every part but the last holds exactly
  `rows_per_file` rows; a part that does not makes the export `inconsistent_split`.
- The manifest lists `exportResults[]` (`sinkPath`, `name`, `size`) of one dataflow run, for
  possibly many audiences; files are matched to it by name.
- Optional name parts AEP can insert between the audience ID and the timestamp (audience name,
  dataflow name, sandbox, ...) are accepted and ignored; custom text after the timestamp is not.
- One audience is expected from one destination; the membership of an audience activated to
  two destinations that both land here would interleave.

**Completeness.** An export (destination, audience, timestamp) is processed only when it is
complete: parts 1..n all present, none modified within `settings.file_settle_seconds`, and, when
a manifest lists any of its files (or the destination has `manifest_required`), every listed
file present with the listed size and no part missing from the manifest. Otherwise it waits and
the sensor says why (`waiting for split file(s) _2`, `waiting for the manifest`, `x.csv is 120
bytes, manifest says 140`). An export still incomplete after `pending_expiry_hours` is given up
with a note.

**The sensor** (`aep_audience_export_sensor`) lists the folder once per tick. Each complete
export becomes exactly one run of `audience_import_job` for the audience's dynamic partition
(`DynamicPartitionsDefinition("audiences")`, one key per audience ID). The run key is the export
ID plus a digest of its files' names and ETags, so one export runs once and a rewritten export
runs again; the tags name the destination, audience, export time and the files with their ETags
and sizes. Partition keys are added only for audiences the instance does not know yet (one query
for the known keys per tick; never re-added). The cursor is the highest file time already
handled, the file digests of the exports requested at exactly that time, and the exports still
waiting (with when they were first seen), so a tick costs one listing however many exports were
processed before, and a tick that finds no file newer than the watermark parses no name at all.
At most `max_runs_per_tick` runs are requested per tick; a full tick stops the watermark after
the last export it requested, so the rest come next tick. When it registers new audiences it
also reports the `audience_count` check. (Measured: a tick over 8,000 files of 4,000 audiences
takes about 0.3 s on the 2-core build box.)

A run reprocesses the export named in its tags, identically; if AEP's retention has removed the
files meanwhile, the rows stored for exactly those files (same ETags) are kept. A run without
tags (started by hand, a backfill) takes the next unprocessed export of an incremental
destination, else the latest complete export.

**Reading.** CSV goes through `ingest.ingest_file` after `AepCsvStream` has rewritten the
destination's options (delimiter, quote, escape, null output, header, UTF-16) into plain
RFC 4180 UTF-8; gzip is inflated with the same bomb guard. JSON Lines and Parquet files are
flattened (`person.name.firstName` → `person_name_firstName`, as in AEP's CSV headers) and go
through the same validation.

Runs of one audience must not overlap (membership is applied export after export): the run tag
`rtcdp/audience_id` is there for the instance's run queue, see `AUDIENCE_RUN_QUEUE_CONFIG`.

**Source files stay where AEP put them** (AEP owns the container and its retention). What was
processed is recorded in the warehouse instead:

    segment_exports/<audience>/<stamp>/data.parquet        typed member rows
    segment_exports/<audience>/<stamp>/rejects.parquet     rows quarantined with a reason
    segment_exports/<audience>/<stamp>/export.json         files, ETags, counts, status, columns
    segment_exports/<audience>/manifest.json               index of its exports (written last)
    audience_membership/<audience>/<stamp>/members.parquet state after the export
    audience_membership/<audience>/<stamp>/diff.parquet    added / removed / unchanged
    audience_membership/<audience>/manifest.json           index of applied exports (written last)

(`<audience>` is the audience ID, `<stamp>` the export stamp `YYYYMMDD_HHMMSS`.)

`segment_exports` columns: `external_id`, `email`, `status` (realized / existing / exited; a file
without the status column means every row is realized), `last_qualification_time`,
`_source_file`, `_line_number`. A row without the join identity (`audience_settings.join_identity`)
is a reject `missing_required_value`; a file that cannot be read at all (`corrupt_gzip`,
`truncated_gzip`, `bad_encoding`, `unknown_layout` when the identity column is missing,
`inconsistent_split`, ...) quarantines the whole export, which is then not applied.

`audience_membership` rows: `key` (the join identity), `external_id`, `email`, `status`
(`realized` = entered with this export, `existing` = still a member, `exited` = left with this
export), `aep_status` (as exported; null for members carried over by an incremental export),
`last_qualification_time`, `member_since` (export stamp) and `in_export`. A full export replaces
the membership; an incremental one applies realized/existing/exited to the previous state (the
first incremental file, a full backfill, applies to an empty state). The diff of an export is
always computed against the state after the previous applied export, so re-running an export
gives the same result. Duplicate rows of one member keep the latest qualification (AEP's rule)
and count as `duplicate_member`; an `exited` row of someone who was not a member counts as
`exited_non_member`.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions at definition time.
"""

import codecs
import csv
import hashlib
import io
import json
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from dagster import (
    AssetCheckEvaluation,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSelection,
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    in_process_executor,
    sensor,
)

from resources.audience_settings import AepDestinationOptions, AudienceSettings
from resources.drop_zones import DropZone, DropZoneUnavailable, Entry, is_temporary_name
from resources.file_ledger import FileLedger, FileVersion
from resources.settings import PipelineSettings
from resources.warehouse import ParquetSink, Warehouse
from rtcdp_assets.shared.ingest import (
    LINE_NUMBER,
    REJECT_SCHEMA,
    SOURCE_FILE,
    CsvOptions,
    ExportFormat,
    FieldSpec,
    FileResult,
    IngestedBatch,
    Layout,
    UnreadableFile,
    _GuardedStream,
    ingest_file,
)
from rtcdp_assets.shared.masking import mask_text, masked_preview

AUDIENCES_PARTITION_NAME = "audiences"
audience_partitions = DynamicPartitionsDefinition(name=AUDIENCES_PARTITION_NAME)

SEGMENT_EXPORTS = "segment_exports"
AUDIENCE_MEMBERSHIP = "audience_membership"
GROUP = "aep_to_campaign"

TAG_DESTINATION = "rtcdp/aep_destination"
TAG_AUDIENCE = "rtcdp/audience_id"
TAG_EXPORT_TIME = "rtcdp/export_time"
TAG_EXPORT_FILES = "rtcdp/export_files"
TAG_EXPORT_MANIFEST = "rtcdp/export_manifest"

STATUSES = ("realized", "existing", "exited")
MEMBER_STATUSES = frozenset({"realized", "existing"})

# dagster.yaml for the instance: one run at a time per audience, in submission (export) order.
AUDIENCE_RUN_QUEUE_CONFIG = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    tag_concurrency_limits:
      - key: "rtcdp/audience_id"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
"""

# --------------------------------------------------------------------------------------------
# File names
# --------------------------------------------------------------------------------------------
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
EXPORT_NAME_RE = re.compile(
    rf"^(?P<destination>.+?)_(?P<audience>{_UUID})(?:_(?P<extra>.+?))?"
    r"_(?P<stamp>\d{8}_\d{6}|\d{10})(?:_(?P<part>[2-9]|[1-9]\d{1,3}))?"
    r"\.(?P<ext>csv|csv\.gz|json|json\.gz|parquet)$",
    re.IGNORECASE,
)
MANIFEST_NAME_RE = re.compile(r"^manifest-(?P<ids>[0-9A-Za-z-]+)\.json$", re.IGNORECASE)
STAMP_FORMAT = "%Y%m%d_%H%M%S"

StampForm = Literal["YYYYMMDD_HHMMSS", "MMDDYYYY_HHMMSS", "unix"]
FileKind = Literal["csv", "json", "parquet"]


def parse_stamp(text: str) -> tuple[datetime, StampForm] | None:
    """An AEP file-name timestamp in any of its three forms → (UTC time, form)."""
    # datetime() rather than strptime: the sensor parses every name in the container each tick.
    try:
        if len(text) == 10 and text.isdigit():
            return datetime.fromtimestamp(int(text), tz=UTC), "unix"
        d, t = text[:8], text[9:]
        clock = (int(t[:2]), int(t[2:4]), int(t[4:6]))
        if d.startswith("20"):
            return datetime(int(d[:4]), int(d[4:6]), int(d[6:8]), *clock, tzinfo=UTC), (
                "YYYYMMDD_HHMMSS"
            )
        return datetime(int(d[4:8]), int(d[:2]), int(d[2:4]), *clock, tzinfo=UTC), (
            "MMDDYYYY_HHMMSS"
        )
    except (ValueError, OverflowError, OSError):
        return None


@dataclass(frozen=True)
class ExportFileName:
    """What AEP put in the name of one exported file."""

    name: str
    destination: str
    audience_id: str
    exported_at: datetime
    stamp_form: StampForm
    part: int
    kind: FileKind
    compressed: bool

    @property
    def stamp(self) -> str:
        return self.exported_at.strftime(STAMP_FORMAT)

    @property
    def export_id(self) -> str:
        return f"{self.destination}_{self.audience_id}_{self.stamp}"


def parse_export_name(name: str) -> ExportFileName | None:
    name = name.rsplit("/", 1)[-1]
    m = EXPORT_NAME_RE.match(name)
    if not m:
        return None
    parsed = parse_stamp(m["stamp"])
    if parsed is None:
        return None
    ext = m["ext"].lower()
    return ExportFileName(
        name=name,
        destination=m["destination"],
        audience_id=m["audience"].lower(),
        exported_at=parsed[0],
        stamp_form=parsed[1],
        part=int(m["part"] or 1),
        kind=ext.split(".")[0],  # type: ignore[arg-type]
        compressed=ext.endswith(".gz"),
    )


@dataclass(frozen=True)
class AepManifest:
    """manifest-<destinationId>-<dataflowRunId>.json (adobe-formats §a3)."""

    name: str
    flow_run_id: str
    scheduled_time: str
    sizes: Mapping[str, int]  # file name -> size in bytes


class ManifestError(ValueError):
    pass


def parse_manifest(name: str, data: bytes) -> AepManifest:
    try:
        doc = json.loads(data)
        results = doc["exportResults"]
        sizes = {str(PurePosixPath(r["name"]).name): int(r["size"]) for r in results}
        return AepManifest(
            name=name,
            flow_run_id=str(doc.get("flowRunId", "")),
            scheduled_time=str(doc.get("scheduledTime", "")),
            sizes=sizes,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{name}: not an AEP manifest ({type(exc).__name__}: {exc})") from exc


# --------------------------------------------------------------------------------------------
# Exports and their completeness
# --------------------------------------------------------------------------------------------
@dataclass
class AudienceExport:
    """The files of one export of one audience, as listed now."""

    destination: str
    audience_id: str
    exported_at: datetime
    parts: dict[int, tuple[ExportFileName, Entry]] = field(default_factory=dict)
    manifest: AepManifest | None = None

    @cached_property
    def stamp(self) -> str:
        return self.exported_at.strftime(STAMP_FORMAT)

    @property
    def export_id(self) -> str:
        return f"{self.destination}_{self.audience_id}_{self.stamp}"

    @property
    def files(self) -> list[tuple[ExportFileName, Entry]]:
        return [self.parts[p] for p in sorted(self.parts)]

    @property
    def newest(self) -> float:
        return max(e.modified_ts for _, e in self.parts.values())

    @property
    def oldest(self) -> float:
        return min(e.modified_ts for _, e in self.parts.values())

    def file_identities(self) -> list[dict[str, Any]]:
        return [{"name": n.name, "etag": e.identity, "size": e.size} for n, e in self.files]

    @cached_property
    def identity(self) -> str:
        """Digest of the files' names and ETags: changes whenever AEP rewrites any part."""
        text = "\n".join(f"{f['name']}@{f['etag']}" for f in self.file_identities())
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def run_key(self) -> str:
        return f"aep-export:{self.export_id}@{self.identity}"

    def tags(self) -> dict[str, str]:
        tags = {
            TAG_DESTINATION: self.destination,
            TAG_AUDIENCE: self.audience_id,
            TAG_EXPORT_TIME: self.stamp,
            TAG_EXPORT_FILES: json.dumps(self.file_identities(), separators=(",", ":")),
        }
        if self.manifest is not None:
            tags[TAG_EXPORT_MANIFEST] = self.manifest.name
        return tags


@dataclass
class Listing:
    exports: dict[str, AudienceExport]
    manifests: list[Entry]
    unrecognised: list[Entry]


def group_listing(entries: Sequence[Entry]) -> Listing:
    exports: dict[str, AudienceExport] = {}
    manifests: list[Entry] = []
    unrecognised: list[Entry] = []
    for entry in entries:
        name = entry.path.rsplit("/", 1)[-1]
        if MANIFEST_NAME_RE.match(name):
            manifests.append(entry)
            continue
        # The pattern already refuses temporary suffixes (.part, .tmp, ...); hidden names are
        # what an uploader may still be writing.
        parsed = parse_export_name(name)
        if parsed is None or name.startswith((".", "~")):
            if not is_temporary_name(name):
                unrecognised.append(entry)
            continue
        export = exports.setdefault(
            parsed.export_id,
            AudienceExport(parsed.destination, parsed.audience_id, parsed.exported_at),
        )
        export.parts[parsed.part] = (parsed, entry)
    return Listing(exports, manifests, unrecognised)


def load_manifests(
    manifests: Sequence[Entry], read: Callable[[Entry], bytes], notes: list[str] | None = None
) -> dict[str, AepManifest]:
    """File name -> the newest manifest that lists it. An unreadable manifest is noted, skipped."""
    by_file: dict[str, tuple[float, AepManifest]] = {}
    for entry in manifests:
        try:
            manifest = parse_manifest(entry.name, read(entry))
        except ManifestError as exc:
            if notes is not None:
                notes.append(str(exc))
            continue
        for name in manifest.sizes:
            if name not in by_file or entry.modified_ts > by_file[name][0]:
                by_file[name] = (entry.modified_ts, manifest)
    return {name: m for name, (_, m) in by_file.items()}


def assess_export(
    export: AudienceExport,
    options: AepDestinationOptions,
    manifests_by_file: Mapping[str, AepManifest],
    now: float,
    settle_seconds: float,
) -> str | None:
    """None when the export is complete; otherwise why it has to wait.

    Sets `export.manifest` to the manifest that lists its files, if any.
    """
    present = {n.name: e for n, e in export.parts.values()}
    highest = max(export.parts)
    missing = [p for p in range(1, highest + 1) if p not in export.parts]
    if missing:
        names = ", ".join("the first file" if p == 1 else f"_{p}" for p in missing)
        return f"waiting for split file(s) {names} (found parts {sorted(export.parts)})"
    young = sorted(n for n, e in present.items() if now - e.modified_ts < settle_seconds)
    if young:
        return (
            f"{', '.join(young)} modified less than {settle_seconds:g} s ago (still being written)"
        )
    manifest = next((manifests_by_file[n] for n in sorted(present) if n in manifests_by_file), None)
    export.manifest = manifest
    if manifest is None:
        if options.manifest_required:
            return (
                "waiting for the manifest (manifest-<destinationId>-<dataflowRunId>.json) "
                "listing its files"
            )
        return None
    listed = {
        name: size
        for name, size in manifest.sizes.items()
        if (p := parse_export_name(name)) is not None and p.export_id == export.export_id
    }
    absent = sorted(set(listed) - set(present))
    if absent:
        return f"waiting for {', '.join(absent)} listed in {manifest.name}"
    extra = sorted(set(present) - set(listed))
    if extra:
        return f"{', '.join(extra)} not listed in {manifest.name}"
    wrong = [
        f"{name} is {present[name].size} bytes, {manifest.name} says {size}"
        for name, size in sorted(listed.items())
        if present[name].size != size
    ]
    if wrong:
        return "; ".join(wrong)
    return None


# --------------------------------------------------------------------------------------------
# The sensor's decision, from a listing and the cursor alone
# --------------------------------------------------------------------------------------------
@dataclass
class AudienceTickPlan:
    run_requests: list[RunRequest]
    new_audiences: list[str]
    cursor: str | None  # None: unchanged
    notes: list[str]
    audiences_by_destination: dict[str, set[str]]
    waiting: int = 0


def _edge(entries: Sequence[Entry], watermark: float) -> str:
    """Digest of the file versions sitting exactly at the watermark."""
    at = sorted(f"{e.path}@{e.identity}" for e in entries if e.modified_ts == watermark)
    return hashlib.sha256("\n".join(at).encode()).hexdigest()[:16]


def plan_audience_tick(
    entries: Sequence[Entry],
    cursor: str | None,
    now: float,
    audience_settings: AudienceSettings,
    settle_seconds: float,
    known_audiences: set[str],
    read: Callable[[Entry], bytes],
) -> AudienceTickPlan:
    state = json.loads(cursor) if cursor else {}
    watermark = float(state.get("watermark", 0.0))
    done_at_watermark = set(state.get("done", []))
    pending: dict[str, float] = {k: float(v) for k, v in state.get("pending", {}).items()}
    if (
        not pending
        and not state.get("backlog")
        and all(e.modified_ts <= watermark for e in entries)
        and _edge(entries, watermark) == state.get("edge")
    ):
        # The usual tick: nothing newer than what was handled (not even a file rewritten within
        # the watermark's second), nothing waiting. Parsing the names of a container that
        # keeps days of exports would be wasted work.
        return AudienceTickPlan([], [], cursor, [], {}, 0)
    listing = group_listing(entries)
    notes: list[str] = []

    candidates = [
        x
        for x in listing.exports.values()
        if x.newest > watermark
        or (x.newest == watermark and x.identity not in done_at_watermark)
        or x.export_id in pending
    ]
    manifests_by_file: dict[str, AepManifest] = {}
    if candidates:
        # AEP writes a manifest after its files: older manifests cannot list these exports.
        oldest = min(x.oldest for x in candidates)
        recent = [m for m in listing.manifests if m.modified_ts >= oldest - 3600]
        manifests_by_file = load_manifests(recent, read, notes)

    requests: list[RunRequest] = []
    new_audiences: set[str] = set()
    new_pending: dict[str, float] = {}
    deferred = 0
    # In file-time order, so that a full tick can stop the watermark right after the last export
    # it requested: the exports left over are candidates again next tick without the cursor
    # having to list them (a first tick over 4,000 audiences would not fit in a cursor).
    ordered = sorted(candidates, key=lambda x: (x.newest, x.exported_at, x.export_id))
    for export in ordered:
        options = audience_settings.destination(export.destination)
        reason = assess_export(export, options, manifests_by_file, now, settle_seconds)
        if reason is not None:
            first_seen = pending.get(export.export_id, now)
            if now - first_seen > audience_settings.pending_expiry_hours * 3600:
                notes.append(f"{export.export_id}: gave up waiting ({reason})")
                continue
            new_pending[export.export_id] = first_seen
            notes.append(f"{export.export_id}: {reason}")
            continue
        if len(requests) >= audience_settings.max_runs_per_tick:
            deferred += 1
            continue
        requests.append(
            RunRequest(run_key=export.run_key, partition_key=export.audience_id, tags=export.tags())
        )
        if export.audience_id not in known_audiences:
            new_audiences.add(export.audience_id)
    # Exports are remembered by their 16-character file digest: a whole dataflow run can share
    # one second of Blob time, and the cursor must stay small.
    requested_keys = {r.run_key for r in requests}
    newest_requested = {x.identity: x.newest for x in ordered if x.run_key in requested_keys}
    if deferred:
        notes.append(f"{deferred} complete export(s) left for the next tick")
        new_watermark = max([watermark, *newest_requested.values()])
    else:
        new_watermark = max([watermark, *(x.newest for x in listing.exports.values())])
    done = {k for k, t in newest_requested.items() if t == new_watermark}
    if new_watermark == watermark:
        done |= done_at_watermark
    unrecognised = [e.name for e in listing.unrecognised if e.modified_ts >= watermark]
    if unrecognised:
        notes.append(
            "left alone, not an AEP audience export name "
            "(<destination>_<audience id>_<YYYYMMDD_HHMMSS|MMDDYYYY_HHMMSS|unix>[_n].csv…): "
            + ", ".join(sorted(unrecognised)[:20])
        )
    by_destination: dict[str, set[str]] = {}
    for export in listing.exports.values():
        by_destination.setdefault(export.destination, set()).add(export.audience_id)
    new_cursor = json.dumps(
        {
            "watermark": new_watermark,
            "done": sorted(done),
            "pending": new_pending,
            "backlog": deferred > 0,
            "edge": _edge(entries, new_watermark),
        },
        sort_keys=True,
    )
    return AudienceTickPlan(
        run_requests=requests,
        new_audiences=sorted(new_audiences),
        cursor=new_cursor,
        notes=notes,
        audiences_by_destination=by_destination,
        waiting=len(new_pending),
    )


# --------------------------------------------------------------------------------------------
# Reading AEP files: the destination's CSV options, JSON and Parquet, all through ingest_file
# --------------------------------------------------------------------------------------------
class AepCsvStream(io.RawIOBase):
    """Rewrites an AEP CSV stream into what `ingest_file` reads: UTF-8, RFC 4180 quoting.

    AEP writes CSV with Spark's options (adobe-formats §a2): quotes inside a quoted value are
    escaped with the escape character (`\\"`, not `""`), a null may be written as `NULL`, the
    file may be UTF-16 or have no header.

    - `<esc><quote>` becomes `""` and `<esc><esc>` one escape character, everywhere, the way
      pyarrow's and Python's CSV readers read escapes (Spark quotes every value holding a
      quote, so `<esc><quote>` only occurs inside quotes); other escape characters stay.
    - Null tokens are removed only where they are a whole unquoted value.
    - With quoting off (AEP's "Null Character") the stream is read with a quote character that
      does not occur in text (\\x01), so `"` stays an ordinary character.

    The work per block is C-level (split, count, regex); Python runs once per escape sequence.
    """

    def __init__(
        self, source: BinaryIO | io.RawIOBase, options: AepDestinationOptions, block: int = 1 << 20
    ) -> None:
        self._source = source
        self._block = block
        self._encoding = options.encoding
        self._decoder = (
            None
            if options.encoding == "utf-8"
            else codecs.getincrementaldecoder(options.encoding)("strict")
        )
        self._delimiter = options.delimiter
        self._quote = options.quote_char.encode() if options.quote_char else None
        esc = options.escape_char.encode() if options.escape_char else None
        self._esc = esc if self._quote is not None and esc and esc != self._quote else None
        tokens = sorted({options.null_value, options.empty_value} - {"", '""'})
        self._tokens = [t.encode() for t in tokens]
        delim = re.escape(options.delimiter.encode())
        self._null_re = (
            re.compile(
                b"(?<=["
                + delim
                + b"\\n])(?:"
                + b"|".join(re.escape(t.encode()) for t in tokens)
                + b")(?=["
                + delim
                + b"\\r\\n]|\\Z)"
            )
            if tokens
            else None
        )
        self._escape_re = (
            re.compile(re.escape(self._esc) + b"(.)", re.DOTALL) if self._esc is not None else None
        )
        self._in_quote = False
        self._prev = b"\n"
        self._carry = b""
        self._pending = b""
        self._eof = False
        self.header: list[str] | None = None
        if not options.header:
            line = io.StringIO()
            csv.writer(line, delimiter=options.delimiter, lineterminator="\n").writerow(
                options.columns
            )
            self._pending = line.getvalue().encode()
            self.header = list(options.columns)

    @property
    def csv_options(self) -> CsvOptions:
        # No quoting: a control character that never occurs in an export stands in for the
        # quote (pyarrow refuses NUL), so `"` is read as an ordinary character.
        quote = self._quote.decode() if self._quote is not None else "\x01"
        return CsvOptions(delimiter=self._delimiter, quote_char=quote, encoding="utf-8")

    def readable(self) -> bool:
        return True

    def _decode(self, data: bytes, final: bool) -> bytes:
        if self._decoder is None:
            return data
        try:
            return self._decoder.decode(data, final).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnreadableFile("bad_encoding", f"the file is not valid {self._encoding}") from exc

    def _nulls(self, segment: bytes, prev: bytes) -> bytes:
        if self._null_re is None or not segment:
            return segment
        return self._null_re.sub(b"", prev + segment)[len(prev) :]

    def _transform(self, data: bytes) -> bytes:
        if self._escape_re is not None and self._esc in data:  # type: ignore[operator]
            # Spark's `\"` and `\\` become RFC 4180's `""` and `\`; a Python call per escape
            # sequence, and values that need one are rare.
            data = self._escape_re.sub(self._unescape, data)
        if self._quote is None:
            out = self._nulls(data, self._prev)
        elif self._null_re is not None and any(t in data for t in self._tokens):
            out = self._nulls_outside_quotes(data)
        else:
            # Nothing else to rewrite; the quote state still has to follow the text.
            if data.count(self._quote) % 2:
                self._in_quote = not self._in_quote
            out = data
        if data:
            self._prev = data[-1:]
        return out

    def _unescape(self, m: re.Match[bytes]) -> bytes:
        nxt = m.group(1)
        if nxt == self._quote:
            return nxt + nxt
        return nxt if nxt == self._esc else m.group(0)

    def _nulls_outside_quotes(self, data: bytes) -> bytes:
        """Null tokens only where they are a whole unquoted value: in RFC 4180 text every quote
        opens or closes a quoted stretch (a doubled quote closes and reopens one)."""
        quote = self._quote or b""
        pieces = data.split(quote)
        for i, piece in enumerate(pieces):
            if (i % 2 == 0) != self._in_quote:
                pieces[i] = self._nulls(piece, quote if i else self._prev)
        if (len(pieces) - 1) % 2:
            self._in_quote = not self._in_quote
        return quote.join(pieces)

    def _capture_header(self, out: bytes) -> None:
        line = out.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace").lstrip("\ufeff")
        quote = self._quote.decode() if self._quote is not None else None
        reader = csv.reader(
            [line],
            delimiter=self._delimiter,
            quotechar=quote,
            quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE,
        )
        self.header = [h.strip() for h in next(reader, [])]

    def _fill(self, want: int) -> None:
        while len(self._pending) < want and not self._eof:
            chunk = self._source.read(self._block)
            if chunk:
                self._carry += self._decode(chunk, final=False)
                cut = self._carry.rfind(b"\n")
                if cut < 0:
                    if len(self._carry) > 64 << 20:
                        raise UnreadableFile("csv_parse_error", "a line longer than 64 MiB")
                    continue
                ready, self._carry = self._carry[: cut + 1], self._carry[cut + 1 :]
            else:
                self._eof = True
                ready, self._carry = self._carry + self._decode(b"", final=True), b""
            if ready:
                out = self._transform(ready)
                if self.header is None:
                    self._capture_header(out)
                self._pending += out

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while part := self.read(1 << 20):
                chunks.append(part)
            return b"".join(chunks)
        self._fill(size)
        out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def status_columns(audience_id: str, options: AepDestinationOptions) -> list[str]:
    if options.status_column:
        return [options.status_column]
    # Dots in XDM paths become `_` in CSV headers (adobe-formats §a2); accept both spellings.
    return [
        f"segmentMembership_ups_{audience_id}_status",
        f"segmentMembership.ups.{audience_id}.status",
        "segmentMembershipStatus",
    ]


def qualification_columns(audience_id: str, options: AepDestinationOptions) -> list[str]:
    if options.qualification_time_column:
        return [options.qualification_time_column]
    return [
        f"segmentMembership_ups_{audience_id}_lastQualificationTime",
        f"segmentMembership.ups.{audience_id}.lastQualificationTime",
    ]


def audience_format(
    audience_id: str, options: AepDestinationOptions, join_identity: str
) -> ExportFormat:
    """The ExportFormat of one audience's export: the columns depend on the audience ID."""
    by_email = join_identity == "email"
    fields = (
        FieldSpec(
            "external_id",
            "string",
            required=not by_email,
            description="Campaign external ID (the AEP `external_id` identity).",
        ),
        FieldSpec(
            "email",
            "email" if by_email else "string",
            required=by_email,
            personal=True,
            description="Email address as AEP exported it.",
        ),
        FieldSpec(
            "status",
            "string",
            allowed=frozenset(STATUSES),
            description="segmentMembership status: realized / existing / exited.",
        ),
        FieldSpec(
            "last_qualification_time",
            "timestamp",
            description="segmentMembership lastQualificationTime.",
        ),
    )
    columns = {options.external_id_column: "external_id", options.email_column: "email"}
    columns |= dict.fromkeys(status_columns(audience_id, options), "status")
    columns |= dict.fromkeys(qualification_columns(audience_id, options), "last_qualification_time")
    return ExportFormat(
        dataset=SEGMENT_EXPORTS,
        fields=fields,
        layouts=(Layout("aep_audience_export", columns),),
    )


def _relabel(part: IngestedBatch, name: str) -> IngestedBatch:
    """Name the original file (`x.csv.gz`) in rows read from its decompressed stream."""
    good, bad = part.good, part.rejects
    i = good.schema.get_field_index(SOURCE_FILE)
    good = good.set_column(i, SOURCE_FILE, pa.repeat(pa.scalar(name), good.num_rows))
    j = bad.schema.get_field_index("source_file")
    bad = bad.set_column(j, REJECT_SCHEMA.field("source_file"), pa.repeat(name, bad.num_rows))
    return IngestedBatch(good=good, rejects=bad)


def _flatten(table: pa.Table) -> pa.Table:
    """Nested XDM paths → the CSV header names AEP would use (`person.name.firstName` →
    `person_name_firstName`); every scalar value as text for the shared validation."""
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    columns, names = [], []
    for name, column in zip(table.column_names, table.columns, strict=True):
        names.append(name.replace(".", "_"))
        if pa.types.is_list(column.type) or pa.types.is_map(column.type):
            # Arrays are flattened by AEP itself for files; a list here is kept as JSON text.
            column = pa.chunked_array(
                [pa.array([None if v is None else json.dumps(v) for v in column.to_pylist()])],
                pa.string(),
            )
        columns.append(column.cast(pa.string()))
    return pa.Table.from_arrays(columns, names=names)


def _columnar_to_csv(
    raw: BinaryIO, parsed: ExportFileName, max_bytes: int, tmp: Path
) -> tuple[Path, list[str]]:
    """JSON Lines or Parquet → a local RFC 4180 CSV for `ingest_file`."""
    local = tmp / f"{parsed.name}.src"
    with local.open("wb") as out:
        stream = _GuardedStream(raw, gzip=parsed.compressed, max_bytes=max_bytes)  # type: ignore[arg-type]
        while chunk := stream.read(4 << 20):
            out.write(chunk)
    csv_path = tmp / f"{parsed.name}.as.csv"
    try:
        table = pq.read_table(local) if parsed.kind == "parquet" else pajson.read_json(local)
    except (pa.ArrowInvalid, OSError) as exc:
        reason = "corrupt_parquet" if parsed.kind == "parquet" else "corrupt_json"
        raise UnreadableFile(reason, str(exc).splitlines()[0][:300]) from exc
    if table.num_columns == 0:
        raise UnreadableFile("empty_file", "the file holds no columns")
    flat = _flatten(table)
    pacsv.write_csv(flat, csv_path)
    return csv_path, flat.column_names


def read_export_file(
    zone: DropZone,
    parsed: ExportFileName,
    entry: Entry,
    fmt: ExportFormat,
    options: AepDestinationOptions,
    settings: PipelineSettings,
    result: FileResult,
    tmp: Path,
) -> Iterator[tuple[IngestedBatch, list[str] | None]]:
    """Typed rows and rejects of one exported file, with the header it had."""
    with zone.open_read(entry.path) as raw:
        if parsed.kind == "csv":
            guarded = _GuardedStream(
                raw, gzip=parsed.compressed, max_bytes=settings.max_decompressed_bytes
            )  # type: ignore[arg-type]
            stream = AepCsvStream(guarded, options)
            csv_fmt = ExportFormat(fmt.dataset, fmt.fields, fmt.layouts, stream.csv_options)
            plain = parsed.name[:-3] if parsed.compressed else parsed.name
            for part in ingest_file(
                stream,  # type: ignore[arg-type]
                source_file=plain,
                fmt=csv_fmt,
                max_decompressed_bytes=settings.max_decompressed_bytes,
                result=result,
            ):
                yield (_relabel(part, parsed.name) if plain != parsed.name else part), stream.header
            return
        local, header = _columnar_to_csv(raw, parsed, settings.max_decompressed_bytes, tmp)
    with local.open("rb") as fh:
        for part in ingest_file(fh, source_file=f"{parsed.name}.csv", fmt=fmt, result=result):
            yield _relabel(part, parsed.name), header


# --------------------------------------------------------------------------------------------
# segment_exports
# --------------------------------------------------------------------------------------------
def read_index(warehouse: Warehouse, dataset: str, audience_id: str) -> dict[str, Any]:
    return warehouse.get_json(dataset, audience_id, "manifest.json") or {
        "audience_id": audience_id,
        "exports": {},
        "latest": None,
    }


def _latest(exports: Mapping[str, Mapping[str, Any]], status: str | None = None) -> str | None:
    stamps = [s for s, e in exports.items() if status is None or e.get("status") == status]
    return max(stamps) if stamps else None


def export_stamp_for_run(tags: Mapping[str, str], warehouse: Warehouse, audience_id: str) -> str:
    """The export a run works on: the one named in its tags, else the one segment_exports
    processed last (in a run without tags, the one it just picked)."""
    if tags.get(TAG_AUDIENCE) == audience_id and tags.get(TAG_EXPORT_TIME):
        return tags[TAG_EXPORT_TIME]
    index = read_index(warehouse, SEGMENT_EXPORTS, audience_id)
    latest = index.get("last_processed") or index["latest"]
    if latest is None:
        raise Failure(description=f"Audience {audience_id} has no processed export yet.")
    return latest


def read_export_record(warehouse: Warehouse, audience_id: str, stamp: str) -> dict[str, Any]:
    record = warehouse.get_json(SEGMENT_EXPORTS, f"{audience_id}/{stamp}", "export.json")
    if record is None:
        raise Failure(
            description=f"Export {stamp} of audience {audience_id} was not ingested "
            "(segment_exports has no record of it)."
        )
    return record


@dataclass(frozen=True)
class Resolution:
    """What a run of `segment_exports` works on: an export as listed now, or why not."""

    export: AudienceExport | None
    reason: str = ""
    files_gone: bool = False  # the tagged export is no longer in the container


def resolve_export(
    zone: DropZone,
    warehouse: Warehouse,
    audience_settings: AudienceSettings,
    settings: PipelineSettings,
    audience_id: str,
    tags: Mapping[str, str],
    now: float,
) -> Resolution:
    """The export named in the run tags; without tags (a run started by hand or a backfill),
    the next export not processed yet for an incremental destination (they must be applied in
    order), else the latest complete one."""
    listing = group_listing(zone.list(audience_settings.destination_folder))
    mine = [x for x in listing.exports.values() if x.audience_id == audience_id]
    manifests = load_manifests(listing.manifests, lambda e: zone.read_bytes(e.path))
    if tags.get(TAG_AUDIENCE) == audience_id and tags.get(TAG_EXPORT_TIME):
        wanted = [
            x
            for x in mine
            if x.stamp == tags[TAG_EXPORT_TIME]
            and x.destination == tags.get(TAG_DESTINATION, x.destination)
        ]
        if not wanted:
            return Resolution(None, f"its files are no longer in {zone.describe()}", True)
        export = wanted[0]
        requested = json.loads(tags.get(TAG_EXPORT_FILES, "[]"))
        if requested and requested != export.file_identities():
            return Resolution(
                None,
                "AEP rewrote the export since the run was requested (the files or ETags "
                "differ); the sensor requests a run for the new version",
            )
        # Settling was judged when the run was requested.
        options = audience_settings.destination(export.destination)
        reason = assess_export(export, options, manifests, now, 0)
        return Resolution(export if reason is None else None, f"incomplete: {reason}")
    complete: list[AudienceExport] = []
    reasons = []
    for export in sorted(mine, key=lambda x: x.exported_at):
        options = audience_settings.destination(export.destination)
        reason = assess_export(export, options, manifests, now, settings.file_settle_seconds)
        if reason is None:
            complete.append(export)
        else:
            reasons.append(f"{export.export_id}: {reason}")
    if not complete:
        return Resolution(None, "no complete export: " + ("; ".join(reasons) or "none found"))
    done = read_index(warehouse, SEGMENT_EXPORTS, audience_id)["exports"]
    latest = complete[-1]
    if audience_settings.destination(latest.destination).export_mode == "incremental":
        newer = [
            x
            for x in complete
            if x.stamp not in done and x.stamp > (_latest(done, "processed") or "")
        ]
        if newer:
            return Resolution(newer[0])
    return Resolution(latest)


def ingest_export(
    zone: DropZone,
    warehouse: Warehouse,
    audience_settings: AudienceSettings,
    settings: PipelineSettings,
    export: AudienceExport,
    log: Any = None,
) -> dict[str, Any]:
    """Read every part of one export into the warehouse; return its record (export.json)."""
    options = audience_settings.destination(export.destination)
    fmt = audience_format(export.audience_id, options, audience_settings.join_identity)
    files: list[dict[str, Any]] = []
    header: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rtcdp-aep-") as tmp:
        tmpdir = Path(tmp)
        data_local, rejects_local = tmpdir / "data.parquet", tmpdir / "rejects.parquet"
        with (
            ParquetSink(data_local, fmt.typed_schema) as good,
            ParquetSink(rejects_local, REJECT_SCHEMA) as bad,
        ):
            for parsed, entry in export.files:
                result = FileResult(source_file=parsed.name, layout="")
                info: dict[str, Any] = {
                    "name": parsed.name,
                    "etag": entry.identity,
                    "size": entry.size,
                    "part": parsed.part,
                    "stamp_form": parsed.stamp_form,
                }
                file_header: list[str] | None = None
                try:
                    for batch, seen in read_export_file(
                        zone, parsed, entry, fmt, options, settings, result, tmpdir
                    ):
                        file_header = seen
                        good.write(batch.good)
                        bad.write(batch.rejects)
                except UnreadableFile as exc:
                    info |= {
                        "status": "quarantined",
                        "reason": exc.reason,
                        "detail": mask_text(exc.detail),
                        "rows_in": None,
                        "rows_out": 0,
                        "rows_rejected": 0,
                    }
                    if log:
                        log.warning(f"{parsed.name} quarantined: {exc.reason}: {info['detail']}")
                    files.append(info)
                    continue
                if file_header and not header:
                    header = file_header
                files.append({**info, "status": "processed", **result.as_dict()})
            rows_out, rows_rejected = good.rows, bad.rows
        # AEP fills every part but the last to the split size; anything else means a part is
        # missing or was cut short, and a partial export must never be applied.
        for f in files[:-1]:
            if f["status"] == "processed" and f["rows_in"] != options.rows_per_file:
                f |= {
                    "status": "quarantined",
                    "reason": "inconsistent_split",
                    "detail": f"part {f['part']} holds {f['rows_in']} rows, not the "
                    f"{options.rows_per_file} AEP writes before starting the next part",
                }
        warehouse.put_file(
            SEGMENT_EXPORTS, f"{export.audience_id}/{export.stamp}", "data.parquet", data_local
        )
        warehouse.put_file(
            SEGMENT_EXPORTS,
            f"{export.audience_id}/{export.stamp}",
            "rejects.parquet",
            rejects_local,
        )
    reasons: dict[str, int] = {}
    for f in files:
        for reason, n in (f.get("reasons") or {}).items():
            reasons[reason] = reasons.get(reason, 0) + n
    quarantined = [f for f in files if f["status"] == "quarantined"]
    record = {
        "export_id": export.export_id,
        "audience_id": export.audience_id,
        "destination": export.destination,
        "stamp": export.stamp,
        "export_time": export.exported_at.isoformat().replace("+00:00", "Z"),
        "mode": options.export_mode,
        "destination_kind": options.kind,
        "identity": export.identity,
        "manifest": export.manifest.name if export.manifest else None,
        "files": files,
        "columns": header,
        "status": "quarantined" if quarantined else "processed",
        "quarantine_reasons": sorted({f"{f['name']}: {f['reason']}" for f in quarantined}),
        "rows_in": sum(f["rows_in"] or 0 for f in files),
        "rows_out": rows_out,
        "rows_rejected": rows_rejected,
        "reasons": dict(sorted(reasons.items())),
    }
    warehouse.put_json(
        SEGMENT_EXPORTS, f"{export.audience_id}/{export.stamp}", "export.json", record
    )
    index = read_index(warehouse, SEGMENT_EXPORTS, export.audience_id)
    index["exports"][export.stamp] = {
        k: record[k]
        for k in (
            "status",
            "destination",
            "destination_kind",
            "export_time",
            "mode",
            "identity",
            "rows_in",
            "rows_out",
            "rows_rejected",
        )
    } | {"columns": len(header)}
    index["latest"] = _latest(index["exports"], "processed")
    index["last_processed"] = export.stamp
    # Written last: the index is what says the export is in the warehouse.
    warehouse.put_json(SEGMENT_EXPORTS, export.audience_id, "manifest.json", index)
    return record


def _export_metadata(record: dict[str, Any], warehouse: Warehouse) -> dict[str, Any]:
    aud, stamp = record["audience_id"], record["stamp"]
    rows = [
        f"| {f['name']} | {f['status']} | {f.get('rows_in')} | {f.get('rows_out', 0)} | "
        f"{f.get('rows_rejected', 0)} | {f.get('reason', '')} |"
        for f in record["files"]
    ]
    files_md = "\n".join(
        [
            "| file | status | rows in | rows out | rejected | reason |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    table = warehouse.read_table(SEGMENT_EXPORTS, f"{aud}/{stamp}", "data.parquet")
    return {
        "dagster/row_count": record["rows_out"],
        "export_id": record["export_id"],
        "export_time": record["export_time"],
        "export_status": record["status"],
        "export_mode": record["mode"],
        "rows_in": record["rows_in"],
        "rows_rejected": record["rows_rejected"],
        "rejects_by_reason": MetadataValue.json(record["reasons"]),
        "quarantine_reasons": MetadataValue.json(record["quarantine_reasons"]),
        "columns": MetadataValue.json(record["columns"]),
        "source_files": MetadataValue.md(files_md),
        "preview": MetadataValue.md(masked_preview(table, {"email", "external_id"})),
        "warehouse_path": warehouse.path(SEGMENT_EXPORTS, f"{aud}/{stamp}", "data.parquet"),
    }


@asset(
    name=SEGMENT_EXPORTS,
    partitions_def=audience_partitions,
    group_name=GROUP,
    kinds={"azure", "parquet"},
    description=(
        "Typed rows of one AEP audience export (all its split files), with rejects and a "
        "quarantine for unreadable exports. One partition per audience; each run processes one "
        "export, named in the run tags (or the latest complete one)."
    ),
)
def segment_exports(
    context: AssetExecutionContext,
    aep_destination: DropZone,
    warehouse: Warehouse,
    audience_settings: AudienceSettings,
    settings: PipelineSettings,
    file_ledger: FileLedger,
) -> MaterializeResult:
    audience_id = context.partition_key
    tags = context.run.tags
    resolution = resolve_export(
        aep_destination,
        warehouse,
        audience_settings,
        settings,
        audience_id,
        tags,
        datetime.now(UTC).timestamp(),
    )
    export = resolution.export
    if export is None:
        stamp = tags.get(TAG_EXPORT_TIME, "")
        processed = read_index(warehouse, SEGMENT_EXPORTS, audience_id)["exports"].get(stamp)
        if resolution.files_gone and processed:
            # AEP's retention removed the files; the warehouse holds the rows they gave.
            record = read_export_record(warehouse, audience_id, stamp)
            stored = [{k: f[k] for k in ("name", "etag", "size")} for f in record["files"]]
            if stored == json.loads(tags.get(TAG_EXPORT_FILES, "[]")):
                context.log.info(
                    f"{resolution.reason}; keeping the rows stored for {record['export_id']}"
                )
                return MaterializeResult(metadata=_export_metadata(record, warehouse))
        raise Failure(
            description=f"Audience {audience_id}: cannot process the export: {resolution.reason}."
        )
    record = ingest_export(
        aep_destination, warehouse, audience_settings, settings, export, log=context.log
    )
    record_in_ledger(file_ledger, aep_destination, export, record, context.run.run_id)
    return MaterializeResult(metadata=_export_metadata(record, warehouse))


def record_in_ledger(
    ledger: FileLedger, zone: DropZone, export: AudienceExport, record: dict[str, Any], run_id: str
) -> None:
    """Each part of the export in the file ledger. AEP's files stay where AEP wrote them (its
    retention removes them), so the location is the file itself."""
    outcome = {f["name"]: f for f in record["files"]}
    zone_id = zone.describe()
    for parsed, entry in export.files:
        f = outcome[parsed.name]
        folder = entry.path.rsplit("/", 1)[0] if "/" in entry.path else ""
        ledger.record(
            FileVersion(zone_id, folder, parsed.name, entry.identity),
            entry,
            dataset=SEGMENT_EXPORTS,
            status="processed" if f["status"] == "processed" else "quarantined",
            location=entry.path,
            in_folder=True,
            partition=f"{export.audience_id}/{export.stamp}",
            run_id=run_id,
            rows=f.get("rows_in"),
            reason=f.get("reason"),
        )


# --------------------------------------------------------------------------------------------
# audience_membership
# --------------------------------------------------------------------------------------------
MEMBERS_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("external_id", pa.string()),
        pa.field("email", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("aep_status", pa.string()),
        pa.field("last_qualification_time", pa.timestamp("us", tz="UTC")),
        pa.field("member_since", pa.string()),
        pa.field("in_export", pa.bool_(), nullable=False),
    ]
)
DIFF_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("change", pa.string(), nullable=False),
        pa.field("previous_status", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("in_export", pa.bool_(), nullable=False),
    ]
)
_COLS = ["key", "external_id", "email", "aep_status", "last_qualification_time"]


@dataclass
class MembershipResult:
    members: pa.Table  # MEMBERS_SCHEMA, sorted by key
    diff: pa.Table  # DIFF_SCHEMA
    counts: dict[str, int]


def compute_membership(
    rows: pa.Table, previous: pa.Table | None, mode: str, stamp: str, join_identity: str
) -> MembershipResult:
    """The membership after one export, and its diff against the state before it.

    `rows` are segment_exports rows of the export; `previous` the members.parquet of the
    previous applied export (its `exited` rows are not members any more).
    """
    df = rows.select(["external_id", "email", "status", "last_qualification_time", LINE_NUMBER])
    df = df.to_pandas()
    df["email"] = df["email"].str.lower()
    df["key"] = df["email"] if join_identity == "email" else df["external_id"]
    df["aep_status"] = df["status"].fillna("realized")
    n_rows = len(df)
    # AEP: the latest qualification wins; the file order settles ties deterministically.
    df = df.sort_values(
        ["key", "last_qualification_time", LINE_NUMBER],
        ascending=[True, False, True],
        na_position="last",
        kind="stable",
    ).drop_duplicates("key", keep="first")
    duplicates = n_rows - len(df)
    prev = (
        previous.to_pandas() if previous is not None else MEMBERS_SCHEMA.empty_table().to_pandas()
    )
    prev = prev[prev["status"] != "exited"].set_index("key", drop=False)
    entering = df[df["aep_status"].isin(MEMBER_STATUSES)].set_index("key", drop=False)
    leaving = df[df["aep_status"] == "exited"].set_index("key", drop=False)

    in_prev = entering.index.isin(prev.index)
    added = entering[~in_prev].assign(status="realized", member_since=stamp, in_export=True)
    stayed = entering[in_prev].assign(status="existing", in_export=True)
    stayed["member_since"] = prev.loc[stayed.index, "member_since"].to_numpy()
    if mode == "full":
        removed_keys = prev.index.difference(entering.index)
    else:
        removed_keys = prev.index.intersection(leaving.index)
        carried = prev.loc[prev.index.difference(entering.index).difference(leaving.index)]
        carried = carried.assign(status="existing", aep_status=None, in_export=False)
    removed = prev.loc[removed_keys].assign(status="exited", aep_status=None, in_export=False)
    exported_exit = removed.index.isin(leaving.index)
    removed.loc[exported_exit, "aep_status"] = "exited"
    removed.loc[exported_exit, "in_export"] = True
    exited_non_member = int((~leaving.index.isin(prev.index)).sum())

    frames = [added, stayed, removed] + ([carried] if mode != "full" else [])
    cols = [f.name for f in MEMBERS_SCHEMA]
    members_df = (
        pd.concat([f[cols] for f in frames if len(f)], ignore_index=True)
        if any(len(f) for f in frames)
        else MEMBERS_SCHEMA.empty_table().to_pandas()
    )
    members_df = members_df.sort_values("key", kind="stable")
    members = pa.Table.from_pandas(members_df, schema=MEMBERS_SCHEMA, preserve_index=False)

    prev_status = prev["status"]
    change = pd.Series("unchanged", index=members_df.index)
    change[members_df["status"] == "realized"] = "added"
    change[members_df["status"] == "exited"] = "removed"
    diff = pa.table(
        {
            "key": members_df["key"].to_numpy(),
            "change": change.to_numpy(),
            "previous_status": members_df["key"]
            .map(prev_status)
            .astype(object)
            .where(members_df["key"].isin(prev.index), None)
            .to_numpy(),
            "status": members_df["status"].to_numpy(),
            "in_export": members_df["in_export"].to_numpy(),
        },
        schema=DIFF_SCHEMA,
    )
    counts = {
        "rows": n_rows,
        "duplicate_member": duplicates,
        "exited_non_member": exited_non_member,
        "added": len(added),
        "unchanged": len(stayed) + (len(carried) if mode != "full" else 0),
        "removed": len(removed),
        "members": len(added) + len(stayed) + (len(carried) if mode != "full" else 0),
        "previous_members": len(prev),
    }
    return MembershipResult(members=members, diff=diff, counts=counts)


def read_members(warehouse: Warehouse, audience_id: str, stamp: str) -> pa.Table:
    return warehouse.read_table(AUDIENCE_MEMBERSHIP, f"{audience_id}/{stamp}", "members.parquet")


def apply_export(
    warehouse: Warehouse, audience_settings: AudienceSettings, audience_id: str, stamp: str
) -> dict[str, Any]:
    record = read_export_record(warehouse, audience_id, stamp)
    if record["status"] != "processed":
        raise Failure(
            description=f"Export {record['export_id']} was quarantined "
            f"({'; '.join(record['quarantine_reasons'])}); it is not applied to the membership."
        )
    exports = read_index(warehouse, SEGMENT_EXPORTS, audience_id)["exports"]
    index = read_index(warehouse, AUDIENCE_MEMBERSHIP, audience_id)
    applied = index["exports"]
    if stamp not in applied and any(s > stamp for s in applied):
        raise Failure(
            description=f"Export {stamp} of audience {audience_id} arrived after the later export "
            f"{max(applied)} was applied; applying it now would roll the membership back. "
            "Re-run the later exports in order (see AUDIENCE_RUN_QUEUE_CONFIG)."
        )
    previous = max((s for s in applied if s < stamp), default=None)
    if record["mode"] == "incremental":
        skipped = sorted(s for s in exports if (previous or "") < s < stamp and s not in applied)
        if skipped:
            raise Failure(
                description=f"Incremental export {stamp} of audience {audience_id} cannot be "
                f"applied: the earlier export(s) {', '.join(skipped)} were not applied "
                "(quarantined or not run), so the changes in between are unknown. Apply them "
                "first, or have AEP send a full export."
            )
    prev = read_members(warehouse, audience_id, previous) if previous else None
    rows = warehouse.read_table(SEGMENT_EXPORTS, f"{audience_id}/{stamp}", "data.parquet")
    result = compute_membership(rows, prev, record["mode"], stamp, audience_settings.join_identity)
    with tempfile.TemporaryDirectory(prefix="rtcdp-members-") as tmp:
        for name, table in (("members.parquet", result.members), ("diff.parquet", result.diff)):
            local = Path(tmp) / name
            pq.write_table(table, local, compression="zstd")
            warehouse.put_file(AUDIENCE_MEMBERSHIP, f"{audience_id}/{stamp}", name, local)
    applied[stamp] = {
        "mode": record["mode"],
        "previous": previous,
        "export_id": record["export_id"],
        **result.counts,
    }
    index["latest"] = max(applied)
    warehouse.put_json(AUDIENCE_MEMBERSHIP, audience_id, "manifest.json", index)
    return applied[stamp] | {"stamp": stamp}


@asset(
    name=AUDIENCE_MEMBERSHIP,
    partitions_def=audience_partitions,
    group_name=GROUP,
    kinds={"parquet"},
    deps=[segment_exports],
    description=(
        "Members of each audience after each export (realized / existing / exited) and the "
        "diff against the previous export (added / removed / unchanged). Full exports replace "
        "the membership, incremental exports are applied to it."
    ),
)
def audience_membership(
    context: AssetExecutionContext, warehouse: Warehouse, audience_settings: AudienceSettings
) -> MaterializeResult:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    applied = apply_export(warehouse, audience_settings, audience_id, stamp)
    members = read_members(warehouse, audience_id, stamp)
    return MaterializeResult(
        metadata={
            "dagster/row_count": applied["members"],
            "export_stamp": stamp,
            "previous_export": applied["previous"] or "",
            "export_mode": applied["mode"],
            "added": applied["added"],
            "removed": applied["removed"],
            "unchanged": applied["unchanged"],
            "duplicate_member": applied["duplicate_member"],
            "exited_non_member": applied["exited_non_member"],
            "preview": MetadataValue.md(masked_preview(members, {"email", "key"})),
            "warehouse_path": warehouse.path(
                AUDIENCE_MEMBERSHIP, f"{audience_id}/{stamp}", "members.parquet"
            ),
        }
    )


# --------------------------------------------------------------------------------------------
# Job and sensor
# --------------------------------------------------------------------------------------------
def build_audience_job_and_sensor(
    assets: Sequence[AssetsDefinition],
    partitioned_checks: Sequence[Any],
    unpartitioned_checks: Sequence[Any],
    audience_count_evaluation: Callable[
        [set[str], Mapping[str, set[str]], AudienceSettings], AssetCheckEvaluation
    ],
) -> tuple[Any, Any, Any]:
    job = define_asset_job(
        "audience_import_job",
        selection=AssetSelection.assets(*assets).without_checks()
        | AssetSelection.checks(*partitioned_checks),
        executor_def=in_process_executor,
        description="Ingest one AEP audience export, apply it to the membership, build and "
        "check the Campaign import file, then upload it to the Campaign SFTP server.",
    )
    guardrail_job = define_asset_job(
        "audience_guardrails_job",
        selection=AssetSelection.checks(*unpartitioned_checks),
        executor_def=in_process_executor,
        description="Audience-count guardrails across all audiences (also reported by the "
        "sensor whenever it registers new audiences).",
    )

    @sensor(
        name="aep_audience_export_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Watches the AEP destination container for audience exports and requests one run "
            "per complete export, registering unseen audiences as partitions."
        ),
    )
    def aep_audience_export_sensor(
        context: SensorEvaluationContext,
        aep_destination: DropZone,
        audience_settings: AudienceSettings,
        settings: PipelineSettings,
    ) -> SensorResult | SkipReason:
        try:
            entries = aep_destination.list(audience_settings.destination_folder)
        except DropZoneUnavailable as exc:
            # The cursor is untouched, so nothing is missed once the container answers again.
            return SkipReason(f"AEP destination container unavailable, will retry: {exc}")
        known = set(context.instance.get_dynamic_partitions(AUDIENCES_PARTITION_NAME))
        plan = plan_audience_tick(
            entries,
            context.cursor,
            datetime.now(UTC).timestamp(),
            audience_settings,
            settings.file_settle_seconds,
            known,
            lambda entry: aep_destination.read_bytes(entry.path),
        )
        for note in plan.notes:
            context.log.info(note)
        if not plan.run_requests:
            return SensorResult(
                skip_reason=SkipReason("; ".join(plan.notes[:20]) or "no new audience exports"),
                cursor=plan.cursor,
            )
        events = []
        if plan.new_audiences:
            events.append(
                audience_count_evaluation(
                    known | set(plan.new_audiences),
                    plan.audiences_by_destination,
                    audience_settings,
                )
            )
        return SensorResult(
            run_requests=plan.run_requests,
            dynamic_partitions_requests=(
                [audience_partitions.build_add_request(plan.new_audiences)]
                if plan.new_audiences
                else []
            ),
            asset_events=events,
            cursor=plan.cursor,
        )

    return job, aep_audience_export_sensor, guardrail_job


# --------------------------------------------------------------------------------------------
# Everything the lead wires in, built on first use
# --------------------------------------------------------------------------------------------
@dataclass
class AudienceDefinitions:
    assets: list[AssetsDefinition]
    asset_checks: list[Any]
    sensors: list[Any]
    jobs: list[Any]


def _build_audience_defs() -> AudienceDefinitions:
    # campaign_import and the checks import this module, so they are brought in here, on first
    # use of `audience_defs`, whatever order the modules are imported in.
    from asset_checks.aep_to_campaign.audience_checks import (
        PARTITIONED_AUDIENCE_CHECKS,
        UNPARTITIONED_AUDIENCE_CHECKS,
        audience_count_evaluation,
    )
    from rtcdp_assets.aep_to_campaign.campaign_audience_import import (
        campaign_audience_import,
        campaign_audience_import_published,
    )

    assets = [
        segment_exports,
        audience_membership,
        campaign_audience_import,
        campaign_audience_import_published,
    ]
    job, sensor_def, guardrail_job = build_audience_job_and_sensor(
        assets,
        PARTITIONED_AUDIENCE_CHECKS,
        UNPARTITIONED_AUDIENCE_CHECKS,
        audience_count_evaluation,
    )
    return AudienceDefinitions(
        assets=assets,
        asset_checks=[*PARTITIONED_AUDIENCE_CHECKS, *UNPARTITIONED_AUDIENCE_CHECKS],
        sensors=[sensor_def],
        jobs=[job, guardrail_job],
    )


_DEFS: AudienceDefinitions | None = None


def __getattr__(name: str) -> AudienceDefinitions:
    # PEP 562: importing `audience_defs` builds the definitions once.
    global _DEFS
    if name != "audience_defs":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _DEFS is None:
        _DEFS = _build_audience_defs()
    return _DEFS
