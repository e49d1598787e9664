"""The raw personal values of the demo's input files, and where a page's text shows them.

The values are read from the files themselves (the Campaign exports as archived on the SFTP
stand-in, the AEP audience export in the destination zone), by column, so the search knows
exactly what must never be shown: every email address, phone number, name, birth date, postal
code, external ID, subscriber key and push token of the input.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

# Column (lower case, as Campaign Classic and v8 export them, and as AEP names its export
# columns) -> the kind of personal value it holds.
PERSONAL_COLUMNS = {
    "semail": "email",
    "email": "email",
    "personalemail_address": "email",
    "saddress": "email or phone",  # broadLog / nonDeliverables: the address the message went to
    "smobilephone": "phone",
    "sfirstname": "name",
    "slastname": "name",
    "smiddlename": "name",
    "person_name_firstname": "name",
    "person_name_lastname": "name",
    "dbirthdate": "birth date",
    "szipcode": "postal code",
    "sexternalid": "external ID",
    "external_id": "external ID",
    "suserkey": "subscriber key",
    "sregistrationtoken": "push token",
}
# A postal code made of five digits cannot be told from a count on a page (a byte size, a row
# count): only postal codes with a letter or of six digits and more are searched for.
_SHORT_NUMBER = re.compile(r"\d{1,5}")
_EMAIL = re.compile(r"[^@\s,]+@[^@\s,]+\.\w+")
_PHONE = re.compile(r"\+\d{8,15}")


def input_files(data_dir: Path) -> list[Path]:
    """The demo's input files: Campaign exports (archived after processing) and AEP exports."""
    campaign = sorted((data_dir / "campaign_sftp" / "export" / "archive").rglob("*"))
    aep = sorted((data_dir / "aep_destination").rglob("*.csv*"))
    return [p for p in [*campaign, *aep] if p.is_file() and ".csv" in p.name]


def personal_values(files: Iterable[Path]) -> dict[str, str]:
    """value -> kind, for every personal cell of `files`."""
    found: dict[str, str] = {}
    for path in files:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        text = data.decode("utf-8-sig", errors="replace")
        reader = csv.reader(io.StringIO(text))
        header = [column.lower() for column in next(reader, [])]
        for cells in reader:
            if len(cells) == len(header):
                columns = zip(header, cells, strict=True)
                pairs = [(PERSONAL_COLUMNS.get(c), v.strip()) for c, v in columns]
            else:
                # A row with a column too many or too few (a deliberate defect of the sample):
                # its cells are shifted, so only what is recognisably an address is taken.
                pairs = [(_kind_by_shape(v.strip()), v.strip()) for v in cells]
            for kind, value in pairs:
                if kind is None or len(value) < 2 or value.upper() == "NULL":
                    continue
                if kind == "postal code" and _SHORT_NUMBER.fullmatch(value):
                    continue
                found[value] = kind
    return found


def _kind_by_shape(value: str) -> str | None:
    if _EMAIL.fullmatch(value):
        return "email"
    return "phone" if _PHONE.fullmatch(value) else None


class PersonalValueFinder:
    """Finds the values as whole words (case-insensitive), so that "Ben" is found in
    "Ben Becker" but not in "Benchmark"."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.kinds = {v.lower(): k for v, k in values.items()}
        alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
        self._pattern = re.compile(
            rf"(?<![\w@.+-])(?:{alternatives})(?![\w@-]|\.\w)", re.IGNORECASE
        )

    def find(self, text: str) -> dict[str, list[str]]:
        """kind -> the raw values `text` shows, sorted."""
        shown: dict[str, set[str]] = {}
        for match in self._pattern.finditer(text):
            kind = self.kinds[match.group(0).lower()]
            shown.setdefault(kind, set()).add(match.group(0))
        return {kind: sorted(values) for kind, values in sorted(shown.items())}


def describe_leaks(leaks: Mapping[str, Mapping[str, list[str]]]) -> str:
    """One line per page and kind, every value listed: what a reviewer could read that they
    must not."""
    lines = []
    for page, kinds in leaks.items():
        for kind, values in kinds.items():
            lines.append(f"{page}: {len(values)} raw {kind} value(s): {', '.join(values)}")
    return "\n".join(lines)
