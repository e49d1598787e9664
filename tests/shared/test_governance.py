"""Labels and policies as code: a violation blocks the destination asset with its explanation;
a permitted export passes."""

from __future__ import annotations

import pytest

from rtcdp_assets.aep_to_campaign.campaign_audience_import import CAMPAIGN_IMPORT, IMPORT_COLUMNS
from rtcdp_assets.shared.governance import GovernanceConfigError, load, parse

BASE = {
    "marketing_actions": ["Email Targeting", "Export to Third Party", "Segment Match"],
    "destinations": {
        "email_export": {"marketing_actions": ["Email Targeting"]},
        "ad_partner": {"marketing_actions": ["Export to Third Party"]},
    },
    "policies": [
        {"name": "Restrict data export", "marketing_actions": ["*"], "deny": {"label": "C12"}},
        {
            "name": "3rd party export restriction",
            "marketing_actions": ["Export to Third Party"],
            "deny": {"label": "C2"},
        },
        {
            "name": "No identifiable + no-combination data",
            "marketing_actions": ["*"],
            "deny": {"operator": "AND", "operands": [{"label": "C3"}, {"label": "I1"}]},
        },
    ],
}


def governance(labels):
    return parse({**BASE, "labels": labels})


def test_c2_blocks_third_party_export_but_not_email_targeting():
    g = governance({"ad_partner": {"email": ["C2", "I1"]}, "email_export": {"email": ["C2"]}})
    [violation] = g.evaluate("ad_partner", ["email", "first_name"])
    assert violation.policy == "3rd party export restriction"
    assert violation.marketing_action == "Export to Third Party"
    assert violation.labels == ("C2",) and violation.fields == ("email",)
    assert "C2" in violation.explain() and "email" in violation.explain()
    assert g.evaluate("email_export", ["email"]) == []


def test_c12_forbids_any_export_and_dataset_labels_apply_to_every_field():
    g = governance({"email_export": {"_dataset": ["C12"]}})
    [violation] = g.evaluate("email_export", ["email", "audience_id"])
    assert violation.policy == "Restrict data export"
    assert violation.fields == ("audience_id", "email")


def test_and_expression_needs_every_operand():
    only_c3 = governance({"email_export": {"segment": ["C3"]}})
    assert only_c3.evaluate("email_export", ["segment"]) == []
    both = governance({"email_export": {"segment": ["C3"], "email": ["I1"]}})
    [violation] = both.evaluate("email_export", ["segment", "email"])
    assert violation.labels == ("C3", "I1") and violation.fields == ("email", "segment")
    # a field that is not exported does not count
    assert both.evaluate("email_export", ["segment"]) == []


def test_inconsistent_configuration_is_refused():
    bad_action = {**BASE, "destinations": {"x": {"marketing_actions": ["Telepathy"]}}}
    with pytest.raises(GovernanceConfigError, match="unknown actions"):
        parse(bad_action)
    bad_expr = {**BASE, "policies": [{"name": "p", "marketing_actions": ["*"], "deny": {}}]}
    with pytest.raises(GovernanceConfigError, match="operator"):
        parse(bad_expr)


def test_shipped_configuration_permits_the_campaign_import():
    g = load()
    assert g.destinations[CAMPAIGN_IMPORT] == ("Email Targeting",)
    assert g.evaluate(CAMPAIGN_IMPORT, list(IMPORT_COLUMNS)) == []


def test_a_violation_blocks_the_upload_to_campaign(monkeypatch, tmp_path):
    """The shipped check, with a customer file that labels the email C4 (no targeting)."""
    import yaml

    from asset_checks.aep_to_campaign.audience_checks import campaign_import_usage_policy
    from rtcdp_assets.shared.governance import DEFAULT_FILE

    doc = yaml.safe_load(DEFAULT_FILE.read_text())
    doc["labels"][CAMPAIGN_IMPORT]["email"] = ["I1", "C4"]
    custom = tmp_path / "governance.yaml"
    custom.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("RTCDP_GOVERNANCE_FILE", str(custom))
    load.cache_clear()
    try:
        spec = next(iter(campaign_import_usage_policy.check_specs))
        assert spec.blocking
        result = campaign_import_usage_policy.node_def.compute_fn.decorated_fn()
        assert not result.passed
        [explanation] = result.metadata["violations"].value
        assert "Restrict email targeting" in explanation and "email" in explanation
        assert "Email Targeting" in explanation and "C4" in explanation
    finally:
        load.cache_clear()


def test_a_violation_stops_a_customer_import_before_upload(monkeypatch, tmp_path):
    """profile_import: a policy that denies its fields stops the run; nothing reaches SFTP."""
    import yaml
    from dagster import materialize

    from resources import embedded_resources
    from rtcdp_assets.customer_to_campaign.customer_imports import profile_import
    from rtcdp_assets.shared.governance import DEFAULT_FILE

    doc = yaml.safe_load(DEFAULT_FILE.read_text())
    doc["labels"]["profile_import"] = {"_dataset": ["I1", "C12"]}
    custom = tmp_path / "governance.yaml"
    custom.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("RTCDP_GOVERNANCE_FILE", str(custom))
    load.cache_clear()
    try:
        resources = embedded_resources(tmp_path / "zones")
        folder = tmp_path / "zones/customer_source/profiles"
        folder.mkdir(parents=True)
        (folder / "profiles.csv").write_text("external_id,email\nCUST-1,a@example.com\n")
        old = 1_700_000_000
        import os

        os.utime(folder / "profiles.csv", (old, old))
        result = materialize([profile_import], resources=resources, raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert "Restrict data export" in str(failure.event_specific_data.error)
        assert not list((tmp_path / "zones/campaign_sftp").rglob("*.csv"))
    finally:
        load.cache_clear()
