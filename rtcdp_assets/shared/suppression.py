"""The suppression list as the exits read it: the `suppression_list` asset (built in
campaign_to_aep/non_deliverables.py) read through the warehouse by its asset key, so no wing
imports another.

Reasons are Campaign's: `quarantine` and `denylisted` (the address status in nms:address) and
`opted_out` (the recipient's email denylist flags in `preferences`). An address held for several
reasons carries the first by name, the way the Campaign audience import reports it.
"""

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import Failure

from resources.warehouse import Warehouse

SUPPRESSION_LIST = "suppression_list"  # the asset key and warehouse dataset
SUPPRESSION_REASONS = ("denylisted", "opted_out", "quarantine")
SUPPRESSION_COLUMNS = ["channel", "address", "reason"]


def load_suppression(warehouse: Warehouse, channels: tuple[str, ...] | None = None) -> pa.Table:
    """channel, address, reason: one row per suppressed (channel, address), the first reason by
    name; only `channels` when given. Fails when the list was never built: an exit without it
    could reach quarantined or opted-out addresses."""
    with warehouse.local_copy(SUPPRESSION_LIST, "current", "data.parquet") as local:
        if local is None:
            raise Failure(
                description="`suppression_list` is not materialized: importing without it could "
                "target quarantined or opted-out addresses. Materialize it first."
            )
        table = pq.read_table(local, columns=SUPPRESSION_COLUMNS)
    if channels is not None:
        table = table.filter(pc.is_in(table.column("channel"), value_set=pa.array(channels)))
    return first_reason_per_address(table)


def first_reason_per_address(table: pa.Table) -> pa.Table:
    """One row per (channel, address) of `table` (SUPPRESSION_COLUMNS): the first reason by
    name, so one address held for several reasons is reported the same way everywhere."""
    order = [(c, "ascending") for c in SUPPRESSION_COLUMNS]
    table = table.select(SUPPRESSION_COLUMNS).sort_by(order)
    if table.num_rows == 0:
        return table
    first = table.group_by(["channel", "address"], use_threads=False).aggregate(
        [("reason", "first")]
    )
    return first.rename_columns(SUPPRESSION_COLUMNS).sort_by(order[:2])


def reasons_for(
    suppression: pa.Table, channel: str, addresses: pa.Array | pa.ChunkedArray
) -> pa.Array:
    """The suppression reason of each address on `channel` (null when not suppressed); the
    addresses must be in the list's form (email lower-cased, phone as `normalise` makes it)."""
    mine = suppression.filter(pc.equal(suppression.column("channel"), channel))
    at = pc.index_in(addresses, value_set=mine.column("address").combine_chunks())
    return mine.column("reason").combine_chunks().take(at)
