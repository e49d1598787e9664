"""The dry run of one activation destination, told by its membership ledger: the same plan the
real export makes (`plan_ownership`, same ledger, same destination state, same leavers), turned
into dry-run rows per member.

Ledger hashes map back to member keys through `member_hashes` of the contract's file rows (the
one hashing of membership_ledger.py, never a second one); a change that maps to no member of
the export (a foreign member, or an identity that changed since we sent it) keeps its key empty,
the hash says who it is.

| outcome        | reason            | who (ownership change)                                  |
|----------------|-------------------|---------------------------------------------------------|
| `added`        | `joined`          | sent, neither in our ledger nor in the destination      |
| `kept`         | `still_member`    | sent and in our ledger                                  |
| `kept`         | `already_present` | sent, in the destination but added elsewhere: not ours  |
| `removed`      | `left_audience`   | in our ledger, left the audience                        |
| `removed`      | `no_longer_sent`  | in our ledger, still a member but excluded or rejected  |
| `not_ours`     | `left_audience`   | left the audience, never added by us: left alone        |
| `kept_foreign` | `foreign`         | in the destination state only: kept in the file         |
"""

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.destinations.contracts import Contract, apply_contract
from rtcdp_assets.aep_to_campaign.destinations.membership_ledger import (
    OwnershipPlan,
    member_hashes,
    plan_ownership,
    previous_ledger,
    read_destination_state,
)

# ownership change → (dry-run outcome, reason); `removed` splits by whether the key is current.
CHANGE_OUTCOMES = {
    "added": ("added", "joined"),
    "already_present": ("kept", "already_present"),
    "not_ours": ("not_ours", "left_audience"),
    "kept_foreign": ("kept_foreign", "foreign"),
}
KEYED_SCHEMA = pa.schema([("key", pa.string()), ("member_hash", pa.string())])


def keyed_hashes(contract: Contract, sources: pa.Table) -> pa.Table:
    """(key, member_hash) of the member sources the contract accepts, the hash as the ledger
    holds it (the file row through `member_hashes`)."""
    result = apply_contract(contract, sources)
    keys = pc.cast(sources.column("key"), pa.string()).combine_chunks()
    # apply_contract keeps the accepted rows in order: the keys that are not rejected.
    accepted = keys.filter(
        pc.invert(pc.is_in(keys, value_set=result.rejects.column("key").combine_chunks()))
    )
    return pa.table(
        {"key": accepted, "member_hash": member_hashes(contract, result.exported)},
        schema=KEYED_SCHEMA,
    )


@dataclass
class DestinationOwnership:
    plan: OwnershipPlan  # what the real export of the same stamp plans
    rows: pa.Table  # (key, member_hash, outcome, reason) of every sent member and every change


def destination_ownership(
    warehouse: Warehouse,
    contract: Contract,
    sendable: pa.Table,
    current: pa.Table,
    leavers: pa.Table,
    audience_id: str,
    stamp: str,
) -> DestinationOwnership:
    """Ownership of one destination for the export `stamp`.

    `sendable`: the member sources that pass the exclusions (the contract's rejects drop out
    here as in the real export); `current`: every current member source; `leavers`: the
    sources of the members who `exited` with this export."""
    sent = keyed_hashes(contract, sendable)
    ledger = previous_ledger(warehouse, contract.destination, audience_id, stamp)
    plan = plan_ownership(
        contract,
        apply_contract(contract, sendable).exported,
        ledger,
        read_destination_state(warehouse, contract, audience_id),
        apply_contract(contract, leavers).exported,
        stamp,
    )
    known = keyed_hashes(contract, current)
    lookup = pa.concat_tables([sent, known, keyed_hashes(contract, leavers)])
    changes = plan.changes
    hashes = changes.column("member_hash").combine_chunks()
    at = pc.index_in(hashes, value_set=lookup.column("member_hash").combine_chunks())
    keys = lookup.column("key").combine_chunks().take(at)
    change = changes.column("change").combine_chunks()
    # Every change maps to its outcome and reason by a lookup, not per row in Python.
    names = pa.array([*CHANGE_OUTCOMES, "removed"], pa.string())
    which = pc.index_in(change, value_set=names)
    outcome = pa.array([o for o, _ in CHANGE_OUTCOMES.values()] + ["removed"]).take(which)
    still_current = pc.is_in(hashes, value_set=known.column("member_hash").combine_chunks())
    removed_reason = pc.if_else(
        still_current, pa.scalar("no_longer_sent"), pa.scalar("left_audience")
    )
    reason = pc.if_else(
        pc.equal(change, "removed"),
        removed_reason,
        pa.array([r for _, r in CHANGE_OUTCOMES.values()] + [""]).take(which),
    )
    stayed = pc.unique(
        sent.column("member_hash").filter(
            pc.is_in(
                sent.column("member_hash"),
                value_set=ledger.column("member_hash").combine_chunks(),
            )
        )
    )
    stayed_keys = sent.column("key").take(
        pc.index_in(stayed, value_set=sent.column("member_hash").combine_chunks())
    )
    rows = pa.concat_tables(
        [
            pa.table({"key": keys, "member_hash": hashes, "outcome": outcome, "reason": reason}),
            pa.table(
                {
                    "key": stayed_keys,
                    "member_hash": stayed,
                    "outcome": pa.array(["kept"] * len(stayed), pa.string()),
                    "reason": pa.array(["still_member"] * len(stayed), pa.string()),
                }
            ),
        ]
    )
    return DestinationOwnership(plan=plan, rows=rows)
