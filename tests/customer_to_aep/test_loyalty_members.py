"""Loyalty members to AEP: a loyalty platform's member export (CSV, morning and evening) and a
mobile-app enrolment extract (Parquet) in the customer_source zone become Profile records with
the Loyalty Details field group in the AEP landing zone; bad rows are quarantined with
reasons, the counts reconcile and a re-run changes nothing."""

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources import PipelineSettings
from rtcdp_assets.customer_to_aep.offline_assets import offline_datasets
from rtcdp_assets.customer_to_aep.offline_sensor import plan_offline_tick
from rtcdp_assets.shared.file_completion import CompletionRule
from rtcdp_assets.shared.xdm_conformance import (
    FG_IDENTITY_MAP,
    FG_PROFILE_LOYALTY,
    PROFILE,
    XdmSchema,
)
from tests.customer_to_aep.offline_steps import (
    archived,
    offline_env,
    rerun_changes_nothing,
    run_offline_day,
)
from tests.results import check_evaluations_by_name, materialization, read_published

DAY = "2026-11-23"
FOLDER = "offline/loyalty"
LANDING = (
    f"aep_landing/{PipelineSettings().aep_landing_folder}"
    "/loyalty_members/20261123/loyalty_members_20261123.parquet"
)

# A loyalty platform's member export as it is downloaded: UTF-8 with a byte-order mark, CRLF
# line ends, one line per member, names and phone numbers the mapping ignores (Campaign owns
# them), quoted values with commas, local times without an offset (the programme's Paris time).
HEADER = (
    "Member Number,First Name,Last Name,Email,CRM Customer ID,Program,Tier,Points Balance,"
    "Lifetime Points,Enrollment Date,Tier Expiry Date,Member Status,Home Store,Mobile Phone"
)
MORNING = [
    # line 2: good, every column
    'L-0001001,Ana,"Lopez, Maria",ana.lopez@example.org,C-0001,Club Rewards,Gold,1250,8420,'
    '2021-03-15 10:22:05,2027-01-31 23:59:59,Active,"Paris, Opéra",+33 6 12 34 56 78',
    # line 3: good, no email (enrolled in store): the CRM id alone
    "L-0001002,Ben,Okafor,,C-0002,Club Rewards,Silver,310.5,990,2024-06-01 09:00:00,"
    "2026-12-31 23:59:59,Active,Lyon,",
    # line 4: no identity at all -> missing_value:CRM Customer ID
    "L-0001003,Cleo,Martin,,,Club Rewards,Silver,40,40,2026-11-20 18:30:00,"
    "2027-11-20 23:59:59,Active,Lille,",
    # line 5: an email but no CRM id yet (not synced) -> missing_value:CRM Customer ID
    "L-0001004,Dan,Weber,dan@example.org,,Club Rewards,Bronze,0,0,2026-11-23 08:05:00,,Active,,",
    # line 6: a thousands separator -> bad_number:Points Balance
    'L-0001005,Eve,Roux,eve@example.org,C-0005,Club Rewards,Gold,"1,250",9100,'
    "2019-05-02 12:00:00,2027-01-31 23:59:59,Active,Nice,",
    # line 7: a day-first date -> bad_date:Tier Expiry Date
    "L-0001006,Fay,Nowak,fay@example.org,C-0006,Club Rewards,Silver,75,300,"
    "2023-02-11 15:45:00,31/12/2027,Active,Paris,",
    # line 8: a date without its time (joinDate/tierExpiryDate are date-times) -> bad_date
    "L-0001007,Gus,Berg,gus@example.org,C-0007,Club Rewards,Silver,90,410,"
    "2022-08-30 11:00:00,2027-12-31,Active,Paris,",
    # line 9: good here, but the evening export gives another balance -> conflicting_value
    "L-0001008,Hana,Sato,hana@example.org,C-0008,Club Rewards,,500,500,2025-01-10 10:00:00,,"
    "Suspended,,",
]
# The evening extract of the same day: one member again with the same values (one record),
# one with a new balance (two versions of the day: neither is published).
EVENING = [
    MORNING[0],
    "L-0001008,Hana,Sato,hana@example.org,C-0008,Club Rewards,,650,650,2025-01-10 10:00:00,,"
    "Suspended,,",
]


def export_csv(lines: list[str]) -> bytes:
    return ("\ufeff" + "\r\n".join([HEADER, *lines]) + "\r\n").encode("utf-8")


def app_parquet() -> bytes:
    """The mobile app's enrolment service: typed columns, times as UTC timestamps."""
    joined = datetime(2026, 11, 23, 7, 15, tzinfo=UTC)
    expiry = datetime(2027, 11, 30, 22, 59, 59, tzinfo=UTC)
    table = pa.table(
        {
            "Member Number": ["L-0002001", "L-0002002"],
            "CRM Customer ID": ["C-0201", "C-0202"],
            "Email": ["ines@example.org", None],
            "Program": ["Club Rewards", "Club Rewards"],
            "Tier": ["Bronze", "Bronze"],
            "Points Balance": pa.array([40, 12], pa.int64()),
            "Lifetime Points": [40.0, 12.5],
            "Enrollment Date": pa.array([joined, joined], pa.timestamp("us", tz="UTC")),
            "Tier Expiry Date": pa.array([expiry, expiry], pa.timestamp("us", tz="UTC")),
            "Member Status": ["Active", "Active"],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.fixture
def env(tmp_path: Path):
    return offline_env(
        tmp_path,
        FOLDER,
        {
            "members_20261123.csv": export_csv(MORNING),
            "members_20261123_1800.csv": export_csv(EVENING),
            "members_20261123_app.parquet": app_parquet(),
        },
    )


def run_day(resources, instance=None):
    return run_offline_day("loyalty_members", resources, DAY, instance)


def test_members_become_loyalty_profiles_and_bad_rows_are_quarantined_with_reasons(env):
    root, resources = env
    result = run_day(resources)
    assert result.success
    typed = materialization(result, "loyalty_members").metadata
    assert typed["rows_read"].value == 12
    assert typed["dagster/row_count"].value == 5  # Ana twice, Ben, two app enrolments
    assert typed["rows_quarantined"].value == 7
    assert typed["rows_read"].value == typed["dagster/row_count"].value + 7
    assert typed["rejects_by_reason"].value == {
        "bad_date:Tier Expiry Date": 2,
        "bad_number:Points Balance": 1,
        "conflicting_value:Points Balance": 2,
        "missing_value:CRM Customer ID": 2,
    }
    assert materialization(result, "loyalty_members_xdm").metadata["dagster/row_count"].value == 4
    rejects = pq.read_table(root / "warehouse/loyalty_members" / DAY / "rejects.parquet")
    by_line = {(r["source_file"], r["line_number"]): r["reason"] for r in rejects.to_pylist()}
    assert by_line[("members_20261123.csv", 4)] == "missing_value:CRM Customer ID"
    assert by_line[("members_20261123.csv", 8)] == "bad_date:Tier Expiry Date"
    assert by_line[("members_20261123_1800.csv", 3)] == "conflicting_value:Points Balance"
    # Reasons name columns, never values.
    assert not any("@" in r or "L-000" in r or "1,250" in r for r in by_line.values())

    checks = check_evaluations_by_name(result)
    assert checks["reconciliation"].passed
    assert checks["xdm_conformance"].passed
    assert checks["reconciliation"].metadata["rows_in"].value == 12

    published = [_without_nulls(r) for r in read_published(root, LANDING) or []]
    by_member = {r["loyalty"]["loyaltyID"][0]: r for r in published}
    assert sorted(by_member) == ["L-0001001", "L-0001002", "L-0002001", "L-0002002"]
    assert all(r["loyalty"]["loyaltyID"] == [m] for m, r in by_member.items())
    ana = by_member["L-0001001"]
    assert ana["loyalty"] == {
        "loyaltyID": ["L-0001001"],
        "program": "Club Rewards",
        "tier": "Gold",
        "points": 1250,
        "lifetimePoints": 8420,
        "joinDate": "2021-03-15T09:22:05.000Z",  # Paris winter time, in UTC
        "tierExpiryDate": "2027-01-31T22:59:59.000Z",
        "status": "Active",
    }
    assert ana["identityMap"] == {
        "external_id": [{"id": "C-0001", "primary": True}],
        "Email": [{"id": "ana.lopez@example.org", "primary": False}],
    }
    assert by_member["L-0001002"]["identityMap"] == {
        "external_id": [{"id": "C-0002", "primary": True}]
    }
    assert by_member["L-0002002"]["loyalty"]["lifetimePoints"] == 12.5
    # Campaign owns names, addresses and phones: nothing of the sort is published.
    assert all(set(r) == {"_id", "loyalty", "identityMap"} for r in published)

    schema = XdmSchema.compose(PROFILE, [FG_PROFILE_LOYALTY, FG_IDENTITY_MAP])
    report = schema.validate_many(published)
    assert (report.checked, report.invalid) == (4, 0), report.examples
    manifest = json.loads((root / LANDING).with_name("_manifest.json").read_text())
    assert manifest["records"] == 4
    assert manifest["xdm_class"] == PROFILE
    assert manifest["xdm_field_groups"] == [FG_PROFILE_LOYALTY]

    assert archived(root, FOLDER, DAY) == [
        "members_20261123.csv",
        "members_20261123_1800.csv",
        "members_20261123_app.parquet",
    ]


def test_a_re_run_gives_the_same_records_and_leaves_the_landing_alone(env):
    root, resources = env
    second = rerun_changes_nothing(root, resources, "loyalty_members", DAY, LANDING)
    again = materialization(second, "loyalty_members").metadata
    assert (again["rows_read"].value, again["rows_quarantined"].value) == (12, 7)


def test_the_sensor_asks_each_dataset_for_its_own_day(env):
    root, resources = env
    orders = root / "customer_source" / "offline" / "orders"
    orders.mkdir(parents=True)
    (orders / "orders_20261124.csv").write_bytes(b"Name,Email\r\n")
    # A member file in the orders folder is not an order export: left in place.
    (orders / "members_20261124.csv").write_bytes(export_csv(MORNING))
    rule = CompletionRule.customer_source(resources["settings"])
    requests, notes = plan_offline_tick(
        offline_datasets(), resources["customer_source"], rule, datetime.now(UTC)
    )
    assert [(r.partition_key, r.job_name) for r in requests] == [
        (DAY, "loyalty_members_job"),
        ("2026-11-24", "offline_orders_job"),
    ]
    assert requests[0].tags["rtcdp/offline_file"] == (
        "members_20261123.csv,members_20261123_1800.csv,members_20261123_app.parquet"
    )
    assert any("members_20261124.csv" in n and "left in place" in n for n in notes)


def _without_nulls(value: Any) -> Any:
    """A record read back from XDM Parquet (absent fields come back as nulls) as JSON."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
