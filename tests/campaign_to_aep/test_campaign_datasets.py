"""Every Campaign → AEP dataset, both Campaign layouts, on the embedded default; each guardrail
check shown failing on crafted bad input and passing on good input."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from dagster import AssetKey, DagsterInstance

from asset_checks.campaign_to_aep.export_checks import evaluate_xdm
from asset_checks.campaign_to_aep.freshness import freshness_result
from resources import PipelineSettings
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs, broadlog_flow
from rtcdp_assets.campaign_to_aep.non_deliverables import (
    build_suppression_list,
    non_deliverables_defs,
    non_deliverables_flow,
)
from rtcdp_assets.campaign_to_aep.preferences import preferences_defs, preferences_flow
from rtcdp_assets.campaign_to_aep.profiles import profiles_defs, profiles_flow
from rtcdp_assets.campaign_to_aep.tracking_log import tracking_log_defs, tracking_log_flow
from rtcdp_assets.shared.xdm_conformance import XdmSchema
from tests.drop_files import drop_flow_export, flow_csv
from tests.results import check_evaluations_by_name, materialization, read_published
from tests.runs import campaign_assets_and_checks, materialize_partition

PK = "2026-11-23-08:00"
STAMP = "20261123_0800"

ROWS = {
    "tracking_log": [
        {
            "tracking_log_id": "1",
            "broadlog_id": "11",
            "delivery_id": "5",
            "recipient_id": "100",
            "external_id": "CUST-1",
            "url_type": "2",
            "url_id": "1",
            "log_date": "2026-11-23 08:10:00",
            "device": "pc",
            "org_unit": "default",
        },
        {
            "tracking_log_id": "2",
            "broadlog_id": "11",
            "delivery_id": "5",
            "recipient_id": "100",
            "external_id": "CUST-1",
            "url_type": "1",
            "url_id": "7",
            "url": "https://shop.example.com/sale?utm=x",
            "url_category": "email",
            "log_date": "2026-11-23 08:11:00",
            "org_unit": "default",
        },
        {
            "tracking_log_id": "3",
            "broadlog_id": "12",
            "delivery_id": "5",
            "recipient_id": "101",
            "url_type": "3",
            "url_id": "8",
            "log_date": "2026-11-23 08:12:00",
        },
        {
            "tracking_log_id": "4",
            "broadlog_id": "12",
            "delivery_id": "5",
            "recipient_id": "101",
            "url_type": "6",
            "url_id": "9",
            "log_date": "2026-11-23 08:13:00",
        },
    ],
    "non_deliverables": [
        {
            "address_id": "1",
            "address": "Bounce@Example.com",
            "channel": "0",
            "status": "3",
            "failure_reason": "1",
            "error_count": "1",
            "last_error": "2026-11-23 08:00:00",
            "created": "2026-11-01 00:00:00",
            "last_modified": "2026-11-23 08:00:00",
        },
        {
            "address_id": "2",
            "address": "+33612345678",
            "channel": "1",
            "status": "4",
            "failure_reason": "8",
            "last_modified": "2026-11-23 08:01:00",
        },
        {
            "address_id": "3",
            "address": "ok@example.org",
            "channel": "0",
            "status": "2",
            "last_modified": "2026-11-23 08:02:00",
            "org_unit": "default",
        },
    ],
    "preferences": [
        {
            "recipient_id": "100",
            "external_id": "CUST-1",
            "email": "a@example.com",
            "blacklist": "0",
            "blacklist_email": "1",
            "blacklist_mobile": "0",
            "last_modified": "2026-11-23 08:00:00",
        },
        {
            "recipient_id": "101",
            "email": "b@example.com",
            "blacklist": "1",
            "last_modified": "2026-11-23 08:01:00",
        },
        {
            "recipient_id": "102",
            "external_id": "CUST-3",
            "blacklist": "0",
            "last_modified": "2026-11-23 08:02:00",
        },
    ],
    "profiles": [
        {
            "recipient_id": "100",
            "external_id": "CUST-1",
            "email": "Ann.Lee@Example.com",
            "first_name": "Ann",
            "last_name": "Lee",
            "mobile_phone": "+33612345678",
            "gender": "2",
            "birth_date": "1985-04-12",
            "email_format": "2",
            "country_code": "fr",
            "city": "Lyon",
            "zip_code": "69001",
            "created": "2020-01-01 00:00:00",
            "last_modified": "2026-11-23 08:00:00",
            "org_unit": "default",
        },
        {
            "recipient_id": "101",
            "email": "bo@example.org",
            "gender": "0",
            "last_modified": "2026-11-23 08:05:00",
        },
    ],
}
FLOWS = {
    "broadlog": (broadlog_flow, broadlog_defs),
    "tracking_log": (tracking_log_flow, tracking_log_defs),
    "non_deliverables": (non_deliverables_flow, non_deliverables_defs),
    "preferences": (preferences_flow, preferences_defs),
    "profiles": (profiles_flow, profiles_defs),
}
BROADLOG_ROWS = [
    {
        "broadlog_id": "11",
        "delivery_id": "5",
        "recipient_id": "100",
        "external_id": "CUST-1",
        "address": "a@example.com",
        "status": "1",
        "event_date": "2026-11-23 08:01:00",
    },
    {
        "broadlog_id": "12",
        "delivery_id": "5",
        "recipient_id": "101",
        "address": "b@example.com",
        "status": "1",
        "event_date": "2026-11-23 08:02:00",
    },
]


RAW_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{2,}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
RAW_PHONE = re.compile(r"\+\d{8,15}")


def assert_no_personal_data_in_metadata(result):
    """What the UI shows (materialization and check metadata) never holds a raw address."""
    texts = [
        json.dumps({k: str(v.value) for k, v in m.metadata.items()})
        for m in [e.materialization for e in result.get_asset_materialization_events()]
    ]
    texts += [
        json.dumps({k: str(v.value) for k, v in e.metadata.items()})
        for e in result.get_asset_check_evaluations()
    ]
    for text in texts:
        assert not RAW_EMAIL.search(text), RAW_EMAIL.search(text).group(0)
        assert not RAW_PHONE.search(text), RAW_PHONE.search(text).group(0)


def drop(root, flow, rows, layout_index=0, stamp=STAMP):
    drop_flow_export(root, flow, flow_csv(flow, rows, layout_index), stamp, age_seconds=600)


def run(defs, resources, instance=None, pk=PK):
    return materialize_partition(campaign_assets_and_checks(defs), resources, pk, instance)


def published(root, flow, resources):
    return read_published(root / "aep_landing", flow.landing_paths(resources["settings"], PK)[0])


@pytest.mark.parametrize("layout_index", [0, 1], ids=["classic", "standard"])
@pytest.mark.parametrize("dataset", ["tracking_log", "non_deliverables", "preferences", "profiles"])
def test_dataset_flows_end_to_end_in_both_layouts(embedded_env, dataset, layout_index):
    root, resources = embedded_env
    flow, defs = FLOWS[dataset]
    drop(root, flow, ROWS[dataset], layout_index)
    result = run(defs, resources)
    assert result.success
    evaluations = check_evaluations_by_name(result)
    failed = {k: v.metadata for k, v in evaluations.items() if not v.passed}
    # the orphan check is advisory and has no broadLog here; everything else must pass
    assert set(failed) <= {"orphan_tracking_rows"}, failed
    records = published(root, flow, resources)
    assert len(records) == len(ROWS[dataset])
    schema = XdmSchema.compose(flow.xdm_class, list(flow.xdm_field_groups))
    assert [schema.errors(r) for r in records] == [[] for _ in records]
    mat = materialization(result, dataset)
    assert mat.metadata["rows_in"].value == len(ROWS[dataset])
    assert_no_personal_data_in_metadata(result)
    layout = flow.fmt.layouts[layout_index].name
    assert layout in mat.metadata["source_files"].value


def test_tracking_events_and_measures(embedded_env):
    root, resources = embedded_env
    drop(root, tracking_log_flow, ROWS["tracking_log"])
    run(tracking_log_defs, resources)
    by_id = {
        r["_experience"]["campaign"]["trackinglogID"]: r
        for r in published(root, tracking_log_flow, resources)
    }
    assert by_id["1"]["eventType"] == "directMarketing.emailOpened"
    assert by_id["1"]["directMarketing"] == {"opens": {"value": 1.0}}
    assert by_id["2"]["eventType"] == "directMarketing.emailClicked"
    assert by_id["2"]["directMarketing"] == {"clicks": {"value": 1.0}}
    assert by_id["3"]["eventType"] == "directMarketing.emailUnsubscribed"
    assert by_id["4"]["directMarketing"] == {"mirrorPages": {"value": 1.0}}


def test_non_deliverables_and_preferences_mapping(embedded_env):
    root, resources = embedded_env
    drop(root, non_deliverables_flow, ROWS["non_deliverables"])
    run(non_deliverables_defs, resources)
    records = published(root, non_deliverables_flow, resources)
    assert records[0]["personalEmail"] == {"address": "bounce@example.com", "status": "blocked"}
    assert records[1]["mobilePhone"] == {"number": "+33612345678", "status": "blacklisted"}
    assert records[2]["personalEmail"]["status"] == "active"
    drop(root, preferences_flow, ROWS["preferences"])
    run(preferences_defs, resources)
    prefs = published(root, preferences_flow, resources)
    assert prefs[0]["consents"]["marketing"]["email"]["val"] == "n"
    assert prefs[0]["consents"]["marketing"]["sms"]["val"] == "y"
    assert prefs[1]["consents"]["marketing"]["any"]["val"] == "n"
    assert prefs[1]["consents"]["marketing"]["push"]["val"] == "n"


def test_suppression_list_keeps_the_latest_status_and_opt_outs(embedded_env):
    root, resources = embedded_env
    drop(root, non_deliverables_flow, ROWS["non_deliverables"])
    drop(root, preferences_flow, ROWS["preferences"])
    run(non_deliverables_defs, resources)
    run(preferences_defs, resources)
    # a later window releases bounce@example.com from quarantine
    later = [{**ROWS["non_deliverables"][0], "status": "2", "last_modified": "2026-11-23 12:30:00"}]
    drop(root, non_deliverables_flow, later, stamp="20261123_1200")
    run(non_deliverables_defs, resources, pk="2026-11-23-12:00")
    table = build_suppression_list(
        resources["warehouse"],
        resources["settings"],
        {PK, "2026-11-23-12:00"},
        {PK},
    )
    rows = sorted((r["channel"], r["address"], r["reason"]) for r in table.to_pylist())
    assert rows == [
        ("email", "a@example.com", "opted_out"),
        ("email", "b@example.com", "opted_out"),
        ("sms", "+33612345678", "denylisted"),
    ]


def test_single_org_unit_fails_and_blocks_publication(embedded_env):
    root, resources = embedded_env
    rows = [dict(r) for r in ROWS["profiles"]]
    rows[1]["org_unit"] = "emea_subsidiary"
    drop(root, profiles_flow, rows)
    result = run(profiles_defs, resources)
    check = check_evaluations_by_name(result)["single_org_unit"]
    assert not check.passed
    assert check.metadata["rows_outside_org_unit"].value == 1
    assert published(root, profiles_flow, resources) is None


def test_single_org_unit_passes_with_the_configured_unit(embedded_env):
    root, resources = embedded_env
    drop(root, profiles_flow, ROWS["profiles"])
    assert check_evaluations_by_name(run(profiles_defs, resources))["single_org_unit"].passed


def test_export_cadence_warns_on_two_exports_in_one_window(embedded_env):
    root, resources = embedded_env
    drop(root, broadlog_flow, BROADLOG_ROWS[:1], stamp="20261123_0800")
    drop(root, broadlog_flow, BROADLOG_ROWS[1:], stamp="20261123_1000")
    result = run(broadlog_defs, resources)
    cadence = check_evaluations_by_name(result)["export_cadence"]
    assert not cadence.passed
    assert cadence.severity.value == "WARN"
    assert cadence.metadata["exports_in_window"].value == 2
    # a warning does not block: the partition is published with both files' rows
    assert len(published(root, broadlog_flow, resources)) == 2


def test_export_cadence_can_be_an_error(embedded_env):
    root, resources = embedded_env
    resources["settings"] = PipelineSettings(cadence_severity="ERROR")
    drop(root, broadlog_flow, BROADLOG_ROWS[:1], stamp="20261123_0800")
    drop(root, broadlog_flow, BROADLOG_ROWS[1:], stamp="20261123_1000")
    cadence = check_evaluations_by_name(run(broadlog_defs, resources))["export_cadence"]
    assert not cadence.passed and cadence.severity.value == "ERROR"


def test_orphan_tracking_rows_warn_with_rate(embedded_env):
    root, resources = embedded_env
    instance = DagsterInstance.ephemeral()
    drop(root, broadlog_flow, BROADLOG_ROWS[:1])  # only broadLog 11 exists
    run(broadlog_defs, resources, instance)
    drop(root, tracking_log_flow, ROWS["tracking_log"])
    result = run(tracking_log_defs, resources, instance)
    orphans = check_evaluations_by_name(result)["orphan_tracking_rows"]
    assert not orphans.passed
    assert orphans.severity.value == "WARN"
    assert orphans.metadata["orphan_rows"].value == 2
    assert orphans.metadata["orphan_rate"].value == 0.5
    assert result.success  # advisory: publication goes ahead


def test_orphan_check_passes_when_every_broadlog_is_known(embedded_env):
    root, resources = embedded_env
    instance = DagsterInstance.ephemeral()
    drop(root, broadlog_flow, BROADLOG_ROWS)
    run(broadlog_defs, resources, instance)
    drop(root, tracking_log_flow, ROWS["tracking_log"])
    result = run(tracking_log_defs, resources, instance)
    assert check_evaluations_by_name(result)["orphan_tracking_rows"].passed


def test_oversized_event_blocks_publication(embedded_env):
    root, resources = embedded_env
    rows = [dict(r) for r in ROWS["tracking_log"]]
    rows[1]["url"] = "https://shop.example.com/?q=" + "x" * 11_000
    drop(root, tracking_log_flow, rows)
    result = run(tracking_log_defs, resources)
    size = check_evaluations_by_name(result)["record_size"]
    assert not size.passed
    assert size.metadata["records_over_limit"].value == 1
    assert published(root, tracking_log_flow, resources) is None


def test_oversized_profile_blocks_publication(embedded_env):
    root, resources = embedded_env
    rows = [dict(r) for r in ROWS["profiles"]]
    rows[0]["city"] = "L" * 110_000  # > 100 KiB
    drop(root, profiles_flow, rows)
    result = run(profiles_defs, resources)
    assert not check_evaluations_by_name(result)["record_size"].passed
    assert published(root, profiles_flow, resources) is None


def test_non_conforming_profile_blocks_publication(embedded_env):
    root, resources = embedded_env
    rows = [dict(r) for r in ROWS["profiles"]]
    rows[0]["country_code"] = "FRA"  # XDM wants ISO 3166-1 alpha-2
    drop(root, profiles_flow, rows)
    result = run(profiles_defs, resources)
    conformance = check_evaluations_by_name(result)["xdm_conformance"]
    assert not conformance.passed
    assert "homeAddress.countryCode" in json.dumps(conformance.metadata["errors_by_kind"].value)
    assert published(root, profiles_flow, resources) is None


def test_identity_count_over_twenty_fails(embedded_env):
    _root, resources = embedded_env
    warehouse = resources["warehouse"]
    many = {
        f"ns{i}": [{"id": f"v{i}", "authenticatedState": "ambiguous", "primary": i == 0}]
        for i in range(21)
    }
    few = {"external_id": [{"id": "CUST-1", "authenticatedState": "ambiguous", "primary": True}]}
    for records, expected in (([few], True), ([many], False)):
        table = pa.Table.from_pylist([{"_id": "a", "identityMap": r} for r in records])
        local = _tmp_parquet(table)
        warehouse.put_file("profiles_xdm", PK, "data.parquet", local)
        results = {
            r.check_name: r
            for r in evaluate_xdm(profiles_flow, warehouse, resources["settings"], PK)
        }
        assert results["identity_count"].passed is expected


def _tmp_parquet(table):
    import tempfile
    from pathlib import Path

    import pyarrow.parquet as pq

    path = Path(tempfile.mkdtemp()) / "data.parquet"
    pq.write_table(table, path)
    return path


def test_freshness_flags_missing_windows_only_after_the_grace():
    settings = PipelineSettings(freshness_grace_minutes=60, freshness_lookback_windows=3)
    key = AssetKey("broadlog")
    now = datetime(2026, 11, 23, 16, 30, tzinfo=UTC)  # window 12:00 not due until 17:00
    ok = freshness_result(
        key, {"2026-11-23-08:00", "2026-11-23-04:00", "2026-11-23-00:00"}, now, settings
    )
    assert ok.passed
    late = freshness_result(key, {"2026-11-23-08:00", "2026-11-23-00:00"}, now, settings)
    assert not late.passed
    assert late.metadata["missing_windows"].value == ["2026-11-23-04:00"]
    after_grace = datetime(2026, 11, 23, 17, 5, tzinfo=UTC)
    assert not freshness_result(
        key, {"2026-11-23-08:00", "2026-11-23-04:00", "2026-11-23-00:00"}, after_grace, settings
    ).passed
