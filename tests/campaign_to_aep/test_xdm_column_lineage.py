"""The XDM assets explain their columns: every leaf of `dagster/column_schema` has a description
and a lineage entry (or a declared constant), every lineage key is a column of the schema, the
identityMap namespaces follow the settings, and the lineage is also a readable Markdown table."""

from __future__ import annotations

import pytest
from dagster import AssetKey, TableColumnLineage, TableSchema

from resources.settings import PipelineSettings
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs, broadlog_flow
from rtcdp_assets.campaign_to_aep.export_flow.xdm_columns import (
    XDM_FIELD_DESCRIPTIONS,
    leaf_columns,
    resolved_constants,
    resolved_lineage,
    xdm_arrow_schema,
    xdm_spec_metadata,
)
from rtcdp_assets.definitions import CAMPAIGN_EXPORTS
from tests.drop_files import drop_campaign_export
from tests.results import materialization
from tests.runs import campaign_assets_and_checks, materialize_partition

FLOWS = [defs.flow for defs in CAMPAIGN_EXPORTS]
# Namespaces other than the defaults, two push platforms sharing one.
CUSTOM = PipelineSettings(
    campaign_identity_namespace="CRMID",
    push_subscriber_namespace="ECID",
    push_token_namespaces={"apns": "DEVICE", "apnsSandbox": "DEVICE", "fcm": "DEVICE"},
)


def spec_metadata(flow):
    defs = next(d for d in CAMPAIGN_EXPORTS if d.flow is flow)
    ingest = defs.assets[0]
    return ingest.specs_by_key[flow.xdm_key].metadata


@pytest.mark.parametrize("settings", [PipelineSettings(), CUSTOM], ids=["default", "custom"])
@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.dataset)
def test_every_leaf_has_lineage_or_a_declared_constant_and_no_key_is_unknown(flow, settings):
    leaves = [path for path, _ in leaf_columns(xdm_arrow_schema(flow, settings))]
    lineage = resolved_lineage(flow, settings)
    constants = resolved_constants(flow, settings)
    assert len(leaves) == len(set(leaves))
    assert [p for p in leaves if p not in lineage and p not in constants] == []
    assert [p for p in [*lineage, *constants] if p not in leaves] == []
    assert not set(lineage) & set(constants)
    typed = set(flow.fmt.typed_schema.names)
    assert {c for cols in lineage.values() for c in cols} <= typed
    assert all(lineage.values())


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.dataset)
def test_the_spec_shows_schema_lineage_and_table_before_any_run(flow):
    meta = spec_metadata(flow)
    schema: TableSchema = meta["dagster/column_schema"]
    lineage: TableColumnLineage = meta["dagster/column_lineage"]
    columns = [c.name for c in schema.columns]
    assert set(lineage.deps_by_column) == set(columns) - set(flow.constant_columns)
    assert all(c.description for c in schema.columns)
    assert all(not c.description.startswith("XDM field ") for c in schema.columns)
    for deps in lineage.deps_by_column.values():
        assert {d.asset_key for d in deps} == {flow.typed_key}
    table = meta["column_lineage_table"].value
    assert table.count("\n| `") == len(columns)
    assert "no lineage declared" not in table


def test_the_identity_namespace_is_the_setting_not_a_made_up_name():
    default = spec_metadata(broadlog_flow)["dagster/column_lineage"].deps_by_column
    assert "identityMap.external_id" in default and "identityMap.campaign" not in default
    assert [d.column_name for d in default["identityMap.external_id"]] == [
        "external_id",
        "recipient_id",
    ]
    custom = xdm_spec_metadata(broadlog_flow, CUSTOM)
    deps = custom["dagster/column_lineage"].deps_by_column
    assert {"identityMap.CRMID", "identityMap.DEVICE"} <= set(deps)
    assert "identityMap.external_id" not in deps
    described = {c.name: c.description for c in custom["dagster/column_schema"].columns}
    assert "Campaign recipient identity" in described["identityMap.CRMID"]
    assert "device tokens" in described["identityMap.DEVICE"]


def test_push_subscriptions_declare_the_subscriber_namespace_as_a_constant():
    flow = next(f for f in FLOWS if f.dataset == "push_subscriptions")
    constants = resolved_constants(flow, CUSTOM)
    assert constants == {"pushNotificationDetails.identity.namespace.code": "'ECID'"}
    assert resolved_lineage(flow, CUSTOM)["identityMap.ECID"] == ("subscriber_key",)


def test_descriptions_cover_only_real_columns():
    """No description for a field that no XDM asset writes (a typo would go unnoticed)."""
    leaves = {
        path
        for flow in FLOWS
        for path, _ in leaf_columns(xdm_arrow_schema(flow, PipelineSettings()))
    }
    assert set(XDM_FIELD_DESCRIPTIONS) - leaves <= {
        # consents of every channel are described, not every dataset writes each
        f"consents.marketing.{c}.{p}"
        for c in ("any", "email", "sms", "call", "fax", "postalMail", "push")
        for p in ("val", "time")
    }


def test_a_materialization_records_the_lineage_of_its_run(embedded_env):
    root, resources = embedded_env
    drop_campaign_export(
        root,
        "broadLog_20261123_0800.csv",
        "iBroadLogId,iDeliveryId,iRecipientId,sExternalId,sAddress,iStatus,tsEvent\n"
        "1,10,101,CUST-1,ann@example.com,1,2026-11-23 08:01:00\n",
    )
    result = materialize_partition(
        campaign_assets_and_checks(broadlog_defs), resources, "2026-11-23-08:00"
    )
    assert result.success
    meta = materialization(result, "broadlog_xdm").metadata
    columns = [c.name for c in meta["dagster/column_schema"].schema.columns]
    assert "identityMap.external_id" in columns and "_experience.campaign.externalID" in columns
    lineage = meta["dagster/column_lineage"].column_lineage.deps_by_column
    assert set(lineage) == set(columns) - {"producedBy"}
    assert lineage["_experience.campaign.broadlogID"][0].asset_key == AssetKey("broadlog")
    table = meta["column_lineage_table"].value
    assert "| `producedBy` | constant: 'system' |" in table
    assert "| `identityMap.external_id` | `external_id`, `recipient_id` |" in table
    assert "ann@example.com" not in table
