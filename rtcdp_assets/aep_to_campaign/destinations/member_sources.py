"""Member sources of the destination files: current members with their Campaign mobile phone.

Both steps are Arrow compute over whole columns (a sort, a group-by and a hash lookup): they
scale with the members and the Campaign recipients, so nothing here runs per row in Python.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.join_identities import (
    CAMPAIGN_COLUMNS,
    normalise_keys,
)

PHONES_SCHEMA = pa.schema([pa.field("key", pa.string()), pa.field("mobile_phone", pa.string())])
RECIPIENTS_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string()),
        pa.field("recipient_id", pa.string()),
        pa.field("mobile_phone", pa.string()),
    ]
)


def latest_unique_recipients(table: pa.Table, key_column: str, join_identity: str) -> pa.Table:
    """key → recipient_id and mobile phone of the latest version of each recipient
    (`last_modified`, nulls count as latest, ties to the later row); keys held by several
    recipients are left out (RECIPIENTS_SCHEMA, one row per key)."""
    keys = normalise_keys(join_identity, table.column(key_column))
    rows = pa.table(
        {
            "recipient_id": pc.cast(table.column("recipient_id"), pa.string()),
            "key": pc.cast(keys, pa.string()),
            "mobile_phone": pc.cast(table.column("mobile_phone"), pa.string()),
        }
    )
    order = pc.sort_indices(table.column("last_modified"), sort_keys=[("", "ascending", "at_end")])
    rows = rows.take(order).append_column("_order", pa.array(np.arange(rows.num_rows)))
    # The last row of each recipient in that order is its latest version.
    latest = rows.group_by("recipient_id", use_threads=False).aggregate([("_order", "max")])
    rows = rows.take(np.sort(latest.column("_order_max").to_numpy()))
    rows = rows.filter(pc.is_valid(rows.column("key")))
    held = rows.group_by("key", use_threads=False).aggregate([([], "count_all")])
    unique = held.filter(pc.equal(held.column("count_all"), 1)).column("key")
    rows = rows.filter(pc.is_in(rows.column("key"), value_set=unique.combine_chunks()))
    return rows.select(RECIPIENTS_SCHEMA.names).cast(RECIPIENTS_SCHEMA)


def latest_unique_phones(table: pa.Table, key_column: str, join_identity: str) -> pa.Table:
    """key → mobile phone of the latest version of each recipient (`last_modified`, nulls
    count as latest, ties to the later row); keys held by several recipients are left out."""
    rows = latest_unique_recipients(table, key_column, join_identity)
    rows = rows.filter(pc.is_valid(rows.column("mobile_phone")))
    return rows.select(PHONES_SCHEMA.names).cast(PHONES_SCHEMA)


def campaign_recipients(
    warehouse: Warehouse, profile_partitions: set[str], join_identity: str
) -> pa.Table:
    """Join identity → recipient_id and mobile phone of the latest version of each Campaign
    recipient (RECIPIENTS_SCHEMA, one row per key); keys held by several recipients are left
    out so nobody is texted, or asked for consent, under someone else's identity."""
    key_column = CAMPAIGN_COLUMNS[join_identity]
    tables = []
    for pk in sorted(profile_partitions):
        with warehouse.local_copy("profiles", pk, "data.parquet") as local:
            if local is not None:
                cols = list(dict.fromkeys(["recipient_id", key_column, "mobile_phone"]))
                tables.append(pq.read_table(local, columns=[*cols, "last_modified"]))
    if not tables:
        return RECIPIENTS_SCHEMA.empty_table()
    return latest_unique_recipients(pa.concat_tables(tables), key_column, join_identity)


def campaign_phones(
    warehouse: Warehouse, profile_partitions: set[str], join_identity: str
) -> pa.Table:
    """Join identity → mobile phone of the latest version of each Campaign recipient
    (PHONES_SCHEMA, one row per key); keys held by several recipients are left out so nobody
    is texted under someone else's identity."""
    rows = campaign_recipients(warehouse, profile_partitions, join_identity)
    rows = rows.filter(pc.is_valid(rows.column("mobile_phone")))
    return rows.select(PHONES_SCHEMA.names).cast(PHONES_SCHEMA)


def member_sources(members: pa.Table, phones: pa.Table, leaving: bool = False) -> pa.Table:
    """Current members (not `exited`; with `leaving`, only the `exited` ones), sorted by key:
    key, email, mobile_phone, and the recipient_id of their Campaign recipient when `phones`
    carries it (RECIPIENTS_SCHEMA)."""
    exited = pc.equal(members.column("status"), "exited")
    current = members.filter(exited if leaving else pc.invert(exited))
    current = current.sort_by("key")
    keys = current.column("key").combine_chunks()
    at = pc.index_in(keys, value_set=phones.column("key").combine_chunks())
    columns = {
        "key": current.column("key"),
        "email": current.column("email"),
        "mobile_phone": phones.column("mobile_phone").combine_chunks().take(at),
    }
    if "recipient_id" in phones.column_names:
        columns["recipient_id"] = phones.column("recipient_id").combine_chunks().take(at)
    return pa.table(columns)
