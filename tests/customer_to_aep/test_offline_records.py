"""Rows to records: the value rules the mapping applies (offline_records.py docstring)."""

from datetime import date

import pytest

from rtcdp_assets.customer_to_aep.offline_assets import MAPPINGS_FOLDER
from rtcdp_assets.customer_to_aep.offline_files import read_rows
from rtcdp_assets.customer_to_aep.offline_mapping import MappingError, load_mapping, parse_mapping
from rtcdp_assets.customer_to_aep.offline_records import SourceRow, map_rows
from rtcdp_dev.sample_data.loyalty_members import members_csv
from rtcdp_dev.sample_data.offline_orders import orders_csv

# `{campaign}` filled as the ingest does from the default settings
NAMESPACES = {"campaign": "external_id"}
MAPPING = load_mapping(MAPPINGS_FOLDER / "offline_orders.yaml").with_namespaces(NAMESPACES)


def line(n: int, **values: str) -> SourceRow:
    base = {
        "Name": "#1",
        "Email": "",
        "Customer ID": "",
        "Created at": "",
        "Currency": "",
        "Total": "",
        "Lineitem sku": "S",
        "Lineitem quantity": "1",
        "Lineitem total": "1.00",
    }
    return SourceRow("orders_20261123.csv", n, {**base, **values})


FIRST = {"Email": "a@example.org", "Created at": "2026-11-23 09:00:00", "Currency": "EUR"}


def test_two_lines_of_one_order_that_disagree_quarantine_the_order():
    result = map_rows(MAPPING, [line(2, **FIRST, Total="5"), line(3, **FIRST, Total="6")])
    assert result.records == []
    assert [r["reason"] for r in result.rejects] == ["conflicting_value:Total"] * 2
    assert result.reconciles


@pytest.mark.parametrize(
    ("total", "reason"),
    [("1,250", "bad_number:Total"), ("1 250.00", "bad_number:Total"), ("", "missing_value:Total")],
)
def test_numbers_take_a_decimal_point_only(total, reason):
    result = map_rows(MAPPING, [line(2, **FIRST, Total=total)])
    assert [r["reason"] for r in result.rejects] == [reason]


def test_a_time_without_offset_is_in_the_mapping_timezone_and_published_in_utc():
    rows = [line(2, **FIRST, Total="1250.5")]
    (utc,) = map_rows(MAPPING, rows).records
    (paris,) = map_rows(MAPPING, rows, "Europe/Paris").records
    assert utc["timestamp"] == "2026-11-23T09:00:00Z"
    assert paris["timestamp"] == "2026-11-23T08:00:00Z"
    assert utc["commerce"]["order"]["priceTotal"] == 1250.5
    assert utc["_id"] == paris["_id"]  # named by the order, not by the run or the file


def test_the_other_lines_of_an_order_whose_first_line_is_bad_wait_with_the_order():
    rows = [line(2, **FIRST, Total="5,00"), line(3)]
    result = map_rows(MAPPING, rows)
    assert [(r["line_number"], r["reason"]) for r in result.rejects] == [
        (2, "bad_number:Total"),
        (3, "group_has_rejected_row"),
    ]
    assert result.records == [] and result.reconciles


@pytest.mark.parametrize("day", [date(2026, 11, 23), date(2026, 12, 5)])
def test_the_demo_orders_file_maps_with_only_its_deliberate_faults(day):
    data = orders_csv(day)
    assert orders_csv(day) == data  # the same day and seed give the same bytes
    result = map_rows(MAPPING, read_rows(f"orders_{day:%Y%m%d}.csv", data))
    assert result.reconciles
    assert result.reasons["bad_number:Total"] == 1
    assert result.reasons["missing_identity"] >= 1
    assert set(result.reasons) <= {"bad_number:Total", "missing_identity", "group_has_rejected_row"}
    assert len(result.records) == 22  # 24 orders, the two faulty ones quarantined


def test_the_demo_members_file_maps_with_only_its_deliberate_faults():
    day = date(2026, 11, 23)
    data = members_csv(day)
    assert members_csv(day) == data
    mapping = load_mapping(MAPPINGS_FOLDER / "loyalty_members.yaml").with_namespaces(NAMESPACES)
    result = map_rows(mapping, read_rows("members_20261123.csv", data), mapping.timezone)
    assert result.reconciles
    assert result.reasons == {"bad_number:Points Balance": 1, "missing_value:CRM Customer ID": 1}
    assert len(result.records) == 14  # 16 members, the two faulty ones quarantined
    assert all(len(r["loyalty"]["loyaltyID"]) == 1 for r in result.records)
    assert mapping.xdm_schema().validate_many(result.records).invalid == 0


LOYALTY = {
    "dataset": "loyalty_members",
    "record": "profile",
    "field_groups": ["loyalty"],
    "columns": {
        "member_email": {"identity": {"namespace": "Email", "primary": True}},
        "member_id": {"path": "loyalty.loyaltyID", "type": "string"},
        "tier": {"path": "loyalty.tier", "type": "string"},
        "points": {"path": "loyalty.points", "type": "number"},
        "joined": {"path": "loyalty.joinDate", "type": "datetime"},
    },
}


def test_loyalty_rows_become_profile_records_valid_against_the_loyalty_field_group():
    # loyaltyID is an array of strings in the field group: a plain column cannot fill it.
    with pytest.raises(MappingError, match=r"cannot fill loyalty\.loyaltyID, which is array"):
        parse_mapping(LOYALTY, "loyalty.yaml")
    columns = {k: v for k, v in LOYALTY["columns"].items() if k != "member_id"}
    mapping = parse_mapping({**LOYALTY, "columns": columns}, "loyalty.yaml")
    rows = [
        SourceRow(
            "loyalty_20261123.csv",
            2,
            {
                "member_email": "a@example.org",
                "tier": "gold",
                "points": "1200",
                "joined": "2024-03-01T10:00:00Z",
            },
        ),
        SourceRow(
            "loyalty_20261123.csv",
            3,
            {
                "member_email": "",
                "tier": "silver",
                "points": "10",
                "joined": "2024-03-01T10:00:00Z",
            },
        ),
        SourceRow(
            "loyalty_20261123.csv",
            4,
            {"member_email": "b@example.org", "tier": "", "points": "lots", "joined": ""},
        ),
    ]
    result = map_rows(mapping, rows)
    assert [r["reason"] for r in result.rejects] == ["missing_identity", "bad_number:points"]
    (record,) = result.records
    assert record["loyalty"] == {
        "tier": "gold",
        "points": 1200.0,
        "joinDate": "2024-03-01T10:00:00Z",
    }
    assert record["identityMap"] == {"Email": [{"id": "a@example.org", "primary": True}]}
    assert mapping.xdm_schema().validate_many(result.records).invalid == 0


def test_a_mapping_whose_namespace_placeholder_is_not_filled_maps_nothing():
    unfilled = load_mapping(MAPPINGS_FOLDER / "offline_orders.yaml")
    with pytest.raises(MappingError, match=r"\{campaign\} is not filled"):
        map_rows(unfilled, [line(2, **FIRST, Total="5")])


def test_an_order_known_by_the_customer_id_alone_has_it_as_primary_identity():
    # AEP refuses a record without a primary identity: the mapping's (Email) is empty here
    row = line(2, **{**FIRST, "Email": "", "Customer ID": "C-9"}, Total="5")
    (record,) = map_rows(MAPPING, [row]).records
    assert record["identityMap"] == {"external_id": [{"id": "C-9", "primary": True}]}
