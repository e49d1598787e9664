"""Ownership of destination members: the platform removes only the members it added itself.

A destination (an email service, an SMS provider, an ad platform) may hold members that other
tools or people added. Our destination files are **full replacements** (the file is the
membership: the audience's current members, `exited` ones left out; docs/formats.md §a5), so a
file that held only our members would silently remove every foreign one. The rule:

- **Ledger.** Per destination and audience, the members the platform added, kept as hashes only
  (`member_hash`: SHA-256 of the destination's first identity as the file holds it, e.g. the
  normalised email; never a raw value), with the export that added them (`added_export`) and
  when (`added_at`, that export's time, so a re-run writes the same ledger). Stored per export
  in the warehouse: `destination_membership/<destination>/<audience>/<stamp>/ledger.parquet`,
  with `index.json` listing the stamps. The ledger an export starts from is the one of the
  latest earlier stamp, so a re-run of an export gives the same result.
- **Destination state.** What the destination holds besides us:
  `destination_state/<destination>/<audience>/members.csv`, the destination's own listing in
  its file columns (a sync or an operator drops it; none = nothing foreign is known).
- **Per export** (C = members we send now, after exclusions and the identity contract;
  L = the previous ledger; S = the destination state; leavers = members who `exited` with
  this export):
  - `added`: in C, neither in L nor in S; they enter the ledger.
  - `already_present`: in C and in S but not in L: someone else added them, we do not claim them.
  - `removed`: in L, not in C (left the audience, excluded, or rejected): only these may be
    removed (`who_we_may_remove`); they leave the ledger and the file.
  - `not_ours`: leavers not in L: left alone.
  - `kept_foreign`: in S, neither in C nor removed: written to the file as the state holds them,
    after our members, so the replacement keeps them (we never judge foreign rows: their
    consent and suppression are whoever added them's; the identity contract check still reads
    every row of the file, so a foreign row breaking the contract blocks publication).

The file = our members (member-key order) + the kept foreign rows (sorted); without a state
file it is byte for byte what it was before ownership. Per export,
`destination_exports/<audience>/<stamp>/ownership.parquet` holds (destination, member_hash,
change) for every change above, and the manifest counts them per destination.
"""

import hashlib
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.destinations.contracts import Contract, evaluate_identity

MEMBERSHIP_LEDGER = "destination_membership"
DESTINATION_STATE = "destination_state"
STATE_FILE = "members.csv"
CHANGES = ("added", "already_present", "removed", "not_ours", "kept_foreign")
LEDGER_SCHEMA = pa.schema(
    [
        pa.field("member_hash", pa.string(), nullable=False),
        pa.field("added_export", pa.string(), nullable=False),
        pa.field("added_at", pa.timestamp("s", tz="UTC"), nullable=False),
    ]
)
OWNERSHIP_SCHEMA = pa.schema(
    [("destination", pa.string()), ("member_hash", pa.string()), ("change", pa.string())]
)


def member_hashes(contract: Contract, rows: pa.Table) -> pa.Array:
    """SHA-256 of each row's first identity (always a required one) in its normalised form; a
    value that does not normalise (a foreign row) is hashed as it is, trimmed."""
    identity = contract.identities[0]
    values = pc.cast(rows.column(identity.column).combine_chunks(), pa.string())
    normalised, _ = evaluate_identity(identity, values)
    key = pc.coalesce(normalised, pc.utf8_trim_whitespace(values))
    return pa.array([hashlib.sha256(v.encode()).hexdigest() for v in key.to_pylist()], pa.string())


def who_we_may_remove(ledger: pa.Table, still_sent: pa.Array) -> pa.Table:
    """The ledger rows (LEDGER_SCHEMA) the platform may remove: members it added that it no
    longer sends. Nobody outside the ledger is ever removable."""
    kept = pc.is_in(ledger.column("member_hash"), value_set=still_sent)
    return ledger.filter(pc.invert(kept))


@dataclass
class OwnershipPlan:
    file_rows: pa.Table  # our rows, then the kept foreign rows: the full replacement file
    ledger: pa.Table  # LEDGER_SCHEMA, sorted by member_hash: the ledger after this export
    changes: pa.Table  # OWNERSHIP_SCHEMA

    def counts(self) -> dict[str, int]:
        change = self.changes.column("change")
        counts = {c: int(pc.sum(pc.equal(change, c)).as_py() or 0) for c in CHANGES}
        return {**counts, "ledger_members": self.ledger.num_rows}


def stamp_time(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y%m%d_%H%M%S").replace(tzinfo=UTC)


def plan_ownership(
    contract: Contract,
    ours: pa.Table,
    previous_ledger: pa.Table,
    state: pa.Table,
    leavers: pa.Table,
    stamp: str,
) -> OwnershipPlan:
    """The file, ledger and changes of one destination for one export (see the module doc).

    `ours`, `state` and `leavers` hold the contract's columns as the file would."""
    sent = member_hashes(contract, ours)
    in_state = member_hashes(contract, state)
    ledger_hashes = previous_ledger.column("member_hash").combine_chunks()
    removable = who_we_may_remove(previous_ledger, sent)
    removed = removable.column("member_hash").combine_chunks()
    new = pc.invert(pc.is_in(sent, value_set=ledger_hashes))
    present = pc.is_in(sent, value_set=in_state)
    added = sent.filter(pc.and_(new, pc.invert(present)))
    already = sent.filter(pc.and_(new, present))
    foreign = pc.invert(
        pc.or_(pc.is_in(in_state, value_set=sent), pc.is_in(in_state, value_set=removed))
    )
    kept_rows = state.filter(foreign).select(list(contract.columns))
    kept_rows = kept_rows.sort_by([(c, "ascending") for c in contract.columns])
    gone = member_hashes(contract, leavers)
    not_ours = pc.unique(
        gone.filter(
            pc.invert(
                pc.or_(pc.is_in(gone, value_set=ledger_hashes), pc.is_in(gone, value_set=sent))
            )
        )
    )
    stayed = previous_ledger.filter(pc.is_in(previous_ledger.column("member_hash"), value_set=sent))
    added_unique = pc.unique(added)
    entered = pa.table(
        {
            "member_hash": added_unique,
            "added_export": pa.array([stamp] * len(added_unique), pa.string()),
            "added_at": pa.array([stamp_time(stamp)] * len(added_unique), LEDGER_SCHEMA[2].type),
        },
        schema=LEDGER_SCHEMA,
    )
    ledger = pa.concat_tables([stayed.cast(LEDGER_SCHEMA), entered]).sort_by("member_hash")
    parts = [
        ("added", added_unique),
        ("already_present", pc.unique(already)),
        ("removed", removed),
        ("not_ours", not_ours),
        ("kept_foreign", pc.unique(in_state.filter(foreign))),
    ]
    changes = pa.concat_tables(
        [
            pa.table(
                {
                    "destination": pa.array([contract.destination] * len(h), pa.string()),
                    "member_hash": pc.cast(h, pa.string()),
                    "change": pa.array([name] * len(h), pa.string()),
                },
                schema=OWNERSHIP_SCHEMA,
            )
            for name, h in parts
        ]
    )
    file_rows = pa.concat_tables([ours.select(list(contract.columns)), kept_rows])
    return OwnershipPlan(file_rows=file_rows, ledger=ledger, changes=changes)


def _folder(destination: str, audience_id: str) -> str:
    return f"{destination}/{audience_id}"


def previous_ledger(
    warehouse: Warehouse, destination: str, audience_id: str, stamp: str
) -> pa.Table:
    """The ledger of the latest export before `stamp` (empty before the first)."""
    index = warehouse.get_json(MEMBERSHIP_LEDGER, _folder(destination, audience_id), "index.json")
    earlier = [s for s in (index or {}).get("stamps", []) if s < stamp]
    if not earlier:
        return LEDGER_SCHEMA.empty_table()
    folder = f"{_folder(destination, audience_id)}/{max(earlier)}"
    return warehouse.read_table(MEMBERSHIP_LEDGER, folder, "ledger.parquet").cast(LEDGER_SCHEMA)


def latest_ledger(warehouse: Warehouse, destination: str, audience_id: str) -> pa.Table:
    """The ledger after the latest export built (what the dry run starts a new export from)."""
    index = warehouse.get_json(MEMBERSHIP_LEDGER, _folder(destination, audience_id), "index.json")
    stamps = (index or {}).get("stamps", [])
    if not stamps:
        return LEDGER_SCHEMA.empty_table()
    folder = f"{_folder(destination, audience_id)}/{max(stamps)}"
    return warehouse.read_table(MEMBERSHIP_LEDGER, folder, "ledger.parquet").cast(LEDGER_SCHEMA)


def write_ledger(
    warehouse: Warehouse, destination: str, audience_id: str, stamp: str, ledger: pa.Table
) -> None:
    folder = _folder(destination, audience_id)
    with tempfile.TemporaryDirectory(prefix="rtcdp-ledger-") as tmp:
        local = Path(tmp) / "ledger.parquet"
        pq.write_table(ledger, local, compression="zstd")
        warehouse.put_file(MEMBERSHIP_LEDGER, f"{folder}/{stamp}", "ledger.parquet", local)
    # The ledger first, then the index that makes later exports read it.
    index = warehouse.get_json(MEMBERSHIP_LEDGER, folder, "index.json") or {"stamps": []}
    warehouse.put_json(
        MEMBERSHIP_LEDGER, folder, "index.json", {"stamps": sorted({*index["stamps"], stamp})}
    )


def read_destination_state(warehouse: Warehouse, contract: Contract, audience_id: str) -> pa.Table:
    """The destination's own listing of its members (its file columns, as text), empty if none."""
    folder = _folder(contract.destination, audience_id)
    with warehouse.local_copy(DESTINATION_STATE, folder, STATE_FILE) as local:
        if local is None:
            return pa.table({c: pa.array([], pa.string()) for c in contract.columns})
        options = pacsv.ConvertOptions(
            column_types={c: pa.string() for c in contract.columns},
            include_columns=list(contract.columns),
            include_missing_columns=True,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        table = pacsv.read_csv(local, convert_options=options)
    # A column the listing lacks is empty, as an optional identity is in our rows.
    return pa.table({c: pc.fill_null(table.column(c), "") for c in contract.columns})


def without_foreign(contract: Contract, staged: pa.Table, changes: pa.Table) -> pa.Table:
    """The rows of a staged file that are ours: the file less the foreign rows it keeps
    (`changes`: OWNERSHIP_SCHEMA of the export). Checks judge our rows only."""
    mine = pc.equal(changes.column("destination"), contract.destination)
    kept = changes.filter(pc.and_(mine, pc.equal(changes.column("change"), "kept_foreign")))
    if kept.num_rows == 0:
        return staged
    foreign = pc.is_in(
        member_hashes(contract, staged), value_set=kept.column("member_hash").combine_chunks()
    )
    return staged.filter(pc.invert(foreign))


def ownership_summary(plans: dict[str, OwnershipPlan]) -> dict[str, Any]:
    return {destination: plan.counts() for destination, plan in plans.items()}
