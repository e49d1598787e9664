"""The sensor's decision, from a listing and the cursor alone."""

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dagster import RunRequest

from resources.audience_settings import AudienceSettings
from resources.drop_zones import Entry
from rtcdp_assets.aep_to_campaign.audience_exports.completeness import (
    assess_export,
    group_listing,
    load_manifests,
)
from rtcdp_assets.aep_to_campaign.audience_exports.file_names import AepManifest


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
