"""The personal values of a demo run's input files, and every text of its instance a reviewer can
see, to search the one for the other.

Personal values are the cells of every column whose field is flagged `personal` in the format
definitions (FieldSpec.personal), plus the whole text of each malformed line (a line with the
wrong number of fields is free text). A value is searched for only if it has at least
`MIN_CHARS` characters (a 2-letter country code or a 4-digit postal code would match anywhere)
and does not also occur as a value of a non-personal column (a postal code "10001" that is also
an operation ID can be shown as that ID). Matches are whole tokens: the characters either side
are not letters or digits, so "Martin" is not found inside "Martinez".
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from dagster import DagsterInstance
from dagster._serdes import serialize_value

from resources.audience_settings import AepDestinationOptions
from rtcdp_assets.aep_to_campaign.audience_exports.file_reader import audience_format
from rtcdp_assets.shared.ingest import ExportFormat, detect_layout
from rtcdp_assets.shared.ingest.model import UnreadableFile

MIN_CHARS = 5
# AEP's audience export also carries the profile's names, which the import does not read.
AUDIENCE_NAME_COLUMNS = ("person_name_firstName", "person_name_lastName")


class InputValues:
    """Personal and non-personal values read from input files."""

    def __init__(self) -> None:
        self.personal: set[str] = set()
        self.plain: set[str] = set()
        self.malformed_lines: list[str] = []

    def add_csv(self, text: str, fmt: ExportFormat, extra_personal: Iterable[str] = ()) -> None:
        lines = text.splitlines()
        reader = csv.reader(io.StringIO(text), delimiter=fmt.csv.delimiter)
        header = next(reader)
        try:
            layout = detect_layout(fmt, header)
            columns = dict(layout.columns)
        except UnreadableFile:
            columns = {}
        personal = {
            i
            for i, h in enumerate(header)
            if columns.get(h) in fmt.personal_fields or h in extra_personal
        }
        for number, row in enumerate(reader, start=2):
            if len(row) != len(header):
                self.malformed_lines.append(lines[number - 1])
                continue
            for i, value in enumerate(row):
                (self.personal if i in personal else self.plain).add(value.strip())

    def searched(self) -> set[str]:
        values = (self.personal - self.plain) | set(self.malformed_lines)
        return {v for v in values if len(v) >= MIN_CHARS}


def campaign_input(data_dir: Path, formats: dict[str, ExportFormat]) -> InputValues:
    """Every Campaign export file under the SFTP stand-in (archived after processing or not)."""
    values = InputValues()
    export = data_dir / "campaign_sftp" / "export"
    for path in sorted(export.rglob("*")):
        if not path.is_file() or ".done" in path.name or "markers" in path.parts:
            continue
        dataset = next((d for d in formats if d in path.parts), None)
        if dataset is not None:
            values.add_csv(path.read_text(encoding="utf-8"), formats[dataset])
    return values


def add_audience_input(values: InputValues, data_dir: Path, audience_id: str) -> None:
    fmt = audience_format(audience_id, AepDestinationOptions(), None)
    for path in sorted((data_dir / "aep_destination").glob("*.csv")):
        values.add_csv(path.read_text(encoding="utf-8"), fmt, AUDIENCE_NAME_COLUMNS)


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _text(obj: object) -> str:
    """All strings of a Dagster record (its serialized form, decoded: non-ASCII as is)."""
    return "\n".join(_strings(json.loads(serialize_value(obj))))


RUNLESS = ""  # the run ID of asset events recorded outside a run (dagster's RUNLESS_RUN_ID)


def instance_texts(instance: DagsterInstance) -> Iterator[tuple[str, str]]:
    """(where, text) for every run (its tags and config), every event of every run (its log
    message, metadata of materializations, observations, outputs and check evaluations, errors)
    and every asset event recorded outside a run (sensor-reported check results)."""
    for run in instance.get_runs():
        yield f"run {run.job_name} tags", _text(run.tags)
        yield f"run {run.job_name} config", _text(run.run_config)
    for run_id, job in [*((r.run_id, r.job_name) for r in instance.get_runs()), (RUNLESS, "-")]:
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            asset = event.asset_key.to_user_string() if event and event.asset_key else ""
            yield f"run {job} {entry.dagster_event_type} {asset}", _text(entry)


_WORD = re.compile(r"[^\W_]+")


def leaks(texts: Iterable[tuple[str, str]], values: set[str]) -> list[tuple[str, str]]:
    """(where, value) for each personal value found as a whole token in a text: the characters
    either side of it are not letters or digits. Values are looked up by their first word, so
    tens of thousands of them are searched in one pass over each text."""
    by_word: dict[str, list[tuple[int, str]]] = {}
    for value in values:
        first = _WORD.search(value)
        if first is not None:
            by_word.setdefault(first.group(0), []).append((first.start(), value))
    found = []
    for where, text in texts:
        for word in _WORD.finditer(text):
            for offset, value in by_word.get(word.group(0), ()):
                start = word.start() - offset
                end = start + len(value)
                if (
                    start >= 0
                    and text.startswith(value, start)
                    and not (start and _is_word_char(text[start - 1]))
                    and not (end < len(text) and _is_word_char(text[end]))
                ):
                    found.append((where, value))
    return found


def _is_word_char(char: str) -> bool:
    return char.isalnum()
