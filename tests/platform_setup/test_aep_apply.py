"""`rtcdp-aep-setup apply` against a local stand-in of IMS and the AEP APIs (fake_aep.py):
the order of the calls, the IDs reused from one request in the next, a second run that only
looks up, missing credentials that stop everything before a request, no secret in the output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from resources import PipelineSettings
from rtcdp_assets.platform_setup.aep import cli
from rtcdp_assets.platform_setup.aep.blueprint import LandingSource
from rtcdp_assets.platform_setup.aep.client import AepApiError, MissingCredentials, apply
from rtcdp_assets.platform_setup.aep.plan_files import build_plan, read_plan, write_plan
from tests.platform_setup.fake_aep import TOKEN, AepState, FakeAep

CLIENT_SECRET = "s3cr3t-client-value-91"
CONNECTION_STRING = "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=K3yK3yK3y=="


@pytest.fixture
def aep() -> Iterator[FakeAep]:
    with FakeAep(AepState(client_id="client-1", org_id="ORG@AdobeOrg", sandbox="dev")) as server:
        yield server


@pytest.fixture
def plan_dir(tmp_path: Path) -> Path:
    out = tmp_path / "plan"
    write_plan(build_plan(PipelineSettings(), LandingSource("azure", "aep-landing")), out)
    return out


def credentials(aep: FakeAep) -> dict[str, str]:
    return {
        "AEP_CLIENT_ID": "client-1",
        "AEP_CLIENT_SECRET": CLIENT_SECRET,
        "AEP_ORG_ID": "ORG@AdobeOrg",
        "AEP_SANDBOX_NAME": "dev",
        "AEP_SCOPES": "openid,AdobeID,read_organizations",
        "AEP_IMS_URL": aep.url,
        "AEP_PLATFORM_URL": aep.url,
        "AEP_SOURCE_BLOB_CONNECTION_STRING": CONNECTION_STRING,
    }


def test_apply_creates_in_plan_order_and_a_second_run_only_looks_up(aep, plan_dir):
    requests = read_plan(plan_dir)
    lines: list[str] = []
    first = apply(requests, credentials(aep), now=lambda: 1_795_420_800.0, report=lines.append)

    assert [o.action for o in first] == ["created"] * len(requests)
    state = aep.state
    # the token first, then for every object its lookup (GET), then its create
    assert state.requests[0].path == "/ims/token/v3"
    writes = state.writes()
    assert len(writes) == len(requests)
    for request, recorded in zip(requests, writes, strict=True):
        planned = request.path.split("?")[0]
        assert recorded.method == request.method
        if "{{" in planned:  # the ID of an object created earlier in this run
            assert recorded.path.startswith(planned.split("{{")[0]), request.ref
            assert recorded.path.rsplit("/", 1)[1] in {
                s["meta:altId"] for s in state.schemas.values()
            }
        else:
            assert recorded.path == planned, request.ref
    kinds = [r.kind for r in requests]
    assert kinds.index("namespace") < kinds.index("schema") < kinds.index("dataset")
    assert kinds.index("dataset") < kinds.index("base_connection") < kinds.index("flow")
    for index, recorded in enumerate(state.requests[1:]):
        if recorded.method != "GET":
            assert state.requests[index].method == "GET"  # looked up right before

    # what AEP now holds: only the custom namespaces are new, one of each object per dataset
    assert {n["code"] for n in state.namespaces if n["custom"]} == {"external_id", "APNS", "FCM"}
    # six Campaign datasets and the two offline ones (offline_orders, loyalty_members)
    assert len(state.schemas) == len(state.datasets) == 8
    assert all(s["meta:immutableTags"] == ["union"] for s in state.schemas.values())
    assert all(d["tags"]["unifiedProfile"] == ["enabled:true"] for d in state.datasets.values())
    assert {d["xdm:sourceProperty"] for d in state.descriptors} == {
        "/_experience/campaign/externalID",
        "/personalEmail/address",
        "/mobilePhone/number",
    }
    # IDs returned by earlier requests are the ones later bodies carry (the fake refuses others)
    flows = state.flow_objects["flows"]
    assert len(flows) == 8
    assert all(f["scheduleParams"]["startTime"] == "1795420800" for f in flows)
    [base] = state.flow_objects["connections"]
    assert base["auth"]["params"]["connectionString"] == CONNECTION_STRING
    sources = state.flow_objects["sourceConnections"]
    assert {s["baseConnectionId"] for s in sources} == {base["id"]}
    assert {s["params"]["path"] for s in sources} >= {
        "/aep-landing/campaign/broadlog/*.parquet",
        "/aep-landing/campaign/offline_orders/*.parquet",
        "/aep-landing/campaign/loyalty_members/*.parquet",
    }

    # second run: lookups only, every object found, nothing created or changed
    before = len(state.writes())
    second = apply(requests, credentials(aep), report=lines.append)
    assert [o.action for o in second] == ["exists"] * len(requests)
    assert len(state.writes()) == before
    assert len(state.schemas) == 8 and len(state.flow_objects["flows"]) == 8

    output = "\n".join(lines)
    assert CLIENT_SECRET not in output and TOKEN not in output and "AccountKey" not in output


def test_missing_credentials_stop_before_any_request(aep, plan_dir, capsys, monkeypatch):
    env = credentials(aep)
    del env["AEP_CLIENT_SECRET"], env["AEP_SOURCE_BLOB_CONNECTION_STRING"]
    with pytest.raises(MissingCredentials) as raised:
        apply(read_plan(plan_dir), env)
    assert raised.value.names == ("AEP_CLIENT_SECRET", "AEP_SOURCE_BLOB_CONNECTION_STRING")
    assert aep.state.requests == []

    # the command says so on stderr and exits 2, still without a request
    for name in ("AEP_CLIENT_SECRET", "AEP_SOURCE_BLOB_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["apply", "--plan", str(plan_dir)]) == 2
    err = capsys.readouterr().err
    assert "AEP_CLIENT_SECRET" in err and "nothing was sent" in err
    assert aep.state.requests == []


def test_an_api_error_names_the_call_without_secrets(aep, plan_dir):
    # an API that echoes what it was sent: the error must not carry it on
    aep.state.fail_with = (400, f"bad auth {CONNECTION_STRING} for {CLIENT_SECRET}")
    with pytest.raises(AepApiError) as raised:
        apply(read_plan(plan_dir), credentials(aep))
    message = str(raised.value)
    assert "POST /data/core/idnamespace/identities: HTTP 400" in message
    assert CONNECTION_STRING not in message and CLIENT_SECRET not in message
    assert "•••" in message


def test_the_plan_holds_no_credential(plan_dir):
    text = "".join(p.read_text() for p in plan_dir.iterdir())
    assert "{{env:AEP_SOURCE_BLOB_CONNECTION_STRING}}" in text
    assert CLIENT_SECRET not in text and "AccountKey" not in text
