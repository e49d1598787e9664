"""Destination exports: identity contracts, rejects by reason, checks and publication.

Contracts are tested on crafted member sources against known SHA-256 values; the whole path
(AEP export → membership → destination files → aep_landing) runs on LocalDropZone resources the
way tests/aep_to_campaign/test_audience_exports.py runs the Campaign import.
"""

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import yaml
from dagster import DagsterInstance, Definitions, materialize

from asset_checks.aep_to_campaign.audience_checks import PARTITIONED_AUDIENCE_CHECKS
from asset_checks.aep_to_campaign.destination_checks import (
    identity_contract_result,
    identity_contract_violations,
)
from asset_checks.aep_to_campaign.wiring import audience_defs, destination_defs
from resources import PipelineSettings, embedded_resources
from resources.audience_settings import AepDestinationOptions, AudienceSettings
from rtcdp_assets.aep_to_campaign.destinations.contracts import (
    CONTRACTS,
    CONTRACTS_BY_NAME,
    apply_contract,
)
from rtcdp_assets.shared import governance
from rtcdp_dev import sample_audiences as sample
from tests.aep_to_campaign.campaign_side import load_campaign_side
from tests.aep_to_campaign.test_audience_exports import (
    AUD,
    DEST,
    FOLDER,
    PK,
    T0,
    put,
    tick,
)

SHA_TEST_EMAIL = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
SHA_PHONE = "42d573cfc315801d4cd8eddd5416b416a0bf298b9b9e12d6b07442c91db42bd8"  # +33612345678
STAMP = "20261123_080500"

# What the lead is asked to add to asset_checks/governance.yaml.
GOVERNANCE_ADDITIONS = {
    "labels": {
        "destination_email": {"email": ["I1"]},
        "destination_sms": {"mobile_phone": ["I1"]},
        "destination_social_ads": {"email": ["I1"], "mobile_phone": ["I1"]},
    },
    "destinations": {
        "destination_email": {
            "description": "Email service provider: plain email of audience members",
            "marketing_actions": ["Email Targeting"],
        },
        "destination_sms": {
            "description": "SMS provider: E.164 mobile phone of audience members",
            "marketing_actions": ["Single Identity Personalization"],
        },
        "destination_social_ads": {
            "description": "Advertising platform: hashed email and phone of audience members",
            "marketing_actions": ["Export to Third Party", "Onsite Advertising"],
        },
    },
}


def sources(*rows: tuple[str, str | None, str | None]) -> pa.Table:
    keys, emails, phones = zip(*rows, strict=True)
    return pa.table(
        {
            "key": pa.array(keys, pa.string()),
            "email": pa.array(emails, pa.string()),
            "mobile_phone": pa.array(phones, pa.string()),
        }
    )


# --------------------------------------------------------------------------------------------
# Contracts
# --------------------------------------------------------------------------------------------
def test_contracts_declare_namespaces_and_social_ads_is_hashed_only():
    by_name = {c.destination: c for c in CONTRACTS}
    assert set(by_name) == {"email", "sms", "social_ads"}
    assert by_name["email"].columns == ("email",)
    assert [i.namespace for i in by_name["sms"].identities] == ["Phone_E.164"]
    social = by_name["social_ads"]
    assert [i.namespace for i in social.identities] == ["Email_LC_SHA256", "Phone_SHA256_E.164"]
    assert all(i.hashed for i in social.identities)
    assert [i.required for i in social.identities] == [True, False]


def test_normalisation_and_known_sha256_values():
    src = sources(
        ("k1", "  Test@Example.COM ", "+33 6 12-34-56-78"), ("k2", "a@b.fr", "0033612345678")
    )
    email = apply_contract(CONTRACTS_BY_NAME["email"], src)
    assert email.exported.column("email").to_pylist() == ["test@example.com", "a@b.fr"]
    sms = apply_contract(CONTRACTS_BY_NAME["sms"], src)
    assert sms.exported.column("phone_e164").to_pylist() == ["+33612345678", "+33612345678"]
    social = apply_contract(CONTRACTS_BY_NAME["social_ads"], src)
    assert social.exported.to_pylist()[0] == {
        "email_lc_sha256": SHA_TEST_EMAIL,
        "phone_sha256_e164": SHA_PHONE,
    }
    assert hashlib.sha256(b"test@example.com").hexdigest() == SHA_TEST_EMAIL


def test_plain_values_are_hashed_and_good_hashes_kept_for_social_ads():
    already = hashlib.sha256(b"someone@example.org").hexdigest()
    src = sources(("k1", "test@example.com", None), ("k2", f" {already} ", SHA_PHONE))
    social = apply_contract(CONTRACTS_BY_NAME["social_ads"], src)
    assert social.rejects.num_rows == 0
    assert social.exported.to_pylist() == [
        {"email_lc_sha256": SHA_TEST_EMAIL, "phone_sha256_e164": ""},  # phone optional
        {"email_lc_sha256": already, "phone_sha256_e164": SHA_PHONE},
    ]
    flat = json.dumps(social.exported.to_pylist())
    assert "@" not in flat and "+33" not in flat


def test_wrong_hashes_are_rejected_and_counted():
    src = sources(
        ("upper", SHA_TEST_EMAIL.upper(), None),
        ("md5", hashlib.md5(b"test@example.com").hexdigest(), None),
        ("sha1", hashlib.sha1(b"test@example.com").hexdigest(), None),
        ("not_hex", "z" * 64, None),
        ("bad_phone_hash", "test@example.com", SHA_PHONE[:40]),
        ("ok", "test@example.com", SHA_PHONE),
    )
    social = apply_contract(CONTRACTS_BY_NAME["social_ads"], src)
    assert social.rejected_by_reason == {"wrong_hash": 5}
    assert social.exported.num_rows == 1
    rejects = {r["key"]: r["namespace"] for r in social.rejects.to_pylist()}
    assert rejects["upper"] == "Email_LC_SHA256"
    assert rejects["bad_phone_hash"] == "Phone_SHA256_E.164"


def test_missing_and_invalid_values_by_reason_and_counts_reconcile():
    src = sources(
        ("a", "ok@example.com", "+4915112345678"),
        ("b", None, "+4915112345678"),
        ("c", "   ", None),
        ("d", "not-an-email", "0612345678"),  # national number: no country code
        ("e", "x@y.de", "+0123456789"),
        ("f", "x@y.de", "call me"),
    )
    counts = {c.destination: apply_contract(c, src).reconciliation() for c in CONTRACTS}
    assert counts["email"] == {
        "rows_in": 6,
        "exported": 3,
        "rejected": {"invalid_email": 1, "missing_identity:Email": 2},
        "balanced": True,
    }
    assert counts["sms"]["rejected"] == {"invalid_phone": 3, "missing_identity:Phone_E.164": 1}
    assert counts["sms"]["exported"] == 2
    # social_ads: the first failing identity names the row (email before phone).
    assert counts["social_ads"]["rejected"] == {
        "invalid_email": 1,
        "invalid_phone": 2,
        "missing_identity:Email_LC_SHA256": 2,
    }
    assert all(c["balanced"] for c in counts.values())


def test_contract_check_finds_plain_identities_and_unnormalised_values():
    social = CONTRACTS_BY_NAME["social_ads"]
    leaked = pa.table(
        {
            "email_lc_sha256": ["test@example.com", SHA_TEST_EMAIL.upper(), SHA_TEST_EMAIL],
            "phone_sha256_e164": ["", "+33612345678", ""],
        }
    )
    found = identity_contract_violations(social, leaked)
    assert found == {"wrong_hash": 3, "plain_identity": 2}
    email = identity_contract_violations(
        CONTRACTS_BY_NAME["email"], pa.table({"email": ["A@b.fr", "a@b.fr", ""]})
    )
    assert email == {"missing_identity:Email": 1, "not_normalised:Email": 1}
    assert identity_contract_violations(
        CONTRACTS_BY_NAME["sms"], pa.table({"phone": ["+33612345678"]})
    ) == {"wrong_columns:phone": 1}


# --------------------------------------------------------------------------------------------
# End to end on LocalDropZone
# --------------------------------------------------------------------------------------------
@pytest.fixture
def env(tmp_path):
    resources = embedded_resources(tmp_path)
    resources["settings"] = PipelineSettings(file_settle_seconds=0)
    resources["audience_settings"] = AudienceSettings(
        destination_folder=FOLDER,
        default_destination=AepDestinationOptions(rows_per_file=60),
        max_rows_per_file=100,
    )
    return tmp_path, resources


def _governance_file(tmp_path: Path, monkeypatch, extra_labels: dict | None = None) -> None:
    doc = yaml.safe_load(governance.DEFAULT_FILE.read_text())
    for section in ("labels", "destinations"):
        doc[section] = {**doc[section], **GOVERNANCE_ADDITIONS[section]}
    for dataset, fields in (extra_labels or {}).items():
        doc["labels"][dataset] = {**doc["labels"].get(dataset, {}), **fields}
    path = tmp_path / "governance.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv("RTCDP_GOVERNANCE_FILE", str(path))
    governance.load.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_governance():
    governance.load.cache_clear()
    yield
    governance.load.cache_clear()


def _phone(i: int) -> str:
    # Every third recipient has an international number, every third a national one (invalid
    # for SMS: no country code), the rest none.
    return {0: f"+33 6 12 34 {i:02d} 00", 1: f"06 12 34 {i:02d} 00", 2: ""}[i % 3]


def _run(root: Path, resources: dict):
    instance = DagsterInstance.ephemeral()
    recipients = [
        {**r, "mobile_phone": _phone(i)} for i, r in enumerate(sample.campaign_recipients(60))
    ]
    # Every recipient has a preferences row consenting to every channel: nobody is excluded
    # but the members Campaign does not know (missing consent; tests of exclusions are in
    # test_destination_consent.py).
    load_campaign_side(
        root, resources, instance, recipients, partition_key=PK, consenting=range(60)
    )
    members = sample.audience_members(
        recipients, in_campaign=40, not_in_campaign=5, exited=3, without_identity=2
    )
    put(
        root,
        f"aep_destination/{FOLDER}",
        sample.export_files(members, destination=DEST, audience_id=AUD, when=T0),
    )
    (request,) = tick(resources, instance).run_requests
    instance.add_dynamic_partitions("audiences", [AUD])
    run = materialize(
        [
            *audience_defs.assets,
            *PARTITIONED_AUDIENCE_CHECKS,
            *destination_defs.assets,
            *destination_defs.asset_checks,
        ],
        partition_key=request.partition_key,
        tags=request.tags,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    return run, recipients, members


def _expected(recipients, members) -> dict[str, list[dict[str, str]]]:
    """The three files, computed here independently of the module."""
    phone_by_id = {r["external_id"]: r["mobile_phone"].replace(" ", "") for r in recipients}
    current = sorted(
        (m for m in members if m.status != "exited" and m.external_id and m.in_campaign),
        key=lambda m: m.external_id,
    )
    email, sms, social = [], [], []
    for m in current:
        address = m.email.strip().lower()
        phone = phone_by_id.get(m.external_id, "")
        email.append({"email": address})
        if phone.startswith("+"):
            sms.append({"phone_e164": phone})
        if not phone or phone.startswith("+"):
            social.append(
                {
                    "email_lc_sha256": hashlib.sha256(address.encode()).hexdigest(),
                    "phone_sha256_e164": hashlib.sha256(phone.encode()).hexdigest()
                    if phone
                    else "",
                }
            )
    return {"email": email, "sms": sms, "social_ads": social}


def _landing(root: Path, destination: str) -> Path:
    return root / "aep_landing" / "destinations" / destination / AUD / STAMP


def test_export_builds_checks_and_publishes_three_files(env, tmp_path, monkeypatch):
    root, resources = env
    _governance_file(tmp_path, monkeypatch)
    run, recipients, members = _run(root, resources)
    assert run.success
    checks = {
        (e.asset_key.to_user_string(), e.check_name): e for e in run.get_asset_check_evaluations()
    }
    contract = checks[("destination_exports", "identity_contract")]
    policy = checks[("destination_exports", "data_usage_policy")]
    assert contract.passed and policy.passed, contract.metadata

    expected = _expected(recipients, members)
    assert len(expected["sms"]) and len(expected["social_ads"]) < len(expected["email"])
    for destination, rows in expected.items():
        name = f"{destination}_{AUD}_{STAMP}.csv"
        path = _landing(root, destination) / name
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        assert list(table.columns) == list(CONTRACTS_BY_NAME[destination].columns)
        assert table.to_dict("records") == rows, destination
        marker = json.loads(path.with_name(f"{name}.done").read_text())
        assert marker["rows"] == len(rows)
        assert marker["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()

    counts = contract.metadata["destinations"].value
    current = sum(1 for m in members if m.status != "exited" and m.external_id)
    for destination, c in counts.items():
        assert c["balanced"] and c["rows_in"] == current
        # The 5 members Campaign does not know have no consent: excluded by default.
        assert c["excluded_by_reason"] == {"missing_consent": 5}, destination
        left_out = sum(c["rejected_by_reason"].values()) + 5
        assert c["exported"] + left_out == current, destination
    assert counts["sms"]["rejected_by_reason"]["invalid_phone"] > 0

    # A plain email slipped into the staged social_ads file fails the contract check.
    warehouse = resources["warehouse"]
    name = f"social_ads_{AUD}_{STAMP}.csv"
    warehouse.zone.write_bytes(
        warehouse.path("destination_exports", f"{AUD}/{STAMP}", name),
        b"email_lc_sha256,phone_sha256_e164\ntest@example.com,\n",
    )
    tampered = identity_contract_result(warehouse, AUD, STAMP)
    assert not tampered.passed
    assert tampered.metadata["destinations"].value["social_ads"]["violations"] == {
        "plain_identity": 1,
        "wrong_hash": 1,
    }


def test_policy_violation_blocks_publication(env, tmp_path, monkeypatch):
    root, resources = env
    _governance_file(tmp_path, monkeypatch, {"destination_social_ads": {"email": ["C2"]}})
    run, _, _ = _run(root, resources)
    checks = {
        (e.asset_key.to_user_string(), e.check_name): e for e in run.get_asset_check_evaluations()
    }
    policy = checks[("destination_exports", "data_usage_policy")]
    assert not policy.passed
    assert any(
        "3rd party export restriction" in v and "Export to Third Party" in v
        for v in policy.metadata["violations"].value
    )
    assert checks[("destination_exports", "identity_contract")].passed
    materialized = {e.asset_key.to_user_string() for e in run.get_asset_materialization_events()}
    assert "destination_exports" in materialized
    assert "destination_exports_published" not in materialized
    assert not (root / "aep_landing" / "destinations").exists()


def test_destination_definitions_load_with_the_code_location(monkeypatch, tmp_path):
    monkeypatch.setenv("RTCDP_DATA_DIR", str(tmp_path))
    from rtcdp_assets.definitions import defs

    combined = Definitions(
        assets=[*defs.assets, *destination_defs.assets],
        asset_checks=[*defs.asset_checks, *destination_defs.asset_checks],
        sensors=defs.sensors,
        jobs=[*defs.jobs, *destination_defs.jobs],
        schedules=defs.schedules,
        resources=defs.resources,
    )
    Definitions.validate_loadable(combined)
    assert combined.resolve_job_def("destination_export_job")
    checks = {
        (k.asset_key.to_user_string(), k.name)
        for k in combined.resolve_asset_graph().asset_check_keys
    }
    assert {
        ("destination_exports", "identity_contract"),
        ("destination_exports", "data_usage_policy"),
        ("destination_exports", "consent_respected"),
        ("destination_exports_published", "suppression_list_age"),
    } <= checks
    for check in destination_defs.asset_checks:
        for spec in check.check_specs:
            # What guards the files blocks publication; the age of the list at a publication
            # can only be reported after it.
            assert spec.blocking == (spec.asset_key.to_user_string() == "destination_exports")
            assert spec.partitions_def is not None
            assert spec.metadata["guardrail/source"] and spec.metadata["guardrail/limit"]
