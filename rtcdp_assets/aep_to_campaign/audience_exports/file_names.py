"""What AEP puts in the names of exported files and in its manifests."""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Literal

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
    """manifest-<destinationId>-<dataflowRunId>.json (docs/formats.md §a3)."""

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
