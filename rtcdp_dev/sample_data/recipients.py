"""The shared recipient pool (one per seed) and what nms:recipient holds about each person."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rtcdp_dev.sample_data.common import (
    POOL_SIZE,
    _epoch_seconds,
    increasing_ids,
    int_strings,
    rng_for,
    weighted_choice,
)

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
