"""The sensor's decision, from a listing and the cursor alone."""

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dagster import RunRequest

from resources.audience_settings import AudienceSettings
from resources.drop_zones import Entry
from rtcdp_assets.aep_to_campaign.audience_exports.completeness import (
    NOT_IN_FOLDER,
    Listing,
    assess_export,
    group_listing,
    load_manifests,
)
from rtcdp_assets.aep_to_campaign.audience_exports.file_names import (
    STAMP_FORMS_TEXT,
    AepManifest,
    ManifestError,
    parse_export_name,
    parse_manifest,
)


@dataclass(frozen=True)
class LedgerNote:
    """What the sensor writes to the file ledger for one file it cannot request yet."""

    entry: Entry
    status: str  # "pending" (with why), or "processed" for a manifest whose files all came
    reason: str | None


@dataclass
class AudienceTickPlan:
    run_requests: list[RunRequest]
    new_audiences: list[str]
    cursor: str | None  # None: unchanged
    notes: list[str]
    audiences_by_destination: dict[str, set[str]]
    waiting: int = 0
    warnings: list[str] = field(default_factory=list)  # logged at WARN: a person must look
    ledger_notes: list[LedgerNote] = field(default_factory=list)


def _edge(entries: Sequence[Entry], watermark: float) -> str:
    """Digest of the file versions sitting exactly at the watermark."""
    at = sorted(f"{e.path}@{e.identity}" for e in entries if e.modified_ts == watermark)
    return hashlib.sha256("\n".join(at).encode()).hexdigest()[:16]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _audit_manifests(
    listing: Listing, manifests: Sequence[Entry], read: Callable[[Entry], bytes]
) -> tuple[list[tuple[Entry, str | None]], list[str]]:
    """(manifest, what it lists that is not in the folder, or None), and unreadable manifests.

    Only files of exports with no file in the folder: an export with some files there says
    itself what it waits for.
    """
    present = listing.names
    audits: list[tuple[Entry, str | None]] = []
    problems: list[str] = []
    for entry in manifests:
        try:
            manifest = parse_manifest(entry.name, read(entry))
        except ManifestError as exc:
            problems.append(str(exc))
            continue
        absent = sorted(
            name
            for name in set(manifest.sizes) - present
            if (parsed := parse_export_name(name)) is None
            or parsed.export_id not in listing.exports
        )
        audits.append(
            (
                entry,
                f"{entry.name} lists {', '.join(absent)}, not in the folder" if absent else None,
            )
        )
    return audits, problems


def plan_audience_tick(
    entries: Sequence[Entry],
    cursor: str | None,
    now: float,
    audience_settings: AudienceSettings,
    settle_seconds: float,
    known_audiences: set[str],
    read: Callable[[Entry], bytes],
    ledger_pending: frozenset[str] = frozenset(),
) -> AudienceTickPlan:
    """The run requests of one tick, what to log, and what to write to the file ledger.

    `ledger_pending`: names the ledger holds as pending in the folder (manifests among them
    are audited again, so their row is settled once the files they list arrive).
    """
    state = json.loads(cursor) if cursor else {}
    # Digest of the last reason written to the ledger per waiting export or manifest: a tick
    # writes only what changed.
    told: dict[str, str] = dict(state.get("told", {}))
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
    warnings: list[str] = []
    ledger_notes: list[LedgerNote] = []
    new_told: dict[str, str] = {}

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
        manifests_by_file = load_manifests(recent, read, warnings)
    # Manifests newer than what was handled, or left pending in the ledger, are checked for
    # files they list that are not there at all (no export to wait on would say so).
    audited = [
        m for m in listing.manifests if m.modified_ts > watermark - 3600 or m.name in ledger_pending
    ]
    audits, unreadable = _audit_manifests(listing, audited, read)
    warnings.extend(u for u in unreadable if u not in warnings)
    for manifest_entry, gap in audits:
        if gap is not None:
            warnings.append(gap)
            new_told[manifest_entry.name] = _digest(gap)
            if told.get(manifest_entry.name) != new_told[manifest_entry.name]:
                ledger_notes.append(LedgerNote(manifest_entry, "pending", gap))
        elif manifest_entry.name in ledger_pending:
            ledger_notes.append(LedgerNote(manifest_entry, "processed", None))

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
                hours = audience_settings.pending_expiry_hours
                reason = f"gave up waiting after {hours:g} h ({reason})"
                warnings.append(f"{export.export_id}: {reason}")
                _tell(export.export_id, reason, export.files, told, ledger_notes)
                continue
            new_pending[export.export_id] = first_seen
            (warnings if NOT_IN_FOLDER in reason or export.clashes else notes).append(
                f"{export.export_id}: {reason}"
            )
            new_told[export.export_id] = _digest(reason)
            _tell(export.export_id, reason, export.files, told, ledger_notes)
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
    unrecognised = sorted(
        (e.name, problem) for e, problem in listing.unrecognised if e.modified_ts >= watermark
    )
    for name, problem in unrecognised[:20]:
        warnings.append(
            f"{name}: left alone, not an AEP audience export name: {problem} (expected "
            f"<destination>_[segment]<audience id>[_…]_<{STAMP_FORMS_TEXT}>[_…][_n].csv…)"
        )
    if len(unrecognised) > 20:
        warnings.append(f"… and {len(unrecognised) - 20} more names that are not AEP exports")
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
            "told": new_told,
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
        warnings=warnings,
        ledger_notes=ledger_notes,
    )


def _tell(
    key: str,
    reason: str,
    files: Sequence[tuple[object, Entry]],
    told: dict[str, str],
    ledger_notes: list[LedgerNote],
) -> None:
    """Ledger notes for the files of a waiting export, unless this reason was written before."""
    if told.get(key) == _digest(reason):
        return
    ledger_notes.extend(LedgerNote(entry, "pending", reason) for _, entry in files)
