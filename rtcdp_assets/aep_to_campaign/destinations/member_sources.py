"""Member sources of the destination files: current members with their Campaign mobile phone."""

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from resources.warehouse import Warehouse


def campaign_phones(
    warehouse: Warehouse, profile_partitions: set[str], join_identity: str
) -> dict[str, str]:
    """Join identity → mobile phone of the latest version of each Campaign recipient; keys held
    by several recipients are left out so nobody is texted under someone else's identity."""
    key_column = "email" if join_identity == "email" else "external_id"
    tables = []
    for pk in sorted(profile_partitions):
        with warehouse.local_copy("profiles", pk, "data.parquet") as local:
            if local is not None:
                cols = ["recipient_id", key_column, "mobile_phone", "last_modified"]
                tables.append(pq.read_table(local, columns=cols))
    if not tables:
        return {}
    df = pa.concat_tables(tables).to_pandas()
    df = df.sort_values("last_modified", kind="stable").drop_duplicates("recipient_id", keep="last")
    keys = df[key_column].str.strip().str.lower() if key_column == "email" else df[key_column]
    df = df.assign(_key=keys).dropna(subset=["_key"])
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
