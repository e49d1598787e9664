"""The `audience_membership` asset: members after each export and the diff against the
previous one.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions at definition time.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from resources.audience_settings import AudienceSettings
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import (
    AUDIENCE_MEMBERSHIP,
    GROUP,
    MEMBER_STATUSES,
    SEGMENT_EXPORTS,
    audience_partitions,
)
from rtcdp_assets.aep_to_campaign.audience_exports.export_records import (
    export_stamp_for_run,
    read_export_record,
    read_index,
)
from rtcdp_assets.aep_to_campaign.audience_exports.join_identities import (
    JOIN_FIELDS,
    normalise_keys,
    recorded_identity,
)
from rtcdp_assets.aep_to_campaign.audience_exports.segment_exports import segment_exports
from rtcdp_assets.shared.ingest import LINE_NUMBER
from rtcdp_assets.shared.masking import masked_preview

# The member key is the join identity's value (an external ID, email or phone).
PERSONAL_COLUMNS = frozenset({"key", "external_id", "email"})
MEMBERS_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("external_id", pa.string()),
        pa.field("email", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("aep_status", pa.string()),
        pa.field("last_qualification_time", pa.timestamp("us", tz="UTC")),
        pa.field("member_since", pa.string()),
        pa.field("in_export", pa.bool_(), nullable=False),
    ]
)
DIFF_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("change", pa.string(), nullable=False),
        pa.field("previous_status", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("in_export", pa.bool_(), nullable=False),
    ]
)


@dataclass
class MembershipResult:
    members: pa.Table  # MEMBERS_SCHEMA, sorted by key
    diff: pa.Table  # DIFF_SCHEMA
    counts: dict[str, int]


def compute_membership(
    rows: pa.Table, previous: pa.Table | None, mode: str, stamp: str, join_identity: str
) -> MembershipResult:
    """The membership after one export, and its diff against the state before it.

    `rows` are segment_exports rows of the export; `previous` the members.parquet of the
    previous applied export (its `exited` rows are not members any more).
    """
    keys = normalise_keys(join_identity, rows.column(JOIN_FIELDS[join_identity]))
    df = rows.select(["external_id", "email", "status", "last_qualification_time", LINE_NUMBER])
    df = df.to_pandas()
    df["email"] = df["email"].str.lower()
    df["key"] = keys.to_pandas()
    df["aep_status"] = df["status"].fillna("realized")
    n_rows = len(df)
    # AEP: the latest qualification wins; the file order settles ties deterministically.
    df = df.sort_values(
        ["key", "last_qualification_time", LINE_NUMBER],
        ascending=[True, False, True],
        na_position="last",
        kind="stable",
    ).drop_duplicates("key", keep="first")
    duplicates = n_rows - len(df)
    prev = (
        previous.to_pandas() if previous is not None else MEMBERS_SCHEMA.empty_table().to_pandas()
    )
    prev = prev[prev["status"] != "exited"].set_index("key", drop=False)
    entering = df[df["aep_status"].isin(MEMBER_STATUSES)].set_index("key", drop=False)
    leaving = df[df["aep_status"] == "exited"].set_index("key", drop=False)

    in_prev = entering.index.isin(prev.index)
    added = entering[~in_prev].assign(status="realized", member_since=stamp, in_export=True)
    stayed = entering[in_prev].assign(status="existing", in_export=True)
    stayed["member_since"] = prev.loc[stayed.index, "member_since"].to_numpy()
    if mode == "full":
        removed_keys = prev.index.difference(entering.index)
    else:
        removed_keys = prev.index.intersection(leaving.index)
        carried = prev.loc[prev.index.difference(entering.index).difference(leaving.index)]
        carried = carried.assign(status="existing", aep_status=None, in_export=False)
    removed = prev.loc[removed_keys].assign(status="exited", aep_status=None, in_export=False)
    exported_exit = removed.index.isin(leaving.index)
    removed.loc[exported_exit, "aep_status"] = "exited"
    removed.loc[exported_exit, "in_export"] = True
    exited_non_member = int((~leaving.index.isin(prev.index)).sum())

    frames = [added, stayed, removed] + ([carried] if mode != "full" else [])
    cols = [f.name for f in MEMBERS_SCHEMA]
    members_df = (
        pd.concat([f[cols] for f in frames if len(f)], ignore_index=True)
        if any(len(f) for f in frames)
        else MEMBERS_SCHEMA.empty_table().to_pandas()
    )
    members_df = members_df.sort_values("key", kind="stable")
    members = pa.Table.from_pandas(members_df, schema=MEMBERS_SCHEMA, preserve_index=False)

    prev_status = prev["status"]
    change = pd.Series("unchanged", index=members_df.index)
    change[members_df["status"] == "realized"] = "added"
    change[members_df["status"] == "exited"] = "removed"
    diff = pa.table(
        {
            "key": members_df["key"].to_numpy(),
            "change": change.to_numpy(),
            "previous_status": members_df["key"]
            .map(prev_status)
            .astype(object)
            .where(members_df["key"].isin(prev.index), None)
            .to_numpy(),
            "status": members_df["status"].to_numpy(),
            "in_export": members_df["in_export"].to_numpy(),
        },
        schema=DIFF_SCHEMA,
    )
    counts = {
        "rows": n_rows,
        "duplicate_member": duplicates,
        "exited_non_member": exited_non_member,
        "added": len(added),
        "unchanged": len(stayed) + (len(carried) if mode != "full" else 0),
        "removed": len(removed),
        "members": len(added) + len(stayed) + (len(carried) if mode != "full" else 0),
        "previous_members": len(prev),
    }
    return MembershipResult(members=members, diff=diff, counts=counts)


def read_members(warehouse: Warehouse, audience_id: str, stamp: str) -> pa.Table:
    return warehouse.read_table(AUDIENCE_MEMBERSHIP, f"{audience_id}/{stamp}", "members.parquet")


def apply_export(
    warehouse: Warehouse, audience_settings: AudienceSettings, audience_id: str, stamp: str
) -> dict[str, Any]:
    record = read_export_record(warehouse, audience_id, stamp)
    if record["status"] != "processed":
        raise Failure(
            description=f"Export {record['export_id']} was quarantined "
            f"({'; '.join(record['quarantine_reasons'])}); it is not applied to the membership."
        )
    exports = read_index(warehouse, SEGMENT_EXPORTS, audience_id)["exports"]
    index = read_index(warehouse, AUDIENCE_MEMBERSHIP, audience_id)
    applied = index["exports"]
    if stamp not in applied and any(s > stamp for s in applied):
        raise Failure(
            description=f"Export {stamp} of audience {audience_id} arrived after the later export "
            f"{max(applied)} was applied; applying it now would roll the membership back. "
            "Re-run the later exports in order (see AUDIENCE_RUN_QUEUE_CONFIG)."
        )
    previous = max((s for s in applied if s < stamp), default=None)
    identity = recorded_identity(record, audience_settings)
    before = recorded_identity(applied[previous], audience_settings) if previous else identity
    if before != identity:
        raise Failure(
            description=f"Export {stamp} of audience {audience_id} is joined by {identity}, "
            f"the membership so far (export {previous}) by {before}: its members cannot be "
            "compared, and applying it would make every member leave and re-enter in Campaign. "
            "Restore the export's mapping (the column of the earlier identity), or order "
            "`join_identities` so that the audience keeps its identity."
        )
    if record["mode"] == "incremental":
        skipped = sorted(s for s in exports if (previous or "") < s < stamp and s not in applied)
        if skipped:
            raise Failure(
                description=f"Incremental export {stamp} of audience {audience_id} cannot be "
                f"applied: the earlier export(s) {', '.join(skipped)} were not applied "
                "(quarantined or not run), so the changes in between are unknown. Apply them "
                "first, or have AEP send a full export."
            )
    prev = read_members(warehouse, audience_id, previous) if previous else None
    rows = warehouse.read_table(SEGMENT_EXPORTS, f"{audience_id}/{stamp}", "data.parquet")
    result = compute_membership(rows, prev, record["mode"], stamp, identity)
    with tempfile.TemporaryDirectory(prefix="rtcdp-members-") as tmp:
        for name, table in (("members.parquet", result.members), ("diff.parquet", result.diff)):
            local = Path(tmp) / name
            pq.write_table(table, local, compression="zstd")
            warehouse.put_file(AUDIENCE_MEMBERSHIP, f"{audience_id}/{stamp}", name, local)
    applied[stamp] = {
        "mode": record["mode"],
        "previous": previous,
        "export_id": record["export_id"],
        "join_identity": identity,
        **result.counts,
    }
    index["latest"] = max(applied)
    warehouse.put_json(AUDIENCE_MEMBERSHIP, audience_id, "manifest.json", index)
    return applied[stamp] | {"stamp": stamp}


@asset(
    name=AUDIENCE_MEMBERSHIP,
    partitions_def=audience_partitions,
    group_name=GROUP,
    kinds={"parquet"},
    deps=[segment_exports],
    description=(
        "Members of each audience after each export (realized / existing / exited) and the "
        "diff against the previous export (added / removed / unchanged). Full exports replace "
        "the membership, incremental exports are applied to it."
    ),
)
def audience_membership(
    context: AssetExecutionContext, warehouse: Warehouse, audience_settings: AudienceSettings
) -> MaterializeResult:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    applied = apply_export(warehouse, audience_settings, audience_id, stamp)
    members = read_members(warehouse, audience_id, stamp)
    return MaterializeResult(
        metadata={
            "dagster/row_count": applied["members"],
            "export_stamp": stamp,
            "previous_export": applied["previous"] or "",
            "export_mode": applied["mode"],
            "join_identity": applied["join_identity"],
            "added": applied["added"],
            "removed": applied["removed"],
            "unchanged": applied["unchanged"],
            "duplicate_member": applied["duplicate_member"],
            "exited_non_member": applied["exited_non_member"],
            "preview": MetadataValue.md(masked_preview(members, PERSONAL_COLUMNS)),
            "warehouse_path": warehouse.path(
                AUDIENCE_MEMBERSHIP, f"{audience_id}/{stamp}", "members.parquet"
            ),
        }
    )
