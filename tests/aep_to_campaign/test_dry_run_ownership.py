"""The dry run removes who the export removes (issue 22, points 3 and 4 joined).

The email destination's state is seeded with foreign members (three added elsewhere, and
recipient 8), then two exports run, each as the audience run and its destination files. For
each export, `activation_dry_run` (which runs before anything is written) counts for email
exactly the `ownership` that `destination_exports` then records: only our own leavers are
`removed`, the others who left `not_ours`, the destination's foreign members `kept_foreign`.
Then each change on crafted tables, with the key it maps back to.
"""

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from dagster import DagsterInstance, ExecuteInProcessResult

from resources import PipelineSettings, embedded_resources
from resources.audience_settings import AepDestinationOptions, AudienceSettings
from rtcdp_assets.aep_to_campaign.destinations.contracts import CONTRACTS_BY_NAME
from rtcdp_assets.aep_to_campaign.destinations.dry_run import ACTIVATION_DRY_RUN
from rtcdp_assets.aep_to_campaign.destinations.dry_run_ownership import destination_ownership
from rtcdp_assets.aep_to_campaign.destinations.membership_ledger import (
    LEDGER_SCHEMA,
    plan_ownership,
    write_ledger,
)
from rtcdp_assets.aep_to_campaign.destinations.staged_files import (
    read_destination_manifest,
    read_ownership,
)
from tests.aep_to_campaign.test_audience_exports import AUD, FOLDER, T0
from tests.aep_to_campaign.test_destination_ownership import (
    FOREIGN,
    STAMP_1,
    STAMP_2,
    _export,
    build,
    seeded_destination,
    sha,
)


@pytest.fixture
def seeded_env(tmp_path) -> tuple[Path, dict]:
    """The embedded default with incremental exports, as test_destination_ownership.py has it."""
    resources = embedded_resources(tmp_path)
    resources["settings"] = PipelineSettings(file_settle_seconds=0)
    resources["audience_settings"] = AudienceSettings(
        destination_folder=FOLDER,
        default_destination=AepDestinationOptions(export_mode="incremental"),
    )
    return tmp_path, resources


def dry_run_metadata(run: ExecuteInProcessResult) -> dict:
    (event,) = [
        e
        for e in run.get_asset_materialization_events()
        if e.asset_key.to_user_string() == ACTIVATION_DRY_RUN
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def email_rows(warehouse, stamp: str) -> pa.Table:
    table = warehouse.read_table(ACTIVATION_DRY_RUN, f"{AUD}/{stamp}", "members.parquet")
    return table.filter(pc.equal(table.column("destination"), "email"))


def hashes(rows: pa.Table, outcome: str) -> list[str]:
    chosen = rows.filter(pc.equal(rows.column("outcome"), outcome))
    return sorted(chosen.column("member_hash").to_pylist())


def recorded(warehouse, stamp: str, change: str) -> list[str]:
    changes = read_ownership(warehouse, AUD, stamp)
    mine = pc.and_(
        pc.equal(changes.column("destination"), "email"), pc.equal(changes.column("change"), change)
    )
    return sorted(changes.filter(mine).column("member_hash").to_pylist())


def test_dry_run_counts_what_the_export_adds_removes_and_keeps(seeded_env):
    root, resources = seeded_env
    warehouse = resources["warehouse"]
    instance = DagsterInstance.ephemeral()
    recipients, address, by_id = seeded_destination(root, resources, instance)
    first = [by_id[recipients[i]["external_id"]] for i in [*range(9), 10]]
    request, cursor = _export(root, resources, instance, first, T0)
    dry_run = dry_run_metadata(build(resources, instance, request))
    ownership = read_destination_manifest(warehouse, AUD, STAMP_1)["ownership"]["email"]
    assert (
        dry_run["ownership"]["email"]
        == ownership
        == {
            "added": 8,  # recipients 0-7
            "already_present": 1,  # recipient 8: in the destination before us
            "removed": 0,
            "not_ours": 0,
            "kept_foreign": 3,
            "ledger_members": 8,
        }
    )
    counts = dry_run["counts"]["email"]
    assert {o: counts[o] for o in ("added", "kept", "removed", "not_ours", "kept_foreign")} == {
        "added": {"joined": 8},
        "kept": {"already_present": 1},
        "removed": {},
        "not_ours": {},
        "kept_foreign": {"foreign": 3},
    }
    assert counts["excluded"] == {"missing_consent": 1}  # recipient 10

    # Twelve hours later: 0 and 1 (ours), 8 (foreign) and 10 (never sent) leave; 11 joins.
    left = [replace(by_id[recipients[i]["external_id"]], status="exited") for i in (0, 1, 8, 10)]
    joined = [by_id[recipients[11]["external_id"]]]
    request_2, _ = _export(
        root, resources, instance, left + joined, T0 + timedelta(hours=12), cursor
    )
    dry_run = dry_run_metadata(build(resources, instance, request_2))
    ownership = read_destination_manifest(warehouse, AUD, STAMP_2)["ownership"]["email"]
    assert (
        dry_run["ownership"]["email"]
        == ownership
        == {
            "added": 1,  # recipient 11
            "already_present": 0,
            "removed": 2,  # recipients 0 and 1: ours
            "not_ours": 2,  # recipients 8 and 10: never added by us
            "kept_foreign": 4,  # the three seeded ones and recipient 8
            "ledger_members": 7,
        }
    )
    counts = dry_run["counts"]["email"]
    assert counts == {
        "added": {"joined": 1},
        "kept": {"still_member": 6},  # recipients 2-7
        "removed": {"left_audience": 2},
        "excluded": {},
        "not_ours": {"left_audience": 2},
        "kept_foreign": {"foreign": 4},
    }
    # Member by member, the dry run names the hashes the export records, and the keys.
    rows = email_rows(warehouse, STAMP_2)
    for outcome in ("added", "removed", "not_ours", "kept_foreign"):
        assert hashes(rows, outcome) == recorded(warehouse, STAMP_2, outcome), outcome
    assert hashes(rows, "removed") == sorted(sha(address[i]) for i in (0, 1))
    removed = rows.filter(pc.equal(rows.column("outcome"), "removed"))
    assert sorted(removed.column("key").to_pylist()) == sorted(
        recipients[i]["external_id"] for i in (0, 1)
    )
    # A foreign member has no key of ours; recipient 8 (a leaver) keeps its.
    foreign = rows.filter(pc.equal(rows.column("outcome"), "kept_foreign"))
    assert foreign.column("key").null_count == 3
    assert not any(e in str(dry_run) for e in [*FOREIGN, *address])


def test_each_ownership_change_is_a_dry_run_row_with_its_key(tmp_path):
    warehouse = embedded_resources(tmp_path)["warehouse"]
    contract = CONTRACTS_BY_NAME["email"]
    # The first export sent a, b and c.
    first = plan_ownership(
        contract,
        pa.table({"email": ["a@x.fr", "b@x.fr", "c@x.fr"]}),
        LEDGER_SCHEMA.empty_table(),
        pa.table({"email": pa.array([], pa.string())}),
        pa.table({"email": pa.array([], pa.string())}),
        STAMP_1,
    )
    write_ledger(warehouse, "email", AUD, STAMP_1, first.ledger)
    state = tmp_path / "warehouse" / "destination_state" / "email" / AUD / "members.csv"
    state.parent.mkdir(parents=True)
    state.write_text("email\nf@y.fr\n")

    def sources(*pairs: tuple[str, str]) -> pa.Table:
        keys, emails = zip(*pairs, strict=True) if pairs else ((), ())
        return pa.table(
            {
                "key": pa.array(keys, pa.string()),
                "email": pa.array(emails, pa.string()),
                "mobile_phone": pa.nulls(len(keys), pa.string()),
            }
        )

    # Now: a stays, b is still a member but excluded, d joins; c and e (never ours) left.
    owned = destination_ownership(
        warehouse,
        contract,
        sources(("ka", "A@x.fr"), ("kd", "d@x.fr")),
        sources(("ka", "A@x.fr"), ("kb", "b@x.fr"), ("kd", "d@x.fr")),
        sources(("kc", "c@x.fr"), ("ke", "e@x.fr")),
        AUD,
        STAMP_2,
    )
    rows = sorted(
        ((r["outcome"], r["reason"], r["key"], r["member_hash"]) for r in owned.rows.to_pylist()),
        key=str,
    )
    assert rows == sorted(
        [
            ("kept", "still_member", "ka", sha("a@x.fr")),
            ("removed", "no_longer_sent", "kb", sha("b@x.fr")),
            ("removed", "left_audience", "kc", sha("c@x.fr")),
            ("added", "joined", "kd", sha("d@x.fr")),
            ("not_ours", "left_audience", "ke", sha("e@x.fr")),
            ("kept_foreign", "foreign", None, sha("f@y.fr")),
        ],
        key=str,
    )
    assert owned.plan.counts() == {
        "added": 1,
        "already_present": 0,
        "removed": 2,
        "not_ours": 1,
        "kept_foreign": 1,
        "ledger_members": 2,
    }
