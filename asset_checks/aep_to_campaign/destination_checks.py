"""Checks of `destination_exports` (blocking: a failure keeps the files off the landing zone)."""

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    multi_asset_check,
)

from asset_checks.check_descriptions import count, of, plural
from asset_checks.governance_checks import usage_policy_result
from asset_checks.partition_reconciliation import partition_check_spec
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import audience_partitions
from rtcdp_assets.aep_to_campaign.audience_exports.export_records import export_stamp_for_run
from rtcdp_assets.aep_to_campaign.destinations.contracts import (
    CONTRACTS,
    CONTRACTS_BY_NAME,
    GOVERNANCE_PREFIX,
    SHA256_RE,
    Contract,
    count_by_reason,
    normalise_email,
    normalise_phone,
)
from rtcdp_assets.aep_to_campaign.destinations.duplicates import DUPLICATE_IDENTITY
from rtcdp_assets.aep_to_campaign.destinations.staged_files import (
    DESTINATION_EXPORTS,
    read_destination_manifest,
    read_ownership,
    read_staged_file,
)

EXPORTS_KEY = AssetKey(DESTINATION_EXPORTS)


def identity_contract_violations(contract: Contract, staged: pa.Table) -> dict[str, int]:
    """Rows of a staged file breaking its contract, by reason (recomputed from the file)."""
    violations: dict[str, int] = {}

    def add(reason: str, mask: pa.Array) -> None:
        n = int(pc.sum(pc.fill_null(mask, False)).as_py() or 0)
        if n:
            violations[reason] = violations.get(reason, 0) + n

    if tuple(staged.column_names) != contract.columns:
        violations[f"wrong_columns:{','.join(staged.column_names)}"] = max(staged.num_rows, 1)
        return violations
    for identity in contract.identities:
        values = staged.column(identity.column).combine_chunks()
        missing = pc.equal(values, "")
        if identity.required:
            add(f"missing_identity:{identity.namespace}", missing)
        present = pc.invert(missing)
        if identity.hashed:
            add(
                "wrong_hash",
                pc.and_(present, pc.invert(pc.match_substring_regex(values, SHA256_RE))),
            )
            # A plain identity on a hashed-only destination is the one mistake that cannot be
            # taken back once the file is out.
            _, plain_email = normalise_email(values)
            _, plain_phone = normalise_phone(values)
            add("plain_identity", pc.and_(present, pc.or_(plain_email, plain_phone)))
        else:
            normalise = normalise_email if identity.kind == "email" else normalise_phone
            normalised, valid = normalise(values)
            reason = "invalid_email" if identity.kind == "email" else "invalid_phone"
            add(reason, pc.and_(present, pc.invert(valid)))
            add(
                f"not_normalised:{identity.namespace}",
                pc.and_(valid, pc.not_equal(values, normalised)),
            )
    return violations


def kept_foreign_rows(warehouse: Warehouse, audience_id: str, stamp: str) -> dict[str, int]:
    """Per destination, the foreign rows its file keeps (none before the ledger existed)."""
    changes = read_ownership(warehouse, audience_id, stamp)
    kept = changes.filter(pc.equal(changes.column("change"), "kept_foreign"))
    return dict(Counter(kept.column("destination").to_pylist()))


def identity_contract_result(
    warehouse: Warehouse, audience_id: str, stamp: str
) -> AssetCheckResult:
    manifest = read_destination_manifest(warehouse, audience_id, stamp)
    stored_rejects = warehouse.read_table(
        DESTINATION_EXPORTS, f"{audience_id}/{stamp}", "rejects.parquet"
    )
    stored_excluded = warehouse.read_table(
        DESTINATION_EXPORTS, f"{audience_id}/{stamp}", "excluded.parquet"
    )
    kept_foreign = kept_foreign_rows(warehouse, audience_id, stamp)
    by_destination: dict[str, Any] = {}
    passed = True
    for f in manifest["files"]:
        contract = CONTRACTS_BY_NAME[f["destination"]]
        staged = read_staged_file(warehouse, audience_id, stamp, f["name"])
        violations = identity_contract_violations(contract, staged)
        rejects = stored_rejects.filter(
            pc.equal(stored_rejects.column("destination"), f["destination"])
        )
        rejected = count_by_reason(rejects)
        excluded = count_by_reason(
            stored_excluded.filter(
                pc.equal(stored_excluded.column("destination"), f["destination"])
            )
        )
        # Recounted from what is stored, not taken from the manifest. Foreign rows the
        # destination holds are in the file but are not our members.
        foreign = kept_foreign.get(f["destination"], 0)
        balanced = manifest["members"] == staged.num_rows - foreign + sum(rejected.values()) + sum(
            excluded.values()
        )
        passed = passed and not violations and balanced
        by_destination[f["destination"]] = {
            "rows_in": manifest["members"],
            "exported": staged.num_rows - foreign,
            "kept_foreign": foreign,
            "rejected_by_reason": rejected,
            "excluded_by_reason": excluded,
            "balanced": balanced,
            "violations": violations,
        }
    return AssetCheckResult(
        asset_key=EXPORTS_KEY,
        check_name="identity_contract",
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        description=_contract_description(by_destination),
        metadata={
            "destinations": MetadataValue.json(by_destination),
            "wrong_hash_rejected": sum(
                d["rejected_by_reason"].get("wrong_hash", 0) for d in by_destination.values()
            ),
        },
    )


def _contract_description(by_destination: dict[str, Any]) -> str:
    violations = sum(sum(d["violations"].values()) for d in by_destination.values())
    unbalanced = sum(not d["balanced"] for d in by_destination.values())
    return (
        f"{plural(len(by_destination), 'destination file')}: {count(violations)} contract "
        f"violations, {of(unbalanced, len(by_destination), 'files')} whose rows do not balance"
    )


def duplicate_identity_values(contract: Contract, staged: pa.Table) -> dict[str, int]:
    """Per namespace, the rows of a written file repeating a non-empty value an earlier row
    of the file holds (recomputed from the file; foreign rows included: the destination
    receives them too)."""
    duplicates = {}
    for identity in contract.identities:
        if identity.column not in staged.column_names:
            continue  # wrong columns: identity_contract says so
        values = staged.column(identity.column).combine_chunks()
        present = values.filter(pc.not_equal(values, ""))
        n = len(present) - len(pc.unique(present))
        if n:
            duplicates[identity.namespace] = n
    return duplicates


def unique_identities_result(
    warehouse: Warehouse, audience_id: str, stamp: str
) -> AssetCheckResult:
    manifest = read_destination_manifest(warehouse, audience_id, stamp)
    by_destination = {}
    for f in manifest["files"]:
        staged = read_staged_file(warehouse, audience_id, stamp, f["name"])
        by_destination[f["destination"]] = {
            "rows": staged.num_rows,
            "duplicates": duplicate_identity_values(CONTRACTS_BY_NAME[f["destination"]], staged),
            "excluded_as_duplicates": manifest["excluded_by_reason"]
            .get(f["destination"], {})
            .get(DUPLICATE_IDENTITY, 0),
        }
    total = sum(sum(d["duplicates"].values()) for d in by_destination.values())
    return AssetCheckResult(
        asset_key=EXPORTS_KEY,
        check_name="unique_identities",
        passed=total == 0,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"{plural(total, 'row')} of {plural(len(by_destination), 'destination file')} "
            "repeat an identity value another row already carries"
        ),
        # Counts only, never a value.
        metadata={"destinations": MetadataValue.json(by_destination), "duplicates": total},
    )


def data_usage_policy_result() -> AssetCheckResult:
    """One blocking result over every destination: governance evaluates the member fields each
    file carries, hashed or not (a label stays with the data through hashing)."""
    per_destination = {}
    passed = True
    for contract in CONTRACTS:
        result = usage_policy_result(f"{GOVERNANCE_PREFIX}{contract.destination}", contract.sources)
        passed = passed and result.passed
        per_destination[contract.destination] = {
            k: getattr(v, "value", v) for k, v in result.metadata.items()
        }
    violations = [v for d in per_destination.values() for v in d["violations"]]
    return AssetCheckResult(
        asset_key=EXPORTS_KEY,
        check_name="data_usage_policy",
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"{plural(len(violations), 'policy violation')} over "
            f"{plural(len(per_destination), 'destination')}"
        ),
        metadata={
            "destinations": MetadataValue.json(per_destination),
            "violations": MetadataValue.json(violations),
        },
    )


CHECK_SPECS = [
    AssetCheckSpec(
        name="identity_contract",
        asset=EXPORTS_KEY,
        blocking=True,
        partitions_def=audience_partitions,
        description=(
            "Every row of every destination file carries each required namespace of its "
            "contract, normalised (email trimmed + lower-case, phone E.164) or hashed (64 "
            "lower-case hex); no plain email or phone in a hashed-only file; rows in = exported "
            "+ rejected by reason + excluded by reason per destination. Blocks publication."
        ),
        metadata={
            "guardrail/source": "AEP identity namespaces and hashing (docs/formats.md §d)",
            "guardrail/limit": "0 contract violations, 0 plain identities on social_ads",
        },
    ),
    partition_check_spec(
        "unique_identities",
        EXPORTS_KEY,
        "No destination file holds an identity value twice (email lower-cased, phone E.164, "
        "the hash for hashed identities): members sharing one are sent once, the smallest "
        "member key, the others excluded as `duplicate_identity`; recounted from the written "
        "files. Blocks publication.",
        blocking=True,
        source="pattern: one row per identity in an activation file (a shared phone texted "
        "once, an ad audience counted once)",
        limit="0 repeated identity values per destination file",
        partitions_def=audience_partitions,
    ),
    AssetCheckSpec(
        name="data_usage_policy",
        asset=EXPORTS_KEY,
        blocking=True,
        partitions_def=audience_partitions,
        description=(
            "The data-usage policies of rtcdp_assets/shared/governance.yaml allow each destination "
            "(`destination_<name>`) to receive the member fields its file carries. Blocks "
            "publication."
        ),
        metadata={
            "guardrail/source": "pattern: data-usage labels enforced on destinations (§e4, §e5)",
            "guardrail/limit": "0 policy violations",
        },
    ),
]


@multi_asset_check(specs=CHECK_SPECS, name="destination_exports_checks")
def destination_exports_checks(
    context: AssetCheckExecutionContext, warehouse: Warehouse
) -> Iterator[AssetCheckResult]:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    yield identity_contract_result(warehouse, audience_id, stamp)
    yield unique_identities_result(warehouse, audience_id, stamp)
    yield data_usage_policy_result()
