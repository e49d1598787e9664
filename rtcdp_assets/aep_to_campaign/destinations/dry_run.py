"""`activation_dry_run`: before anything is written for an audience export (the Campaign import
or a destination file), who each destination would gain, lose or be kept from, and why.

One row per (destination, member key) in the warehouse at
`activation_dry_run/<audience>/<stamp>/members.parquet` (DRY_RUN_SCHEMA), counts by outcome and
reason in `summary.json` and in the metadata (never a key, address or name there):

| outcome    | reason                                   | who                                      |
|------------|------------------------------------------|------------------------------------------|
| `added`    | `joined`                                 | sendable now, not a member before        |
| `kept`     | `still_member`                           | sendable now, a member before            |
| `removed`  | `left_audience`                          | a member before, not any more            |
| `excluded` | suppression / consent / contract reason  | a current member the destination may not |
|            | (`quarantine`, `opted_out`, `missing_    | receive (destinations/exclusions.py,     |
|            | consent`, `duplicate_identity`,          | duplicates.py, contracts.py); for        |
|            | `invalid_phone`, …);                     | `campaign`:                              |
|            | `not_in_campaign`                        | no Campaign recipient for the key        |

The activation destinations (email, sms, social_ads) are told by their membership ledger
(destinations/dry_run_ownership.py): the same `plan_ownership` the real export makes, so
`removed` is exactly who the export will remove (only members we added), members who left but
were never ours are `not_ours`, and the destination's foreign members `kept_foreign`; members
sent but already in the destination are `kept` (`already_present`). Those rows carry the
ledger's `member_hash` (a foreign member has no key), and `summary.json` / the metadata hold
the plan's `ownership` counts per destination, equal to the ones `destination_exports` records.

For `campaign`, "before" is `previous_members` (the members after the previous applied export:
the import file carries the leavers as `exited`, Campaign owns its lists). The `campaign` row
mirrors the Campaign import: members without a unique Campaign recipient (`not_in_campaign`,
quarantined by the import), then emails the suppression list holds on the email channel.

Approval (destinations whose `review_first` setting is on; the Campaign import when
`campaign_import_review_first` is): the dry-run id is
`<audience>@<stamp>`; a run tagged `rtcdp/approved_dry_run=<that id>`, or the warehouse file
`activation_dry_run/<audience>/<stamp>/approved` (any content, e.g. who approved), approves it.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions at definition time.
"""

import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    asset,
)

from resources.audience_settings import AudienceSettings
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import (
    AUDIENCE_MEMBERSHIP,
    GROUP,
    audience_partitions,
)
from rtcdp_assets.aep_to_campaign.audience_exports.export_records import (
    export_stamp_for_run,
    read_index,
)
from rtcdp_assets.aep_to_campaign.audience_exports.membership import (
    audience_membership,
    read_members,
)
from rtcdp_assets.aep_to_campaign.destinations.contracts import (
    CONTRACTS,
    apply_contract,
    normalise_email,
)
from rtcdp_assets.aep_to_campaign.destinations.dry_run_ownership import destination_ownership
from rtcdp_assets.aep_to_campaign.destinations.duplicates import drop_duplicate_identities
from rtcdp_assets.aep_to_campaign.destinations.exclusions import (
    ExclusionInputs,
    exclude_members,
)
from rtcdp_assets.aep_to_campaign.destinations.staged_files import export_members
from rtcdp_assets.aep_to_campaign.dry_run_approval import (
    ACTIVATION_DRY_RUN,
    APPROVAL_FILE,
    CAMPAIGN_DESTINATION,
    TAG_APPROVED_DRY_RUN,
    approval,
    dry_run_id,
)
from rtcdp_assets.shared.suppression import SUPPRESSION_LIST, reasons_for

# Approval lives in aep_to_campaign/dry_run_approval.py; its names stay importable from here.
__all__ = [
    "ACTIVATION_DRY_RUN",
    "APPROVAL_FILE",
    "CAMPAIGN_DESTINATION",
    "TAG_APPROVED_DRY_RUN",
    "activation_dry_run",
    "approval",
    "build_dry_run",
    "dry_run_id",
    "review_first_destinations",
]

NOT_IN_CAMPAIGN = "not_in_campaign"
OUTCOMES = ("added", "kept", "removed", "excluded", "not_ours", "kept_foreign")
DRY_RUN_SCHEMA = pa.schema(
    [
        ("destination", pa.string()),
        ("key", pa.string()),
        ("outcome", pa.string()),
        ("reason", pa.string()),
        # The ledger's hash of the member (activation destinations; empty for campaign).
        ("member_hash", pa.string()),
    ]
)


def review_first_destinations(audience_settings: AudienceSettings) -> list[str]:
    """Destinations whose publication waits for the approved dry run: `campaign` (the Campaign
    import) by `campaign_import_review_first`, the others by their `review_first`."""
    review = [CAMPAIGN_DESTINATION] if audience_settings.campaign_import_review_first else []
    return review + [
        c.destination
        for c in CONTRACTS
        if audience_settings.activation_consent(c.destination).review_first
    ]


def previous_members(
    warehouse: Warehouse, audience_id: str, stamp: str, destination: str
) -> pa.Array:
    """Keys the Campaign import's `destination` holds before this export: the current members
    after the previous applied export (the activation destinations read their membership
    ledger instead, dry_run_ownership.py)."""
    del destination  # the Campaign import had the audience's previous members
    applied = read_index(warehouse, AUDIENCE_MEMBERSHIP, audience_id)["exports"]
    previous = (applied.get(stamp) or {}).get("previous")
    if not previous:
        return pa.array([], pa.string())
    members = read_members(warehouse, audience_id, previous)
    current = members.filter(pc.not_equal(members.column("status"), "exited"))
    return pc.cast(current.column("key"), pa.string()).combine_chunks()


def _rows(destination: str, keys: pa.Array, outcome: str, reasons: pa.Array | str) -> pa.Table:
    n = len(keys)
    reason = pa.array([reasons] * n, pa.string()) if isinstance(reasons, str) else reasons
    return pa.table(
        {
            "destination": pa.array([destination] * n, pa.string()),
            "key": pc.cast(keys, pa.string()),
            "outcome": pa.array([outcome] * n, pa.string()),
            "reason": pc.cast(reason, pa.string()),
            "member_hash": pa.nulls(n, pa.string()),
        },
        schema=DRY_RUN_SCHEMA,
    )


def destination_outcomes(
    destination: str, sources: pa.Table, sendable: pa.Array, excluded: pa.Table, before: pa.Array
) -> pa.Table:
    """Rows of one destination: `sendable` keys added or kept, `excluded` (key, reason) rows,
    and the `before` keys that are no longer members, removed."""
    current = pc.cast(sources.column("key"), pa.string()).combine_chunks()
    was = pc.is_in(sendable, value_set=before)
    gone = before.filter(pc.invert(pc.is_in(before, value_set=current)))
    return pa.concat_tables(
        [
            _rows(destination, sendable.filter(pc.invert(was)), "added", "joined"),
            _rows(destination, sendable.filter(was), "kept", "still_member"),
            _rows(destination, gone, "removed", "left_audience"),
            _rows(
                destination,
                excluded.column("key").combine_chunks(),
                "excluded",
                excluded.column("reason").combine_chunks(),
            ),
        ]
    )


def campaign_exclusions(sources: pa.Table, inputs: ExclusionInputs) -> pa.Table:
    """(key, reason) of members the Campaign import would leave out: no unique recipient first
    (quarantined `not_in_campaign`), then a suppressed email."""
    null_str = pa.scalar(None, pa.string())
    email, valid = normalise_email(pc.cast(sources.column("email"), pa.string()))
    reason = pc.if_else(
        pc.is_null(sources.column("recipient_id")),
        pa.scalar(NOT_IN_CAMPAIGN),
        reasons_for(inputs.suppression, "email", pc.if_else(valid, email, null_str)),
    )
    keys = pc.cast(sources.column("key"), pa.string())
    table = pa.table({"key": keys, "reason": pc.cast(reason, pa.string())})
    return table.filter(pc.is_valid(table.column("reason")))


def build_dry_run(
    warehouse: Warehouse,
    audience_settings: AudienceSettings,
    profile_partitions: set[str],
    preference_partitions: set[str],
    audience_id: str,
    stamp: str,
) -> tuple[pa.Table, dict[str, Any], dict[str, dict[str, int]]]:
    """Every destination's rows (DRY_RUN_SCHEMA), the counts by outcome and reason, and the
    ownership counts of each activation destination (what `destination_exports` records)."""
    inputs, sources, leavers = export_members(
        warehouse, audience_settings, profile_partitions, preference_partitions, audience_id, stamp
    )
    parts = []
    excluded = campaign_exclusions(sources, inputs)
    sendable = pc.cast(sources.column("key"), pa.string()).combine_chunks()
    sendable = sendable.filter(pc.invert(pc.is_in(sendable, value_set=excluded.column("key"))))
    before = previous_members(warehouse, audience_id, stamp, CAMPAIGN_DESTINATION)
    parts.append(destination_outcomes(CAMPAIGN_DESTINATION, sources, sendable, excluded, before))
    ownership: dict[str, dict[str, int]] = {}
    for contract in CONTRACTS:
        allowed, left_out = exclude_members(contract, sources, inputs, audience_settings)
        # The same one-member-per-identity rule as the real export: duplicates are excluded.
        unique = drop_duplicate_identities(contract, allowed)
        allowed, left_out = unique.sources, pa.concat_tables([left_out, unique.excluded])
        rejects = apply_contract(contract, allowed).rejects
        owned = destination_ownership(
            warehouse, contract, allowed, sources, leavers, audience_id, stamp
        )
        ownership[contract.destination] = owned.plan.counts()
        excluded = pa.concat_tables(
            [left_out.select(["key", "reason"]), rejects.select(["key", "reason"])]
        )
        parts.append(
            pa.concat_tables(
                [
                    _rows(
                        contract.destination,
                        excluded.column("key").combine_chunks(),
                        "excluded",
                        excluded.column("reason").combine_chunks(),
                    ),
                    pa.table(
                        {
                            "destination": pa.array(
                                [contract.destination] * owned.rows.num_rows, pa.string()
                            ),
                            **{c: owned.rows.column(c) for c in ("key", "outcome", "reason")},
                            "member_hash": owned.rows.column("member_hash"),
                        },
                        schema=DRY_RUN_SCHEMA,
                    ),
                ]
            )
        )
    table = pa.concat_tables(parts).sort_by(
        [("destination", "ascending"), ("outcome", "ascending"), ("key", "ascending")]
    )
    return table, dry_run_counts(table), ownership


def dry_run_counts(table: pa.Table) -> dict[str, dict[str, dict[str, int]]]:
    """destination → outcome → reason → members."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    grouped = table.group_by(["destination", "outcome", "reason"], use_threads=False).aggregate(
        [([], "count_all")]
    )
    rows = grouped.to_pylist()
    for row in sorted(rows, key=lambda r: (r["destination"], r["outcome"], r["reason"])):
        by_outcome = counts.setdefault(row["destination"], {o: {} for o in OUTCOMES})
        by_outcome[row["outcome"]][row["reason"]] = int(row["count_all"])
    return counts


def write_dry_run(
    warehouse: Warehouse, audience_id: str, stamp: str, table: pa.Table, summary: dict[str, Any]
) -> None:
    folder = f"{audience_id}/{stamp}"
    with tempfile.TemporaryDirectory(prefix="rtcdp-dry-run-") as tmp:
        local = Path(tmp) / "members.parquet"
        pq.write_table(table, local, compression="zstd")
        warehouse.put_file(ACTIVATION_DRY_RUN, folder, "members.parquet", local)
    # Written last: the summary says the dry run is complete.
    warehouse.put_json(ACTIVATION_DRY_RUN, folder, "summary.json", summary)


# What the dry run and the destination files both read: the export's members; phones and
# recipients from the Campaign profiles and consents from the preferences, whatever window
# brought them; the suppression list.
MEMBER_SOURCE_DEPS: list[Any] = [
    audience_membership,
    AssetDep(AssetKey("profiles"), partition_mapping=AllPartitionMapping()),
    AssetDep(AssetKey("preferences"), partition_mapping=AllPartitionMapping()),
    AssetKey(SUPPRESSION_LIST),
]


@asset(
    name=ACTIVATION_DRY_RUN,
    partitions_def=audience_partitions,
    group_name=GROUP,
    kinds={"parquet"},
    deps=MEMBER_SOURCE_DEPS,
    description=(
        "Before the Campaign import or any destination file of an audience export is written: "
        "per destination (campaign, email, sms, social_ads), who would be added, kept, removed "
        "or excluded, and why. Counts by reason here; the member-level table in the warehouse. "
        "Destinations marked `review_first` publish only once it is approved."
    ),
)
def activation_dry_run(
    context: AssetExecutionContext, warehouse: Warehouse, audience_settings: AudienceSettings
) -> MaterializeResult:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    table, counts, ownership = build_dry_run(
        warehouse,
        audience_settings,
        context.instance.get_materialized_partitions(AssetKey("profiles")),
        context.instance.get_materialized_partitions(AssetKey("preferences")),
        audience_id,
        stamp,
    )
    review = review_first_destinations(audience_settings)
    summary = {
        "dry_run_id": dry_run_id(audience_id, stamp),
        "audience_id": audience_id,
        "export_stamp": stamp,
        "counts": counts,
        "ownership": ownership,
        "review_first": review,
    }
    write_dry_run(warehouse, audience_id, stamp, table, summary)
    return MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "dry_run_id": summary["dry_run_id"],
            "export_stamp": stamp,
            # Counts only: the members are in the warehouse table.
            "counts": MetadataValue.json(counts),
            # What the destination export will record as its ownership (counts of hashes).
            "ownership": MetadataValue.json(ownership),
            "review_first": MetadataValue.json(review),
            "approval_file": warehouse.path(
                ACTIVATION_DRY_RUN, f"{audience_id}/{stamp}", APPROVAL_FILE
            ),
            "warehouse_path": warehouse.path(
                ACTIVATION_DRY_RUN, f"{audience_id}/{stamp}", "members.parquet"
            ),
        }
    )
