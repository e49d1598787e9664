"""`rtcdp-aep-setup plan` and the `aep_setup_plan` job: the request files in apply order, the
landing source per zone kind and publication form, and the job's counts."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from resources import PipelineSettings
from rtcdp_assets.customer_to_aep.offline_assets import MAPPINGS_FOLDER, offline_datasets
from rtcdp_assets.definitions import defs
from rtcdp_assets.platform_setup.aep import cli
from rtcdp_assets.platform_setup.aep.api_requests import SOURCE_CONNECTION_SPECS
from rtcdp_assets.platform_setup.aep.blueprint import LandingSource, build_blueprint
from rtcdp_assets.platform_setup.aep.plan_files import build_plan, read_plan
from rtcdp_assets.shared.xdm_conformance import EXPERIENCE_EVENT, FG_COMMERCE

ORDER = [
    "namespace",
    "schema",
    "dataset",
    "base_connection",
    "target_connection",
    "source_connection",
    "flow",
]


def bodies(plan: dict[str, str], kind: str) -> list[dict]:
    return [json.loads(t)["body"] for n, t in sorted(plan.items()) if f"_{kind}_" in n]


def test_the_command_writes_one_file_per_request_in_apply_order(tmp_path, monkeypatch):
    monkeypatch.delenv("RTCDP_ENV", raising=False)
    monkeypatch.setenv("RTCDP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AEP_LANDING_ZONE", "s3")
    monkeypatch.setenv("AEP_LANDING_BUCKET", "acme-aep")
    monkeypatch.setenv("AEP_LANDING_PREFIX", "in")
    out = tmp_path / "plan"
    assert cli.main(["plan", "--out", str(out)]) == 0

    requests = read_plan(out)
    names = sorted(p.name for p in out.glob("*.json"))
    assert [int(n.split("_", 1)[0]) for n in names] == list(range(1, len(names) + 1))
    first = {kind: [r.kind for r in requests].index(kind) for kind in ORDER}
    assert list(first.values()) == sorted(first.values())
    assert all(r.lookup.path and r.method in {"POST", "PATCH"} for r in requests)

    [base] = [r for r in requests if r.kind == "base_connection"]
    assert base.body["connectionSpec"]["id"] == SOURCE_CONNECTION_SPECS["s3"]
    assert base.body["auth"]["params"] == {
        "s3AccessKey": "{{env:AEP_SOURCE_S3_ACCESS_KEY}}",
        "s3SecretKey": "{{env:AEP_SOURCE_S3_SECRET_KEY}}",
    }
    paths = {r.body["params"]["path"] for r in requests if r.kind == "source_connection"}
    assert "/acme-aep/in/campaign/broadlog/*.parquet" in paths
    # the offline datasets too, in the folder they are published to
    assert "/acme-aep/in/campaign/offline_orders/*.parquet" in paths
    assert "/acme-aep/in/campaign/loyalty_members/*.parquet" in paths
    assert len(requests) == 57  # 45 for the six Campaign datasets, 6 per offline dataset
    summary = (out / "summary.md").read_text()
    assert "Tenant field group: **none needed**" in summary
    assert "Never run against a live AEP sandbox" in summary
    assert "dataset precedence" in summary

    # A new plan into the same folder leaves no request of the old one behind.
    stale = out / "99_flow_gone.json"
    stale.write_text("{}")
    assert cli.main(["plan", "--out", str(out)]) == 0
    assert not stale.exists()
    assert len(read_plan(out)) == len(requests)


def test_json_lines_publication_reads_json_files_of_the_dataset_only():
    settings = PipelineSettings(aep_publication_format="json-lines")
    plan = build_plan(settings, LandingSource("azure", "aep-landing"))
    sources = bodies(plan, "source_connection")
    assert {s["data"]["format"] for s in sources} == {"json"}
    broadlog = next(s for s in sources if "broadlog" in s["name"])
    # `_manifest.json` sits in the same folders: the pattern must not select it
    assert broadlog["params"] == {
        "path": "/aep-landing/campaign/broadlog/broadlog_*.json",
        "recursive": "true",
    }
    orders = next(s for s in sources if "offline_orders" in s["name"])
    assert orders["params"]["path"] == "/aep-landing/campaign/offline_orders/offline_orders_*.json"
    [base] = bodies(plan, "base_connection")
    assert base["auth"]["specName"] == "ConnectionString"


def test_the_campaign_namespace_follows_the_setting():
    settings = PipelineSettings(campaign_identity_namespace="CampaignID")
    plan = build_plan(settings, LandingSource("azure", "aep-landing"))
    codes = {b["code"] for b in bodies(plan, "namespace")}
    assert codes == {"CampaignID", "APNS", "FCM"}  # Email, Phone, ECID: standard, not created
    [namespace] = [b for b in bodies(plan, "namespace") if b["code"] == "CampaignID"]
    assert namespace["idType"] == "CROSS_DEVICE"
    descriptors = bodies(plan, "descriptor")
    assert {"/_experience/campaign/externalID"} <= {d["xdm:sourceProperty"] for d in descriptors}
    assert {d["xdm:namespace"] for d in descriptors} == {"CampaignID", "Email", "Phone"}
    assert not any(d["xdm:isPrimary"] for d in descriptors)


def test_the_job_writes_the_plan_to_the_warehouse_with_counts(embedded_env):
    root, resources = embedded_env
    job = defs.get_job_def("aep_setup_plan")
    result = job.execute_in_process(resources=resources)
    assert result.success
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    # six Campaign datasets and the two offline mappings (offline_orders, loyalty_members)
    assert metadata["schemas"].value == metadata["datasets"].value == 8
    assert metadata["dataflows"].value == metadata["profile_enabled_datasets"].value == 8
    assert metadata["namespaces"].value == 3
    assert metadata["tenant_fields"].value == 0
    folder = Path(root / "warehouse" / metadata["plan_folder"].value)
    files = sorted(p.name for p in folder.iterdir())
    assert "summary.md" in files and len(files) == metadata["requests"].value + 1
    # the same plan as the command's, for the embedded landing (no container: the default)
    expected = build_plan(resources["settings"], LandingSource("azure", "aep-landing"))
    assert {n: (folder / n).read_text() for n in files} == expected


def test_offline_datasets_get_their_schema_identities_profile_and_dataflow():
    plan = build_plan(PipelineSettings(), LandingSource("azure", "aep-landing"))
    orders = json.loads(plan["23_schema_offline_orders.json"])["body"]
    assert [p["$ref"] for p in orders["allOf"]] == [EXPERIENCE_EVENT, FG_COMMERCE]
    datasets = {b["name"]: b for b in bodies(plan, "dataset")}
    for name in ("offline_orders", "loyalty_members"):
        assert datasets[f"rtcdp-dagster {name}"]["tags"]["unifiedProfile"] == ["enabled:true"]
    summary = plan["summary.md"]
    assert "| loyalty_members | XDM Individual Profile | Loyalty Details, IdentityMap |" in summary
    assert "- loyalty_members: `/aep-landing/campaign/loyalty_members/*.parquet`" in summary
    # the CRM / customer id is the Campaign external ID: no namespace of its own
    assert {b["code"] for b in bodies(plan, "namespace")} == {"external_id", "APNS", "FCM"}
    blueprint = build_blueprint(PipelineSettings(), LandingSource("azure", "aep-landing"))
    [external_id] = [n for n in blueprint.namespaces if n.code == "external_id"]
    assert {"offline_orders", "loyalty_members"} <= set(external_id.used_by)


def test_an_offline_code_that_is_not_standard_gets_a_custom_cross_device_namespace(tmp_path):
    shipped = (MAPPINGS_FOLDER / "offline_orders.yaml").read_text(encoding="utf-8")
    crm = yaml.safe_load(shipped)
    crm["columns"]["Customer ID"]["identity"]["namespace"] = "CRMID"
    (tmp_path / "offline_orders.yaml").write_text(yaml.safe_dump(crm), encoding="utf-8")
    # an event mapping keyed by a namespace no Profile dataset carries reaches no profile
    stray = yaml.safe_load(shipped)
    stray["dataset"] = "kiosk_visits"
    stray["columns"]["Email"]["identity"] = {"namespace": "KioskCard", "primary": True}
    del stray["columns"]["Customer ID"]
    stray["ignore"] = [*stray["ignore"], "Customer ID"]
    (tmp_path / "kiosk_visits.yaml").write_text(yaml.safe_dump(stray), encoding="utf-8")

    blueprint = build_blueprint(
        PipelineSettings(), LandingSource("azure", "aep-landing"), offline_datasets(tmp_path)
    )
    created = {n.code: n for n in blueprint.namespaces}
    assert created["CRMID"].id_type == "CROSS_DEVICE"  # docs/formats.md §d
    assert created["CRMID"].used_by == ("offline_orders",)
    assert created["KioskCard"].id_type == "CROSS_DEVICE"
    assert "Email" not in created  # standard: never created
    setups = {d.dataset: d for d in blueprint.datasets}
    assert setups["offline_orders"].profile_enabled  # Email keys Campaign profiles
    assert not setups["kiosk_visits"].profile_enabled
    assert setups["offline_orders"].primary_namespaces == ("Email", "CRMID")
