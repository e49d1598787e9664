"""The code location loads the way `dagster dev` loads it, with the asset names users rely on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey

REPO = Path(__file__).resolve().parents[2]


def test_workspace_validates_with_the_dagster_cli(tmp_path):
    env = {**os.environ, "RTCDP_DATA_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Validation successful for code location rtcdp" in result.stderr + result.stdout


def test_pyproject_does_not_shadow_workspace_yaml():
    # dagster dev prefers [tool.dagster]/[tool.dg] in pyproject.toml over workspace.yaml
    text = (REPO / "pyproject.toml").read_text()
    assert "[tool.dagster]" not in text and "[tool.dg" not in text


# The six Campaign export datasets: each one an asset, its XDM asset and its published asset,
# a job and an export sensor, with the checks every dataset shares plus its own.
CAMPAIGN_DATASETS = (
    "broadlog",
    "tracking_log",
    "non_deliverables",
    "preferences",
    "profiles",
    "push_subscriptions",
)
CAMPAIGN_CHECKS = {
    "export_cadence",
    "export_freshness",
    "reconciliation",
    "reject_rate",
    "single_org_unit",
}
CAMPAIGN_XDM_CHECKS = {"id_unique", "identity_count", "record_size", "xdm_conformance"}
CAMPAIGN_OWN_CHECKS = {
    "tracking_log": {"orphan_tracking_rows"},
    "push_subscriptions": {"push_token_format"},
    "push_subscriptions_xdm": {"push_quarantine_respected"},
    # issue 21: the contract's and AEP's profile guardrails
    "profiles": {"active_profiles"},
    "broadlog_xdm": {"no_future_timestamp", "events_per_profile"},
    "tracking_log_xdm": {"no_future_timestamp", "events_per_profile"},
    # issue 22: the identities the activation destinations need
    "profiles_xdm": {"destination_identities"},
}
# On every publication: the guardrails that look across what we published (issue 21).
CAMPAIGN_PUBLISHED_CHECKS = {"identity_graph_size", "batches_per_day"}

# The other wings' assets (with their group), checks, jobs, sensors and schedules.
OTHER_ASSET_GROUPS = {
    "suppression_list": "campaign_to_aep",
    "segment_exports": "aep_to_campaign",
    "audience_membership": "aep_to_campaign",
    "activation_dry_run": "aep_to_campaign",
    "campaign_audience_import": "aep_to_campaign",
    "campaign_audience_import_published": "aep_to_campaign",
    "destination_exports": "aep_to_campaign",
    "destination_exports_published": "aep_to_campaign",
    "audience_reach": "aep_to_campaign",
    "profile_import": "customer_to_campaign",
    "personalization_import": "customer_to_campaign",
    "offline_orders": "customer_to_aep",
    "offline_orders_xdm": "customer_to_aep",
    "offline_orders_published": "customer_to_aep",
    "loyalty_members": "customer_to_aep",
    "loyalty_members_xdm": "customer_to_aep",
    "loyalty_members_published": "customer_to_aep",
    "aep_push_tokens": "mobile_push",
    "file_ledger": "operations",
    "campaign_sftp_housekeeping": "operations",
    "data_quality_report": "data_quality",
}
OTHER_CHECKS = {
    "segment_exports": {
        "activation_cadence",
        "audience_count",
        "audience_field_count",
        "export_reconciliation",
    },
    "campaign_audience_import": {
        "data_usage_policy",
        "file_row_limit",
        "import_reconciliation",
        "source_of_truth",
        "suppression",
    },
    "destination_exports": {
        "consent_respected",
        "data_usage_policy",
        "identity_contract",
        "unique_identities",
    },
    "destination_exports_published": {"suppression_list_age"},
    "audience_reach": {"reach_funnel"},
    "profile_import": {"import_reconciliation"},
    "personalization_import": {"import_reconciliation"},
    "offline_orders": {"reconciliation"},
    "offline_orders_xdm": {"xdm_conformance"},
    "loyalty_members": {"reconciliation"},
    "loyalty_members_xdm": {"xdm_conformance"},
    "aep_push_tokens": {"duplicate_registration", "reconciliation"},
    "file_ledger": {"files_accounted_for", "no_stuck_pending", "no_failed_versions"},
    "campaign_sftp_housekeeping": {"sftp_storage_quota", "sftp_retention"},
}
OTHER_JOBS = {
    "audience_guardrails_job",
    "audience_import_job",
    "audience_reach_job",
    "destination_export_job",
    "customer_import_job",
    "offline_orders_job",
    "loyalty_members_job",
    "aep_push_tokens_job",
    "export_freshness_job",
    "file_ledger_job",
    "campaign_sftp_housekeeping_job",
    "data_quality_report_job",
    "orphan_recheck_job",
    "aep_setup_plan",  # plan mode of rtcdp-aep-setup (rtcdp_assets/platform_setup/aep)
}
OTHER_SENSORS = {
    "suppression_list_automation",
    "aep_audience_export_sensor",
    "customer_source_sensor",
    "offline_data_sensor",
    "aep_push_tokens_sensor",
    "orphan_recheck_sensor",
    "campaign_upload_resume_sensor",
    "late_quarantine_sensor",
    "late_suppression_sensor",
    "destination_export_sensor",
    "failed_run_checks_sensor",
}
SCHEDULES = {
    "export_freshness_schedule",
    "file_ledger_schedule",
    "data_quality_report_schedule",
    "campaign_sftp_housekeeping_schedule",
    "audience_reach_schedule",
}


def expected_asset_groups() -> dict[str, str]:
    campaign = {
        name: "campaign_to_aep"
        for dataset in CAMPAIGN_DATASETS
        for name in (dataset, f"{dataset}_xdm", f"{dataset}_published")
    }
    return {**campaign, **OTHER_ASSET_GROUPS}


def expected_checks() -> set[tuple[str, str]]:
    by_asset = dict(OTHER_CHECKS)
    for dataset in CAMPAIGN_DATASETS:
        by_asset[dataset] = CAMPAIGN_CHECKS | CAMPAIGN_OWN_CHECKS.get(dataset, set())
        xdm = f"{dataset}_xdm"
        by_asset[xdm] = CAMPAIGN_XDM_CHECKS | CAMPAIGN_OWN_CHECKS.get(xdm, set())
        by_asset[f"{dataset}_published"] = CAMPAIGN_PUBLISHED_CHECKS
    return {(asset, check) for asset, checks in by_asset.items() for check in checks}


@pytest.fixture
def defs(monkeypatch, tmp_path):
    monkeypatch.setenv("RTCDP_DATA_DIR", str(tmp_path))
    from rtcdp_assets.definitions import defs

    return defs


def test_every_asset_check_job_sensor_and_schedule_keeps_its_name(defs):
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == expected_asset_groups()
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert checks == expected_checks()
    jobs = {job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")}
    assert jobs == {f"{dataset}_job" for dataset in CAMPAIGN_DATASETS} | OTHER_JOBS
    sensors = {sensor.name for sensor in defs.sensors or []}
    assert sensors == {f"{dataset}_export_sensor" for dataset in CAMPAIGN_DATASETS} | OTHER_SENSORS
    assert {schedule.name for schedule in defs.schedules or []} == SCHEDULES


@pytest.mark.parametrize("dataset", CAMPAIGN_DATASETS)
def test_campaign_dataset_job_sensor_and_lineage(defs, dataset):
    assert defs.resolve_job_def(f"{dataset}_job").name == f"{dataset}_job"
    sensor = defs.resolve_sensor_def(f"{dataset}_export_sensor")
    assert sensor.job_name == f"{dataset}_job"
    graph = defs.resolve_asset_graph()

    def parents(name: str) -> set[str]:
        return {key.to_user_string() for key in graph.get(AssetKey(name)).parent_keys}

    assert parents(f"{dataset}_xdm") == {dataset}
    assert parents(f"{dataset}_published") == {dataset, f"{dataset}_xdm"}
    # tracking logs react to deliveries; every other export stands alone
    assert parents(dataset) == ({"broadlog"} if dataset == "tracking_log" else set())
