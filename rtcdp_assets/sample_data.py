"""Sample Campaign exports for demos, tests and benchmarks: seeded, fake, fast.

Writes what a Campaign export workflow would drop on the SFTP server every four hours, into a
local folder laid out like the drop zone:

    <out>/export/broadLog_20261123_0800.csv[.gz]    one file per 4-hour UTC window (its start)

Usage (also installed as the console script `rtcdp-sample-data`):

    python -m rtcdp_assets.sample_data --out data/campaign                  # last 24 h
    python -m rtcdp_assets.sample_data --out data/campaign --start 2026-11-20 --end 2026-11-23 \
        --rows-per-file 50000 --layout standard --gzip --defect-rate 0.01 --seed 7

Every value is invented: recipients come from a seeded pool, addresses only use reserved test
domains (RFC 2606 / RFC 6761: example.com, example.org, example.net, *.example, *.test).

Determinism: the same arguments give byte-identical files (gzip is written with mtime 0 and no
file name). Only the defaults of `--now` (the wall clock) and of `--end` (derived from `--now`)
read the clock; a window that lies completely in the past does not depend on `--now` at all.
The random streams are keyed by (seed, dataset, window, batch), never by layout or compression,
so the classic and standard layouts of one window hold the same rows under different headers.

Defects: a share `--defect-rate` of the rows (binomially drawn, at most one defect per row)
carries exactly one fault that `rtcdp_assets.ingest.validate_batch` (with the broadLog pipeline's
allowed codes) rejects under exactly one reason code; see `BROADLOG_DEFECTS`. The API returns the
exact expected counts and the CSV record number (header = 1) of every defective row.

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

New datasets (trackingLog, non-deliverables, preferences, profiles, audience exports) plug in
beside broadLog: they draw people from the shared `recipient_pool`, use the shared id / time /
CSV helpers and defect machinery, and register a `Dataset` in `DATASETS` for `--datasets`.
"""

from __future__ import annotations

import argparse
import bisect
import gzip as gzip_module
import itertools
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
from typing import BinaryIO, Protocol, TypeVar

import dagster
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from resources.settings import PipelineSettings
from rtcdp_assets.ingest import Layout

with warnings.catch_warnings():
    # Building the datasets' Dagster definitions warns about preview features; that noise is
    # the pipeline's business, not something a user of this CLI can act on.
    warnings.simplefilter("ignore", dagster.PreviewWarning)
    warnings.simplefilter("ignore", dagster.BetaWarning)
    from rtcdp_assets import non_deliverables, preferences, profiles, tracking_log
    from rtcdp_assets.broadlog import (
        CLASSIC,
        FAILURE_REASONS,
        STANDARD,
        STATUS_LABELS,
        broadlog_flow,
    )
    from rtcdp_assets.campaign_export import CampaignExportFlow

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
}
# The pipeline flows the files are generated for: their file prefixes, formats and allowed codes.
FLOWS: dict[str, CampaignExportFlow] = {
    "broadlog": broadlog_flow,
    "tracking_log": tracking_log.tracking_log_flow,
    "non_deliverables": non_deliverables.non_deliverables_flow,
    "preferences": preferences.preferences_flow,
    "profiles": profiles.profiles_flow,
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
_FEMALE_NAMES = frozenset(
    "anna chloe emma grace ines karin maria olivia rosa tara vera xenia zoe amelie clara elena "
    "fatima hannah julia laura nina priya sofia lucia aiko".split()
)
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
    ARCEP 06 39 98 xx xx (FR), Ofcom 07700 900xxx (GB), NANP 555-0100..0199 (US)."""
    if country == "FR":
        return f"+3363998{number % 10_000:04d}"
    if country == "GB":
        return f"+447700900{number % 1_000:03d}"
    if country == "US":
        return f"+1{city.area}55501{number % 100:02d}"
    return ""


def _zip_code(country: str, city: _City, number: int) -> str:
    letters = (
        _POSTCODE_LETTERS[number % 20] + _POSTCODE_LETTERS[number // 20 % 20]
    )  # two letters
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
        mobiles.append(_mobile_number(code, city, number[i] >> 20) if has_mobile[i] else "")

    def display(names: Sequence[str], idx: np.ndarray) -> pa.Array:
        vocab = pa.array([_DISPLAY_NAMES.get(n, n.capitalize()) for n in names])
        return vocab.take(pa.array(idx))

    name_gender = np.array(
        ["0" if n in _UNISEX_NAMES else "2" if n in _FEMALE_NAMES else "1" for n in _FIRST_NAMES]
    )
    genders = np.where(gender_unknown, "0", name_gender[pool.first_name_idx])
    middle = display(_FIRST_NAMES, middle_idx)
    mobile_arr = pa.array(mobiles, pa.string())
    return RecipientDetails(
        first_names=display(_FIRST_NAMES, pool.first_name_idx),
        last_names=display(_LAST_NAMES, pool.last_name_idx),
        middle_names=pc.if_else(pa.array(has_middle), middle, ""),
        mobile_phones=mobile_arr,
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


@dataclass(frozen=True)
class Defect:
    row: int  # 0-based row within the batch
    reason: str
    line: bytes  # the whole defective CSV line, `\n` included


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
    k = int(rng.binomial(n, rate)) if rate > 0 and n else 0
    if k == 0:
        return []
    rows = np.sort(rng.choice(n, size=k, replace=False))
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
# broadLog
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
class _BroadlogPlan:
    """Everything a window's batches share."""

    seed: int
    window: datetime
    layout: Layout
    org_unit: str
    t_lo: int  # first possible tsEvent (epoch s)
    t_hi: int  # tsEvent < t_hi: window end, or one second past `now`
    now_s: int
    deliveries: list[Delivery]
    pool: RecipientPool
    failure_codes: dict[str, str]


def _broadlog_plan(
    window_start: datetime, *, seed: int, layout: str, org_unit: str, now: datetime | None
) -> _BroadlogPlan:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, not {layout!r}")
    if "," in org_unit or '"' in org_unit or "\n" in org_unit:
        raise ValueError("org_unit must not contain commas, quotes or line breaks")
    window = as_utc(window_start)
    if window != floor_window(window):
        raise ValueError(f"{window.isoformat()} is not the start of a 4-hour UTC window")
    if window < _ID_ORIGIN:
        raise ValueError("windows before 2000-01-01 are not supported")
    now_utc = as_utc(now) if now is not None else datetime.now(UTC)
    t_lo = _epoch_seconds(window)
    now_s = int(now_utc.timestamp())  # floor: a tsEvent equal to it is not in the future
    if now_s < t_lo:
        raise ValueError(
            f"window {window.isoformat()} starts after now ({now_utc.isoformat()}): "
            "a log cannot be written in the future"
        )
    return _BroadlogPlan(
        seed=seed,
        window=window,
        layout=LAYOUTS[layout],
        org_unit=org_unit,
        t_lo=t_lo,
        t_hi=min(t_lo + WINDOW_SECONDS, now_s + 1),
        now_s=now_s,
        deliveries=deliveries_for_window(seed, window),
        pool=recipient_pool(seed),
        failure_codes=_failure_type_codes(),
    )


def _broadlog_columns(
    plan: _BroadlogPlan, rng: np.random.Generator, n: int, t_lo: int, t_hi: int, id_start: int
) -> tuple[dict[str, Column], int]:
    """n valid rows (canonical field -> values) with ids after `id_start` and tsEvent in
    [t_lo, t_hi); returns them and the last id used."""
    ids = increasing_ids(rng, id_start, n)
    # Sorted so that ids and event times rise together, as in a table filled by a sequence.
    event = np.sort(rng.integers(t_lo, t_hi, size=n, dtype=np.int64))
    contact = event - rng.integers(0, 900, size=n)  # the delivery started a little earlier
    touched_later = rng.random(n) < 0.3  # e.g. a bounce or MTA feedback updated the log
    modified = np.minimum(event + touched_later * rng.integers(1, 3600, size=n), plan.now_s)

    pool = plan.pool
    who = rng.integers(0, pool.size, size=n)
    mixed_case = rng.random(n) < 0.03
    which = weighted_choice(rng, n, [d.weight for d in plan.deliveries])

    status = weighted_choice(rng, n, _STATUS_WEIGHTS)
    failed = np.flatnonzero(status == _STATUS_CODES.index("2"))
    ftype = weighted_choice(rng, failed.size, _FAILURE_TYPE_WEIGHTS)
    # Numbers are NOT NULL in Campaign (§b1): rows that did not fail carry 0 / 0.
    type_codes = [plan.failure_codes[t] for t in _FAILURE_TYPES]
    ftype_vocab = pa.array([plan.failure_codes["undefined"], *type_codes])
    ftype_idx = np.zeros(n, dtype=np.int64)
    ftype_idx[failed] = ftype + 1
    reason_vocab = ["0"]
    reason_idx = np.zeros(n, dtype=np.int64)
    for t, name in enumerate(_FAILURE_TYPES):
        rows = failed[ftype == t]
        codes, weights = zip(*_REASONS_BY_TYPE[name], strict=True)
        reason_idx[rows] = len(reason_vocab) + weighted_choice(rng, rows.size, weights)
        reason_vocab.extend(codes)

    d_ids = pa.array([str(d.delivery_id) for d in plan.deliveries])
    d_labels = pa.array([d.label for d in plan.deliveries])
    d_ops = pa.array([str(d.operation_id) for d in plan.deliveries])
    take = pa.array(which)
    who_arr = pa.array(who)
    columns: dict[str, Column] = {
        "broadlog_id": int_strings(ids),
        "delivery_id": d_ids.take(take),
        "recipient_id": pool.recipient_ids.take(who_arr),
        "external_id": pool.external_ids.take(who_arr),
        "address": pool.addresses(who, mixed_case),
        "status": pa.array(_STATUS_CODES).take(pa.array(status)),
        "failure_type": ftype_vocab.take(pa.array(ftype_idx)),
        "failure_reason": pa.array(reason_vocab).take(pa.array(reason_idx)),
        "event_date": ts_strings(event),
        "contact_date": ts_strings(contact),
        "last_modified": ts_strings(modified),
        "delivery_label": d_labels.take(take),
        "campaign_id": d_ops.take(take),
        "org_unit": pa.scalar(plan.org_unit),
    }
    return columns, int(ids[-1]) if n else id_start


def _check_sizes(rows: int, defect_rate: float, batch_rows: int) -> None:
    if not 0 <= defect_rate <= 1:
        raise ValueError("defect_rate must be within [0, 1]")
    if rows < 0 or not 1 <= batch_rows <= MAX_BATCH_ROWS:
        # A batch becomes one Arrow string array, whose 32-bit offsets stop at 2 GiB.
        raise ValueError(f"rows must be >= 0 and batch_rows within [1, {MAX_BATCH_ROWS}]")


def _iter_broadlog(
    plan: _BroadlogPlan, rows: int, defect_rate: float, batch_rows: int
) -> Iterator[tuple[list[memoryview | bytes], list[tuple[int, str]]]]:
    """Per batch: CSV body chunks (no header) and its defects as (record number, reason)."""
    _check_sizes(rows, defect_rate, batch_rows)
    widx = window_index(plan.window)
    last_id = (widx - window_index(_ID_ORIGIN)) * _ID_STRIDE
    span = plan.t_hi - plan.t_lo
    for b, r0 in enumerate(range(0, rows, batch_rows)):
        n = min(batch_rows, rows - r0)
        # Each batch gets its slice of the window so times keep rising across batches.
        lo = plan.t_lo + span * r0 // rows
        hi = max(plan.t_lo + span * (r0 + n) // rows, lo + 1)
        rng = rng_for(plan.seed, "broadlog", widx, b)
        columns, last_id = _broadlog_columns(plan, rng, n, lo, hi, last_id)
        defects = inject_defects(
            columns,
            n,
            plan.layout,
            BROADLOG_DEFECTS,
            defect_rate,
            rng_for(plan.seed, "broadlog-defects", widx, b),
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


def broadlog_file_name(window_start: datetime, *, gzip: bool = False) -> str:
    return f"broadLog_{as_utc(window_start):%Y%m%d_%H%M}.csv" + (".gz" if gzip else "")


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
    plan = _broadlog_plan(window_start, seed=seed, layout=layout, org_unit=org_unit, now=now)
    parts: list[memoryview | bytes] = [header_line(plan.layout)]
    defects: list[tuple[int, str]] = []
    for body, found in _iter_broadlog(plan, rows, defect_rate, batch_rows):
        parts += body
        defects.extend(found)
    stats = _stats(rows, defects)
    return GeneratedFile(
        name=broadlog_file_name(plan.window),
        content=b"".join(parts),
        rows=rows,
        expected_valid=stats.expected_valid,
        expected_rejects=stats.expected_rejects,
        reject_lines=stats.reject_lines,
        dataset="broadlog",
        window_start=plan.window,
    )


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
    """Write one (large) broadLog file batch by batch; memory stays at about two batches.

    gzip-compressed (mtime 0, deterministic) when `path` ends in `.gz`. Same arguments and
    `batch_rows` as `generate_broadlog` → the same CSV bytes. The file appears under its name
    only once complete, so a drop-zone sensor never reads half of it.
    """
    plan = _broadlog_plan(window_start, seed=seed, layout=layout, org_unit=org_unit, now=now)
    _check_sizes(rows, defect_rate, batch_rows)
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
                batches = _iter_broadlog(plan, rows, defect_rate, batch_rows)
                for body, found in _prefetch(batches):
                    out.writelines(body)
                    defects.extend(found)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return _stats(rows, defects, path.stat().st_size)


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


@dataclass(frozen=True)
class Dataset:
    """A generated Campaign export: how one window's file is made and named."""

    name: str
    generate: WindowGenerator
    file_name: Callable[..., str]  # (window_start, *, gzip) -> file name
    description: str


DATASETS: dict[str, Dataset] = {
    "broadlog": Dataset(
        name="broadlog",
        generate=generate_broadlog,
        file_name=broadlog_file_name,
        description="Campaign delivery logs (nms:broadLogRcp), broadLog_YYYYMMDD_HHMM.csv",
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
    """One file per 4-hour window starting in [floor(start), end), in <out_dir>/<export_folder>."""
    spec = DATASETS[dataset]
    folder = Path(out_dir) / export_folder
    folder.mkdir(parents=True, exist_ok=True)
    written: list[GeneratedFile] = []
    for ws in window_starts(start, end):
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
            "folder: one file per 4-hour UTC window, named after the window start "
            "(broadLog_YYYYMMDD_HHMM.csv[.gz]) in OUT/EXPORT_FOLDER/. Seeded: the same "
            "arguments give byte-identical files. All personal data is invented and uses "
            "reserved test domains only."
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
        "tsEvent, ...), standard = Campaign Standard (id, eventDate, ...) "
        "(default: %(default)s)",
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
        "malformed timestamp, unknown status code, missing column); 0 "
        "disables (default: %(default)s)",
    )
    parser.add_argument(
        "--org-unit",
        default="default",
        metavar="NAME",
        help="Campaign organizational unit written to sOrgUnit (default: %(default)s)",
    )
    parser.add_argument(
        "--datasets",
        type=_datasets,
        default=["broadlog"],
        metavar="LIST",
        help=f"comma-separated datasets to write (available: "
        f"{', '.join(DATASETS)}; default: broadlog)",
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
        for generated in write_dataset_files(
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
        ):
            print(generated.summary())
            total += 1
    print(f"{total} file(s) written to {args.out / args.export_folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
