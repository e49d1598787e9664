"""Recipients' consents as of the latest loaded `preferences` partitions, read through the
warehouse: what every exit asks before data leaves (docs/formats.md §c5).

A consent is named as in XDM `consents.marketing`: `any` (the general marketing consent,
Campaign's global `blackList`) or a channel (`email`, `sms`, `call`, `fax`, `postalMail`,
`push`). Its value for a recipient is "n" when the global flag or the channel's flag is set,
"y" when the channel's flag is explicitly 0, and missing (null) when the recipient has no
preferences row, or the export left the channel's flag empty while the global flag is not set:
an empty flag is not a consent.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from resources.audience_settings import CONSENT_NAMES
from resources.warehouse import Warehouse

__all__ = ["CONSENT_NAMES", "consent_values", "latest_preferences"]

GENERAL_CONSENT = "any"
# canonical preferences flag → XDM consents.marketing channel
PREFERENCE_FLAGS = {
    "blacklist_email": "email",
    "blacklist_mobile": "sms",
    "blacklist_phone": "call",
    "blacklist_fax": "fax",
    "blacklist_postal_mail": "postalMail",
    "blacklist_push": "push",
}
FLAG_OF_CONSENT = {channel: flag for flag, channel in PREFERENCE_FLAGS.items()}
PREFERENCE_COLUMNS = ["recipient_id", "email", "blacklist", *PREFERENCE_FLAGS, "last_modified"]


def latest_preferences(warehouse: Warehouse, partitions: set[str]) -> pa.Table:
    """The latest preferences row of each recipient over `partitions` (PREFERENCE_COLUMNS):
    greatest `last_modified` (a missing one counts as latest), then the later partition, then
    the later row."""
    tables = []
    for pk in sorted(partitions):
        with warehouse.local_copy("preferences", pk, "data.parquet") as local:
            if local is not None:
                present = pq.read_schema(local).names
                wanted = [c for c in PREFERENCE_COLUMNS if c in present]
                table = pq.read_table(local, columns=wanted)
                for column in PREFERENCE_COLUMNS:
                    if column not in present:  # an optional flag the layout does not carry
                        table = table.append_column(column, pa.nulls(table.num_rows, pa.bool_()))
                tables.append(table.select(PREFERENCE_COLUMNS))
    if not tables:
        return pa.table({c: pa.array([], pa.string()) for c in ["recipient_id", "email"]})
    rows = pa.concat_tables(tables, promote_options="permissive")
    rows = rows.set_column(0, "recipient_id", pc.cast(rows.column("recipient_id"), pa.string()))
    return latest_rows(rows, "recipient_id")


def latest_rows(rows: pa.Table, id_column: str) -> pa.Table:
    """The latest row of each `id_column` value: greatest `last_modified` (a missing one counts
    as latest), then the later row (rows come in partition, then file order)."""
    # A stable sort by last_modified: ties keep the read order, so the last row wins.
    order = pc.sort_indices(rows.column("last_modified"), sort_keys=[("", "ascending", "at_end")])
    rows = rows.take(order).append_column("_order", pa.array(np.arange(rows.num_rows)))
    latest = rows.group_by(id_column, use_threads=False).aggregate([("_order", "max")])
    return rows.take(np.sort(latest.column("_order_max").to_numpy())).drop_columns(["_order"])


def consent_values(preferences: pa.Table, consent: str) -> pa.Array:
    """ "y", "n" or null (missing) per row of `preferences` for the consent named `consent`."""
    if preferences.num_rows == 0:
        return pa.array([], pa.string())
    everything = preferences.column("blacklist").combine_chunks()
    if consent == GENERAL_CONSENT:
        flag = everything
    else:
        own = preferences.column(FLAG_OF_CONSENT[consent]).combine_chunks()
        # The global flag opts out of every channel, whatever the channel's own flag says.
        flag = pc.if_else(pc.fill_null(everything, False), True, own)
    return pc.if_else(flag, "n", "y")
