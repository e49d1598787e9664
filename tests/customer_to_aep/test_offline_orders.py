"""Offline orders to AEP: a shop's export (CSV) and a point-of-sale extract (Parquet) in the
customer_source zone become commerce ExperienceEvents in the AEP landing zone; bad rows are
quarantined with reasons, the counts reconcile and a re-run changes nothing."""

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources import PipelineSettings
from rtcdp_assets.customer_to_aep.offline_assets import offline_datasets
from rtcdp_assets.customer_to_aep.offline_files import partition_for
from rtcdp_assets.customer_to_aep.offline_ingest import ingest_offline_partition
from rtcdp_assets.customer_to_aep.offline_sensor import plan_offline_tick
from rtcdp_assets.shared.file_completion import CompletionRule
from rtcdp_assets.shared.xdm_conformance import (
    EXPERIENCE_EVENT,
    FG_COMMERCE,
    FG_IDENTITY_MAP,
    XdmSchema,
)
from tests.customer_to_aep.offline_steps import (
    archived,
    offline_env,
    rerun_changes_nothing,
    run_offline_day,
)
from tests.drop_files import write_settled
from tests.results import check_evaluations_by_name, materialization, read_published

DAY = "2026-11-23"
FOLDER = "offline/orders"
# In the landing folder the Campaign datasets use (`aep_landing_folder`), a folder per dataset.
LANDING = (
    f"aep_landing/{PipelineSettings().aep_landing_folder}"
    "/offline_orders/20261123/offline_orders_20261123.parquet"
)

# A shop platform's order export as it is downloaded: UTF-8 with a byte-order mark, CRLF line
# ends, one line per order item, the order's own values on its first line only, names with
# commas and quotes, times with the shop's offset, columns the mapping ignores.
HEADER = (
    "Name,Email,Financial Status,Created at,Currency,Total,Taxes,Discount Amount,"
    "Lineitem quantity,Lineitem name,Lineitem sku,Lineitem total,Billing Name,Customer ID"
)
SHOP_LINES = [
    # 1001: two items, good
    "#1001,ana.lopez@example.org,paid,2026-11-23 09:30:12 +0100,EUR,59.90,9.98,0.00,"
    '2,"Mug, blue",MUG-BL,39.90,Ana Lopez,C-0001',
    '#1001,,,,,,,,1,"Tea ""Earl Grey"" 100g",TEA-EG,20.00,,',
    # 1002: identified by the customer ID only, good
    "#1002,,paid,2026-11-23 11:02:00 +0100,EUR,15.00,2.50,,1,Notebook,NB-A5,15.00,,C-0002",
    # 1003: no identity at all -> both lines missing_identity
    "#1003,,paid,2026-11-23 12:00:00 +0100,EUR,30.00,,,1,Pen,PEN-1,10.00,,",
    "#1003,,,,,,,,2,Ink,INK-1,20.00,,",
    # 1004: decimal comma -> bad_number:Total
    '#1004,ben@example.org,paid,2026-11-23 13:00:00 +0100,EUR,"12,50",,,1,Pen,PEN-1,12.50,,',
    # 1005: second line's quantity is not a number -> it is bad_integer, the first line waits
    "#1005,cleo@example.org,paid,2026-11-23 14:00:00 +0100,EUR,45.00,,,1,Cup,CUP-1,15.00,,",
    "#1005,,,,,,,,two,Saucer,SAU-1,30.00,,",
    # 1006: a day-first date -> bad_date:Created at
    "#1006,dan@example.org,paid,23/11/2026 15:00,EUR,9.00,,,1,Card,CARD-1,9.00,,",
]
SHOP_CSV = ("\ufeff" + "\r\n".join([HEADER, *SHOP_LINES]) + "\r\n").encode("utf-8")
# The same export from a second shop with a column the mapping does not know.
EXTRA_CSV = (
    HEADER + ",Loyalty Card\n"
    "#3001,eve@example.org,paid,2026-11-23T16:00:00Z,EUR,5.00,,,1,Pin,PIN-1,5.00,,,L-9\n"
    "#3002,fay@example.org,paid,2026-11-23T17:00:00Z,EUR,6.00,,,1,Pin,PIN-1,6.00,,,L-8\n"
).encode()


def pos_parquet() -> bytes:
    """A point-of-sale extract: typed Parquet columns, order values repeated on every line."""
    when = datetime(2026, 11, 23, 18, 45, tzinfo=UTC)
    table = pa.table(
        {
            "Name": ["#2001", "#2001", "#2002"],
            "Email": ["gus@example.org", "gus@example.org", None],
            "Customer ID": [None, None, "C-0007"],
            "Created at": pa.array([when, when, when], pa.timestamp("us", tz="UTC")),
            "Currency": ["EUR", "EUR", "EUR"],
            "Total": [30.5, 30.5, 4.0],
            "Lineitem sku": ["BAG-1", "BAG-2", "GUM-1"],
            "Lineitem name": ["Bag", "Bag, large", "Gum"],
            "Lineitem quantity": pa.array([1, 1, 4], pa.int64()),
            "Lineitem total": [10.5, 20.0, 4.0],
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
            "orders_20261123.csv": SHOP_CSV,
            "orders_20261123_1800_shop2.csv": EXTRA_CSV,
            "orders_20261123_pos.parquet": pos_parquet(),
        },
    )


def run_day(resources, instance=None):
    # Every shipped mapping is a dataset (orders, loyalty members): this file runs the orders.
    return run_offline_day("offline_orders", resources, DAY, instance)


def test_orders_become_commerce_events_and_bad_rows_are_quarantined_with_reasons(env):
    root, resources = env
    result = run_day(resources)
    assert result.success
    typed = materialization(result, "offline_orders").metadata
    assert typed["rows_read"].value == 14
    assert typed["dagster/row_count"].value == 6
    assert typed["rows_quarantined"].value == 8
    assert typed["rejects_by_reason"].value == {
        "bad_date:Created at": 1,
        "bad_integer:Lineitem quantity": 1,
        "bad_number:Total": 1,
        "group_has_rejected_row": 1,
        "missing_identity": 2,
        "unknown_column:Loyalty Card": 2,
    }
    rejects = pq.read_table(root / "warehouse/offline_orders" / DAY / "rejects.parquet")
    by_line = {(r["source_file"], r["line_number"]): r["reason"] for r in rejects.to_pylist()}
    assert by_line[("orders_20261123.csv", 8)] == "group_has_rejected_row"
    assert by_line[("orders_20261123.csv", 9)] == "bad_integer:Lineitem quantity"
    # Reasons name columns, never values.
    assert not any("@" in r or "12,50" in r for r in by_line.values())

    checks = check_evaluations_by_name(result)
    assert checks["reconciliation"].passed
    assert checks["xdm_conformance"].passed
    assert checks["reconciliation"].metadata["rows_in"].value == 14

    published = read_published(root, LANDING)
    assert published is not None
    assert sorted(r["commerce"]["order"]["purchaseID"] for r in published) == [
        "#1001",
        "#1002",
        "#2001",
        "#2002",
    ]
    order = next(r for r in published if r["commerce"]["order"]["purchaseID"] == "#1001")
    assert order["eventType"] == "commerce.purchases"
    assert order["commerce"]["purchases"] == {"value": 1}
    assert order["commerce"]["order"]["priceTotal"] == pytest.approx(59.9)
    assert [(i["SKU"], i["quantity"], i["name"]) for i in order["productListItems"]] == [
        ("MUG-BL", 2, "Mug, blue"),
        ("TEA-EG", 1, 'Tea "Earl Grey" 100g'),
    ]
    assert order["identityMap"] == {
        "Email": [{"id": "ana.lopez@example.org", "primary": True}],
        "external_id": [{"id": "C-0001", "primary": False}],
    }
    pos = next(r for r in published if r["commerce"]["order"]["purchaseID"] == "#2001")
    assert len(pos["productListItems"]) == 2

    # The landed file, read back, is valid against the official class + Commerce field group.
    schema = XdmSchema.compose(EXPERIENCE_EVENT, [FG_COMMERCE, FG_IDENTITY_MAP])
    report = schema.validate_many([_as_json(r) for r in published])
    assert (report.checked, report.invalid) == (4, 0), report.examples
    manifest = json.loads((root / LANDING).with_name("_manifest.json").read_text())
    assert manifest["records"] == 4
    assert manifest["xdm_field_groups"] == [FG_COMMERCE]

    # The files left the incoming folder for the day's archive; nothing was deleted.
    assert archived(root, FOLDER, DAY) == [
        "orders_20261123.csv",
        "orders_20261123_1800_shop2.csv",
        "orders_20261123_pos.parquet",
    ]


def test_a_re_run_gives_the_same_records_and_leaves_the_landing_alone(env):
    root, resources = env
    second = rerun_changes_nothing(root, resources, "offline_orders", DAY, LANDING)
    assert materialization(second, "offline_orders").metadata["rows_read"].value == 14


def test_an_unreadable_file_is_quarantined_whole_and_blocks_publication(env):
    root, resources = env
    folder = root / "customer_source" / FOLDER
    write_settled(folder / "orders_20261123_broken.parquet", b"PAR1 not really", 3600)
    result = run_day(resources)
    checks = check_evaluations_by_name(result)
    assert not checks["reconciliation"].passed
    assert not (root / LANDING).exists()
    quarantined = sorted(p.name for p in (folder / "quarantine").iterdir())
    assert len(quarantined) == 2 and quarantined[1].endswith(".reason.json")
    reason = json.loads((folder / "quarantine" / quarantined[1]).read_text())
    assert reason["reason"] == "bad_parquet"

    # Without a ledger the quarantine folder holds the day on a re-run just the same.
    (orders,) = [d for d in offline_datasets() if d.dataset == "offline_orders"]
    ds = orders.for_settings(resources["settings"])
    rule = CompletionRule.customer_source(resources["settings"])
    zone, warehouse = resources["customer_source"], resources["warehouse"]
    manifest = ingest_offline_partition(ds, zone, warehouse, rule, DAY)
    assert [(f["source_file"], f["reason"]) for f in manifest["files"] if f["reason"]] == [
        ("orders_20261123_broken.parquet", "bad_parquet")
    ]
    assert manifest["rows_read"] == 14
    # Until a corrected file of that name is uploaded: read now, and again from the archive.
    write_settled(folder / "orders_20261123_broken.parquet", pos_parquet(), 60)
    for _ in range(2):
        manifest = ingest_offline_partition(ds, zone, warehouse, rule, DAY)
        assert [f["status"] for f in manifest["files"]] == ["processed"] * 4
        assert manifest["rows_read"] == 17
    assert sorted(p.name for p in (folder / "quarantine").iterdir()) == quarantined


def test_the_sensor_requests_one_run_per_day_of_complete_files(env):
    root, resources = env
    folder = root / "customer_source" / FOLDER
    (folder / "orders_20261124.csv.part").write_bytes(SHOP_CSV)  # still being uploaded
    (folder / "orders-latest.csv").write_bytes(SHOP_CSV)  # no day in the name
    rule = CompletionRule.customer_source(resources["settings"])
    requests, notes = plan_offline_tick(
        offline_datasets(), resources["customer_source"], rule, datetime.now(UTC)
    )
    assert [(r.partition_key, r.job_name) for r in requests] == [(DAY, "offline_orders_job")]
    assert requests[0].tags["rtcdp/offline_file"] == (
        "orders_20261123.csv,orders_20261123_1800_shop2.csv,orders_20261123_pos.parquet"
    )
    assert any("still being uploaded" in n for n in notes)
    assert any("orders-latest.csv" in n and "left in place" in n for n in notes)


@pytest.mark.parametrize(
    ("name", "day"),
    [
        ("orders_20261123.csv", "2026-11-23"),
        ("ORDERS_20261123_0930.CSV", "2026-11-23"),
        ("orders_20261123_0930_eu-west.parquet", "2026-11-23"),
        ("orders_20261331.csv", None),
        ("orders_20261123.csv.gz", None),
        ("returns_20261123.csv", None),
    ],
)
def test_file_names_give_the_day(name, day):
    assert partition_for(name, "orders") == day


def _as_json(value):
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value
