"""Where the AEP dataset exports are: a 4-hour window per exportTime folder; the sensor's plan.

<aep_dataset_export_folder>/<datasetId>/exportTime=YYYYMMDDHHMM/<anything>.json[.gz]|.parquet
"""

import hashlib
import json
import re
from datetime import UTC, datetime

from dagster import RunRequest

from resources.drop_zones import DropZone, Entry, is_temporary_name, join
from resources.settings import PipelineSettings
from rtcdp_assets.shared.partitions import before_first_partition, before_first_partition_note

EXPORT_TIME = re.compile(r"^exportTime=(?P<stamp>\d{12})$")
DATA_FILE = re.compile(r"\.(json|json\.gz|parquet)$", re.IGNORECASE)


def partition_for_export_time(folder_name: str) -> str | None:
    """`exportTime=202611230915` → `2026-11-23-08:00` (the 4-hour window of the export)."""
    m = EXPORT_TIME.match(folder_name)
    if not m:
        return None
    s = m["stamp"]
    try:
        when = datetime(int(s[:4]), int(s[4:6]), int(s[6:8]), int(s[8:10]), int(s[10:12]))
    except ValueError:
        return None
    return f"{when:%Y-%m-%d}-{when.hour - when.hour % 4:02d}:00"


def export_time(folder_name: str) -> datetime:
    stamp = EXPORT_TIME.match(folder_name)["stamp"]  # type: ignore[index]
    return datetime.strptime(stamp, "%Y%m%d%H%M").replace(tzinfo=UTC)


def export_files(zone: DropZone, settings: PipelineSettings) -> dict[str, list[Entry]]:
    """Window → data files of every export folder of the push-token datasets."""
    root = settings.aep_dataset_export_folder
    datasets = settings.aep_push_token_dataset_ids or zone.list_folders(root)
    out: dict[str, list[Entry]] = {}
    for dataset_id in datasets:
        for folder in zone.list_folders(join(root, dataset_id)):
            pk = partition_for_export_time(folder)
            if pk is None:
                continue
            for entry in zone.list(join(root, dataset_id, folder)):
                if not is_temporary_name(entry.name) and DATA_FILE.search(entry.name):
                    out.setdefault(pk, []).append(entry)
    return {pk: sorted(entries) for pk, entries in sorted(out.items())}


def fingerprint(entries: list[Entry]) -> str:
    text = "\n".join(f"{e.path}@{e.identity}" for e in sorted(entries))
    return hashlib.sha256(text.encode()).hexdigest()


def plan_tick(
    by_window: dict[str, list[Entry]], cursor: str | None, now: datetime, settle_seconds: float
) -> tuple[list[RunRequest], str, list[str]]:
    """Run requests for windows whose file versions changed since they were last requested.

    A window with a file still being written (empty, or modified within `settle_seconds`)
    waits as a whole: a run must see the complete export. The cursor maps window → the
    fingerprint last requested, for the windows still present in the folder.
    """
    seen: dict[str, str] = json.loads(cursor) if cursor else {}
    requests: list[RunRequest] = []
    notes: list[str] = []
    new_cursor: dict[str, str] = {}
    for pk, entries in by_window.items():
        if before_first_partition(pk):
            notes.append(before_first_partition_note(entries[0].name, pk))
            continue
        if pk in seen:
            new_cursor[pk] = seen[pk]
        unsettled = [
            e.name
            for e in entries
            if e.size == 0 or now.timestamp() - e.modified_ts < settle_seconds
        ]
        if unsettled:
            notes.append(f"{pk}: {len(unsettled)} file(s) still being written; waiting")
            continue
        fp = fingerprint(entries)
        if seen.get(pk) == fp:
            continue
        requests.append(
            RunRequest(
                run_key=f"{pk}@{fp[:16]}",
                partition_key=pk,
                tags={"rtcdp/aep_export_files": str(len(entries))},
            )
        )
        new_cursor[pk] = fp
    return requests, json.dumps(new_cursor, sort_keys=True), notes
