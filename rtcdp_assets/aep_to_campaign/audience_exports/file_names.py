"""What AEP puts in the names of exported files and in its manifests."""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Literal

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# The audience ID anywhere in the name, after `segment` in the 2020 Campaign names (§a1).
_AUDIENCE_RE = re.compile(rf"(?P<segment>segment[_-]?)?(?P<id>{_UUID})", re.IGNORECASE)
# A date/time part is a whole run of digits: 8_6 (either date order), 14 or 10 (Unix).
_STAMP_RE = re.compile(r"(?<![0-9])(?:\d{8}_\d{6}|\d{14}|\d{10})(?![0-9])")
_PART_RE = re.compile(r"_(?P<part>[2-9]|[1-9]\d{1,3})$")
_EXTENSION_RE = re.compile(r"\.(?P<ext>csv|csv\.gz|txt|json|json\.gz|parquet)$", re.IGNORECASE)
EXTENSIONS = ".csv, .csv.gz, .txt, .json, .json.gz, .parquet"
STAMP_FORMS_TEXT = "YYYYMMDD_HHMMSS, MMDDYYYY_HHMMSS, YYYYMMDDHHMMSS or a 10-digit Unix time"
MANIFEST_NAME_RE = re.compile(r"^manifest-(?P<ids>[0-9A-Za-z-]+)\.json$", re.IGNORECASE)
STAMP_FORMAT = "%Y%m%d_%H%M%S"

StampForm = Literal["YYYYMMDD_HHMMSS", "MMDDYYYY_HHMMSS", "YYYYMMDDHHMMSS", "unix"]
FileKind = Literal["csv", "json", "parquet"]


def _stamp_form(text: str) -> StampForm:
    if len(text) == 10:
        return "unix"
    if len(text) == 14:
        return "YYYYMMDDHHMMSS"
    # A YYYYMMDD date of this century starts with `20`, which is no month.
    return "YYYYMMDD_HHMMSS" if text.startswith("20") else "MMDDYYYY_HHMMSS"


def read_stamp(text: str) -> tuple[datetime, StampForm] | str:
    """An AEP file-name timestamp in any of its forms → (UTC time, form), or what is wrong."""
    form = _stamp_form(text)
    # datetime() rather than strptime: the sensor parses every name in the container each tick.
    try:
        if form == "unix":
            return datetime.fromtimestamp(int(text), tz=UTC), form
        digits = text.replace("_", "")
        d, t = digits[:8], digits[8:]
        clock = (int(t[:2]), int(t[2:4]), int(t[4:6]))
        if form == "MMDDYYYY_HHMMSS":
            return datetime(int(d[4:8]), int(d[:2]), int(d[2:4]), *clock, tzinfo=UTC), form
        return datetime(int(d[:4]), int(d[4:6]), int(d[6:8]), *clock, tzinfo=UTC), form
    except (ValueError, OverflowError, OSError) as exc:
        return f"timestamp {text} is not a valid date as {form} ({exc})"


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


def read_export_name(name: str) -> ExportFileName | str:
    """The parts of an AEP audience export name, or which part is missing or wrong.

    Every form of docs/formats.md §a1: `<destination>_<audience id>[_<optional parts>]
    _<date/time>[_<custom text>][_<n>].<ext>`, the 2020 Campaign form
    `<destination>_segment<audience id>_<YYYYMMDDHHMMSS>.csv` (Adobe's sample export) and
    templates with the audience ID anywhere. The audience ID is the UUID after `segment`, else
    the first UUID (the SDK puts `SEGMENT_ID` before `DESTINATION_INSTANCE_ID`); the date/time
    is the first valid one after it. A name without a date/time part (AEP's static name,
    rewritten by every export) is refused: the exports of an audience could not be told apart
    or put in order.
    """
    name = name.rsplit("/", 1)[-1]
    ext_match = _EXTENSION_RE.search(name)
    if ext_match is None:
        suffix = name[name.find(".") :] if "." in name else "none"
        return f"extension {suffix} is not one of {EXTENSIONS}"
    stem = name[: ext_match.start()]
    ids = list(_AUDIENCE_RE.finditer(stem))
    if not ids:
        return "no audience ID (UUID) in the name"
    audience = next((m for m in ids if m["segment"]), ids[0])
    rest = stem[audience.end() :]
    part_match = _PART_RE.search(rest)
    if part_match is not None:
        rest = rest[: part_match.start()]
    read: tuple[datetime, StampForm] | str | None = None
    for candidate in _STAMP_RE.finditer(rest):
        read = read_stamp(candidate.group())
        if not isinstance(read, str):
            break
    if read is None:
        return f"no date/time part ({STAMP_FORMS_TEXT}) after the audience ID"
    if isinstance(read, str):
        return read
    ext = ext_match["ext"].lower()
    return ExportFileName(
        name=name,
        destination=stem[: audience.start()].rstrip("_-"),
        audience_id=audience["id"].lower(),
        exported_at=read[0],
        stamp_form=read[1],
        part=int(part_match["part"]) if part_match is not None else 1,
        # TAB_DELIMITED files of the old Campaign card are CSV with the destination's delimiter.
        kind="csv" if ext == "txt" else ext.split(".")[0],  # type: ignore[arg-type]
        compressed=ext.endswith(".gz"),
    )


def parse_export_name(name: str) -> ExportFileName | None:
    read = read_export_name(name)
    return None if isinstance(read, str) else read


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
