"""The destination files' member sources, computed with Arrow, equal the per-record reference.

Inputs are shaped like the `profiles` partitions and the audience members they are built from:
re-versioned recipients (same and null `last_modified`), a key two recipients share, keys that
normalise together (case, spaces, phone separators), phones that are not E.164, missing values,
exited members and members Campaign does not know.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources.drop_zones import LocalDropZone
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.join_identities import CAMPAIGN_COLUMNS
from rtcdp_assets.aep_to_campaign.audience_exports.membership import MEMBERS_SCHEMA
from rtcdp_assets.aep_to_campaign.destinations import member_sources as columnar
from tests import per_record_reference as reference

T0 = datetime(2026, 11, 30, 8, tzinfo=UTC)

# recipient_id, external_id, email, mobile_phone, last_modified (hours after T0, None = null)
PROFILE_ROWS = [
    ("1", "ext-1", "Ann@Example.com ", "+33 6 12 34 56 78", 0),
    ("1", "ext-1", "ann@example.com", "+33 6 12 34 56 79", 2),  # later version wins
    ("1", "ext-1", "ann.old@example.com", "+33 6 00 00 00 00", 1),
    ("2", "ext-2", "bob@example.com", "0033 6 11 11 11 11", 0),
    ("2", "ext-2", "bob@example.com", "0033 6 22 22 22 22", 0),  # tie: the later row wins
    ("3", "ext-3", "shared@example.com", "+44 7700 900001", 0),
    ("4", "ext-4", " SHARED@example.com", "+44 7700 900002", 1),  # key held by two recipients
    ("5", "ext-5", "nophone@example.com", None, 0),
    ("6", None, None, "+1 (202) 555-0101", 0),
    ("7", "ext-7", "late@example.com", "+49 151 1234567", None),  # null counts as latest
    ("7", "ext-7", "late.old@example.com", "+49 151 7654321", 3),
    ("8", "ext-8", "bad-phone@example.com", "12", 0),  # not E.164: no phone key
    ("9", "ext-9", "same-phone@example.com", "+33 6 12 34 56 79", 0),
    (None, "ext-x", "norecipient@example.com", "+33 7 00 00 00 01", 0),
    ("10", "ext-10", "ümlaut@example.com", "+33 7 00 00 00 02", 0),
]


def profiles() -> pa.Table:
    rows = list(zip(*PROFILE_ROWS, strict=True))
    return pa.table(
        {
            "recipient_id": pa.array(rows[0], pa.string()),
            "external_id": pa.array(rows[1], pa.string()),
            "email": pa.array(rows[2], pa.string()),
            "mobile_phone": pa.array(rows[3], pa.string()),
            "last_modified": pa.array(
                [None if h is None else T0 + timedelta(hours=h) for h in rows[4]],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )


def members(keys: list[str]) -> pa.Table:
    n = len(keys)
    return pa.table(
        {
            "key": keys,
            "external_id": [None] * n,
            "email": [f"m{i}@example.com" for i in range(n)],
            "status": [("exited", "realized", "existing")[i % 3] for i in range(n)],
            "aep_status": ["realized"] * n,
            "last_qualification_time": [T0] * n,
            "member_since": ["2026-11-30"] * n,
            "in_export": [True] * n,
        },
        schema=MEMBERS_SCHEMA,
    )


@pytest.mark.parametrize("identity", ["external_id", "email", "phone"])
def test_campaign_phones_equal_the_per_record_reference(identity: str) -> None:
    table = profiles()
    column = CAMPAIGN_COLUMNS[identity]
    expected = reference.campaign_phones(table, column, identity)
    got = columnar.latest_unique_phones(table, column, identity)
    assert got.schema == columnar.PHONES_SCHEMA
    assert dict(zip(*got.to_pydict().values(), strict=True)) == expected
    assert got.num_rows == len(expected)  # one row per key
    assert expected  # the input has phones to find


@pytest.mark.parametrize("identity", ["external_id", "email", "phone"])
def test_member_sources_equal_the_per_record_reference(identity: str) -> None:
    table = profiles()
    column = CAMPAIGN_COLUMNS[identity]
    phones = columnar.latest_unique_phones(table, column, identity)
    keys = sorted({k for k in phones.column("key").to_pylist()} | {"unknown-1", "unknown-2"})
    keys = [k for k in keys for _ in range(2)]  # every key twice: exited and current rows
    audience = members(keys)
    got = columnar.member_sources(audience, phones)
    expected = reference.member_sources(
        audience, reference.campaign_phones(table, column, identity)
    )
    assert got.equals(expected)
    assert got.column("mobile_phone").null_count < got.num_rows


def test_campaign_phones_read_every_profiles_partition(tmp_path: Path) -> None:
    warehouse = Warehouse(zone=LocalDropZone(root=str(tmp_path)))
    table = profiles()
    halves = {"2026-11-30-08": table.slice(0, 7), "2026-11-30-12": table.slice(7)}
    for pk, part in halves.items():
        local = tmp_path / f"{pk}.parquet"
        pq.write_table(part, local)
        warehouse.put_file("profiles", pk, "data.parquet", local)
    got = columnar.campaign_phones(warehouse, set(halves), "email")
    expected = reference.campaign_phones(table, "email", "email")
    assert dict(zip(*got.to_pydict().values(), strict=True)) == expected
    assert columnar.campaign_phones(warehouse, set(), "email").num_rows == 0
