"""Consent and suppression on the destination files: `consent_respected` (blocking, before
publication) and `suppression_list_age` (after each publication).

`consent_respected` re-derives the exclusions from the written files, not from the asset's
counts: each row's identities are looked up, in the file's own form (plain, or SHA-256 of the
normalised value), among the suppressed addresses, and its first identity among the Campaign
recipients (latest profile) with their latest consent. A row fails when one of its identities
is suppressed on its channel, when any recipient holding its first identity said "n" to the
destination's consent (a family phone, a shared address), or, where the destination excludes a
missing consent, when no recipient with a known consent holds it. That consent rule is
`consent_reasons` (rtcdp_assets/aep_to_campaign/destinations/exclusions.py), the function the
export's filter excludes members with, so a file the filter built passes. Rows are never shown,
only counted.
"""

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    MetadataValue,
    multi_asset_check,
)

from asset_checks.check_descriptions import plural
from asset_checks.partition_reconciliation import partition_check_spec
from resources.audience_settings import AudienceSettings
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import audience_partitions
from rtcdp_assets.aep_to_campaign.audience_exports.export_records import export_stamp_for_run
from rtcdp_assets.aep_to_campaign.destinations.contracts import (
    CONTRACTS_BY_NAME,
    Contract,
    sha256_hex,
)
from rtcdp_assets.aep_to_campaign.destinations.exclusions import (
    SUPPRESSION_CHANNEL,
    consent_for,
    consent_reasons,
    normalised_suppression,
)
from rtcdp_assets.aep_to_campaign.destinations.membership_ledger import without_foreign
from rtcdp_assets.aep_to_campaign.destinations.staged_files import (
    DESTINATION_EXPORTS,
    PUBLISHED,
    read_destination_manifest,
    read_ownership,
    read_staged_file,
)
from rtcdp_assets.aep_to_campaign.destinations.suppression_freshness import (
    suppression_freshness,
)
from rtcdp_assets.aep_to_campaign.destinations.value_consents import campaign_people
from rtcdp_assets.shared.consents import latest_preferences
from rtcdp_assets.shared.suppression import load_suppression

EXPORTS_KEY = AssetKey(DESTINATION_EXPORTS)
PUBLISHED_KEY = AssetKey(PUBLISHED)


def _in_file_form(values: pd.Series, hashed: bool) -> pd.Series:
    if not hashed or values.empty:
        return values
    return pd.Series(sha256_hex(pa.array(values, pa.string())).to_pylist(), index=values.index)


def contract_consent_violations(
    contract: Contract,
    staged: pa.Table,
    suppression: pd.DataFrame,
    people: pa.Table,
    preferences: pa.Table,
    audience_settings: AudienceSettings,
) -> dict[str, int]:
    """Rows of a written file that an exclusion should have kept out, by reason. `people`:
    every Campaign recipient's email and phone (`campaign_people`); `preferences`: the latest
    preferences row of each recipient."""
    reason = pd.Series([None] * staged.num_rows, dtype=object)
    for identity in contract.identities:
        values = pd.Series(staged.column(identity.column).to_pylist(), dtype=object)
        channel = suppression[suppression["channel"] == SUPPRESSION_CHANNEL[identity.kind]]
        held = pd.Series(
            channel["reason"].to_numpy(),
            index=_in_file_form(channel["address"], identity.hashed).to_numpy(),
        )
        held = held[~held.index.duplicated()]
        reason = reason.fillna(values.map(held))
    first = pc.cast(staged.column(contract.identities[0].column).combine_chunks(), pa.string())
    # The filter's own rule (exclusions.py), per value of the first identity.
    by_value = consent_reasons(contract, first, people, preferences, audience_settings)
    reason = reason.fillna(pd.Series(by_value.to_pylist(), dtype=object))
    counts = reason.dropna().value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items())}


def consent_respected_result(
    warehouse: Warehouse,
    instance: DagsterInstance,
    audience_settings: AudienceSettings,
    audience_id: str,
    stamp: str,
) -> AssetCheckResult:
    manifest = read_destination_manifest(warehouse, audience_id, stamp)
    suppression = normalised_suppression(
        load_suppression(warehouse, tuple(sorted(set(SUPPRESSION_CHANNEL.values()))))
    ).to_pandas()
    people = campaign_people(warehouse, instance.get_materialized_partitions(AssetKey("profiles")))
    preferences = latest_preferences(
        warehouse, instance.get_materialized_partitions(AssetKey("preferences"))
    )
    ownership = read_ownership(warehouse, audience_id, stamp)
    by_destination: dict[str, Any] = {}
    for f in manifest["files"]:
        contract = CONTRACTS_BY_NAME[f["destination"]]
        consent_name = consent_for(contract, audience_settings)
        written = read_staged_file(warehouse, audience_id, stamp, f["name"])
        # Foreign rows were added elsewhere: their consent is whoever added them's, and we
        # never remove them (membership_ledger), so only our rows are judged.
        staged = without_foreign(contract, written, ownership)
        violations = contract_consent_violations(
            contract,
            staged,
            suppression,
            people,
            preferences,
            audience_settings,
        )
        by_destination[f["destination"]] = {
            "rows": staged.num_rows,
            "kept_foreign": written.num_rows - staged.num_rows,
            "consent": consent_name,
            "missing_consent": audience_settings.activation_consent(
                contract.destination
            ).missing_consent,
            "violations": violations,
        }
    total = sum(sum(d["violations"].values()) for d in by_destination.values())
    return AssetCheckResult(
        asset_key=EXPORTS_KEY,
        check_name="consent_respected",
        passed=total == 0,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"{plural(total, 'row')} of {plural(len(by_destination), 'destination file')} "
            "reach a suppressed address or a member without the destination's consent"
        ),
        metadata={"destinations": MetadataValue.json(by_destination), "violations": total},
    )


CONSENT_SPECS = [
    partition_check_spec(
        "consent_respected",
        EXPORTS_KEY,
        "No row of a destination file belongs to an address the suppression list holds on its "
        "channel (quarantine, denylisted, opted_out), to an identity value any Campaign "
        "recipient holding it said 'n' to for the destination's use (a shared phone or "
        "address), or, where the destination excludes a missing consent, to an identity "
        "without a known consent; re-derived from the written files with the export filter's "
        "own rule. Blocks publication.",
        blocking=True,
        source="pattern: Campaign's quarantine and consents honoured on every exit "
        "(docs/formats.md §c5)",
        limit="0 excluded members in any destination file",
        partitions_def=audience_partitions,
    )
]
AGE_SPECS = [
    partition_check_spec(
        "suppression_list_age",
        PUBLISHED_KEY,
        "How old the suppression list was when the destination files were published, and "
        "whether a non_deliverables or preferences partition had arrived after it (then the "
        "publication should have waited).",
        blocking=False,
        source="pattern: exits filter with the latest quarantine and opt-outs",
        limit="list not older than the newest non_deliverables / preferences partition",
        partitions_def=audience_partitions,
    )
]


@multi_asset_check(specs=CONSENT_SPECS, name="destination_consent_checks")
def destination_consent_checks(
    context: AssetCheckExecutionContext,
    warehouse: Warehouse,
    audience_settings: AudienceSettings,
) -> Iterator[AssetCheckResult]:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    yield consent_respected_result(
        warehouse, context.instance, audience_settings, audience_id, stamp
    )


def suppression_list_age_result(instance: DagsterInstance, audience_id: str) -> AssetCheckResult:
    """Re-derived from the event log at the publication's own event, not from its metadata."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=PUBLISHED_KEY, asset_partitions=[audience_id]), limit=1
    ).records
    if not records:
        return AssetCheckResult(
            asset_key=PUBLISHED_KEY,
            check_name="suppression_list_age",
            passed=True,
            description="Nothing published for this audience yet.",
        )
    published = records[0]
    freshness = suppression_freshness(instance, before_storage_id=published.storage_id)
    age = freshness.age_seconds(published.timestamp)
    return AssetCheckResult(
        asset_key=PUBLISHED_KEY,
        check_name="suppression_list_age",
        passed=not freshness.stale,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"Published with a suppression list {age} s old; "
            + ("stale: " + freshness.reason() if freshness.stale else "up to date")
        ),
        metadata=freshness.metadata(published.timestamp),
    )


@multi_asset_check(specs=AGE_SPECS, name="destination_publication_checks")
def destination_publication_checks(
    context: AssetCheckExecutionContext,
) -> Iterator[AssetCheckResult]:
    yield suppression_list_age_result(context.instance, context.partition_key)
