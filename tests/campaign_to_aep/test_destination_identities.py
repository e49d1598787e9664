"""Profiles carry in identityMap every identity an activation destination needs (issue 22,
point 2), and `destination_identities` fails when one is missing."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from asset_checks.campaign_to_aep.destination_identity_checks import (
    destination_identities_result,
)
from resources import PipelineSettings
from rtcdp_assets.aep_to_campaign.destinations.contracts import CONTRACTS
from rtcdp_assets.campaign_to_aep.profiles import profiles_defs, profiles_flow, profiles_to_xdm
from rtcdp_assets.shared.destination_identities import DESTINATION_IDENTITIES, DESTINATION_NEEDS
from rtcdp_assets.shared.xdm_conformance import XdmSchema
from tests.campaign_to_aep.test_campaign_datasets import (
    assert_no_personal_data_in_metadata,
    drop,
    published,
    run,
)
from tests.results import check_evaluations_by_name

# Phone forms Campaign exports hold (sMobilePhone is free text): international with
# separators, the 00 prefix, North-American brackets, dots, and a national number.
PROFILES = [
    ("100", " Ann.Lee@Example.COM ", "+33 6 12 34 56 78", "+33612345678"),
    ("101", "bo@example.org", "0033 6 98 76 54 32", "+33698765432"),
    ("102", "cy@example.net", "+1 (415) 555-0100", "+14155550100"),
    ("103", "di@example.co.uk", "+44.7700.900123", "+447700900123"),
    ("104", "ed@example.fr", "06 11 22 33 44", None),  # national: no country to guess
    ("105", "fa@example.com", "", None),  # no phone at all
]


def rows(profiles=PROFILES) -> list[dict[str, str]]:
    return [
        {
            "recipient_id": rid,
            "external_id": f"CUST-{rid}",
            "email": email,
            "mobile_phone": phone,
            "last_modified": "2026-11-23 08:00:00",
        }
        for rid, email, phone, _ in profiles
    ]


def ids(record: dict, namespace: str) -> list[str]:
    return [item["id"] for item in record.get("identityMap", {}).get(namespace, [])]


def test_published_profiles_carry_phone_and_hashed_email(embedded_env):
    root, resources = embedded_env
    drop(root, profiles_flow, rows())
    result = run(profiles_defs, resources)
    assert result.success
    check = check_evaluations_by_name(result)["destination_identities"]
    assert check.passed, check.description
    assert check.metadata["phone/profiles_with_source"].value == 5
    assert check.metadata["phone/profiles_carrying"].value == 4
    by_id = {
        ids(r, resources["settings"].campaign_identity_namespace)[0]: r
        for r in published(root, profiles_flow, resources)
    }
    schema = XdmSchema.compose(profiles_flow.xdm_class, list(profiles_flow.xdm_field_groups))
    for rid, email, _phone, e164 in PROFILES:
        record = by_id[f"CUST-{rid}"]
        assert schema.errors(record) == []
        normalised = email.strip().lower()
        assert ids(record, "Email") == [normalised]
        assert ids(record, "Email_LC_SHA256") == [hashlib.sha256(normalised.encode()).hexdigest()]
        assert ids(record, "Phone_E.164") == ([e164] if e164 else [])
        expected_hash = [hashlib.sha256(e164.encode()).hexdigest()] if e164 else []
        assert ids(record, "Phone_SHA256_E.164") == expected_hash
        items = [i for items in record["identityMap"].values() for i in items]
        assert [i["id"] for i in items if i["primary"]] == [f"CUST-{rid}"]  # one primary
    assert "Phone_E.164" not in by_id["CUST-105"]["identityMap"]
    assert_no_personal_data_in_metadata(result)


def test_a_default_country_code_completes_national_numbers(embedded_env):
    root, resources = embedded_env
    # A new resource: Dagster builds a run's resources from their init values, not a copy's.
    settings = resources["settings"].model_dump()
    resources["settings"] = PipelineSettings(**{**settings, "phone_default_country_code": "33"})
    drop(root, profiles_flow, rows())
    assert run(profiles_defs, resources).success
    campaign = resources["settings"].campaign_identity_namespace
    by_id = {ids(r, campaign)[0]: r for r in published(root, profiles_flow, resources)}
    assert ids(by_id["CUST-104"], "Phone_E.164") == ["+33611223344"]


def test_the_check_fails_when_no_phone_becomes_e164(embedded_env):
    root, resources = embedded_env
    national = [(rid, email, "06 12 34 56 7" + rid[-1], None) for rid, email, *_ in PROFILES]
    drop(root, profiles_flow, rows(national))
    result = run(profiles_defs, resources)
    assert result.success  # not blocking: the profiles are still published
    check = check_evaluations_by_name(result)["destination_identities"]
    assert not check.passed
    assert "Phone_E.164: carried by none of 6 profiles" in check.description
    assert check.metadata["phone/profiles_carrying"].value == 0
    assert check.severity.value == "ERROR"
    assert published(root, profiles_flow, resources) is not None


def xdm_batch(settings: PipelineSettings) -> pa.RecordBatch:
    typed = pa.RecordBatch.from_pylist(
        [
            {"recipient_id": rid, "email": email.strip().lower(), "mobile_phone": phone or None}
            for rid, email, phone, _ in PROFILES
        ],
        schema=profiles_flow.fmt.typed_schema,
    )
    return profiles_to_xdm(typed, settings)


@pytest.mark.parametrize(
    ("namespaces", "missing"),
    [
        ({"phone": "Phone"}, "Phone: not in the published identityMap"),
        ({}, "phone: no namespace in destination_identity_namespaces"),
    ],
    ids=["a namespace the mapping does not produce", "a role left out"],
)
def test_the_check_fails_when_the_settings_name_what_records_lack(namespaces, missing):
    produced = xdm_batch(PipelineSettings())
    expected = {**PipelineSettings().destination_identity_namespaces, **namespaces}
    if not namespaces:
        del expected["phone"]
    checked = PipelineSettings(destination_identity_namespaces=expected)
    result = destination_identities_result("profiles_xdm", [produced], checked)
    assert not result.passed
    assert missing in result.description


def test_a_role_left_out_of_the_settings_is_not_published():
    names = dict(PipelineSettings().destination_identity_namespaces)
    del names["phone_sha256"]
    batch = xdm_batch(PipelineSettings(destination_identity_namespaces=names))
    assert "Phone_SHA256_E.164" not in batch.schema.field("identityMap").type.names
    assert "Phone_E.164" in batch.schema.field("identityMap").type.names


def test_contracts_and_profiles_read_one_list():
    """Every contract identity is the shared role's namespace, source and form."""
    for contract in CONTRACTS:
        roles = DESTINATION_NEEDS[contract.destination]
        assert len(roles) == len(contract.identities)
        for role, identity in zip(roles, contract.identities, strict=True):
            shared = DESTINATION_IDENTITIES[role]
            assert identity.namespace == PipelineSettings().destination_identity_namespaces[role]
            assert (identity.source, identity.kind, identity.hashed) == (
                shared.source,
                shared.kind,
                shared.hashed,
            )
