"""Member sources of the destination files: current members with their Campaign mobile phone."""

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.join_identities import (
    CAMPAIGN_COLUMNS,
    normalise_keys,
)


def campaign_phones(
    warehouse: Warehouse, profile_partitions: set[str], join_identity: str
) -> dict[str, str]:
    """Join identity → mobile phone of the latest version of each Campaign recipient; keys held
    by several recipients are left out so nobody is texted under someone else's identity."""
    key_column = CAMPAIGN_COLUMNS[join_identity]
    tables = []
    for pk in sorted(profile_partitions):
        with warehouse.local_copy("profiles", pk, "data.parquet") as local:
            if local is not None:
                cols = list(dict.fromkeys(["recipient_id", key_column, "mobile_phone"]))
                tables.append(pq.read_table(local, columns=[*cols, "last_modified"]))
    if not tables:
        return {}
    table = pa.concat_tables(tables)
    table = table.append_column("_key", normalise_keys(join_identity, table.column(key_column)))
    df = table.to_pandas()
    df = df.sort_values("last_modified", kind="stable").drop_duplicates("recipient_id", keep="last")
    df = df.dropna(subset=["_key"])
    counts = df["_key"].value_counts()
    df = df[df["_key"].map(counts) == 1].dropna(subset=["mobile_phone"])
    return dict(zip(df["_key"], df["mobile_phone"], strict=True))


def member_sources(members: pa.Table, phones: Mapping[str, str]) -> pa.Table:
    """Current members (not `exited`), sorted by key: key, email, mobile_phone."""
    current = members.filter(pc.not_equal(members.column("status"), "exited"))
    current = current.sort_by("key")
    keys = current.column("key").to_pylist()
    return pa.table(
        {
            "key": current.column("key"),
            "email": current.column("email"),
            "mobile_phone": pa.array([phones.get(k) for k in keys], pa.string()),
        }
    )
