"""Sample Campaign exports for demos, tests and benchmarks: seeded, fake, fast.

Writes what Campaign export workflows would drop on the SFTP server every four hours, into a
local folder laid out like the drop zone, one file per dataset and 4-hour UTC window (its start):

    <out>/export/broadLog_20261123_0800.csv[.gz]         delivery logs (nms:broadLogRcp)
    <out>/export/trackingLog_20261123_0800.csv[.gz]      opens, clicks, ... (nms:trackingLogRcp)
    <out>/export/nonDeliverables_20261123_0800.csv[.gz]  quarantine entries (nms:address)
    <out>/export/preferences_20261123_0800.csv[.gz]      opt-out flags (nms:recipient)
    <out>/export/profiles_20261123_0800.csv[.gz]         recipient extract (nms:recipient)
    <out>/export/appSubscriptions_20261123_0800.csv[.gz] push subscriptions (nms:appSubscriptionRcp)

`aep_push_token_export` writes the other side of mobile push: an AEP dataset export of the
push tokens the Experience Platform Mobile SDK registered, overlapping a chosen number of the
Campaign tokens (the devices registered through both routes).

Usage (also installed as the console script `rtcdp-sample-data`):

    python -m rtcdp_dev.sample_data --out data/campaign                  # last 24 h, all five
    python -m rtcdp_dev.sample_data --out data/campaign --start 2026-11-20 --end 2026-11-23 \
        --rows-per-file 50000 --layout standard --gzip --defect-rate 0.01 --seed 7 \
        --datasets broadlog,tracking_log

Column names come from the pipeline's own Layout objects (`DATASET_LAYOUTS`), file prefixes,
formats and allowed codes from its flows (`FLOWS`): the generator follows the pipeline.

Every value is invented: recipients come from a seeded pool, addresses only use reserved test
domains (RFC 2606 / RFC 6761: example.com, example.org, example.net, *.example, *.test), mobile
numbers only ranges reserved for fiction (GB 07700 900, US 555-01xx; FR 06 39 98 is
UNCONFIRMED, see `_mobile_number`; people of other countries have none).

One seed, one world: every dataset draws the same people (`recipient_pool`, with their profile
attributes in `recipient_details`), and the files of one window fit together. trackingLog rows
react to broadLog messages (status sent, not defective) of the same seed: a row's broadLog,
delivery, recipient and external ids are that message's, its tsLog is after its tsEvent, so the
pipeline's orphan check passes. Reactions reach back up to a day (`TRACKING_HISTORY_WINDOWS`)
but `write_dataset_files` never past the first window it writes; alone, `generate_tracking_log`
only reacts to its own window. profiles cover every recipient of the window's broadLog (with
its rows the pipeline keeps, whenever the file has rows to spare for its defects). Both find
the broadLog rows by replaying its random draws (`_broadlog_facts`): they assume the broadLog
file has the same row count and defect rate (override with `broadlog_rows` /
`broadlog_defect_rate`) and was written with the default batch size.

Determinism: the same arguments give byte-identical files (gzip is written with mtime 0 and no
file name). Only the defaults of `--now` (the wall clock) and of `--end` (derived from `--now`)
read the clock; a window that lies completely in the past does not depend on `--now` at all.
The random streams are keyed by (seed, dataset, window, batch), never by layout or compression,
so the classic and standard layouts of one window hold the same rows under different headers.

Defects: a share `--defect-rate` of the rows (binomially drawn, at most one defect per row)
carries exactly one fault that `rtcdp_assets.shared.ingest.validate_batch` (with the dataset flow's
allowed codes for default PipelineSettings) rejects under exactly one reason code; see
`DEFECT_KINDS`, derived from each dataset's FieldSpecs (missing required value, bad integer,
timestamp, date, email or boolean, unknown code, a dropped column). The API returns the exact
expected counts and the CSV record number (header = 1) of every defective row.

Speed (measured 2026-11-23 on the 2-core build box, numpy 2.4.6 / pyarrow 26.0.1, classic
layout, defect rate 0.005, `stream_broadlog` with 500 000-row batches; other jobs were sharing
the machine): 5 000 000 rows (882 MB) in 6.1-7.3 s, i.e. 690 000-820 000 rows/s; 20 000 000
rows (3.5 GB) in 27 s (730 000 rows/s) with peak RSS 0.72 GB, which does not grow with the
file. gzip output is bound by zlib: 190 000-230 000 rows/s at compresslevel 6 (the default),
400 000-580 000 rows/s at compresslevel 1 (the next batch is generated on the other core while
one is compressed). Rows are built column by column with numpy and pyarrow compute kernels and
joined into CSV lines by `binary_join_element_wise` straight into the output buffer; only the
few defective rows go through Python. Byte-identical output is promised for the same numpy and
pyarrow versions (numpy may change its random distributions between feature releases).

The other datasets, same box and settings, `stream_dataset` (broadLog: 830 000-910 000 rows/s
in the same runs): trackingLog 740 000-790 000 rows/s for 5 M rows (629 MB; broadLog replay and
reaction sample included), 20 M rows in 27-29 s with peak RSS 1.2 GB (the file-wide sample
keeps 6 bytes a row, the referenced sends ~30 bytes per engaged message), 415 000-460 000
rows/s when reaching back a day over 5 M-row broadLog files; non-deliverables 780 000-900 000,
preferences 940 000-1 400 000, profiles 530 000-620 000 rows/s (2 M rows). gzip at
compresslevel 6: trackingLog 250 000, non-deliverables 270 000, preferences 355 000, profiles
145 000 rows/s; at compresslevel 1: trackingLog 580 000-670 000, profiles 400 000 rows/s.
"""

from __future__ import annotations

import argparse
import bisect
import gzip as gzip_module
import hashlib
import itertools
import json
import sys
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar, cast

import dagster
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from resources.settings import PipelineSettings
from rtcdp_assets.shared.ingest import Layout

with warnings.catch_warnings():
    # Building the datasets' Dagster definitions warns about preview features; that noise is
    # the pipeline's business, not something a user of this CLI can act on.
    warnings.simplefilter("ignore", dagster.PreviewWarning)
    warnings.simplefilter("ignore", dagster.BetaWarning)
    from rtcdp_assets.campaign_to_aep import (
        non_deliverables,
        preferences,
        profiles,
        push_subscriptions,
        tracking_log,
    )
    from rtcdp_assets.campaign_to_aep.broadlog import (
        CLASSIC,
        FAILURE_REASONS,
        STANDARD,
        STATUS_LABELS,
        broadlog_flow,
    )
    from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportFlow

WINDOW = timedelta(hours=4)
WINDOW_SECONDS = int(WINDOW.total_seconds())
TS_FORMAT = "%Y-%m-%d %H:%M:%S"
# broadLog ids of window w start at (w - origin) * stride: ids increase across windows and two
# windows never share an id (the XDM `_id` is derived from it) while a window holds fewer
# than ~80 M rows; the origin keeps the numbers to 13 digits instead of 15.
_ID_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
_ID_STRIDE = 100_000_000
POOL_SIZE = 50_000
DEFAULT_BATCH_ROWS = 500_000
MAX_BATCH_ROWS = 5_000_000
# A past window for benchmark files, so that `now=None` never has to clip them.
DEFAULT_BENCH_WINDOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)

_T = TypeVar("_T")

LAYOUTS: dict[str, Layout] = {"classic": CLASSIC, "standard": STANDARD}  # broadLog's
# The pipeline's own Layout objects: a renamed column there renames it here too.
DATASET_LAYOUTS: dict[str, dict[str, Layout]] = {
    "broadlog": LAYOUTS,
    "tracking_log": {"classic": tracking_log.CLASSIC, "standard": tracking_log.STANDARD},
    "non_deliverables": {
        "classic": non_deliverables.CLASSIC,
        "standard": non_deliverables.STANDARD,
    },
    "preferences": {"classic": preferences.CLASSIC, "standard": preferences.STANDARD},
    "profiles": {"classic": profiles.CLASSIC, "standard": profiles.STANDARD},
    "push_subscriptions": {
        "classic": push_subscriptions.CLASSIC,
        "standard": push_subscriptions.STANDARD,
    },
}
# The pipeline flows the files are generated for: their file prefixes, formats and allowed codes.
FLOWS: dict[str, CampaignExportFlow] = {
    "broadlog": broadlog_flow,
    "tracking_log": tracking_log.tracking_log_flow,
    "non_deliverables": non_deliverables.non_deliverables_flow,
    "preferences": preferences.preferences_flow,
    "profiles": profiles.profiles_flow,
    "push_subscriptions": push_subscriptions.push_subscriptions_flow,
}


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GenerationStats:
    """What a generated file holds, in the pipeline's terms, so tests can assert exact counts."""

    rows: int  # data rows written (malformed ones included), header excluded
    expected_valid: int  # rows the validator must accept
    expected_rejects: dict[str, int]  # reason code -> rows; only codes that occur
    reject_lines: dict[int, str] = field(repr=False)  # CSV record number (header = 1) -> reason
    bytes_written: int = 0  # bytes on disk (compressed size for .gz)


@dataclass(frozen=True)
class GeneratedFile:
    """One generated export file: `content` is the uncompressed CSV, whatever lands on disk."""

    name: str
    content: bytes = field(repr=False)
    rows: int
    expected_valid: int
    expected_rejects: dict[str, int]
    reject_lines: dict[int, str] = field(repr=False)
    dataset: str = "broadlog"
    window_start: datetime | None = None
    path: Path | None = None  # set once written to disk

    def summary(self) -> str:
        rejects = ", ".join(f"{k}={v}" for k, v in self.expected_rejects.items()) or "none"
        where = str(self.path) if self.path is not None else self.name
        return (
            f"{where}: {self.rows} rows, {self.expected_valid} valid, "
            f"{self.rows - self.expected_valid} defective ({rejects})"
        )


# --------------------------------------------------------------------------------------------
# Shared helpers: windows, seeds, ids, times, CSV assembly
# --------------------------------------------------------------------------------------------
def as_utc(value: datetime) -> datetime:
    """Naive datetimes are UTC, as in the file names and partition keys."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def floor_window(value: datetime) -> datetime:
    value = as_utc(value)
    return value.replace(hour=value.hour - value.hour % 4, minute=0, second=0, microsecond=0)


def window_starts(start: datetime, end: datetime) -> list[datetime]:
    """Starts of the 4-hour windows that begin in [floor(start), end)."""
    first, end = floor_window(start), as_utc(end)
    out: list[datetime] = []
    current = first
    while current < end:
        out.append(current)
        current += WINDOW
    return out


def _epoch_seconds(value: datetime) -> int:
    return int(as_utc(value).timestamp())


def window_index(window_start: datetime) -> int:
    return _epoch_seconds(window_start) // WINDOW_SECONDS


def _tag(name: str) -> int:
    # crc32 rather than hash(): str hashes are salted per process and would break determinism.
    return zlib.crc32(name.encode())


def rng_for(seed: int, *keys: int | str) -> np.random.Generator:
    """An independent random stream per (seed, keys): one file never shifts another's values."""
    if seed < 0:
        raise ValueError("seed must be >= 0")
    entropy = [seed, *(_tag(k) if isinstance(k, str) else k for k in keys)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def increasing_ids(rng: np.random.Generator, start: int, n: int) -> np.ndarray:
    """Strictly increasing ids after `start`, with the small gaps a shared DB sequence leaves."""
    return start + np.cumsum(rng.geometric(0.8, n).astype(np.int64))


def int_strings(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values, pa.int64()), pa.string())


def ts_strings(epoch_seconds: np.ndarray) -> pa.Array:
    """`YYYY-MM-DD HH:MM:SS` (UTC, no offset), the way Campaign writes dates in exports."""
    return pc.cast(pa.array(epoch_seconds, pa.timestamp("s")), pa.string())


def weighted_choice(rng: np.random.Generator, n: int, weights: Sequence[float]) -> np.ndarray:
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(p.size, size=n, p=p / p.sum())


Column = pa.Array | pa.Scalar


def join_lines(columns: Sequence[Column]) -> pa.Array:
    """One CSV line per row, `\n` included, joined by a compute kernel.

    Values never contain the delimiter, quotes or line breaks, so nothing needs quoting.
    """
    *head, last = columns
    # The line break rides on the last column, so the joined array's data buffer already
    # is the CSV body: no extra pass, no copy.
    if isinstance(last, pa.Scalar):
        last = pa.scalar(f"{last.as_py()}\n")
    else:
        last = pc.binary_join_element_wise(last, pa.scalar(""), "\n")
    return pc.binary_join_element_wise(*head, last, ",")


def body_chunks(lines: pa.Array, replacements: Mapping[int, bytes]) -> list[memoryview | bytes]:
    """The CSV body as zero-copy views of `lines`, with the rows in `replacements` swapped
    for other bytes (defective rows): a handful of slices instead of rebuilding the array."""
    if len(lines) == 0:
        return []
    lines = pa.concat_arrays([lines]) if lines.offset else lines  # rebase a sliced array
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1)
    data = memoryview(lines.buffers()[2])  # type: ignore[arg-type]
    chunks: list[memoryview | bytes] = []
    pos = int(offsets[0])
    for row in sorted(replacements):
        chunks += [data[pos : int(offsets[row])], replacements[row]]
        pos = int(offsets[row + 1])
    chunks.append(data[pos : int(offsets[-1])])
    return chunks


def header_line(layout: Layout) -> bytes:
    return (",".join(layout.columns) + "\n").encode()


# --------------------------------------------------------------------------------------------
# The shared recipient pool (one per seed): the same people appear in every dataset and file
# --------------------------------------------------------------------------------------------
_FIRST_NAMES = (
    "anna",
    "ben",
    "chloe",
    "david",
    "emma",
    "felix",
    "grace",
    "hugo",
    "ines",
    "jonas",
    "karin",
    "leo",
    "maria",
    "noah",
    "olivia",
    "paul",
    "quinn",
    "rosa",
    "samuel",
    "tara",
    "ugo",
    "vera",
    "william",
    "xenia",
    "yusuf",
    "zoe",
    "amelie",
    "bruno",
    "clara",
    "dario",
    "elena",
    "fatima",
    "gabriel",
    "hannah",
    "ivan",
    "julia",
    "kenji",
    "laura",
    "mateo",
    "nina",
    "oscar",
    "priya",
    "rafael",
    "sofia",
    "thomas",
    "lucia",
    "victor",
    "wen",
    "aiko",
)
_LAST_NAMES = (
    "smith",
    "muller",
    "martin",
    "rossi",
    "garcia",
    "novak",
    "jansen",
    "dubois",
    "kowalski",
    "silva",
    "schmidt",
    "bernard",
    "ferrari",
    "lopez",
    "horvat",
    "peeters",
    "moreau",
    "weber",
    "romano",
    "fernandez",
    "nielsen",
    "lefebvre",
    "fischer",
    "colombo",
    "martinez",
    "berg",
    "laurent",
    "wagner",
    "ricci",
    "sanchez",
    "olsen",
    "fontaine",
    "becker",
    "marino",
    "perez",
    "lindqvist",
    "tanaka",
    "chen",
    "kim",
    "okafor",
    "haddad",
    "nguyen",
    "singh",
    "cohen",
)
# Reserved for documentation and testing (RFC 2606 / RFC 6761): no real mailbox can match.
EMAIL_DOMAINS = (
    ("example.com", 30),
    ("example.org", 15),
    ("example.net", 12),
    ("mail.test", 12),
    ("inbox.test", 8),
    ("mail.example.com", 8),
    ("webmail.example", 6),
    ("post.example", 5),
    ("corp.example.org", 4),
)


@dataclass(frozen=True)
class RecipientPool:
    """nms:recipient stand-ins: ids, external ids (AEP identity) and email addresses."""

    recipient_ids: pa.Array  # iRecipientId as text, increasing
    external_ids: pa.Array  # `CUST-00012345`, or "" for profiles created without one
    emails: pa.Array  # lower case, as Campaign stores them (§b2: Lower(@email))
    emails_mixed_case: pa.Array  # the same address as a CRM might have sent it
    # Indices into _FIRST_NAMES / _LAST_NAMES the addresses were made from, so that profiles
    # name the person their address suggests.
    first_name_idx: np.ndarray = field(repr=False, compare=False)
    last_name_idx: np.ndarray = field(repr=False, compare=False)

    @property
    def size(self) -> int:
        return len(self.recipient_ids)

    def addresses(self, idx: np.ndarray, mixed: np.ndarray) -> pa.Array:
        """Addresses of recipients `idx`; rows where `mixed` keep some upper-case letters."""
        both = pa.concat_arrays([self.emails, self.emails_mixed_case])
        return both.take(pa.array(idx + self.size * mixed.astype(np.int64)))


def _local_part(pattern: int, first: str, last: str, number: int) -> str:
    if pattern == 0:
        return f"{first}.{last}"
    if pattern == 1:
        return f"{first}.{last}{number % 100}"
    if pattern == 2:
        return f"{first[0]}{last}"
    if pattern == 3:
        return f"{first}_{last}"
    if pattern == 4:
        return f"{first}{1950 + number % 60}"
    return f"{last}.{first}"


def _mixed_case(style: int, email: str) -> str:
    local, domain = email.split("@")
    if style == 0:
        return email.capitalize()
    if style == 1:
        return f"{local.title()}@{domain}"
    return f"{local.title()}@{domain.upper()}"


@lru_cache(maxsize=8)
def recipient_pool(seed: int, size: int = POOL_SIZE) -> RecipientPool:
    """The people of one seed. Built once per process (≈ 0.3 s); every dataset samples it."""
    rng = rng_for(seed, "recipients")
    ids = increasing_ids(rng, 1_000_000, size)
    # All draws up front: per-value Generator calls would dominate the build time.
    first = rng.integers(0, len(_FIRST_NAMES), size).tolist()
    last = rng.integers(0, len(_LAST_NAMES), size).tolist()
    pattern = rng.integers(0, 6, size).tolist()
    number = rng.integers(0, 10_000, size).tolist()
    domains = weighted_choice(rng, size, [w for _, w in EMAIL_DOMAINS]).tolist()
    shared = (rng.random(size) < 0.005).tolist()  # households sharing one mailbox
    style = rng.integers(0, 3, size).tolist()
    emails: list[str] = []
    taken: set[str] = set()
    for i in range(size):
        local = _local_part(pattern[i], _FIRST_NAMES[first[i]], _LAST_NAMES[last[i]], number[i])
        domain = EMAIL_DOMAINS[domains[i]][0]
        email, extra = f"{local}@{domain}", number[i]
        # Name clashes get a number, as mailbox providers force, unless the mailbox is shared.
        while email in taken and not shared[i]:
            extra = extra * 7 + 13
            email = f"{local}{extra % 10_000}@{domain}"
        taken.add(email)
        emails.append(email)
    mixed = [_mixed_case(st, e) for st, e in zip(style, emails, strict=True)]
    customer_numbers = rng.choice(99_999_999, size=size, replace=False) + 1
    has_external = rng.random(size) < 0.93
    external = [
        f"CUST-{c:08d}" if keep else ""
        for c, keep in zip(customer_numbers.tolist(), has_external.tolist(), strict=True)
    ]
    return RecipientPool(
        recipient_ids=int_strings(ids),
        external_ids=pa.array(external, pa.string()),
        emails=pa.array(emails, pa.string()),
        emails_mixed_case=pa.array(mixed, pa.string()),
        first_name_idx=np.asarray(first, dtype=np.int64),
        last_name_idx=np.asarray(last, dtype=np.int64),
    )


# --------------------------------------------------------------------------------------------
# What nms:recipient holds about each person of the pool beyond identifiers (profiles, phones)
# --------------------------------------------------------------------------------------------
# Names as the CRM spells them; the addresses above only use the ASCII forms.
_DISPLAY_NAMES = {
    "amelie": "Amélie",
    "chloe": "Chloé",
    "ines": "Inès",
    "zoe": "Zoé",
    "muller": "Müller",
    "garcia": "García",
    "lopez": "López",
    "fernandez": "Fernández",
    "martinez": "Martínez",
    "sanchez": "Sánchez",
    "perez": "Pérez",
}
# A word list: two lines rather than a 25-line literal.
_FEMALE_NAME_LIST = (
    "anna chloe emma grace ines karin maria olivia rosa tara vera xenia zoe amelie clara elena "
    "fatima hannah julia laura nina priya sofia lucia aiko"
)
_FEMALE_NAMES = frozenset(_FEMALE_NAME_LIST.split())
_UNISEX_NAMES = frozenset({"quinn", "wen"})


@dataclass(frozen=True)
class _City:
    name: str
    zip_lo: int = 0  # postal codes are drawn from [zip_lo, zip_hi] ...
    zip_hi: int = 0
    outward: tuple[str, ...] = ()  # ... or, in GB, from these outward codes
    area: str = ""  # US area code for the city's phone numbers


# Share of the pool per country, and a few cities per country (first ones more populous).
_COUNTRIES: dict[str, tuple[float, tuple[_City, ...]]] = {
    "FR": (
        0.32,
        (
            _City("Paris", 75001, 75020),
            _City("Lyon", 69001, 69009),
            _City("Marseille", 13001, 13016),
            _City("Toulouse", 31000, 31500),
            _City("Nantes", 44000, 44300),
            _City("Lille", 59000, 59800),
            _City("Bordeaux", 33000, 33800),
        ),
    ),
    "GB": (
        0.17,
        (
            _City("London", outward=("E1", "EC1A", "N1", "NW1", "SE1", "SW1A", "W1A", "WC2N")),
            _City("Manchester", outward=("M1", "M2", "M3", "M4")),
            _City("Birmingham", outward=("B1", "B2", "B3")),
            _City("Edinburgh", outward=("EH1", "EH2", "EH3")),
            _City("Bristol", outward=("BS1", "BS2")),
        ),
    ),
    "US": (
        0.17,
        (
            _City("New York", 10001, 10282, area="212"),
            _City("Chicago", 60601, 60661, area="312"),
            _City("San Francisco", 94102, 94134, area="415"),
            _City("Seattle", 98101, 98199, area="206"),
            _City("Boston", 2108, 2137, area="617"),
            _City("Austin", 78701, 78759, area="512"),
        ),
    ),
    "DE": (
        0.14,
        (
            _City("Berlin", 10115, 14199),
            _City("Hamburg", 20095, 22769),
            _City("München", 80331, 81929),
            _City("Köln", 50667, 51149),
            _City("Frankfurt am Main", 60306, 60599),
        ),
    ),
    "ES": (
        0.07,
        (
            _City("Madrid", 28001, 28055),
            _City("Barcelona", 8001, 8042),
            _City("Valencia", 46001, 46026),
            _City("Sevilla", 41001, 41020),
        ),
    ),
    "IT": (
        0.06,
        (
            _City("Roma", 118, 199),
            _City("Milano", 20121, 20162),
            _City("Torino", 10121, 10156),
            _City("Napoli", 80121, 80147),
        ),
    ),
    "NL": (
        0.04,
        (
            _City("Amsterdam", 1011, 1109),
            _City("Rotterdam", 3011, 3089),
            _City("Utrecht", 3511, 3585),
        ),
    ),
    "BE": (
        0.03,
        (
            _City("Bruxelles", 1000, 1210),
            _City("Antwerpen", 2000, 2660),
            _City("Gent", 9000, 9052),
            _City("Liège", 4000, 4032),
        ),
    ),
}
_ZIP_DIGITS = {"NL": 4, "BE": 4}
_POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # letters of the inward part of GB postcodes
_MOBILE_SHARE = 0.85  # people with a mobile number, where the country has a fiction range


def _mobile_number(country: str, city: _City, number: int) -> str:
    """A mobile number from a range reserved for fiction, or "" where we know of none:
    Ofcom 07700 900xxx (GB) and NANP 555-0100..0199 (US) are documented drama ranges; the
    French 06 39 98 xx xx block is ARCEP's fiction range as remembered, UNCONFIRMED against
    the numbering plan: check it before these files leave a test machine."""
    if country == "FR":
        return f"+3363998{number % 10_000:04d}"
    if country == "GB":
        return f"+447700900{number % 1_000:03d}"
    if country == "US":
        return f"+1{city.area}55501{number % 100:02d}"
    return ""


def _zip_code(country: str, city: _City, number: int) -> str:
    letters = _POSTCODE_LETTERS[number % 20] + _POSTCODE_LETTERS[number // 20 % 20]
    if city.outward:
        return f"{city.outward[number % len(city.outward)]} {number % 9 + 1}{letters}"
    code = city.zip_lo + number % (city.zip_hi - city.zip_lo + 1)
    text = f"{code:0{_ZIP_DIGITS.get(country, 5)}d}"
    return f"{text} {letters}" if country == "NL" else text


@dataclass(frozen=True)
class RecipientDetails:
    """Profile attributes per person of the pool (same order): a person keeps the same name,
    phone and city in every file and every dataset."""

    first_names: pa.Array
    last_names: pa.Array
    middle_names: pa.Array  # mostly ""
    mobile_phones: pa.Array  # E.164, or "" (no number, or no fiction range for the country)
    genders: pa.Array  # 0/1/2 (§b2), from the first name where it tells
    birth_dates: pa.Array  # YYYY-MM-DD or ""
    email_formats: pa.Array  # 0 unknown, 1 text, 2 HTML
    country_codes: pa.Array
    cities: pa.Array
    zip_codes: pa.Array
    created: np.ndarray = field(repr=False, compare=False)  # epoch s of the recipient's creation
    with_mobile: np.ndarray = field(repr=False, compare=False)  # pool indices with a mobile


_BIRTH_FIRST = np.datetime64("1941-01-01")
_BIRTH_LAST = np.datetime64("2008-12-31")
_CREATED_FIRST = _epoch_seconds(datetime(2015, 1, 1, tzinfo=UTC))
_CREATED_LAST = _epoch_seconds(datetime(2026, 10, 31, tzinfo=UTC))


@lru_cache(maxsize=8)
def recipient_details(seed: int, size: int = POOL_SIZE) -> RecipientDetails:
    """Profile attributes of `recipient_pool(seed, size)`, from a stream of their own so that
    the pool (and every broadLog byte) stays as it was."""
    pool = recipient_pool(seed, size)
    rng = rng_for(seed, "recipient-details")
    codes = list(_COUNTRIES)
    country = weighted_choice(rng, size, [_COUNTRIES[c][0] for c in codes]).tolist()
    city_pick = rng.random(size).tolist()
    number = rng.integers(0, 1 << 40, size).tolist()
    has_mobile = (rng.random(size) < _MOBILE_SHARE).tolist()
    gender_unknown = rng.random(size) < 0.08
    has_middle = rng.random(size) < 0.06
    middle_idx = rng.integers(0, len(_FIRST_NAMES), size)
    birth = _BIRTH_FIRST + rng.integers(0, (_BIRTH_LAST - _BIRTH_FIRST).astype(np.int64) + 1, size)
    no_birth = rng.random(size) < 0.22
    email_format = weighted_choice(rng, size, (0.12, 0.05, 0.83))
    created = rng.integers(_CREATED_FIRST, _CREATED_LAST, size, dtype=np.int64)

    # Bigger cities first: weights 1, 1/2, 1/3, ... (cumulative, for a bisection per person).
    city_weights = {
        c: list(itertools.accumulate(1 / (k + 1) for k in range(len(_COUNTRIES[c][1]))))
        for c in codes
    }
    cities: list[str] = []
    zips: list[str] = []
    mobiles: list[str] = []
    for i in range(size):
        code = codes[country[i]]
        weights = city_weights[code]
        city = _COUNTRIES[code][1][bisect.bisect_right(weights, city_pick[i] * weights[-1])]
        cities.append(city.name)
        zips.append(_zip_code(code, city, number[i]))
        # Other bits of the same draw than the postal code's: the two do not go together.
        mobiles.append(_mobile_number(code, city, number[i] >> 20) if has_mobile[i] else "")

    def display(names: Sequence[str], idx: np.ndarray) -> pa.Array:
        vocab = pa.array([_DISPLAY_NAMES.get(n, n.capitalize()) for n in names])
        return vocab.take(pa.array(idx))

    name_gender = np.array(
        ["0" if n in _UNISEX_NAMES else "2" if n in _FEMALE_NAMES else "1" for n in _FIRST_NAMES]
    )
    genders = np.where(gender_unknown, "0", name_gender[pool.first_name_idx])
    middle = display(_FIRST_NAMES, middle_idx)
    return RecipientDetails(
        first_names=display(_FIRST_NAMES, pool.first_name_idx),
        last_names=display(_LAST_NAMES, pool.last_name_idx),
        middle_names=pc.if_else(pa.array(has_middle), middle, ""),
        mobile_phones=pa.array(mobiles, pa.string()),
        genders=pa.array(genders.tolist(), pa.string()),
        birth_dates=pc.if_else(pa.array(no_birth), "", pc.cast(pa.array(birth), pa.string())),
        email_formats=pa.array(email_format.astype(str).tolist(), pa.string()),
        country_codes=pa.array([codes[c] for c in country], pa.string()),
        cities=pa.array(cities, pa.string()),
        zip_codes=pa.array(zips, pa.string()),
        created=created,
        with_mobile=np.flatnonzero(np.asarray(mobiles, dtype=object) != ""),
    )


# --------------------------------------------------------------------------------------------
# Deliveries: a small, seasonal set per window
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    delivery_id: int
    label: str
    operation_id: int  # iOperationId: the campaign the delivery belongs to
    weight: float  # share of the window's messages


_SEASONS = {
    1: "New Year Sale",
    2: "Valentine's Day",
    3: "Spring Sale",
    4: "Easter Offers",
    5: "Mother's Day",
    6: "Summer Sale",
    7: "Summer Sale",
    8: "Back to School",
    9: "Back to School",
    10: "Halloween",
    11: "Black Friday",
    12: "Christmas",
}
_LIFECYCLE = (
    "Welcome Series - Email 1",
    "Welcome Series - Email 2",
    "Cart Abandonment - Reminder",
    "Birthday Offer",
    "Win-back - We Miss You",
)
_SEASONAL_SUFFIXES = ("Newsletter", "Reminder", "Last Chance")


def deliveries_for_window(seed: int, window_start: datetime) -> list[Delivery]:
    """Triggered lifecycle deliveries (always on) plus the month's newsletter and seasonal
    campaign, e.g. "Black Friday 2026 - Newsletter"; the batch deliveries carry most volume."""
    base = rng_for(seed, "deliveries")
    delivery_base = int(base.integers(10, 90)) * 100_000
    operation_base = int(base.integers(1, 9)) * 10_000
    ws = as_utc(window_start)
    month_index = (ws.year - 2000) * 12 + ws.month - 1
    rng = rng_for(seed, "delivery-mix", window_index(ws))
    out = [
        Delivery(delivery_base + 1 + i, label, operation_base + 1, float(rng.uniform(0.01, 0.04)))
        for i, label in enumerate(_LIFECYCLE)
    ]
    out.append(
        Delivery(
            delivery_base + 1_000 + month_index * 4,
            f"Monthly Newsletter {ws.year}-{ws.month:02d}",
            operation_base + 100 + month_index * 2,
            float(rng.uniform(0.1, 0.3)),
        )
    )
    season = _SEASONS[ws.month]
    for slot, suffix in enumerate(_SEASONAL_SUFFIXES, start=1):
        out.append(
            Delivery(
                delivery_base + 1_000 + month_index * 4 + slot,
                f"{season} {ws.year} - {suffix}",
                operation_base + 101 + month_index * 2,
                float(rng.uniform(0.05, 0.4)),
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Defects: each one is caught by the validator under exactly one reason code
# --------------------------------------------------------------------------------------------
# (valid value, a random non-negative int to pick a variant with) -> bad value. The ints are
# drawn in one vectorised call per batch: per-value Generator calls cost more than the rest.
Corruptor = Callable[[str, int], str]


@dataclass(frozen=True)
class DefectKind:
    """One realistic fault. `corrupt` maps a valid value to a bad one; None drops the value
    (and its delimiter), which gives a row with one column too few."""

    reason: str  # ingest.py reason code the validator must give
    fields: tuple[str, ...]  # canonical fields that may carry it
    corrupt: Corruptor | None


def _bad_email(value: str, pick: int) -> str:
    local, domain = value.split("@", 1)
    # Each variant fails ingest._EMAIL_RE (a trailing dot would not: "a@b.com." passes).
    variants = (
        f"{local}{domain}",  # the @ got lost
        f"{local}@@{domain}",
        f"{local}@{domain.split('.', 1)[0]}",  # no dot in the domain
        f"{local} @{domain}",  # a blank inside the address survives trimming
    )
    return variants[pick % len(variants)]


def _missing(_value: str, pick: int) -> str:
    return "  " if pick % 5 == 0 else ""  # blanks are trimmed before the required check


def _bad_integer(value: str, pick: int) -> str:
    variants = (
        f"{value}.0",  # a spreadsheet round trip
        f"{int(value):.4E}",  # ... or scientific notation
        "NULL",
        # thousands separator; short numbers would have a leading blank, which trimming removes
        f"{value[:-3]} {value[-3:]}" if len(value) > 3 else f"{value}.00",
    )
    return variants[pick % len(variants)]


def _bad_timestamp(value: str, pick: int) -> str:
    # Sliced rather than parsed: the input is always `YYYY-MM-DD HH:MM:SS`.
    y, mo, d = value[0:4], value[5:7], value[8:10]
    h, mi, sec = value[11:13], value[14:16], value[17:19]
    h12 = f"{(int(h) + 11) % 12 + 1}"
    variants = (
        f"{d}/{mo}/{y} {h}:{mi}:{sec}",
        f"{mo}/{d}/{y} {h12}:{mi}:{sec} {'AM' if int(h) < 12 else 'PM'}",
        f"{y}-{mo}-{d} {h}:{mi}",  # seconds cut off
        f"{y}-{mo}-{d}",
        f"{y}{mo}{d}{h}{mi}{sec}",
    )
    return variants[pick % len(variants)]


# Plausible codes of statuses without a public number (Ignored, Prepared, ...): none of them is
# in STATUS_LABELS, which is what the pipeline allows (broadlog._allowed_codes).
_UNKNOWN_STATUSES = tuple(c for c in ("0", "3", "4", "5", "8", "9", "99") if c not in STATUS_LABELS)


def _unknown_status(_value: str, pick: int) -> str:
    return _UNKNOWN_STATUSES[pick % len(_UNKNOWN_STATUSES)]


BROADLOG_DEFECTS: tuple[DefectKind, ...] = (
    DefectKind("invalid_email", ("address",), _bad_email),
    DefectKind(
        "missing_required_value",
        ("broadlog_id", "delivery_id", "recipient_id", "address", "status", "event_date"),
        _missing,
    ),
    DefectKind("invalid_integer", ("broadlog_id", "delivery_id", "recipient_id"), _bad_integer),
    DefectKind(
        "invalid_timestamp", ("event_date", "contact_date", "last_modified"), _bad_timestamp
    ),
    DefectKind("unknown_code:status", ("status",), _unknown_status),
    DefectKind("wrong_column_count", tuple(CLASSIC.columns.values()), None),
)


def _bad_boolean(_value: str, pick: int) -> str:
    # What other tools write for booleans; none is in ingest's true/false lists.
    variants = ("2", "-1", "t", "f", "NULL", "on", "x")
    return variants[pick % len(variants)]


def _bad_date(value: str, pick: int) -> str:
    # Birth dates are optional: an empty one gets a made-up date to spoil.
    value = value or "1980-06-15"
    y, mo, d = value[0:4], value[5:7], value[8:10]
    variants = (
        f"{d}/{mo}/{y}",
        f"{y}-{mo}-{d} 00:00:00",  # a timestamp where a date belongs
        f"{y}{mo}{d}",
        f"{y}-02-30",  # well-formed but impossible: caught by ingest's round trip
        f"{y[2:]}-{mo}-{d}",
    )
    return variants[pick % len(variants)]


def _unknown_code(codes: Sequence[str]) -> Corruptor:
    """A corruptor writing one of `codes` (codes the pipeline does not accept)."""
    if not codes:
        raise ValueError("no unknown code left to write: the pipeline accepts them all")
    choices = tuple(codes)

    def corrupt(_value: str, pick: int) -> str:
        return choices[pick % len(choices)]

    return corrupt


def _rejected(dataset: str, field_name: str, candidates: Sequence[str]) -> tuple[str, ...]:
    """The candidates the pipeline rejects for `field_name`: its flow's allowed codes (with
    default settings) override the FieldSpec's, exactly as ingest_file applies them."""
    flow = FLOWS[dataset]
    allowed = flow.allowed_codes(PipelineSettings()).get(
        field_name, flow.fmt.field(field_name).allowed
    )
    if allowed is None:
        raise ValueError(f"{dataset}.{field_name} accepts every value")
    return tuple(c for c in candidates if c not in allowed)


@dataclass(frozen=True)
class Defect:
    row: int  # 0-based row within the batch
    reason: str
    line: bytes  # the whole defective CSV line, `\n` included


def _defect_rows(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """The rows of a batch that get a defect: the first draws of `inject_defects`, so that
    other datasets can tell which broadLog rows the pipeline rejects without building them."""
    k = int(rng.binomial(n, rate)) if rate > 0 and n else 0
    if k == 0:
        return np.empty(0, dtype=np.int64)
    return np.sort(rng.choice(n, size=k, replace=False))


def inject_defects(
    columns: Mapping[str, Column],
    n: int,
    layout: Layout,
    kinds: Sequence[DefectKind],
    rate: float,
    rng: np.random.Generator,
) -> list[Defect]:
    """Pick a binomial share `rate` of n rows and give each exactly one defect.

    `columns` maps canonical field -> the n valid values. Only the picked rows are touched
    (in Python; there are few of them), so the valid rows stay in Arrow.
    """
    rows = _defect_rows(rng, n, rate)
    k = rows.size
    if k == 0:
        return []
    kind_of = rng.integers(0, len(kinds), size=k).tolist()
    target_pick = rng.integers(0, 1 << 30, size=k).tolist()
    variant_pick = rng.integers(0, 1 << 30, size=k).tolist()
    order = list(layout.columns.values())  # canonical names in file order
    picked = pa.array(rows)
    values = [
        [col.as_py()] * k if isinstance(col, pa.Scalar) else col.take(picked).to_pylist()
        for col in (columns[name] for name in order)
    ]
    # Positions in the file of the fields each kind may hit (a layout may lack some).
    where = [[order.index(f) for f in kind.fields if f in order] for kind in kinds]
    out: list[Defect] = []
    for j, row in enumerate(zip(*values, strict=True)):
        kind, places = kinds[kind_of[j]], where[kind_of[j]]
        at = places[target_pick[j] % len(places)]
        fields = list(row)
        if kind.corrupt is None:
            del fields[at]
        else:
            fields[at] = kind.corrupt(fields[at], variant_pick[j])
        out.append(Defect(int(rows[j]), kind.reason, (",".join(fields) + "\n").encode()))
    return out


# --------------------------------------------------------------------------------------------
# Window plans and batches: what the files of every dataset share
# --------------------------------------------------------------------------------------------
_STATUS_CODES = ("1", "2", "6", "7")  # sent, failed, pending, cancelled (§b3)
_STATUS_WEIGHTS = (0.935, 0.047, 0.011, 0.007)
_FAILURE_TYPES = ("hard", "soft", "ignored")
_FAILURE_TYPE_WEIGHTS = (0.3, 0.45, 0.25)
# failureReason per failure type, following the §b3 table (weights: how often each shows up).
_REASONS_BY_TYPE: dict[str, tuple[tuple[str, float], ...]] = {
    "hard": (("1", 0.55), ("8", 0.1), ("9", 0.15), ("3", 0.05), ("4", 0.1), ("20", 0.05)),
    "soft": (("5", 0.4), ("2", 0.15), ("3", 0.2), ("4", 0.1), ("20", 0.15)),
    "ignored": (
        ("10", 0.35),
        ("11", 0.1),
        ("12", 0.1),
        ("14", 0.1),
        ("15", 0.1),
        ("25", 0.05),
        ("127", 0.2),
    ),
}
assert all(r in FAILURE_REASONS for rs in _REASONS_BY_TYPE.values() for r, _ in rs)


def _failure_type_codes() -> dict[str, str]:
    """hard/soft/ignored -> the code the pipeline is configured with (UNCONFIRMED upstream)."""
    by_label = {label: code for code, label in PipelineSettings().failure_type_codes.items()}
    return {t: by_label[t] for t in (*_FAILURE_TYPES, "undefined")}


@dataclass(frozen=True)
class _Plan:
    """Everything a window's batches share."""

    dataset: str
    seed: int
    window: datetime
    layout: Layout
    org_unit: str
    t_lo: int  # first possible time of the file's date column (epoch s)
    t_hi: int  # dates < t_hi: the window end, or one second past `now`
    now_s: int
    deliveries: list[Delivery]
    pool: RecipientPool
    failure_codes: dict[str, str]


def _plan(
    dataset: str,
    window_start: datetime,
    *,
    seed: int,
    layout: str,
    org_unit: str,
    now: datetime | None,
) -> _Plan:
    layouts = DATASET_LAYOUTS[dataset]
    if layout not in layouts:
        raise ValueError(f"layout must be one of {sorted(layouts)}, not {layout!r}")
    if "," in org_unit or '"' in org_unit or "\n" in org_unit:
        raise ValueError("org_unit must not contain commas, quotes or line breaks")
    window = as_utc(window_start)
    if window != floor_window(window):
        raise ValueError(f"{window.isoformat()} is not the start of a 4-hour UTC window")
    if window < _ID_ORIGIN:
        raise ValueError("windows before 2000-01-01 are not supported")
    now_utc = as_utc(now) if now is not None else datetime.now(UTC)
    t_lo = _epoch_seconds(window)
    now_s = int(now_utc.timestamp())  # floor: a time equal to it is not in the future
    if now_s < t_lo:
        raise ValueError(
            f"window {window.isoformat()} starts after now ({now_utc.isoformat()}): "
            "a log cannot be written in the future"
        )
    return _Plan(
        dataset=dataset,
        seed=seed,
        window=window,
        layout=layouts[layout],
        org_unit=org_unit,
        t_lo=t_lo,
        t_hi=min(t_lo + WINDOW_SECONDS, now_s + 1),
        now_s=now_s,
        deliveries=deliveries_for_window(seed, window),
        pool=recipient_pool(seed),
        failure_codes=_failure_type_codes(),
    )


def _first_id(window: datetime) -> int:
    return (window_index(window) - window_index(_ID_ORIGIN)) * _ID_STRIDE


# (rng, first row of the batch, rows, lo, hi) -> that many valid rows (canonical field ->
# values) whose date column lies in [lo, hi).
BatchColumns = Callable[[np.random.Generator, int, int, int, int], dict[str, Column]]


@dataclass(frozen=True)
class _Source:
    """How one file's rows are made. Batches get consecutive slices of [t_first, t_end) for
    their dates, so dates rise through the file as in an export sorted by date (a source may
    instead slice a file-wide sorted sample, as trackingLog does); `columns` is called for
    the batches in order and may keep state (the last id) between calls."""

    columns: BatchColumns
    t_first: int
    t_end: int


@dataclass(frozen=True)
class _References:
    """What a file refers to in other datasets' files of the same seed."""

    history_windows: int = 0  # trackingLog: earlier windows whose sends may get reactions
    broadlog_rows: int | None = None  # rows of the broadLog files referred to (None: the same)
    broadlog_defect_rate: float | None = None  # their defect rate (None: the same)


def _check_sizes(rows: int, defect_rate: float, batch_rows: int) -> None:
    if not 0 <= defect_rate <= 1:
        raise ValueError("defect_rate must be within [0, 1]")
    if rows < 0 or not 1 <= batch_rows <= MAX_BATCH_ROWS:
        # A batch becomes one Arrow string array, whose 32-bit offsets stop at 2 GiB.
        raise ValueError(f"rows must be >= 0 and batch_rows within [1, {MAX_BATCH_ROWS}]")


def _slices(
    rows: int, batch_rows: int, t_first: int, t_end: int
) -> Iterator[tuple[int, int, int, int, int]]:
    """(batch number, first row, rows, lo, hi) per batch: each its share of [t_first, t_end)."""
    span = t_end - t_first
    for b, r0 in enumerate(range(0, rows, batch_rows)):
        n = min(batch_rows, rows - r0)
        lo = t_first + span * r0 // rows
        yield b, r0, n, lo, max(t_first + span * (r0 + n) // rows, lo + 1)


def _defects_rng(plan: _Plan, batch: int) -> np.random.Generator:
    # One definition for the writer and for the replays that must know a file's defective
    # rows without writing it (trackingLog skips broadLog's, profiles place people around its own).
    return rng_for(plan.seed, f"{plan.dataset}-defects", window_index(plan.window), batch)


def _iter_batches(
    plan: _Plan, source: _Source, rows: int, defect_rate: float, batch_rows: int
) -> Iterator[tuple[list[memoryview | bytes], list[tuple[int, str]]]]:
    """Per batch: CSV body chunks (no header) and its defects as (record number, reason)."""
    widx = window_index(plan.window)
    kinds = DEFECT_KINDS[plan.dataset]
    for b, r0, n, lo, hi in _slices(rows, batch_rows, source.t_first, source.t_end):
        # Streams keyed by dataset, window and batch only: layout and compression change
        # nothing but the header and the bytes on disk.
        columns = source.columns(rng_for(plan.seed, plan.dataset, widx, b), r0, n, lo, hi)
        defects = inject_defects(
            columns,
            n,
            plan.layout,
            kinds,
            defect_rate,
            _defects_rng(plan, b),
        )
        lines = join_lines([columns[name] for name in plan.layout.columns.values()])
        yield (
            body_chunks(lines, {d.row: d.line for d in defects}),
            [(r0 + d.row + 2, d.reason) for d in defects],  # record numbers: header is 1
        )


def _prefetch(items: Iterator[_T]) -> Iterator[_T]:
    """Yield `items`, computing the next one on another thread meanwhile: Arrow kernels and
    zlib release the GIL, so generating batch b+1 overlaps writing/compressing batch b on a
    second core. `items` is still advanced by one thread at a time, in order."""
    end = object()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sample-data") as pool:
        pending = pool.submit(next, items, end)
        while (item := pending.result()) is not end:
            pending = pool.submit(next, items, end)
            yield item  # type: ignore[misc]


def _stats(rows: int, defects: list[tuple[int, str]], bytes_written: int = 0) -> GenerationStats:
    counts = Counter(reason for _, reason in defects)
    return GenerationStats(
        rows=rows,
        expected_valid=rows - len(defects),
        expected_rejects=dict(sorted(counts.items())),
        reject_lines=dict(defects),
        bytes_written=bytes_written,
    )


def _timestamps(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    """n sorted epoch seconds in [lo, hi): a batch's dates."""
    return np.sort(rng.integers(lo, hi, size=n, dtype=np.int64))


def _uniform_ints(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """One integer in [lo_i, hi_i] per row, for bounds that differ from row to row."""
    return lo + (rng.random(lo.size) * (hi - lo + 1)).astype(np.int64)


def _distinct_sample(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """n pool indices, each at most once while n <= size (one export row per person), then
    round after round when more rows than people are asked for."""
    rounds = -(-n // size) if n else 0
    return np.concatenate([rng.permutation(size) for _ in range(rounds)] or [np.empty(0, int)])[:n]


# --------------------------------------------------------------------------------------------
# broadLog
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _BroadlogDraws:
    """One batch of broadLog rows as numbers, before any text is built: other datasets
    replay these draws to know which messages exist without building the file."""

    ids: np.ndarray
    event: np.ndarray  # tsEvent, epoch s, sorted
    contact: np.ndarray
    modified: np.ndarray
    who: np.ndarray  # pool index
    mixed_case: np.ndarray
    which: np.ndarray  # index into plan.deliveries
    status: np.ndarray  # index into _STATUS_CODES
    ftype_idx: np.ndarray  # 0 = undefined, else 1 + index into _FAILURE_TYPES
    reason_idx: np.ndarray  # index into reason_vocab
    reason_vocab: list[str]


def _broadlog_draws(
    plan: _Plan, rng: np.random.Generator, n: int, t_lo: int, t_hi: int, id_start: int
) -> _BroadlogDraws:
    """n rows with ids after `id_start` and tsEvent in [t_lo, t_hi). The order of the draws
    is part of the byte-for-byte promise: append new draws, never insert."""
    ids = increasing_ids(rng, id_start, n)
    # Sorted so that ids and event times rise together, as in a table filled by a sequence.
    event = np.sort(rng.integers(t_lo, t_hi, size=n, dtype=np.int64))
    contact = event - rng.integers(0, 900, size=n)  # the delivery started a little earlier
    touched_later = rng.random(n) < 0.3  # e.g. a bounce or MTA feedback updated the log
    modified = np.minimum(event + touched_later * rng.integers(1, 3600, size=n), plan.now_s)
    who = rng.integers(0, plan.pool.size, size=n)
    mixed_case = rng.random(n) < 0.03
    which = weighted_choice(rng, n, [d.weight for d in plan.deliveries])

    status = weighted_choice(rng, n, _STATUS_WEIGHTS)
    failed = np.flatnonzero(status == _STATUS_CODES.index("2"))
    ftype = weighted_choice(rng, failed.size, _FAILURE_TYPE_WEIGHTS)
    ftype_idx = np.zeros(n, dtype=np.int64)
    ftype_idx[failed] = ftype + 1
    reason_vocab = ["0"]
    reason_idx = np.zeros(n, dtype=np.int64)
    for t, name in enumerate(_FAILURE_TYPES):
        rows = failed[ftype == t]
        codes, weights = zip(*_REASONS_BY_TYPE[name], strict=True)
        reason_idx[rows] = len(reason_vocab) + weighted_choice(rng, rows.size, weights)
        reason_vocab.extend(codes)
    return _BroadlogDraws(
        ids=ids,
        event=event,
        contact=contact,
        modified=modified,
        who=who,
        mixed_case=mixed_case,
        which=which,
        status=status,
        ftype_idx=ftype_idx,
        reason_idx=reason_idx,
        reason_vocab=reason_vocab,
    )


def _broadlog_columns(plan: _Plan, d: _BroadlogDraws) -> dict[str, Column]:
    # Numbers are NOT NULL in Campaign (§b1): rows that did not fail carry 0 / 0.
    type_codes = [plan.failure_codes[t] for t in _FAILURE_TYPES]
    ftype_vocab = pa.array([plan.failure_codes["undefined"], *type_codes])
    d_ids = pa.array([str(x.delivery_id) for x in plan.deliveries])
    d_labels = pa.array([x.label for x in plan.deliveries])
    d_ops = pa.array([str(x.operation_id) for x in plan.deliveries])
    take = pa.array(d.which)
    who_arr = pa.array(d.who)
    pool = plan.pool
    return {
        "broadlog_id": int_strings(d.ids),
        "delivery_id": d_ids.take(take),
        "recipient_id": pool.recipient_ids.take(who_arr),
        "external_id": pool.external_ids.take(who_arr),
        "address": pool.addresses(d.who, d.mixed_case),
        "status": pa.array(_STATUS_CODES).take(pa.array(d.status)),
        "failure_type": ftype_vocab.take(pa.array(d.ftype_idx)),
        "failure_reason": pa.array(d.reason_vocab).take(pa.array(d.reason_idx)),
        "event_date": ts_strings(d.event),
        "contact_date": ts_strings(d.contact),
        "last_modified": ts_strings(d.modified),
        "delivery_label": d_labels.take(take),
        "campaign_id": d_ops.take(take),
        "org_unit": pa.scalar(plan.org_unit),
    }


def _broadlog_source(
    plan: _Plan, rows: int, defect_rate: float, batch_rows: int, refs: _References
) -> _Source:
    last_id = _first_id(plan.window)

    def columns(rng: np.random.Generator, _r0: int, n: int, lo: int, hi: int) -> dict[str, Column]:
        nonlocal last_id
        draws = _broadlog_draws(plan, rng, n, lo, hi, last_id)
        last_id = int(draws.ids[-1])
        return _broadlog_columns(plan, draws)

    return _Source(columns, plan.t_lo, plan.t_hi)


@dataclass(frozen=True)
class _Sends:
    """broadLog rows a reaction may point to: sent, kept by the pipeline (no defect) and
    engaged: a share of the messages draws all the reactions, as in a real campaign where
    most recipients never open and openers open and click several times."""

    broadlog_ids: np.ndarray
    event: np.ndarray  # tsEvent, epoch s, non-decreasing
    who: np.ndarray  # pool index
    delivery_ids: np.ndarray

    @property
    def size(self) -> int:
        return int(self.event.size)

    @staticmethod
    def concat(parts: Sequence[_Sends]) -> _Sends:
        return _Sends(
            *(
                np.concatenate([getattr(p, name) for p in parts] or [np.empty(0, np.int64)])
                for name in ("broadlog_ids", "event", "who", "delivery_ids")
            )
        )


@dataclass(frozen=True)
class _BroadlogFacts:
    recipients: np.ndarray  # sorted pool indices of everyone in the file, defective rows too
    sends: _Sends


_ENGAGED_SHARE = 0.3


@lru_cache(maxsize=8)
def _broadlog_facts(
    seed: int, window: datetime, rows: int, defect_rate: float, t_hi: int
) -> _BroadlogFacts:
    """What the broadLog file of `window` (as `generate_broadlog` / `write_dataset_files`
    make it, default batch size) holds, by replaying its draws without building any text.
    Cached: consecutive trackingLog windows look at the same broadLog windows."""
    # A `now` one second before t_hi gives the broadLog file's own t_hi.
    now = datetime.fromtimestamp(t_hi - 1, UTC)
    plan = _plan("broadlog", window, seed=seed, layout="classic", org_unit="-", now=now)
    _check_sizes(rows, defect_rate, DEFAULT_BATCH_ROWS)
    widx = window_index(window)
    delivery_ids = np.array([d.delivery_id for d in plan.deliveries], dtype=np.int64)
    sent = _STATUS_CODES.index("1")
    seen = np.zeros(plan.pool.size, dtype=bool)
    parts: list[_Sends] = []
    last_id = _first_id(window)
    for b, _r0, n, lo, hi in _slices(rows, DEFAULT_BATCH_ROWS, plan.t_lo, plan.t_hi):
        d = _broadlog_draws(plan, rng_for(seed, plan.dataset, widx, b), n, lo, hi, last_id)
        last_id = int(d.ids[-1])
        seen[d.who] = True
        engaged = rng_for(seed, "tracking-engaged", widx, b).random(n) < _ENGAGED_SHARE
        keep = (d.status == sent) & engaged
        keep[_defect_rows(_defects_rng(plan, b), n, defect_rate)] = False
        parts.append(_Sends(d.ids[keep], d.event[keep], d.who[keep], delivery_ids[d.which[keep]]))
    return _BroadlogFacts(np.flatnonzero(seen), _Sends.concat(parts))


def _broadlog_reference(rows: int, defect_rate: float, refs: _References) -> tuple[int, float]:
    b_rows = rows if refs.broadlog_rows is None else refs.broadlog_rows
    b_rate = defect_rate if refs.broadlog_defect_rate is None else refs.broadlog_defect_rate
    return b_rows, b_rate


# --------------------------------------------------------------------------------------------
# trackingLog: reactions to the sends of this window and the `history_windows` before it
# --------------------------------------------------------------------------------------------
# Reaction delays are log-normal: median one hour, a long tail over the following days.
_REACTION_MEDIAN_S = 3600
_REACTION_SIGMA = 1.2
_CLICK_SHARE = 0.31
# Tracked links of a delivery: (URL before the delivery id, category, share of the clicks).
_CLICK_LINKS = (
    ("https://www.example.com/?utm_medium=email&utm_campaign=", "email", 0.28),
    ("https://www.example.com/offers?utm_medium=email&utm_campaign=", "email", 0.26),
    ("https://www.example.com/products/new-arrivals?utm_medium=email&utm_campaign=", "email", 0.14),
    ("https://shop.example.com/cart?utm_medium=email&utm_campaign=", "email", 0.1),
    ("https://www.example.com/account/preferences?utm_medium=email&utm_campaign=", "email", 0.04),
    ("https://www.example.com/stores?utm_medium=email&utm_campaign=", "email", 0.08),
    ("https://facebook.example/examplebrand?utm_campaign=", "facebook", 0.05),
    ("https://instagram.example/examplebrand?utm_campaign=", "instagram", 0.05),
)


@dataclass(frozen=True)
class _Reaction:
    url_type: str  # §b4: 1 click, 2 open, 3 opt-out, 6 mirror page
    url_slot: int  # iUrlId = delivery id * 100 + slot; 0: the built-in open URL, id 1
    url: str  # the delivery id is appended; "" for opens, which have no URL
    category: str
    weight: float


_REACTIONS: tuple[_Reaction, ...] = (
    _Reaction("2", 0, "", "", 0.63),
    *(
        _Reaction("1", 10 + k, url, category, _CLICK_SHARE * share)
        for k, (url, category, share) in enumerate(_CLICK_LINKS)
    ),
    _Reaction("6", 2, "https://campaign.example.com/nms/jsp/mirror.jsp?d=", "mirror", 0.04),
    _Reaction("3", 3, "https://www.example.com/unsubscribe?d=", "subscription", 0.02),
)
_DEVICES = (("mobile", 0.54), ("pc", 0.36), ("tablet", 0.08), ("", 0.02))


assert WINDOW_SECONDS < 1 << 16
_REACTION_CHUNK = 1 << 20


def _reactions(
    rng: np.random.Generator, sends: _Sends, rows: int, t_lo: int, t_hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """`rows` reactions in [t_lo, t_hi), sorted by time: send indices and tsLog - t_lo.

    Every engaged send is a priori equally likely to react, after a log-normal delay of at
    least a second; conditioned on the reaction falling in the window, a send is picked with
    the probability that its delay lands there, and the delay from the density truncated to
    that range. Exact, via a per-second table of the delay distribution: no rejection loop,
    and no bias towards sends followed by a quiet spell."""
    longest = t_hi - int(sends.event[0])
    seconds = np.arange(1, longest + 1, dtype=np.float64)
    log_s = np.log(seconds)
    density = np.exp(-((log_s - np.log(_REACTION_MEDIAN_S)) ** 2) / (2 * _REACTION_SIGMA**2))
    # cdf[k]: probability (up to a constant) that the delay is under k seconds (delays are
    # whole seconds, at least one).
    cdf = np.concatenate([[0.0, 0.0], np.cumsum(density / seconds)])[: longest + 1]
    lo = np.maximum(t_lo - sends.event, 1)  # shortest delay that lands in the window
    hi = np.maximum(t_hi - sends.event, lo)  # delays < hi: before t_hi (empty when hi == lo)
    cumulative = np.cumsum(cdf[hi] - cdf[lo])
    total = float(cumulative[-1])
    if total <= 0:
        raise ValueError(
            "no sent broadLog message early enough for a trackingLog reaction inside the window"
        )
    # Sorted keys: the search walks the table once instead of missing the cache millions of
    # times (the order is lost in the final sort anyway). 'right' skips zero-weight sends.
    keys = rng.random(rows)
    keys.sort()
    keys *= total
    pick = np.searchsorted(cumulative, keys, side="right").astype(np.int32)
    del keys
    # Seconds into the window fit 16 bits, and chunks keep the int64 temporaries small: the
    # sample keeps 6 bytes a row (peaking near 20 while sorting) instead of ~60.
    offset = np.empty(rows, dtype=np.uint16)
    for start in range(0, rows, _REACTION_CHUNK):
        p = pick[start : start + _REACTION_CHUNK]
        lo_p, hi_p = lo[p], hi[p]
        u = rng.uniform(cdf[lo_p], cdf[hi_p])
        delay = np.clip(np.searchsorted(cdf, u, side="right") - 1, lo_p, hi_p - 1)
        offset[start : start + _REACTION_CHUNK] = sends.event[p] + delay - t_lo
    order = np.argsort(offset, kind="stable")  # a radix sort for 16-bit keys
    return pick[order], offset[order]


def _tracking_source(
    plan: _Plan, rows: int, defect_rate: float, batch_rows: int, refs: _References
) -> _Source:
    if refs.history_windows < 0:
        raise ValueError("history_windows must be >= 0")
    b_rows, b_rate = _broadlog_reference(rows, defect_rate, refs)
    first = max(plan.window - WINDOW * refs.history_windows, _ID_ORIGIN)
    sends = _Sends.concat(
        [
            _broadlog_facts(
                plan.seed, ws, b_rows, b_rate, min(_epoch_seconds(ws) + WINDOW_SECONDS, plan.t_hi)
            ).sends
            for ws in window_starts(first, plan.window + WINDOW)
        ]
    )
    picks, offsets = np.empty(0, dtype=np.int32), np.empty(0, dtype=np.uint16)
    if rows:
        if not sends.size:
            raise ValueError(
                f"no sent broadLog message (of {b_rows} rows per file) for trackingLog rows "
                "to react to"
            )
        reactions_rng = rng_for(plan.seed, "tracking_log-reactions", window_index(plan.window))
        picks, offsets = _reactions(reactions_rng, sends, rows, plan.t_lo, plan.t_hi)
    url_types = pa.array([r.url_type for r in _REACTIONS])
    slots = np.array([r.url_slot for r in _REACTIONS], dtype=np.int64)
    urls = pa.array([r.url for r in _REACTIONS])
    categories = pa.array([r.category for r in _REACTIONS])
    weights = [r.weight for r in _REACTIONS]
    devices = pa.array([d for d, _ in _DEVICES])
    device_weights = [w for _, w in _DEVICES]
    pool = plan.pool
    last_id = _first_id(plan.window)

    def columns(rng: np.random.Generator, r0: int, n: int, _lo: int, _hi: int) -> dict[str, Column]:
        # Dates come from the file-wide sample above, already sorted: batches take slices.
        nonlocal last_id
        ids = increasing_ids(rng, last_id, n)
        last_id = int(ids[-1])
        pick = picks[r0 : r0 + n]
        log = plan.t_lo + offsets[r0 : r0 + n].astype(np.int64)
        kind = weighted_choice(rng, n, weights)
        device = weighted_choice(rng, n, device_weights)

        delivery = sends.delivery_ids[pick]
        who = pa.array(sends.who[pick])
        is_open = slots[kind] == 0
        kind_arr = pa.array(kind)
        delivery_text = int_strings(delivery)
        return {
            "tracking_log_id": int_strings(ids),
            "broadlog_id": int_strings(sends.broadlog_ids[pick]),
            "delivery_id": delivery_text,
            "recipient_id": pool.recipient_ids.take(who),
            "external_id": pool.external_ids.take(who),
            "url_type": url_types.take(kind_arr),
            "url_id": int_strings(np.where(is_open, 1, delivery * 100 + slots[kind])),
            "url": pc.binary_join_element_wise(
                urls.take(kind_arr), pc.if_else(pa.array(is_open), "", delivery_text), ""
            ),
            "url_category": categories.take(kind_arr),
            "log_date": ts_strings(log),
            "device": devices.take(pa.array(device)),
            "org_unit": pa.scalar(plan.org_unit),
        }

    return _Source(columns, plan.t_lo, plan.t_hi)


# --------------------------------------------------------------------------------------------
# non-deliverables: quarantine entries (nms:address) changed in the window
# --------------------------------------------------------------------------------------------
_DAY = 86_400
_ADDRESS_ID_BASE = 10_000_000
_ADDRESS_CHANNELS = (("email", 0.86), ("sms", 0.14))
_ADDRESS_STATUSES = (
    ("quarantine", 0.44),
    ("with_errors", 0.34),
    ("denylisted", 0.08),
    ("valid", 0.14),
)
# How long before the exported change the last error happened, per status: just now for a
# new error; for `valid`, the release 10 days after a soft error or 30 after "mailbox full" (§b5).
_LAST_ERROR_AGE = {
    "quarantine": (0, 900),
    "with_errors": (0, 900),
    "denylisted": (0, 900),
    "valid": (10 * _DAY, 40 * _DAY),
}


@dataclass(frozen=True)
class _AddressEntry:
    channel: str
    status: str
    reason: str  # failureReason (§b3), consistent with the status: hard, soft, denylisted
    text: str  # as the MTA or SMS provider wrote it (no commas: values are not quoted)
    errors: tuple[int, int]  # iErrorCount range
    history: tuple[int, int]  # seconds from the first error (creation) to the last one
    weight: float  # share within its channel and status


_ADDRESS_ENTRIES: tuple[_AddressEntry, ...] = tuple(
    _AddressEntry(channel, status, reason, text, errors, (days[0] * _DAY, days[1] * _DAY), w)
    for channel, status, reason, text, errors, days, w in (
        # Hard bounces quarantine at once ...
        ("email", "quarantine", "1", "550 5.1.1 User unknown", (1, 1), (0, 0), 0.45),
        ("email", "quarantine", "4", "550 5.2.1 Mailbox disabled", (1, 1), (0, 0), 0.12),
        ("email", "quarantine", "20", "554 5.7.1 Message rejected", (1, 1), (0, 0), 0.05),
        # ... soft errors after the 5th try (§b3), which are retried until then.
        ("email", "quarantine", "5", "552 5.2.2 Mailbox full", (5, 6), (1, 9), 0.2),
        ("email", "quarantine", "3", "421 4.4.2 Connection timed out", (5, 6), (1, 9), 0.1),
        ("email", "quarantine", "2", "Invalid domain: no MX record", (5, 6), (1, 9), 0.08),
        ("email", "with_errors", "5", "452 4.2.2 Mailbox full", (1, 4), (0, 9), 0.45),
        ("email", "with_errors", "3", "421 4.4.2 Connection timed out", (1, 4), (0, 9), 0.3),
        ("email", "with_errors", "2", "Invalid domain: DNS lookup failed", (1, 4), (0, 9), 0.15),
        ("email", "with_errors", "20", "451 4.7.1 Greylisted - retry later", (1, 4), (0, 9), 0.1),
        # Spam complaints (feedback loop) set Denylisted on the address (§b5).
        ("email", "denylisted", "8", "Spam complaint (feedback loop)", (1, 1), (0, 0), 0.85),
        ("email", "denylisted", "20", "554 5.7.1 Refused as spam", (1, 1), (0, 0), 0.15),
        # Released: valid again, the counter cleared, the last error kept.
        ("email", "valid", "5", "552 5.2.2 Mailbox full", (0, 0), (0, 20), 0.6),
        ("email", "valid", "3", "421 4.4.2 Connection timed out", (0, 0), (0, 9), 0.4),
        ("sms", "quarantine", "1", "Unknown subscriber", (1, 1), (0, 0), 1.0),
        ("sms", "with_errors", "3", "Absent subscriber", (1, 4), (0, 9), 1.0),
        ("sms", "denylisted", "8", "STOP received", (0, 0), (0, 0), 1.0),  # SMS STOP (§b5)
        ("sms", "valid", "3", "Absent subscriber", (0, 0), (0, 9), 1.0),
    )
)


def _codes_by_label(codes: Mapping[str, str]) -> dict[str, str]:
    return {label: code for code, label in codes.items()}


def _non_deliverables_source(
    plan: _Plan, rows: int, defect_rate: float, batch_rows: int, refs: _References
) -> _Source:
    settings = PipelineSettings()
    status_code = _codes_by_label(settings.address_status_codes)
    channel_code = _codes_by_label(settings.address_channel_codes)
    channels = [c for c, _ in _ADDRESS_CHANNELS]
    statuses = [s for s, _ in _ADDRESS_STATUSES]
    entries = _ADDRESS_ENTRIES
    # Entry indices (and weights) per (channel, status) group, group = channel * 4 + status.
    groups = [
        [i for i, e in enumerate(entries) if (e.channel, e.status) == (c, s)]
        for c in channels
        for s in statuses
    ]
    assert all(groups), "every channel and status needs an entry"
    reasons = pa.array([e.reason for e in entries])
    texts = pa.array([e.text for e in entries])
    errors_lo = np.array([e.errors[0] for e in entries], dtype=np.int64)
    errors_hi = np.array([e.errors[1] for e in entries], dtype=np.int64)
    history_lo = np.array([e.history[0] for e in entries], dtype=np.int64)
    history_hi = np.array([e.history[1] for e in entries], dtype=np.int64)
    age_lo = np.array([_LAST_ERROR_AGE[s][0] for s in statuses], dtype=np.int64)
    age_hi = np.array([_LAST_ERROR_AGE[s][1] for s in statuses], dtype=np.int64)
    channel_vocab = pa.array([channel_code[c] for c in channels])
    status_vocab = pa.array([status_code[s] for s in statuses])
    pool = plan.pool
    details = recipient_details(plan.seed, pool.size)
    # Emails first, then mobile numbers: index who + size * channel.
    addresses = pa.concat_arrays([pool.emails, details.mobile_phones])

    def columns(rng: np.random.Generator, _r0: int, n: int, lo: int, hi: int) -> dict[str, Column]:
        modified = _timestamps(rng, n, lo, hi)
        channel = weighted_choice(rng, n, [w for _, w in _ADDRESS_CHANNELS])
        # Quarantine is per address (§b5): emails of anyone, numbers of people who have one.
        anyone = rng.integers(0, pool.size, size=n)
        mobile = details.with_mobile[rng.integers(0, details.with_mobile.size, size=n)]
        who = np.where(channel == 1, mobile, anyone)
        status = weighted_choice(rng, n, [w for _, w in _ADDRESS_STATUSES])
        entry = np.zeros(n, dtype=np.int64)
        group = channel * len(statuses) + status
        for g, members in enumerate(groups):
            rows_g = np.flatnonzero(group == g)
            pick = weighted_choice(rng, rows_g.size, [entries[i].weight for i in members])
            entry[rows_g] = np.asarray(members, dtype=np.int64)[pick]
        error_count = _uniform_ints(rng, errors_lo[entry], errors_hi[entry])
        last_error = modified - _uniform_ints(rng, age_lo[status], age_hi[status])
        # One error: the entry was created by it; more: by the first of them.
        first_error = _uniform_ints(rng, history_lo[entry], history_hi[entry])
        created = last_error - np.where(error_count == 1, 0, first_error)
        take = pa.array(entry)
        return {
            "address_id": int_strings(_ADDRESS_ID_BASE + who * len(channels) + channel),
            "address": addresses.take(pa.array(who + pool.size * channel)),
            "channel": channel_vocab.take(pa.array(channel)),
            "status": status_vocab.take(pa.array(status)),
            "failure_reason": reasons.take(take),
            "error_count": int_strings(error_count),
            "error_text": texts.take(take),
            "last_error": ts_strings(last_error),
            "created": ts_strings(created),
            "last_modified": ts_strings(modified),
            "org_unit": pa.scalar(plan.org_unit),
        }

    return _Source(columns, plan.t_lo, plan.t_hi)


# --------------------------------------------------------------------------------------------
# preferences: opt-out flags of recipients changed in the window
# --------------------------------------------------------------------------------------------
# Share of the exported recipients with each flag set (the global blackList is rare).
_OPT_OUTS = (
    ("blacklist", 0.015),
    ("blacklist_email", 0.06),
    ("blacklist_mobile", 0.03),
    ("blacklist_phone", 0.01),
    ("blacklist_fax", 0.004),
    ("blacklist_postal_mail", 0.01),
    ("blacklist_push", 0.02),
)
assert {f for f, _ in _OPT_OUTS} == {"blacklist", *preferences.CHANNELS}


def _preferences_source(
    plan: _Plan, rows: int, defect_rate: float, batch_rows: int, refs: _References
) -> _Source:
    pool = plan.pool
    # One row per recipient and file: an export of the recipients changed in the window.
    chosen = _distinct_sample(
        rng_for(plan.seed, "preferences-recipients", window_index(plan.window)), rows, pool.size
    )
    flag_text = pa.array(["0", "1"])  # Campaign writes its booleans as 0/1

    def columns(rng: np.random.Generator, r0: int, n: int, lo: int, hi: int) -> dict[str, Column]:
        who = chosen[r0 : r0 + n]
        who_arr = pa.array(who)
        modified = _timestamps(rng, n, lo, hi)
        mixed_case = rng.random(n) < 0.03
        out: dict[str, Column] = {
            "recipient_id": pool.recipient_ids.take(who_arr),
            "external_id": pool.external_ids.take(who_arr),
            "email": pool.addresses(who, mixed_case),
            "last_modified": ts_strings(modified),
            "org_unit": pa.scalar(plan.org_unit),
        }
        for flag, share in _OPT_OUTS:
            out[flag] = flag_text.take(pa.array((rng.random(n) < share).astype(np.int64)))
        return out

    return _Source(columns, plan.t_lo, plan.t_hi)


# --------------------------------------------------------------------------------------------
# profiles: the recipient extract; covers everyone in the window's broadLog
# --------------------------------------------------------------------------------------------
def _profiles_source(
    plan: _Plan, rows: int, defect_rate: float, batch_rows: int, refs: _References
) -> _Source:
    pool = plan.pool
    details = recipient_details(plan.seed, pool.size)
    b_rows, b_rate = _broadlog_reference(rows, defect_rate, refs)
    sent_to = _broadlog_facts(plan.seed, plan.window, b_rows, b_rate, plan.t_hi).recipients
    rng = rng_for(plan.seed, "profiles-recipients", window_index(plan.window))
    # Everyone the window's broadLog mentions comes first (the audience path joins on them),
    # then other people, once each while there are any left.
    others = np.setdiff1d(np.arange(pool.size), sent_to, assume_unique=True)
    chosen = np.concatenate([rng.permutation(sent_to), rng.permutation(others)])
    if rows > chosen.size:
        chosen = np.concatenate([chosen, _distinct_sample(rng, rows - chosen.size, pool.size)])
    # Rows in random order (the export's order says nothing about who), those that will get
    # a defect last: the broadLog recipients land on rows the pipeline keeps whenever there
    # are enough other rows to take the defects.
    defective = np.zeros(rows, dtype=bool)
    for b, r0, n, _lo, _hi in _slices(rows, batch_rows, plan.t_lo, plan.t_hi):
        defective[r0 + _defect_rows(_defects_rng(plan, b), n, defect_rate)] = True
    order = rng.permutation(rows)
    placed = np.empty(rows, dtype=np.int64)
    placed[np.concatenate([order[~defective[order]], order[defective[order]]])] = chosen[:rows]
    chosen = placed

    def columns(rng: np.random.Generator, r0: int, n: int, lo: int, hi: int) -> dict[str, Column]:
        who = chosen[r0 : r0 + n]
        who_arr = pa.array(who)
        modified = _timestamps(rng, n, lo, hi)
        mixed_case = rng.random(n) < 0.04
        return {
            "recipient_id": pool.recipient_ids.take(who_arr),
            "external_id": pool.external_ids.take(who_arr),
            "email": pool.addresses(who, mixed_case),
            "first_name": details.first_names.take(who_arr),
            "last_name": details.last_names.take(who_arr),
            "middle_name": details.middle_names.take(who_arr),
            "mobile_phone": details.mobile_phones.take(who_arr),
            "gender": details.genders.take(who_arr),
            "birth_date": details.birth_dates.take(who_arr),
            "email_format": details.email_formats.take(who_arr),
            "country_code": details.country_codes.take(who_arr),
            "city": details.cities.take(who_arr),
            "zip_code": details.zip_codes.take(who_arr),
            # A window older than the person's creation date gets a creation inside it.
            "created": ts_strings(np.minimum(details.created[who], modified)),
            "last_modified": ts_strings(modified),
            "org_unit": pa.scalar(plan.org_unit),
        }

    return _Source(columns, plan.t_lo, plan.t_hi)


# --------------------------------------------------------------------------------------------
# push subscriptions: app registrations of recipients (nms:appSubscriptionRcp)
# --------------------------------------------------------------------------------------------
_SUBSCRIPTION_ID_BASE = 20_000_000
PUSH_APPS = ("com.example.shop", "com.example.loyalty")
_PUSH_APP_WEIGHTS = (0.7, 0.3)
_PUSH_PLATFORMS = (("apns", 0.55), ("fcm", 0.45))  # iOS / Android share of the devices
_PUSH_SHARE = 0.35  # recipients (with an external ID) who installed an app
_OPT_IN_SHARE = 0.9
_B64URL = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", np.uint8
)
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def _random_text(rng: np.random.Generator, alphabet: np.ndarray, n: int, width: int) -> list[str]:
    codes = alphabet[rng.integers(0, alphabet.size, size=(n, width))]
    return [row.tobytes().decode() for row in codes]


def push_tokens_for(rng: np.random.Generator, platforms: Sequence[str]) -> list[str]:
    """Device tokens in each platform's real shape: APNs 64 hex characters; FCM an instance
    ID, a colon and an `APA91b…` registration part (163 characters)."""
    n = len(platforms)
    apns = _random_text(rng, _HEX, n, 64)
    instance = _random_text(rng, _B64URL, n, 22)
    body = _random_text(rng, _B64URL, n, 134)
    return [
        apns[i] if p != "fcm" else f"{instance[i]}:APA91b{body[i]}" for i, p in enumerate(platforms)
    ]


@dataclass(frozen=True)
class PushDevices:
    """The app installations of one seed: who, which app, which platform, which token."""

    who: np.ndarray  # pool indices of the subscribers, increasing
    apps: list[str]
    platforms: list[str]  # apns / fcm
    tokens: list[str]
    registered: np.ndarray  # epoch s of the registration


@lru_cache(maxsize=8)
def push_devices(seed: int, size: int = POOL_SIZE) -> PushDevices:
    """One device per subscriber, the same in every file of the seed. Only recipients with an
    external ID subscribe: the subscriber key is that ID, the profile's AEP identity."""
    pool = recipient_pool(seed, size)
    rng = rng_for(seed, "push-devices")
    has_key = np.asarray(pc.not_equal(pool.external_ids, "").to_numpy(zero_copy_only=False))
    who = np.flatnonzero(has_key & (rng.random(size) < _PUSH_SHARE))
    n = who.size
    apps = [PUSH_APPS[i] for i in weighted_choice(rng, n, _PUSH_APP_WEIGHTS)]
    platforms = [
        _PUSH_PLATFORMS[i][0] for i in weighted_choice(rng, n, [w for _, w in _PUSH_PLATFORMS])
    ]
    tokens = push_tokens_for(rng, platforms)
    registered = rng.integers(_CREATED_FIRST, _CREATED_LAST, n, dtype=np.int64)
    return PushDevices(who, apps, platforms, tokens, registered)


def _push_platform_codes() -> dict[str, str]:
    """apns / fcm -> the platform value the export writes (PipelineSettings defaults)."""
    by_label: dict[str, str] = {}
    for code, label in PipelineSettings().push_platform_codes.items():
        by_label.setdefault(label, code)
    return by_label


def _push_subscriptions_source(
    plan: _Plan, rows: int, defect_rate: float, batch_rows: int, refs: _References
) -> _Source:
    pool = plan.pool
    devices = push_devices(plan.seed, pool.size)
    platform_code = _push_platform_codes()
    # One row per subscription and file (while rows <= subscriptions): the changed ones.
    chosen = _distinct_sample(
        rng_for(plan.seed, "push-subscriptions", window_index(plan.window)), rows, devices.who.size
    )
    apps = pa.array(devices.apps)
    platforms = pa.array([platform_code[p] for p in devices.platforms])
    tokens = pa.array(devices.tokens)
    opt_in = pa.array(["0", "1"])

    def columns(rng: np.random.Generator, r0: int, n: int, lo: int, hi: int) -> dict[str, Column]:
        device = chosen[r0 : r0 + n]
        dev = pa.array(device)
        who = devices.who[device]
        who_arr = pa.array(who)
        modified = _timestamps(rng, n, lo, hi)
        return {
            "subscription_id": int_strings(_SUBSCRIPTION_ID_BASE + who),
            "subscriber_key": pool.external_ids.take(who_arr),
            "recipient_id": pool.recipient_ids.take(who_arr),
            "app_id": apps.take(dev),
            "platform": platforms.take(dev),
            "token": tokens.take(dev),
            "registration_date": ts_strings(np.minimum(devices.registered[device], modified)),
            "last_modified": ts_strings(modified),
            "opted_in": opt_in.take(pa.array((rng.random(n) < _OPT_IN_SHARE).astype(np.int64))),
            "org_unit": pa.scalar(plan.org_unit),
        }

    return _Source(columns, plan.t_lo, plan.t_hi)


def _bad_token(value: str, pick: int) -> str:
    # Each variant fails both the APNs and the FCM pattern, whatever the row's platform.
    variants = (
        f"<{value[:8]} {value[8:16]} {value[16:24]}>",  # NSData's description, not the token
        value[: len(value) // 2],  # cut off by a column that was too short
        "(null)",
        f"{value[:20]} {value[20:]}",  # a blank inside survives trimming
    )
    return variants[pick % len(variants)]


# --------------------------------------------------------------------------------------------
# Defect kinds per dataset, derived from the pipeline's field specs
# --------------------------------------------------------------------------------------------
def _fields(dataset: str, kind: str | None = None, *, required: bool = False) -> tuple[str, ...]:
    """Canonical fields of `dataset` of that kind (and required, if asked) that carry no
    allowed-code list: a bad value there fails the kind's own rule, not `unknown_code`."""
    flow = FLOWS[dataset]
    coded = set(flow.allowed_codes(PipelineSettings())) | {
        f.name for f in flow.fmt.fields if f.allowed is not None
    }
    return tuple(
        f.name
        for f in flow.fmt.fields
        if (kind is None or f.kind == kind)
        and (f.required or not required)
        and (required or f.name not in coded)
    )


def _standard_defects(dataset: str) -> list[DefectKind]:
    """Missing required values, bad values of each kind and a dropped column: the faults
    every dataset shares. Each targets fields whose generated values are never empty."""
    out = [DefectKind("missing_required_value", _fields(dataset, required=True), _missing)]
    for kind, reason, corrupt in (
        ("int", "invalid_integer", _bad_integer),
        ("timestamp", "invalid_timestamp", _bad_timestamp),
        ("email", "invalid_email", _bad_email),
        ("bool", "invalid_boolean", _bad_boolean),
        ("date", "invalid_date", _bad_date),
    ):
        if fields := _fields(dataset, kind):
            out.append(DefectKind(reason, fields, corrupt))
    return out


def _code_defect(dataset: str, field_name: str, candidates: Sequence[str]) -> DefectKind:
    return DefectKind(
        f"unknown_code:{field_name}",
        (field_name,),
        _unknown_code(_rejected(dataset, field_name, candidates)),
    )


def _all_columns(dataset: str) -> DefectKind:
    return DefectKind(
        "wrong_column_count", tuple(DATASET_LAYOUTS[dataset]["classic"].columns.values()), None
    )


TRACKING_LOG_DEFECTS: tuple[DefectKind, ...] = (
    *_standard_defects("tracking_log"),
    _code_defect("tracking_log", "url_type", ("0", "7", "9", "99")),
    _all_columns("tracking_log"),
)
NON_DELIVERABLES_DEFECTS: tuple[DefectKind, ...] = (
    *_standard_defects("non_deliverables"),
    # 3 (direct mail) is a real channel the pipeline has no XDM field for.
    _code_defect("non_deliverables", "channel", ("3", "5", "6", "99")),
    _code_defect("non_deliverables", "status", ("0", "5", "6", "9")),
    _all_columns("non_deliverables"),
)
PREFERENCES_DEFECTS: tuple[DefectKind, ...] = (
    *_standard_defects("preferences"),
    _all_columns("preferences"),
)
PUSH_SUBSCRIPTIONS_DEFECTS: tuple[DefectKind, ...] = (
    *_standard_defects("push_subscriptions"),
    DefectKind("invalid_push_token", ("token",), _bad_token),
    _code_defect("push_subscriptions", "platform", ("Windows", "ios", "web", "HarmonyOS")),
    _all_columns("push_subscriptions"),
)
PROFILES_DEFECTS: tuple[DefectKind, ...] = (
    *_standard_defects("profiles"),
    _code_defect("profiles", "gender", ("M", "F", "3", "9")),  # a CRM's own codes
    _code_defect("profiles", "email_format", ("3", "html", "-1")),
    _all_columns("profiles"),
)
DEFECT_KINDS: dict[str, tuple[DefectKind, ...]] = {
    "broadlog": BROADLOG_DEFECTS,
    "tracking_log": TRACKING_LOG_DEFECTS,
    "non_deliverables": NON_DELIVERABLES_DEFECTS,
    "preferences": PREFERENCES_DEFECTS,
    "profiles": PROFILES_DEFECTS,
    "push_subscriptions": PUSH_SUBSCRIPTIONS_DEFECTS,
}

_SOURCES: dict[str, Callable[[_Plan, int, float, int, _References], _Source]] = {
    "broadlog": _broadlog_source,
    "tracking_log": _tracking_source,
    "non_deliverables": _non_deliverables_source,
    "preferences": _preferences_source,
    "profiles": _profiles_source,
    "push_subscriptions": _push_subscriptions_source,
}


# --------------------------------------------------------------------------------------------
# Files: in memory, or streamed to disk
# --------------------------------------------------------------------------------------------
def dataset_file_name(dataset: str, window_start: datetime, *, gzip: bool = False) -> str:
    """`<prefix>_YYYYMMDD_HHMM.csv[.gz]` with the prefix the pipeline's sensor expects."""
    prefix = FLOWS[dataset].file_prefix
    return f"{prefix}_{as_utc(window_start):%Y%m%d_%H%M}.csv" + (".gz" if gzip else "")


def broadlog_file_name(window_start: datetime, *, gzip: bool = False) -> str:
    return dataset_file_name("broadlog", window_start, gzip=gzip)


def generate_dataset(
    dataset: str,
    window_start: datetime,
    rows: int,
    *,
    seed: int,
    layout: str = "classic",
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    history_windows: int = 0,
    broadlog_rows: int | None = None,
    broadlog_defect_rate: float | None = None,
) -> GeneratedFile:
    """One export file of `dataset` for the 4-hour window starting at `window_start`, in
    memory. Its date column lies in the window and never after `now` (default: the wall
    clock). Raises ValueError for a window that starts after `now`.

    trackingLog and profiles refer to the broadLog file of the same seed that has
    `broadlog_rows` rows and `broadlog_defect_rate` (default: this file's `rows` and
    `defect_rate`, as `write_dataset_files` writes them); trackingLog reacts to the sends of
    this window and of up to `history_windows` windows before it. Other datasets ignore them.
    """
    plan = _plan(dataset, window_start, seed=seed, layout=layout, org_unit=org_unit, now=now)
    _check_sizes(rows, defect_rate, batch_rows)
    refs = _References(history_windows, broadlog_rows, broadlog_defect_rate)
    source = _SOURCES[dataset](plan, rows, defect_rate, batch_rows, refs)
    parts: list[memoryview | bytes] = [header_line(plan.layout)]
    defects: list[tuple[int, str]] = []
    for body, found in _iter_batches(plan, source, rows, defect_rate, batch_rows):
        parts += body
        defects.extend(found)
    stats = _stats(rows, defects)
    return GeneratedFile(
        name=dataset_file_name(dataset, plan.window),
        content=b"".join(parts),
        rows=rows,
        expected_valid=stats.expected_valid,
        expected_rejects=stats.expected_rejects,
        reject_lines=stats.reject_lines,
        dataset=dataset,
        window_start=plan.window,
    )


def generate_broadlog(
    window_start: datetime,
    rows: int,
    *,
    seed: int,
    layout: str = "classic",
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> GeneratedFile:
    """One broadLog export file for the 4-hour window starting at `window_start`, in memory.

    tsEvent lies in the window and never after `now` (default: the wall clock, which changes
    nothing for a past window). Raises ValueError for a window that starts after `now`.
    """
    return generate_dataset(
        "broadlog",
        window_start,
        rows,
        seed=seed,
        layout=layout,
        defect_rate=defect_rate,
        org_unit=org_unit,
        now=now,
        batch_rows=batch_rows,
    )


def generate_tracking_log(
    window_start: datetime,
    rows: int,
    *,
    seed: int,
    layout: str = "classic",
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    history_windows: int = 0,
    broadlog_rows: int | None = None,
    broadlog_defect_rate: float | None = None,
) -> GeneratedFile:
    """trackingLog rows reacting to sent messages of the broadLog files of the same seed:
    this window's and up to `history_windows` earlier ones' (see `generate_dataset`).

    Every row's broadLog, delivery, recipient and external id are those of a broadLog row
    with status sent that the pipeline keeps (no defect there), and tsLog lies after that
    row's tsEvent, inside the window and not after `now`: the orphan check finds nothing as
    long as those broadLog files are ingested. About a third of the sent messages get all
    the reactions: opens (url type 2, url id 1), clicks (1) on example.com links, a few
    mirror pages (6) and opt-outs (3). Raises ValueError when `rows` > 0 and no sent message
    precedes the window's end.
    """
    return generate_dataset(
        "tracking_log",
        window_start,
        rows,
        seed=seed,
        layout=layout,
        defect_rate=defect_rate,
        org_unit=org_unit,
        now=now,
        batch_rows=batch_rows,
        history_windows=history_windows,
        broadlog_rows=broadlog_rows,
        broadlog_defect_rate=broadlog_defect_rate,
    )


def generate_non_deliverables(
    window_start: datetime,
    rows: int,
    *,
    seed: int,
    layout: str = "classic",
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> GeneratedFile:
    """Quarantine entries changed in the window: emails (channel 0) and mobile numbers
    (channel 1) of pool recipients; statuses quarantine / with errors / denylisted / valid
    with failure reasons, error counts and texts that fit them (§b3, §b5); status and channel
    codes as PipelineSettings maps them."""
    return generate_dataset(
        "non_deliverables",
        window_start,
        rows,
        seed=seed,
        layout=layout,
        defect_rate=defect_rate,
        org_unit=org_unit,
        now=now,
        batch_rows=batch_rows,
    )


def generate_preferences(
    window_start: datetime,
    rows: int,
    *,
    seed: int,
    layout: str = "classic",
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> GeneratedFile:
    """Opt-out flags of recipients changed in the window, one row per recipient (while
    `rows` <= the pool size): mostly 0; some blackListEmail, few global blackList."""
    return generate_dataset(
        "preferences",
        window_start,
        rows,
        seed=seed,
        layout=layout,
        defect_rate=defect_rate,
        org_unit=org_unit,
        now=now,
        batch_rows=batch_rows,
    )


def generate_profiles(
    window_start: datetime,
    rows: int,
    *,
    seed: int,
    layout: str = "classic",
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    broadlog_rows: int | None = None,
    broadlog_defect_rate: float | None = None,
) -> GeneratedFile:
    """The recipient extract of the window: every recipient of the window's broadLog file
    (see `generate_dataset`) when `rows` allows (it does when both have the same number of
    rows), then other people of the pool. A person keeps the same attributes in every file
    (`recipient_details`)."""
    return generate_dataset(
        "profiles",
        window_start,
        rows,
        seed=seed,
        layout=layout,
        defect_rate=defect_rate,
        org_unit=org_unit,
        now=now,
        batch_rows=batch_rows,
        broadlog_rows=broadlog_rows,
        broadlog_defect_rate=broadlog_defect_rate,
    )


def generate_push_subscriptions(
    window_start: datetime,
    rows: int,
    *,
    seed: int,
    layout: str = "classic",
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> GeneratedFile:
    """App subscriptions changed in the window, one row per subscription (while `rows` <= the
    subscribers, `push_devices`): pool recipients with an external ID (the subscriber key),
    their app, platform (as `push_platform_codes` writes it) and a token of the platform's
    shape; defects include malformed tokens (`invalid_push_token`) and unknown platforms."""
    return generate_dataset(
        "push_subscriptions",
        window_start,
        rows,
        seed=seed,
        layout=layout,
        defect_rate=defect_rate,
        org_unit=org_unit,
        now=now,
        batch_rows=batch_rows,
    )


def stream_dataset(
    dataset: str,
    path: Path,
    rows: int,
    *,
    seed: int,
    window_start: datetime = DEFAULT_BENCH_WINDOW,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    layout: str = "classic",
    defect_rate: float = 0.0,
    org_unit: str = "default",
    now: datetime | None = None,
    compresslevel: int = 6,
    history_windows: int = 0,
    broadlog_rows: int | None = None,
    broadlog_defect_rate: float | None = None,
) -> GenerationStats:
    """Write one (large) file of `dataset` batch by batch; memory stays at about two batches
    (plus, for trackingLog, the referenced sends: ~30 bytes per engaged broadLog row).

    gzip-compressed (mtime 0, deterministic) when `path` ends in `.gz`. Same arguments and
    `batch_rows` as `generate_dataset` → the same CSV bytes. The file appears under its name
    only once complete, so a drop-zone sensor never reads half of it.
    """
    plan = _plan(dataset, window_start, seed=seed, layout=layout, org_unit=org_unit, now=now)
    _check_sizes(rows, defect_rate, batch_rows)
    refs = _References(history_windows, broadlog_rows, broadlog_defect_rate)
    source = _SOURCES[dataset](plan, rows, defect_rate, batch_rows, refs)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    defects: list[tuple[int, str]] = []
    try:
        with tmp.open("wb") as raw:
            out: BinaryIO = raw
            if path.name.lower().endswith(".gz"):
                out = gzip_module.GzipFile(  # type: ignore[assignment]
                    filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=compresslevel
                )
            with out:
                out.write(header_line(plan.layout))
                batches = _iter_batches(plan, source, rows, defect_rate, batch_rows)
                for body, found in _prefetch(batches):
                    out.writelines(body)
                    defects.extend(found)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return _stats(rows, defects, path.stat().st_size)


def stream_broadlog(
    path: Path,
    rows: int,
    *,
    seed: int,
    window_start: datetime = DEFAULT_BENCH_WINDOW,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    layout: str = "classic",
    defect_rate: float = 0.0,
    org_unit: str = "default",
    now: datetime | None = None,
    compresslevel: int = 6,
) -> GenerationStats:
    """`stream_dataset` for broadLog: same arguments and `batch_rows` as `generate_broadlog`
    → the same CSV bytes."""
    return stream_dataset(
        "broadlog",
        path,
        rows,
        seed=seed,
        window_start=window_start,
        batch_rows=batch_rows,
        layout=layout,
        defect_rate=defect_rate,
        org_unit=org_unit,
        now=now,
        compresslevel=compresslevel,
    )


def stream_broadlog_csv(
    path: Path,
    rows: int,
    *,
    seed: int,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    defect_rate: float = 0.0,
    window_start: datetime = DEFAULT_BENCH_WINDOW,
    layout: str = "classic",
    compresslevel: int = 6,
) -> int:
    """Benchmark helper: `stream_broadlog` returning just the number of rows written."""
    return stream_broadlog(
        path,
        rows,
        seed=seed,
        window_start=window_start,
        batch_rows=batch_rows,
        layout=layout,
        defect_rate=defect_rate,
        compresslevel=compresslevel,
    ).rows


# --------------------------------------------------------------------------------------------
# Datasets registry and files on disk
# --------------------------------------------------------------------------------------------
class WindowGenerator(Protocol):
    def __call__(
        self,
        window_start: datetime,
        rows: int,
        *,
        seed: int,
        layout: str = ...,
        defect_rate: float = ...,
        org_unit: str = ...,
        now: datetime | None = ...,
    ) -> GeneratedFile: ...


class ReferringGenerator(WindowGenerator, Protocol):
    """A generator whose files refer to earlier windows' files (`Dataset.reaches_back`)."""

    def __call__(
        self,
        window_start: datetime,
        rows: int,
        *,
        seed: int,
        layout: str = ...,
        defect_rate: float = ...,
        org_unit: str = ...,
        now: datetime | None = ...,
        history_windows: int = ...,
    ) -> GeneratedFile: ...


@dataclass(frozen=True)
class Dataset:
    """A generated Campaign export: how one window's file is made and named."""

    name: str
    generate: WindowGenerator
    file_name: Callable[..., str]  # (window_start, *, gzip) -> file name
    description: str
    flow: CampaignExportFlow  # the pipeline flow that ingests the files
    # Earlier windows a file may refer to. write_dataset_files never lets a file refer to a
    # window before the first one it writes: those files would be missing downstream.
    reaches_back: int = 0


def _file_namer(dataset: str) -> Callable[..., str]:
    def file_name(window_start: datetime, *, gzip: bool = False) -> str:
        return dataset_file_name(dataset, window_start, gzip=gzip)

    return file_name


TRACKING_HISTORY_WINDOWS = 5  # reactions up to a day after the send, within one CLI run

DATASETS: dict[str, Dataset] = {
    "broadlog": Dataset(
        name="broadlog",
        generate=generate_broadlog,
        file_name=broadlog_file_name,
        description="Campaign delivery logs (nms:broadLogRcp), broadLog_YYYYMMDD_HHMM.csv",
        flow=FLOWS["broadlog"],
    ),
    "tracking_log": Dataset(
        name="tracking_log",
        generate=generate_tracking_log,
        file_name=_file_namer("tracking_log"),
        description="opens, clicks, opt-outs and mirror pages (nms:trackingLogRcp) of the "
        "broadLog messages sent in the window and the day before it, "
        "trackingLog_YYYYMMDD_HHMM.csv",
        flow=FLOWS["tracking_log"],
        reaches_back=TRACKING_HISTORY_WINDOWS,
    ),
    "non_deliverables": Dataset(
        name="non_deliverables",
        generate=generate_non_deliverables,
        file_name=_file_namer("non_deliverables"),
        description="quarantined emails and mobile numbers (nms:address), "
        "nonDeliverables_YYYYMMDD_HHMM.csv",
        flow=FLOWS["non_deliverables"],
    ),
    "preferences": Dataset(
        name="preferences",
        generate=generate_preferences,
        file_name=_file_namer("preferences"),
        description="recipients' opt-out flags (nms:recipient blackList*), "
        "preferences_YYYYMMDD_HHMM.csv",
        flow=FLOWS["preferences"],
    ),
    "profiles": Dataset(
        name="profiles",
        generate=generate_profiles,
        file_name=_file_namer("profiles"),
        description="recipient extract (nms:recipient) covering the window's broadLog "
        "recipients, profiles_YYYYMMDD_HHMM.csv",
        flow=FLOWS["profiles"],
    ),
    "push_subscriptions": Dataset(
        name="push_subscriptions",
        generate=generate_push_subscriptions,
        file_name=_file_namer("push_subscriptions"),
        description="mobile-app push subscriptions (nms:appSubscriptionRcp) of pool "
        "recipients, appSubscriptions_YYYYMMDD_HHMM.csv",
        flow=FLOWS["push_subscriptions"],
    ),
}


def _write_atomically(path: Path, data: bytes) -> None:
    # The export sensor must never see half a file: write beside it under a name that does
    # not match the export pattern, then rename.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def gzip_bytes(content: bytes, compresslevel: int = 6) -> bytes:
    """Deterministic gzip: mtime 0 and no embedded file name."""
    return gzip_module.compress(content, compresslevel=compresslevel, mtime=0)


def write_dataset_files(
    dataset: str,
    out_dir: Path,
    start: datetime,
    end: datetime,
    rows_per_file: int,
    *,
    seed: int,
    layout: str = "classic",
    gzip: bool = False,
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    export_folder: str = "export",
) -> list[GeneratedFile]:
    """One file per 4-hour window starting in [floor(start), end), in <out_dir>/<export_folder>.

    Files of different datasets written with the same arguments fit together: trackingLog
    reacts to the broadLog messages of its window and of up to `Dataset.reaches_back`
    earlier windows of the range (so a trackingLog file depends on where its window sits in
    the range), and profiles cover every recipient of the window's broadLog.
    """
    spec = DATASETS[dataset]
    folder = Path(out_dir) / export_folder
    folder.mkdir(parents=True, exist_ok=True)
    written: list[GeneratedFile] = []
    for i, ws in enumerate(window_starts(start, end)):
        if spec.reaches_back:
            generated = cast(ReferringGenerator, spec.generate)(
                ws,
                rows_per_file,
                seed=seed,
                layout=layout,
                defect_rate=defect_rate,
                org_unit=org_unit,
                now=now,
                history_windows=min(spec.reaches_back, i),
            )
        else:
            generated = spec.generate(
                ws,
                rows_per_file,
                seed=seed,
                layout=layout,
                defect_rate=defect_rate,
                org_unit=org_unit,
                now=now,
            )
        name = spec.file_name(ws, gzip=gzip)
        path = folder / name
        _write_atomically(path, gzip_bytes(generated.content) if gzip else generated.content)
        written.append(replace(generated, name=name, path=path))
    return written


def write_broadlog_files(
    out_dir: Path,
    start: datetime,
    end: datetime,
    rows_per_file: int,
    *,
    seed: int,
    layout: str = "classic",
    gzip: bool = False,
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    export_folder: str = "export",
) -> list[GeneratedFile]:
    """broadLog files for every 4-hour window starting in [floor(start), end)."""
    return write_dataset_files(
        "broadlog",
        out_dir,
        start,
        end,
        rows_per_file,
        seed=seed,
        layout=layout,
        gzip=gzip,
        defect_rate=defect_rate,
        org_unit=org_unit,
        now=now,
        export_folder=export_folder,
    )


# --------------------------------------------------------------------------------------------
# AEP dataset export of the Mobile SDK push registrations (the other route to the device)
# --------------------------------------------------------------------------------------------
DEFAULT_PUSH_DATASET_ID = "6571b2c3d4e5f60718293a4b"  # shaped like an AEP dataset ID
_AEP_DEFECTS = (
    "invalid_json",
    "no_push_details",
    "invalid_push_token",
    "unknown_code:platform",
    "missing_required_value",
)
_IDENTITY_TYPE = pa.struct(
    [pa.field("namespace", pa.struct([pa.field("code", pa.string())])), ("xid", pa.string())]
)
AEP_PUSH_RECORD_SCHEMA = pa.schema(
    [
        pa.field("_id", pa.string()),
        pa.field(
            "identityMap",
            pa.struct(
                [
                    pa.field(
                        "ECID",
                        pa.list_(pa.struct([("id", pa.string()), ("primary", pa.bool_())])),
                    )
                ]
            ),
        ),
        pa.field(
            "pushNotificationDetails",
            pa.list_(
                pa.struct(
                    [
                        ("appID", pa.string()),
                        ("token", pa.string()),
                        ("platform", pa.string()),
                        ("denylisted", pa.bool_()),
                        ("identity", _IDENTITY_TYPE),
                    ]
                )
            ),
        ),
    ]
)


@dataclass(frozen=True)
class AepPushExport:
    """One AEP dataset export: zone-relative path -> bytes, and what the pipeline must make
    of it (each record holds one push item, so rows = records)."""

    files: dict[str, bytes] = field(repr=False)
    records: int
    expected_rows_out: int
    expected_rejects: dict[str, int]
    overlap: int  # good rows whose token Campaign also holds
    overlap_by_app: dict[str, int]
    partition: str

    def write(self, root: Path) -> list[Path]:
        written = []
        for rel, data in self.files.items():
            path = Path(root) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, data)
            written.append(path)
        return written


def aep_push_token_export(
    campaign_tokens: Sequence[tuple[str, str, str]],
    *,
    seed: int,
    export_time: datetime,
    overlap: int,
    aep_only: int,
    defects: int = 0,
    fmt: str = "json",
    parts: int = 1,
    dataset_id: str = DEFAULT_PUSH_DATASET_ID,
    folder: str = "aep_dataset_exports",
) -> AepPushExport:
    """The push tokens AEP holds from the Mobile SDK route, as a dataset export under
    `<folder>/<dataset_id>/exportTime=YYYYMMDDHHMM/part-*.json|.parquet`.

    `campaign_tokens` are (app ID, token, platform apns/fcm) that Campaign holds; exactly
    `overlap` distinct ones of them are registered in AEP too (the duplicate registrations),
    plus `aep_only` devices Campaign does not know, plus `defects` malformed records (one
    reason each, cycling through `_AEP_DEFECTS`; `invalid_json` only in JSON).
    """
    if fmt not in ("json", "parquet"):
        raise ValueError("fmt must be json or parquet")
    when = as_utc(export_time)
    stamp = f"{when:%Y%m%d%H%M}"
    rng = rng_for(seed, "aep-push", _epoch_seconds(when))
    distinct = list(dict.fromkeys((t, (a, p)) for a, t, p in campaign_tokens))
    if overlap > len(distinct):
        raise ValueError(f"overlap {overlap} > {len(distinct)} Campaign tokens")
    shared = [distinct[i] for i in sorted(rng.choice(len(distinct), size=overlap, replace=False))]
    platforms = [_PUSH_PLATFORMS[i][0] for i in weighted_choice(rng, aep_only, [0.55, 0.45])]
    own_apps = [PUSH_APPS[i] for i in weighted_choice(rng, aep_only, _PUSH_APP_WEIGHTS)]
    own = list(zip(own_apps, push_tokens_for(rng, platforms), platforms, strict=True))
    devices = [(app, token, platform) for token, (app, platform) in shared] + own
    ecids = ["".join(map(str, rng.integers(0, 10, 38))) for _ in range(len(devices) + defects)]

    def record(i: int, item: dict[str, object] | None) -> dict[str, object]:
        out: dict[str, object] = {
            "_id": f"{stamp}-{i:07d}",
            "identityMap": {"ECID": [{"id": ecids[i], "primary": True}]},
        }
        if item is not None:
            item["identity"] = {"namespace": {"code": "ECID"}, "xid": ecids[i]}
            out["pushNotificationDetails"] = [item]
        return out

    records: list[dict[str, object] | str] = [
        record(i, {"appID": a, "token": t, "platform": p, "denylisted": False})
        for i, (a, t, p) in enumerate(devices)
    ]
    kinds = [k for k in _AEP_DEFECTS if fmt == "json" or k != "invalid_json"]
    rejects: Counter[str] = Counter()
    for j in range(defects):
        kind = kinds[j % len(kinds)]
        i = len(devices) + j
        good_token = push_tokens_for(rng, ["apns"])[0]
        item = {"appID": PUSH_APPS[0], "token": good_token, "platform": "apns", "denylisted": False}
        if kind == "invalid_json":
            records.append('{"_id": "' + stamp + '-broken", "pushNotificationDetails": [')
        elif kind == "no_push_details":
            records.append(record(i, None))
        elif kind == "invalid_push_token":
            records.append(record(i, {**item, "token": good_token[:40]}))
        elif kind == "unknown_code:platform":
            records.append(record(i, {**item, "platform": "wns"}))
        else:
            records.append(record(i, {**item, "appID": None}))
        rejects[kind] += 1
    order = rng.permutation(len(records))
    shuffled = [records[i] for i in order]
    name_hash = hashlib.sha256(f"{seed}-{stamp}-{dataset_id}".encode()).hexdigest()[:12]
    base = f"{folder}/{dataset_id}/exportTime={stamp}"
    files: dict[str, bytes] = {}
    per_part = -(-len(shuffled) // parts) if shuffled else 0
    for k in range(parts):
        chunk = shuffled[k * per_part : (k + 1) * per_part]
        name = f"{base}/part-{k:05d}-{name_hash}.{fmt}"
        if fmt == "json":
            lines = [r if isinstance(r, str) else json.dumps(r, sort_keys=True) for r in chunk]
            files[name] = "".join(line + "\n" for line in lines).encode()
        else:
            sink = pa.BufferOutputStream()
            table = pa.Table.from_pylist(
                [r for r in chunk if not isinstance(r, str)], schema=AEP_PUSH_RECORD_SCHEMA
            )
            pq.write_table(table, sink)
            files[name] = sink.getvalue().to_pybytes()
    by_app = Counter(app for _token, (app, _p) in shared)
    window = floor_window(when).strftime("%Y-%m-%d-%H:%M")
    return AepPushExport(
        files=files,
        records=len(records),
        expected_rows_out=len(devices),
        expected_rejects=dict(sorted(rejects.items())),
        overlap=overlap,
        overlap_by_app=dict(sorted(by_app.items())),
        partition=window,
    )


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def _iso(value: str) -> datetime:
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date/time: {value!r}") from exc


def _non_negative_int(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return n


def _positive_int(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return n


def _rate(value: str) -> float:
    f = float(value)
    if not 0 <= f <= 1:
        raise argparse.ArgumentTypeError("must be within [0, 1]")
    return f


def _datasets(value: str) -> list[str]:
    names = [v.strip().lower() for v in value.split(",") if v.strip()]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown dataset(s) {unknown}; available: {', '.join(DATASETS)}"
        )
    return list(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    datasets = "; ".join(f"{d.name}: {d.description}" for d in DATASETS.values())
    parser = argparse.ArgumentParser(
        prog="rtcdp-sample-data",
        description=(
            "Write fake but realistic Adobe Campaign export files into a local drop-zone "
            "folder: one file per dataset and 4-hour UTC window, named after the window "
            "start (e.g. broadLog_YYYYMMDD_HHMM.csv[.gz]) in OUT/EXPORT_FOLDER/. Seeded: the "
            "same arguments give byte-identical files, and the datasets of one run fit "
            "together (the same people; trackingLog reacts to broadLog messages; profiles "
            "cover every broadLog recipient). All personal data is invented and uses "
            "reserved test domains and phone ranges only."
        ),
        epilog=(
            "Time range: windows are 4-hour UTC blocks (00:00, 04:00, ... 20:00). A file is "
            "written for every window whose start lies in [START floored to its window, END). "
            "Without --end, END is the end of the last window completed before --now. Without "
            "--start, START is END minus --windows windows (default 6 = one day); with --start "
            "but without --end, --windows (if given) sets the count. Naive times are UTC. "
            "A window that contains --now is cut at --now; windows after it are refused. "
            f"Datasets: {datasets}. Each written file is reported on one line with its row "
            "count and its expected valid and rejected rows per reason code."
        ),
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="drop-zone root folder (created if missing)",
    )
    parser.add_argument(
        "--export-folder",
        default="export",
        metavar="NAME",
        help="sub-folder of DIR the files go to (default: %(default)s, as "
        "PipelineSettings.campaign_export_folder)",
    )
    parser.add_argument(
        "--start",
        type=_iso,
        metavar="ISO",
        help="first window, e.g. 2026-11-20 or 2026-11-20T08:00 (floored to its 4-hour window)",
    )
    parser.add_argument(
        "--end",
        type=_iso,
        metavar="ISO",
        help="exclusive end of the range (default: last completed window before --now)",
    )
    parser.add_argument(
        "--windows",
        type=_positive_int,
        metavar="N",
        help="number of windows when --start or --end is missing (default 6)",
    )
    parser.add_argument(
        "--rows-per-file",
        type=_non_negative_int,
        default=2000,
        metavar="N",
        help="data rows per file (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="random seed; same seed and arguments -> same bytes (default: %(default)s)",
    )
    parser.add_argument(
        "--layout",
        choices=sorted(LAYOUTS),
        default="classic",
        help="column names: classic = Campaign Classic v7/v8 (iBroadLogId, "
        "tsEvent, ...), standard = Campaign Standard (id, eventDate, ...), as each "
        "dataset's pipeline layouts name them (default: %(default)s)",
    )
    parser.add_argument(
        "--gzip",
        action="store_true",
        help="write .csv.gz (deterministic: mtime 0, no embedded name)",
    )
    parser.add_argument(
        "--defect-rate",
        type=_rate,
        default=0.005,
        metavar="F",
        help="share of rows with one realistic defect the pipeline must "
        "reject (invalid email, empty required value, non-integer id, "
        "malformed timestamp or date, invalid boolean, unknown code, missing "
        "column); 0 disables (default: %(default)s)",
    )
    parser.add_argument(
        "--org-unit",
        default="default",
        metavar="NAME",
        help="Campaign organizational unit written to sOrgUnit / orgUnit (default: %(default)s)",
    )
    parser.add_argument(
        "--datasets",
        type=_datasets,
        default=list(DATASETS),
        metavar="LIST",
        help=f"comma-separated datasets to write (available and default: {','.join(DATASETS)})",
    )
    parser.add_argument(
        "--now",
        type=_iso,
        metavar="ISO",
        help="the generation's 'now' (default: the current time); no timestamp is written after it",
    )
    return parser


def resolve_range(
    start: datetime | None, end: datetime | None, windows: int | None, now: datetime
) -> tuple[datetime, datetime]:
    """The CLI's --start/--end/--windows/--now rules, as (start, exclusive end)."""
    if start is not None and end is not None:
        if windows is not None:
            raise ValueError("--windows cannot be combined with both --start and --end")
        return floor_window(start), as_utc(end)
    if start is not None:
        first = floor_window(start)
        return first, first + WINDOW * windows if windows is not None else floor_window(now)
    last_end = as_utc(end) if end is not None else floor_window(now)
    # The last window is the one that starts before `end`, even if `end` is not on a boundary.
    last_start = floor_window(last_end - timedelta(microseconds=1))
    return last_start - WINDOW * ((windows or 6) - 1), last_end


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    now = args.now if args.now is not None else datetime.now(UTC)
    try:
        start, end = resolve_range(args.start, args.end, args.windows, now)
    except ValueError as exc:
        parser.error(str(exc))
    starts = window_starts(start, end)
    if not starts:
        parser.error(f"no 4-hour window starts in [{start.isoformat()}, {end.isoformat()})")
    if starts[-1] > now:
        parser.error(f"the window {starts[-1].isoformat()} starts after --now {now.isoformat()}")
    total = 0
    for name in args.datasets:
        try:
            written = write_dataset_files(
                name,
                args.out,
                start,
                end,
                args.rows_per_file,
                seed=args.seed,
                layout=args.layout,
                gzip=args.gzip,
                defect_rate=args.defect_rate,
                org_unit=args.org_unit,
                now=now,
                export_folder=args.export_folder,
            )
        except ValueError as exc:  # e.g. no broadLog message for trackingLog to react to
            parser.error(f"{name}: {exc}")
        for generated in written:
            print(generated.summary())
            total += 1
    print(f"{total} file(s) written to {args.out / args.export_folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
