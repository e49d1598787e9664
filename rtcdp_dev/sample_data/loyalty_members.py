"""A sample loyalty member export for the offline data demo (rtcdp_assets/customer_to_aep).

One file a day, ``members_<YYYYMMDD>.csv``, shaped like a loyalty platform's member export and
matching the shipped mapping (rtcdp_assets/customer_to_aep/mappings/loyalty_members.yaml):
UTF-8 with a byte-order mark, CRLF line ends, one line per member, names and phone columns the
mapping ignores (left empty here: Campaign owns them), local times without an offset. Members
are people of the seed's recipient pool with a Campaign external ID (their CRM customer id),
and two lines carry one deliberate fault each, which the pipeline quarantines with a reason:
``bad_number:Points Balance`` (a thousands separator) and ``missing_value:CRM Customer ID`` (an
in-store enrolment the CRM has not synced yet). Deterministic: the same (day, seed, members)
give the same bytes.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from pathlib import Path

from rtcdp_dev.sample_data.common import rng_for
from rtcdp_dev.sample_data.recipients import recipient_pool

HEADER = (
    "Member Number",
    "First Name",
    "Last Name",
    "Email",
    "CRM Customer ID",
    "Program",
    "Tier",
    "Points Balance",
    "Lifetime Points",
    "Enrollment Date",
    "Tier Expiry Date",
    "Member Status",
    "Home Store",
    "Mobile Phone",
)
PROGRAM = "Club Rewards"
# Tier -> lifetime points it starts at.
TIERS = (("Bronze", 0), ("Silver", 1_000), ("Gold", 5_000))
# Positions of the faulty lines in the day's export, by fault.
THOUSANDS_SEPARATOR_MEMBER = 2
UNSYNCED_MEMBER = 5


def members_csv(day: date, seed: int = 7, members: int = 16) -> bytes:
    rng = rng_for(seed, f"loyalty-members-{day:%Y%m%d}")
    pool = recipient_pool(seed)
    emails, external_ids = pool.emails.to_pylist(), pool.external_ids.to_pylist()
    with_crm_id = [i for i, external in enumerate(external_ids) if external]
    chosen = rng.choice(len(with_crm_id), members, replace=False).tolist()
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for number, pick in enumerate(chosen):
        who = with_crm_id[int(pick)]
        tier, floor = TIERS[int(rng.integers(0, len(TIERS)))]
        lifetime = floor + int(rng.integers(0, 1_000))
        balance = f"{int(rng.integers(0, lifetime + 1))}"
        joined = datetime(day.year, day.month, day.day, 9) - timedelta(
            days=int(rng.integers(1, 2_000)), minutes=int(rng.integers(0, 600))
        )
        crm_id = external_ids[who]
        if number == THOUSANDS_SEPARATOR_MEMBER:
            balance = f"{int(balance) + 1_000:,}"
        if number == UNSYNCED_MEMBER:
            crm_id = ""
        writer.writerow(
            [
                f"L-{seed:02d}{number:05d}",
                "",  # names, phones and stores are not sent to AEP (the mapping ignores them)
                "",
                emails[who],
                crm_id,
                PROGRAM,
                tier,
                balance,
                lifetime,
                joined.strftime("%Y-%m-%d %H:%M:%S"),
                f"{day.year + 1}-12-31 23:59:59",
                "Active",
                "",
                "",
            ]
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def write_sample_members(customer_source: Path, day: date, seed: int = 7) -> Path:
    """``<customer_source>/offline/loyalty/members_<YYYYMMDD>.csv``; returns its path."""
    folder = customer_source / "offline" / "loyalty"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"members_{day:%Y%m%d}.csv"
    path.write_bytes(members_csv(day, seed))
    return path
