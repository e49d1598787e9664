"""The offline mapping file: checked against the official XDM schemas when it is loaded."""

from pathlib import Path

import pytest
import yaml

from rtcdp_assets.customer_to_aep.offline_assets import MAPPINGS_FOLDER, offline_datasets
from rtcdp_assets.customer_to_aep.offline_mapping import MappingError, load_mapping, parse_mapping

ORDERS = MAPPINGS_FOLDER / "offline_orders.yaml"


def orders_document() -> dict:
    return yaml.safe_load(ORDERS.read_text(encoding="utf-8"))


def test_the_shipped_orders_mapping_loads_as_a_commerce_experience_event_dataset():
    mapping = load_mapping(ORDERS)
    assert mapping.record == "event"
    assert mapping.event_type == "commerce.purchases"
    assert mapping.item_array == "productListItems"
    # the customer id is the Campaign external ID: the Campaign profiles' namespace, a setting
    assert [c.identity.namespace for c in mapping.identity_columns] == ["Email", "{campaign}"]
    resolved = mapping.with_namespaces({"campaign": "CampaignID"})
    assert [c.identity.namespace for c in resolved.identity_columns] == ["Email", "CampaignID"]
    assert [ds.dataset for ds in offline_datasets()] == ["loyalty_members", "offline_orders"]


def test_an_unknown_xdm_path_is_refused_at_load_naming_column_and_path():
    document = orders_document()
    document["columns"]["Total"]["path"] = "commerce.order.totalPrice"
    with pytest.raises(MappingError) as refused:
        parse_mapping(document, "orders.yaml")
    assert str(refused.value) == (
        "orders.yaml: column 'Total': commerce.order.totalPrice is not a field of the XDM schema"
    )


@pytest.mark.parametrize(
    ("column", "kind", "message"),
    [
        ("Total", "string", "type string cannot fill commerce.order.priceTotal, which is number"),
        (
            "Lineitem quantity",
            "number",
            "type number cannot fill productListItems[].quantity, which is integer",
        ),
        ("Created at", "date", "type date cannot fill timestamp, which is string (date-time)"),
        (
            "Name",
            "datetime",
            "type datetime cannot fill commerce.order.purchaseID, which is string",
        ),
    ],
)
def test_a_type_the_xdm_field_cannot_take_is_refused_at_load(column, kind, message):
    document = orders_document()
    document["columns"][column]["type"] = kind
    with pytest.raises(MappingError, match=f"column '{column}': ") as refused:
        parse_mapping(document, "orders.yaml")
    assert str(refused.value).endswith(message)


def test_a_field_group_the_schema_lacks_makes_its_paths_unknown():
    document = orders_document()
    document["field_groups"] = []
    with pytest.raises(MappingError, match=r"commerce\.order\.purchaseID is not a field"):
        parse_mapping(document, "orders.yaml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(field_groups=["commerce", "shop"]), "unknown field group"),
        (lambda d: d["columns"]["Email"].pop("identity"), "give a path, an identity or both"),
        (lambda d: d["columns"]["Customer ID"]["identity"].update(primary=True), "more than one"),
        (lambda d: d.pop("event_type"), "needs event_type"),
        (lambda d: d.pop("group_by"), "need group_by"),
        (lambda d: d.update(timezone="Mars/Olympus"), "unknown timezone"),
        (lambda d: d["columns"]["Taxes"].update(path="commerce.order.priceTotal"), "already"),
        (lambda d: d["constants"].update({"commerce.purchases.value": "one"}), "constant"),
    ],
)
def test_other_mapping_mistakes_are_refused_at_load(change, message):
    document = orders_document()
    change(document)
    with pytest.raises(MappingError, match=message):
        parse_mapping(document, "orders.yaml")


def test_a_bad_mapping_file_stops_the_datasets_from_loading(tmp_path: Path):
    document = orders_document()
    document["columns"]["Lineitem sku"]["path"] = "productListItems[].sku"
    (tmp_path / "orders.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(MappingError, match=r"productListItems\[\].sku is not a field"):
        offline_datasets(tmp_path)


def test_a_loyalty_profile_mapping_is_checked_against_the_loyalty_field_group():
    document = {
        "dataset": "loyalty_members",
        "record": "profile",
        "field_groups": ["loyalty"],
        "columns": {
            "member_email": {"identity": {"namespace": "Email", "primary": True}},
            "tier": {"path": "loyalty.tier", "type": "string"},
            "points": {"path": "loyalty.points", "type": "number"},
            "joined": {"path": "loyalty.joinDate", "type": "datetime"},
        },
    }
    mapping = parse_mapping(document, "loyalty.yaml")
    assert mapping.record == "profile"
    document["columns"]["points"]["type"] = "date"
    with pytest.raises(MappingError, match=r"cannot fill loyalty\.points, which is number"):
        parse_mapping(document, "loyalty.yaml")


def test_the_shipped_loyalty_mapping_fills_the_loyalty_id_list_and_sends_no_names():
    mapping = load_mapping(MAPPINGS_FOLDER / "loyalty_members.yaml")
    assert (mapping.record, mapping.field_groups) == ("profile", ("loyalty",))
    member = mapping.by_column["Member Number"]
    assert (member.list_leaf, member.per_item, member.target) == (True, False, "loyalty.loyaltyID")
    assert mapping.item_array is None
    assert [(c.identity.namespace, c.identity.primary) for c in mapping.identity_columns] == [
        ("{campaign}", True),
        ("Email", False),
    ]
    assert {"First Name", "Last Name", "Mobile Phone", "Postal Code"} <= mapping.ignore


@pytest.mark.parametrize(
    ("path", "kind", "message"),
    [
        # [] at the end is a list of scalars: the items' type is checked like any field
        ("loyalty.loyaltyID[]", "number", r"cannot fill loyalty\.loyaltyID\[\], which is string"),
        ("loyalty.program[]", "string", r"loyalty\.program\[\] is not a field"),
        ("loyalty.pointsExpiration[]", "number", r"holds objects: map their fields"),
        ("loyalty.cardsDetails[].tags[]", "string", "cannot sit inside array items"),
    ],
)
def test_a_list_of_values_must_be_a_list_of_scalars_of_the_column_type(path, kind, message):
    document = {
        "dataset": "loyalty_members",
        "record": "profile",
        "field_groups": ["loyalty"],
        "group_by": "crm_id",
        "columns": {
            "crm_id": {"identity": {"namespace": "CRMID", "primary": True}},
            "value": {"path": path, "type": kind},
        },
    }
    with pytest.raises(MappingError, match=message):
        parse_mapping(document, "loyalty.yaml")


def test_a_namespace_placeholder_must_be_a_known_one():
    document = orders_document()
    document["columns"]["Customer ID"]["identity"]["namespace"] = "{crm}"
    with pytest.raises(
        MappingError, match=r"Customer ID.*neither a code nor one of \['\{campaign\}'\]"
    ):
        parse_mapping(document, "orders.yaml")
