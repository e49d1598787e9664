"""One row per identity value in a destination file: members sharing an identity are sent once.

Two audience members (two profiles) may share a phone or an email (a family phone, one address
written `Ana@x.fr` and `ana@x.fr`). Sent twice, an SMS provider texts the number twice and an ad
platform counts the person twice. So, per destination, after the exclusions (a suppressed or
non-consenting member never takes the place of a sendable one) and among the rows that meet the
contract (a rejected row carries no value):

- **required identity** (email, sms's phone, social_ads' email hash): the value as the file
  holds it (trimmed and lower-cased email, E.164 phone, the SHA-256 for hashed identities) is
  kept for the member with the smallest key; every other member carrying it is excluded with the
  reason `duplicate_identity` (excluded.parquet, counted by reason like the other exclusions,
  shown by the dry run), so a re-run gives the same file;
- **optional identity** (social_ads' phone hash, "when available"): the member keeps its row
  (its own required identity is distinct) but the shared value is left empty on every row but
  the smallest key's, as when no phone is known; the manifest counts these per namespace
  (`cleared_duplicates`).

The membership ledger hashes the first (required) identity, so the kept member is the one whose
hash the ledger holds: the identity stays sent, and is never removed while any member carries it.
"""

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rtcdp_assets.aep_to_campaign.destinations.contracts import Contract, contract_values
from rtcdp_assets.aep_to_campaign.destinations.exclusions import EXCLUDED_SCHEMA

DUPLICATE_IDENTITY = "duplicate_identity"


@dataclass(frozen=True)
class Deduplicated:
    sources: pa.Table  # the member sources to send, sorted by key; shared optional values null
    excluded: pa.Table  # EXCLUDED_SCHEMA, reason `duplicate_identity`
    cleared: dict[str, int]  # optional identity namespace -> values left empty as duplicates


def first_occurrences(values: pa.Array, candidates: pa.Array) -> pa.Array:
    """True on the first candidate row (in row order) of each value; False elsewhere."""
    position = pa.array(np.arange(len(values)))
    rows = pa.table({"value": values, "position": position}).filter(candidates)
    firsts = rows.group_by("value", use_threads=False).aggregate([("position", "min")])
    return pc.is_in(position, value_set=firsts.column("position_min").combine_chunks())


def drop_duplicate_identities(contract: Contract, allowed: pa.Table) -> Deduplicated:
    """`allowed` (the member sources past the exclusions) with one member per identity value of
    `contract` (see the module doc)."""
    allowed = allowed.sort_by("key")
    columns, reason, _ = contract_values(contract, allowed)
    meets = pc.is_null(reason)
    duplicate = pa.array(np.zeros(allowed.num_rows, dtype=bool))
    for identity in (i for i in contract.identities if i.required):
        candidates = pc.and_(meets, pc.invert(duplicate))
        first = first_occurrences(columns[identity.column], candidates)
        duplicate = pc.or_(duplicate, pc.and_(candidates, pc.invert(first)))
    kept = allowed.filter(pc.invert(duplicate))
    sent = pc.and_(meets, pc.invert(duplicate)).filter(pc.invert(duplicate))
    cleared: dict[str, int] = {}
    for identity in (i for i in contract.identities if not i.required):
        values = columns[identity.column].filter(pc.invert(duplicate))
        candidates = pc.and_(sent, pc.not_equal(values, ""))
        shared = pc.and_(candidates, pc.invert(first_occurrences(values, candidates)))
        n = int(pc.sum(shared).as_py() or 0)
        if n:
            cleared[identity.namespace] = n
            at = kept.column_names.index(identity.source)
            source = pc.if_else(
                shared,
                pa.scalar(None, pa.string()),
                pc.cast(kept.column(at).combine_chunks(), pa.string()),
            )
            kept = kept.set_column(at, identity.source, source)
    excluded = pa.table(
        {
            "destination": pa.array([contract.destination] * allowed.num_rows, pa.string()),
            "key": pc.cast(allowed.column("key"), pa.string()),
            "reason": pa.array([DUPLICATE_IDENTITY] * allowed.num_rows, pa.string()),
        },
        schema=EXCLUDED_SCHEMA,
    ).filter(duplicate)
    return Deduplicated(sources=kept, excluded=excluded, cleared=cleared)
