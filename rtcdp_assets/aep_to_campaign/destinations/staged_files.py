"""The staged destination files of one export: built from the members, and read back."""

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from dagster import Failure

from resources.audience_settings import AudienceSettings
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import AUDIENCE_MEMBERSHIP
from rtcdp_assets.aep_to_campaign.audience_exports.export_records import read_index
from rtcdp_assets.aep_to_campaign.audience_exports.join_identities import recorded_identity
from rtcdp_assets.aep_to_campaign.audience_exports.membership import read_members
from rtcdp_assets.aep_to_campaign.campaign_audience_import.csv_writer import csv_bytes
from rtcdp_assets.aep_to_campaign.destinations.contracts import (
    CONTRACTS,
    ContractResult,
    apply_contract,
    count_by_reason,
)
from rtcdp_assets.aep_to_campaign.destinations.duplicates import drop_duplicate_identities
from rtcdp_assets.aep_to_campaign.destinations.exclusions import (
    exclude_members,
    load_exclusion_inputs,
)
from rtcdp_assets.aep_to_campaign.destinations.member_sources import (
    campaign_recipients,
    member_sources,
)
from rtcdp_assets.aep_to_campaign.destinations.membership_ledger import (
    OWNERSHIP_SCHEMA,
    OwnershipPlan,
    plan_ownership,
    previous_ledger,
    read_destination_state,
    write_ledger,
)

DESTINATION_EXPORTS = "destination_exports"
PUBLISHED = "destination_exports_published"
LANDING_FOLDER = "destinations"
OWNERSHIP = "ownership.parquet"


def file_name(destination: str, audience_id: str, stamp: str) -> str:
    return f"{destination}_{audience_id}_{stamp}.csv"


def export_members(
    warehouse: Warehouse,
    audience_settings: AudienceSettings,
    profile_partitions: set[str],
    preference_partitions: set[str],
    audience_id: str,
    stamp: str,
) -> tuple[Any, pa.Table, pa.Table]:
    """What both the dry run and the real export start from: the suppression and consent inputs,
    the export's current members and its leavers, each joined to their Campaign recipient."""
    applied = read_index(warehouse, AUDIENCE_MEMBERSHIP, audience_id)["exports"].get(stamp)
    if applied is None:
        raise Failure(
            description=f"Export {stamp} of audience {audience_id} is not applied to the "
            "membership yet; materialize audience_membership for it first."
        )
    identity = recorded_identity(applied, audience_settings)
    exclusion_inputs = load_exclusion_inputs(warehouse, profile_partitions, preference_partitions)
    members = read_members(warehouse, audience_id, stamp)
    recipients = campaign_recipients(warehouse, profile_partitions, identity)
    sources = member_sources(members, recipients)
    leavers = member_sources(members, recipients, leaving=True)
    return exclusion_inputs, sources, leavers


def build_destination_exports(
    warehouse: Warehouse,
    audience_settings: AudienceSettings,
    profile_partitions: set[str],
    preference_partitions: set[str],
    audience_id: str,
    stamp: str,
) -> dict[str, Any]:
    """The staged files of one export: members filtered by `exclude_members` (suppression and
    consent) and `drop_duplicate_identities` (one member per identity value), then split by each
    destination's contract."""
    exclusion_inputs, sources, leavers = export_members(
        warehouse, audience_settings, profile_partitions, preference_partitions, audience_id, stamp
    )
    folder = f"{audience_id}/{stamp}"
    files, counts, rejects, excluded = [], {}, [], []
    plans: dict[str, OwnershipPlan] = {}
    with tempfile.TemporaryDirectory(prefix="rtcdp-destinations-") as tmp:
        for contract in CONTRACTS:
            allowed, left_out = exclude_members(
                contract, sources, exclusion_inputs, audience_settings
            )
            # One member per identity value; the others are excluded as duplicates.
            unique = drop_duplicate_identities(contract, allowed)
            allowed = unique.sources
            left_out = pa.concat_tables([left_out, unique.excluded])
            result = apply_contract(contract, allowed)
            plan = plans[contract.destination] = plan_ownership(
                contract,
                result.exported,
                previous_ledger(warehouse, contract.destination, audience_id, stamp),
                read_destination_state(warehouse, contract, audience_id),
                apply_contract(contract, leavers).exported,
                stamp,
            )
            name = file_name(contract.destination, audience_id, stamp)
            data = csv_bytes(plan.file_rows, contract.columns)
            local = Path(tmp) / name
            local.write_bytes(data)
            warehouse.put_file(DESTINATION_EXPORTS, folder, name, local)
            files.append(
                {
                    "destination": contract.destination,
                    "name": name,
                    "rows": plan.file_rows.num_rows,
                    "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "columns": list(contract.columns),
                    "namespaces": [i.namespace for i in contract.identities],
                }
            )
            counts[contract.destination] = {
                **reconcile_destination(result, sources, left_out),
                "cleared_duplicates": unique.cleared,
                "ownership": plan.counts(),
            }
            rejects.append(result.rejects)
            excluded.append(left_out)
        ownership = [p.changes for p in plans.values()]
        stored = (("rejects.parquet", rejects), ("excluded.parquet", excluded))
        for name, parts in (*stored, (OWNERSHIP, ownership)):
            local = Path(tmp) / name
            pq.write_table(pa.concat_tables(parts), local, compression="zstd")
            warehouse.put_file(DESTINATION_EXPORTS, folder, name, local)
    manifest = {
        "audience_id": audience_id,
        "export_stamp": stamp,
        "members": sources.num_rows,
        "files": files,
        "counts": counts,
        "excluded_by_reason": {d: c["excluded"] for d, c in counts.items()},
        "ownership": {d: c["ownership"] for d, c in counts.items()},
    }
    # Ledgers once every staged file is written; a re-run of this stamp starts from the same
    # earlier ledger, so it writes the same ledger again.
    for destination, plan in plans.items():
        write_ledger(warehouse, destination, audience_id, stamp, plan.ledger)
    # Written last: the manifest is what says the staged files are complete.
    warehouse.put_json(DESTINATION_EXPORTS, folder, "manifest.json", manifest)
    return manifest


def reconcile_destination(
    result: ContractResult, sources: pa.Table, excluded: pa.Table
) -> dict[str, Any]:
    """members in = exported + rejected by reason + excluded by reason, per destination."""
    rejected = result.rejected_by_reason
    left_out = count_by_reason(excluded)
    return {
        "rows_in": sources.num_rows,
        "exported": result.exported.num_rows,
        "rejected": rejected,
        "excluded": left_out,
        "balanced": sources.num_rows
        == result.exported.num_rows + sum(rejected.values()) + sum(left_out.values()),
    }


def read_destination_manifest(warehouse: Warehouse, audience_id: str, stamp: str) -> dict[str, Any]:
    manifest = warehouse.get_json(DESTINATION_EXPORTS, f"{audience_id}/{stamp}", "manifest.json")
    if manifest is None:
        raise Failure(description=f"No staged destination files for {audience_id} {stamp}.")
    return manifest


def read_staged_file(warehouse: Warehouse, audience_id: str, stamp: str, name: str) -> pa.Table:
    with warehouse.local_copy(DESTINATION_EXPORTS, f"{audience_id}/{stamp}", name) as local:
        if local is None:
            raise Failure(description=f"Staged destination file {name} is missing.")
        # Every value as text: an identity must never be reinterpreted as a number.
        with local.open("rb") as fh:
            header = fh.readline().decode().rstrip("\n").split(",")
        options = pacsv.ConvertOptions(
            column_types={c: pa.string() for c in header},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        return pacsv.read_csv(local, convert_options=options)


def read_ownership(warehouse: Warehouse, audience_id: str, stamp: str) -> pa.Table:
    """The ownership changes of an export (OWNERSHIP_SCHEMA; empty for an export built before
    the ledger existed)."""
    with warehouse.local_copy(DESTINATION_EXPORTS, f"{audience_id}/{stamp}", OWNERSHIP) as local:
        if local is None:
            return OWNERSHIP_SCHEMA.empty_table()
        return pq.read_table(local).cast(OWNERSHIP_SCHEMA)
