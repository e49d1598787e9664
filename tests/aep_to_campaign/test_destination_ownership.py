"""Ownership: the platform removes from a destination only the members it added itself.

The destination's state is seeded first with foreign members (added elsewhere); then two
exports, the second with members leaving. Only our own leavers are removed, foreign members stay
in the full replacement file untouched, the ledger holds exactly our members (hashes only), and
a re-run gives the same bytes and the same ledger.
"""

import hashlib
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from dagster import DagsterInstance, ExecuteInProcessResult, materialize

from asset_checks.aep_to_campaign.audience_checks import PARTITIONED_AUDIENCE_CHECKS
from asset_checks.aep_to_campaign.consent_checks import consent_respected_result
from asset_checks.aep_to_campaign.destination_checks import identity_contract_result
from asset_checks.aep_to_campaign.wiring import audience_defs
from resources import PipelineSettings, embedded_resources
from resources.audience_settings import AepDestinationOptions, AudienceSettings
from rtcdp_assets.aep_to_campaign.destinations.assets import destination_exports
from rtcdp_assets.aep_to_campaign.destinations.contracts import CONTRACTS_BY_NAME
from rtcdp_assets.aep_to_campaign.destinations.membership_ledger import (
    LEDGER_SCHEMA,
    MEMBERSHIP_LEDGER,
    latest_ledger,
    plan_ownership,
    who_we_may_remove,
)
from rtcdp_assets.aep_to_campaign.destinations.staged_files import (
    read_destination_manifest,
    read_staged_file,
)
from rtcdp_dev import sample_audiences as sample
from tests.aep_to_campaign.campaign_side import load_campaign_side
from tests.aep_to_campaign.test_audience_exports import AUD, DEST, FOLDER, PK, T0, put, tick

EMAIL = CONTRACTS_BY_NAME["email"]
STAMP_1, STAMP_2 = "20261123_080500", "20261123_200500"
FOREIGN = ["foreign.one@partner.example", "foreign.two@partner.example", "z.three@other.example"]


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def emails(*values: str) -> pa.Table:
    return pa.table({"email": pa.array(values, pa.string())})


# --------------------------------------------------------------------------------------------
# The rule, on crafted tables
# --------------------------------------------------------------------------------------------
def test_only_ledger_members_are_removable_and_foreign_members_are_kept():
    ledger = pa.table(
        {
            "member_hash": [sha("a@x.fr"), sha("b@x.fr")],
            "added_export": [STAMP_1, STAMP_1],
            "added_at": pa.array([0, 0], pa.timestamp("s", tz="UTC")),
        },
        schema=LEDGER_SCHEMA,
    )
    state = emails("a@x.fr", "b@x.fr", "f@y.fr", "x@y.fr")  # f, x added elsewhere
    ours = emails("a@x.fr", "x@y.fr", "n@x.fr")  # b left; x joined our audience; n is new
    leavers = emails("B@x.fr", "gone@y.fr")  # gone@y.fr: never ours, never in the destination
    plan = plan_ownership(EMAIL, ours, ledger, state, leavers, STAMP_2)
    assert who_we_may_remove(ledger, pa.array([sha("a@x.fr")])).column(
        "member_hash"
    ).to_pylist() == [sha("b@x.fr")]
    assert plan.counts() == {
        "added": 1,
        "already_present": 1,
        "removed": 1,
        "not_ours": 1,
        "kept_foreign": 1,
        "ledger_members": 2,
    }
    assert plan.file_rows.column("email").to_pylist() == ["a@x.fr", "x@y.fr", "n@x.fr", "f@y.fr"]
    assert sorted(plan.ledger.column("member_hash").to_pylist()) == sorted(
        [sha("a@x.fr"), sha("n@x.fr")]
    )
    assert (
        plan.ledger.column("added_export").to_pylist()[
            plan.ledger.column("member_hash").to_pylist().index(sha("n@x.fr"))
        ]
        == STAMP_2
    )
    # Hashes only: no plain address in the ledger or the changes.
    stored = str(plan.ledger.to_pylist()) + str(plan.changes.to_pylist())
    assert "@" not in stored


def test_nobody_is_removable_from_an_empty_ledger():
    plan = plan_ownership(
        EMAIL,
        emails(),
        LEDGER_SCHEMA.empty_table(),
        emails("f@y.fr"),
        emails("f@y.fr", "a@x.fr"),
        STAMP_1,
    )
    assert plan.counts()["removed"] == 0
    assert plan.counts()["not_ours"] == 2
    assert plan.file_rows.column("email").to_pylist() == ["f@y.fr"]


# --------------------------------------------------------------------------------------------
# End to end on the embedded default: a seeded destination, two exports, a re-run
# --------------------------------------------------------------------------------------------
@pytest.fixture
def env(tmp_path):
    resources = embedded_resources(tmp_path)
    resources["settings"] = PipelineSettings(file_settle_seconds=0)
    resources["audience_settings"] = AudienceSettings(
        destination_folder=FOLDER,
        default_destination=AepDestinationOptions(export_mode="incremental"),
    )
    return tmp_path, resources


def _export(root: Path, resources: dict, instance: DagsterInstance, members, when, cursor=None):
    put(
        root,
        f"aep_destination/{FOLDER}",
        sample.export_files(members, destination=DEST, audience_id=AUD, when=when),
    )
    result = tick(resources, instance, cursor)
    (request,) = result.run_requests
    return request, result.cursor


def build(resources: dict, instance: DagsterInstance, request) -> ExecuteInProcessResult:
    """The audience run of the export (its dry run first) and its destination files."""
    run = materialize(
        [*audience_defs.assets, *PARTITIONED_AUDIENCE_CHECKS, destination_exports],
        partition_key=request.partition_key,
        tags=request.tags,
        resources=resources,
        instance=instance,
    )
    assert run.success
    return run


def _ledger(warehouse, destination: str) -> list[str]:
    return sorted(latest_ledger(warehouse, destination, AUD).column("member_hash").to_pylist())


def seeded_destination(
    root, resources, instance
) -> tuple[list[dict[str, str]], list[str], dict[str | None, sample.AudienceMember]]:
    """20 Campaign recipients, all consenting but recipient 10 (a member of the audience we
    never send), and an email destination that already holds three foreign members and
    recipient 8, all added elsewhere, as the destination lists them (its file columns).
    Returns the recipients, their addresses and the audience members by external ID."""
    recipients = sample.campaign_recipients(20)
    consenting = [i for i in range(20) if i != 10]
    load_campaign_side(
        root, resources, instance, recipients, partition_key=PK, consenting=consenting
    )
    instance.add_dynamic_partitions("audiences", [AUD])
    address = [r["email"].strip().lower() for r in recipients]
    state = root / "warehouse" / "destination_state" / "email" / AUD / "members.csv"
    state.parent.mkdir(parents=True)
    state.write_text("email\n" + "".join(f"{e}\n" for e in [*FOREIGN, address[8]]))
    members = sample.audience_members(recipients, in_campaign=20, seed=3)
    return recipients, address, {m.external_id: m for m in members}


def test_seeded_foreign_members_stay_and_only_our_leavers_are_removed(env):
    root, resources = env
    warehouse = resources["warehouse"]
    instance = DagsterInstance.ephemeral()
    recipients, address, by_id = seeded_destination(root, resources, instance)
    first = [by_id[recipients[i]["external_id"]] for i in [*range(9), 10]]
    request, cursor = _export(root, resources, instance, first, T0)
    build(resources, instance, request)
    manifest = read_destination_manifest(warehouse, AUD, STAMP_1)
    assert manifest["ownership"]["email"] == {
        "added": 8,  # recipients 0-7
        "already_present": 1,  # recipient 8: in the destination before us
        "removed": 0,
        "not_ours": 0,
        "kept_foreign": 3,
        "ledger_members": 8,
    }
    staged = read_staged_file(warehouse, AUD, STAMP_1, f"email_{AUD}_{STAMP_1}.csv")
    assert staged.num_rows == 9 + 3
    assert staged.column("email").to_pylist()[-3:] == sorted(FOREIGN)

    # Twelve hours later: recipients 0 and 1 (ours), 8 (foreign) and 10 (never sent) leave; 11
    # joins.
    left = [replace(by_id[recipients[i]["external_id"]], status="exited") for i in (0, 1, 8, 10)]
    joined = [by_id[recipients[11]["external_id"]]]
    request_2, _ = _export(
        root, resources, instance, left + joined, T0 + timedelta(hours=12), cursor
    )
    build(resources, instance, request_2)
    expected = {
        "added": 1,
        "already_present": 0,
        "removed": 2,
        "not_ours": 2,  # recipients 8 and 10
        "kept_foreign": 4,  # the three seeded ones and recipient 8
        "ledger_members": 7,
    }
    assert read_destination_manifest(warehouse, AUD, STAMP_2)["ownership"]["email"] == expected
    name = f"email_{AUD}_{STAMP_2}.csv"
    sent = read_staged_file(warehouse, AUD, STAMP_2, name).column("email").to_pylist()
    assert len(sent) == 11
    assert address[0] not in sent and address[1] not in sent
    assert set(FOREIGN) <= set(sent) and address[8] in sent
    assert _ledger(warehouse, "email") == sorted(sha(address[i]) for i in (2, 3, 4, 5, 6, 7, 11))
    contract = identity_contract_result(warehouse, AUD, STAMP_2)
    assert contract.passed
    assert contract.metadata["destinations"].value["email"]["kept_foreign"] == 4
    # Foreign rows have no Campaign consent: they are not ours to judge, nor to remove.
    consent = consent_respected_result(
        warehouse, instance, resources["audience_settings"], AUD, STAMP_2
    )
    assert consent.passed
    assert consent.metadata["destinations"].value["email"]["kept_foreign"] == 4

    # A re-run of the second export: same file, same ledger, same counts.
    data = (root / "warehouse" / "destination_exports" / AUD / STAMP_2 / name).read_bytes()
    ledger_file = (
        root / "warehouse" / MEMBERSHIP_LEDGER / "email" / AUD / STAMP_2 / "ledger.parquet"
    )
    ledger_bytes = ledger_file.read_bytes()
    build(resources, instance, request_2)
    assert (root / "warehouse" / "destination_exports" / AUD / STAMP_2 / name).read_bytes() == data
    assert ledger_file.read_bytes() == ledger_bytes
    assert read_destination_manifest(warehouse, AUD, STAMP_2)["ownership"]["email"] == expected
