"""The generated schemas accept every record the pipeline publishes.

Each Campaign dataset is materialized from a generated export (its assets and blocking checks,
as in tests/campaign_to_aep/test_publication_forms.py), each offline dataset from the
hand-written files of tests/customer_to_aep (a shop's CSV and point-of-sale Parquet, a loyalty
platform's morning and evening CSV and an app's Parquet), the published file is read back, and
every record is validated against the schema the *plan* creates: the class and field groups of
its Schema Registry request body, composed from the official XDM schemas vendored in the
repository. Dropping any one field group from that body makes records fail: the test can fail.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from asset_checks.customer_to_aep.offline_checks import offline_checks
from resources import PipelineSettings, embedded_resources
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs
from rtcdp_assets.campaign_to_aep.non_deliverables import non_deliverables_defs
from rtcdp_assets.campaign_to_aep.preferences import preferences_defs
from rtcdp_assets.campaign_to_aep.profiles import profiles_defs
from rtcdp_assets.campaign_to_aep.push_subscriptions import push_subscriptions_defs
from rtcdp_assets.campaign_to_aep.tracking_log import tracking_log_defs
from rtcdp_assets.customer_to_aep.offline_assets import build_offline_defs, offline_datasets
from rtcdp_assets.customer_to_aep.offline_mapping import CLASSES, FIELD_GROUPS
from rtcdp_assets.platform_setup.aep.blueprint import (
    CAMPAIGN_FLOWS,
    STANDARD_NAMESPACES,
    LandingSource,
    build_blueprint,
)
from rtcdp_assets.platform_setup.aep.field_homes import compose_for
from rtcdp_assets.platform_setup.aep.plan_files import build_plan
from rtcdp_assets.shared.xdm_conformance import (
    EXPERIENCE_EVENT,
    FG_COMMERCE,
    FG_IDENTITY_MAP,
    FG_PROFILE_LOYALTY,
    XdmSchema,
)
from rtcdp_dev import sample_data as sd
from tests.customer_to_aep import test_loyalty_members as loyalty_inputs
from tests.customer_to_aep import test_offline_orders as orders_inputs
from tests.drop_files import drop_campaign_export, flow_csv
from tests.results import read_published
from tests.runs import campaign_assets_and_checks, materialize_partition

PK = "2026-11-23-08:00"
WINDOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 19, tzinfo=UTC)
DEFS = {
    d.flow.dataset: d
    for d in (
        broadlog_defs,
        tracking_log_defs,
        non_deliverables_defs,
        preferences_defs,
        profiles_defs,
        push_subscriptions_defs,
    )
}


def planned_schema(plan: dict[str, str], dataset: str) -> tuple[str, list[str]]:
    """(class, field groups) of the plan's schema request for `dataset`."""
    [body] = [
        json.loads(text)["body"]
        for name, text in plan.items()
        if name.endswith(f"_schema_{dataset}.json")
    ]
    refs = [part["$ref"] for part in body["allOf"]]
    return refs[0], refs[1:]


APNS_TOKEN = "AB12" * 16
FCM_TOKEN = "cT9xq2B7RmKf3LwZp0Yv1a:APA91b" + "Qz8_kX-2" * 17


def with_push_quarantine(content: bytes) -> tuple[bytes, int]:
    """A generated classic nonDeliverables export plus two push-channel rows (Classic channel
    codes 41 / 42, as Campaign exports quarantined device tokens; the generator writes none):
    without them no record would use the push field group."""
    flow = non_deliverables_defs.flow
    to_canonical = flow.fmt.layouts[0].columns
    rows = [
        {to_canonical[k]: v for k, v in row.items()}
        for row in csv.DictReader(io.StringIO(content.decode()))
    ]
    base = dict(rows[0])
    for number, (address, channel) in enumerate(((APNS_TOKEN, "41"), (FCM_TOKEN, "42"))):
        rows.append(
            {
                **base,
                "address_id": f"9900{number}",
                "address": address,
                "channel": channel,
                "status": "3",
            }
        )
    return flow_csv(flow, rows, 0).encode(), 2


def published_records(root: Path, resources: dict[str, Any], instance: Any, dataset: str) -> list:
    defs = DEFS[dataset]
    generated = sd.generate_dataset(
        dataset, WINDOW, 400, seed=5, layout="classic", defect_rate=0.01, now=NOW
    )
    content, extra = generated.content, 0
    if dataset == "non_deliverables":
        content, extra = with_push_quarantine(content)
    drop_campaign_export(root, generated.name, content, age_seconds=600)
    if dataset == "push_subscriptions":
        # its mapping reads Campaign's quarantined push tokens: publish them first, as in prod
        quarantine = sd.generate_dataset("non_deliverables", WINDOW, 200, seed=5, now=NOW)
        drop_campaign_export(root, quarantine.name, quarantine.content, age_seconds=600)
        materialize_partition(
            campaign_assets_and_checks(non_deliverables_defs), resources, PK, instance
        )
    result = materialize_partition(campaign_assets_and_checks(defs), resources, PK, instance)
    assert result.success
    path, _ = defs.flow.landing_paths(resources["settings"], PK)
    records = read_published(root / "aep_landing", path)
    assert records and len(records) == generated.expected_valid + extra
    return records


# The files each offline dataset's tests in tests/customer_to_aep hand-write, by folder.
OFFLINE_INPUTS = {
    "offline_orders": {
        "offline/orders/orders_20261123.csv": orders_inputs.SHOP_CSV,
        "offline/orders/orders_20261123_pos.parquet": orders_inputs.pos_parquet(),
    },
    "loyalty_members": {
        "offline/loyalty/members_20261123.csv": loyalty_inputs.export_csv(loyalty_inputs.MORNING),
        "offline/loyalty/members_20261123_1800.csv": loyalty_inputs.export_csv(
            loyalty_inputs.EVENING
        ),
        "offline/loyalty/members_20261123_app.parquet": loyalty_inputs.app_parquet(),
    },
}


def published_offline_records(root: Path, dataset: str) -> tuple[PipelineSettings, list]:
    """The dataset's day materialized (assets and blocking checks) and read back."""
    resources = embedded_resources(root, file_settle_seconds=0)
    for name, data in OFFLINE_INPUTS[dataset].items():
        path = root / "customer_source" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (ds,) = [d for d in offline_datasets() if d.dataset == dataset]
    defs = build_offline_defs([ds])
    result = materialize_partition([*defs.assets, *offline_checks(ds)], resources, "2026-11-23")
    assert result.success
    settings: PipelineSettings = resources["settings"]
    path, _ = ds.landing_paths(settings.aep_landing_folder, "2026-11-23", ".parquet")
    records = read_published(root / "aep_landing", path)
    assert records
    return settings, records


@pytest.mark.parametrize("dataset", [flow.dataset for flow in CAMPAIGN_FLOWS])
def test_the_generated_schema_accepts_every_published_record(embedded_env_with_instance, dataset):
    root, resources, instance = embedded_env_with_instance
    records = published_records(root, resources, instance, dataset)
    assert_the_plan_fits(resources["settings"], dataset, records)


@pytest.mark.parametrize("dataset", [ds.dataset for ds in offline_datasets()])
def test_the_generated_schema_accepts_every_published_offline_record(tmp_path, dataset):
    settings, records = published_offline_records(tmp_path, dataset)
    assert_the_plan_fits(settings, dataset, records)


def assert_the_plan_fits(settings: PipelineSettings, dataset: str, records: list) -> None:
    plan = build_plan(settings, LandingSource("azure", "aep-landing"))
    class_id, field_groups = planned_schema(plan, dataset)

    report = XdmSchema.compose(class_id, field_groups).validate_many(records, fast=False)
    assert report.invalid == 0, report.examples

    # A schema missing any one of the field groups rejects some published records.
    for dropped in field_groups:
        fewer = [g for g in field_groups if g != dropped]
        mutated = XdmSchema.compose(class_id, fewer).validate_many(records)
        assert mutated.invalid > 0, f"{dataset} without {dropped} still accepts every record"

    # Identities: what the records carry is what the plan sets up.
    [setup] = [
        d
        for d in build_blueprint(settings, LandingSource("azure", "x")).datasets
        if d.dataset == dataset
    ]
    carried = {ns for r in records for ns in r.get("identityMap", {})}
    primary = {
        ns
        for r in records
        for ns, items in r.get("identityMap", {}).items()
        if any(item["primary"] for item in items)
    }
    assert carried <= set(setup.identity_map_namespaces)
    assert primary and primary <= set(setup.primary_namespaces)
    primaries = [
        sum(i["primary"] for v in r.get("identityMap", {}).values() for i in v) for r in records
    ]
    odd = [(sorted(r), n) for r, n in zip(records, primaries, strict=True) if n != 1]
    assert odd == [], odd[:3]
    defined = set(XdmSchema.compose(class_id, field_groups).field_paths())
    for descriptor in setup.descriptors:
        assert descriptor.path in defined
        # a descriptor adds no identity: its value is already in the record's identityMap
        for record in records:
            value: Any = record
            for part in descriptor.path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None:
                ids = [i["id"] for i in record["identityMap"].get(descriptor.namespace, [])]
                assert value in ids
    created = {ns.code for ns in build_blueprint(settings, LandingSource("azure", "x")).namespaces}
    assert carried <= created | STANDARD_NAMESPACES


def test_the_derived_field_groups_are_the_ones_the_mappings_validate_against():
    """The plan derives the field groups from the vendored schemas; the pipeline's own
    conformance check uses the ones each dataset declares. They agree."""
    blueprint = build_blueprint(PipelineSettings(), LandingSource("azure", "aep-landing"))
    campaign = blueprint.datasets[: len(CAMPAIGN_FLOWS)]
    for flow, setup in zip(CAMPAIGN_FLOWS, campaign, strict=True):
        assert setup.composition.class_id == flow.xdm_class
        assert set(setup.composition.field_groups) == set(flow.xdm_field_groups), flow.dataset
        assert setup.composition.homeless == ()
    # an offline dataset: its mapping's class and field groups (identityMap where the class
    # lacks it), every field with a standard home
    offline = {d.dataset: d for d in blueprint.datasets[len(CAMPAIGN_FLOWS) :]}
    assert sorted(offline) == sorted(ds.dataset for ds in offline_datasets())
    for ds in offline_datasets():
        composition = offline[ds.dataset].composition
        assert composition.class_id == CLASSES[ds.mapping.record]
        declared = {FIELD_GROUPS[g] for g in ds.mapping.field_groups}
        assert declared <= set(composition.field_groups) <= declared | {FG_IDENTITY_MAP}
        assert composition.homeless == ()
    assert offline["loyalty_members"].composition.field_groups == (
        FG_PROFILE_LOYALTY,
        FG_IDENTITY_MAP,
    )
    assert offline["offline_orders"].composition.field_groups == (FG_COMMERCE,)


def test_a_field_without_a_standard_home_is_listed_for_a_tenant_field_group():
    composition = compose_for(
        EXPERIENCE_EVENT, ["_id", "directMarketing.sends.value", "_acme.loyalty.tier"]
    )
    assert composition.homeless == ("_acme.loyalty.tier",)
    assert composition.homes["_id"] == EXPERIENCE_EVENT
    assert len(composition.field_groups) == 1


def test_push_subscriptions_and_non_deliverables_share_the_push_field_group():
    blueprint = build_blueprint(PipelineSettings(), LandingSource("azure", "aep-landing"))
    groups = {d.dataset: set(d.composition.field_groups) for d in blueprint.datasets}
    push = push_subscriptions_defs.flow.xdm_field_groups[0]
    assert push in groups["push_subscriptions"] and push in groups["non_deliverables"]
