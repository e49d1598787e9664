"""Checks of `campaign_audience_import`, per audience partition, on the staged file before it is
uploaded (all blocking).
"""

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    asset_check,
    multi_asset_check,
)

from asset_checks.aep_to_campaign.audience_checks.guardrail_spec import guardrail_spec
from asset_checks.check_descriptions import count, of, plural
from asset_checks.governance_checks import usage_policy_result
from resources.audience_settings import AudienceSettings
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import (
    AUDIENCE_MEMBERSHIP,
    SEGMENT_EXPORTS,
    audience_partitions,
)
from rtcdp_assets.aep_to_campaign.audience_exports.export_records import (
    export_stamp_for_run,
    read_export_record,
    read_index,
)
from rtcdp_assets.aep_to_campaign.campaign_audience_import.import_file import (
    CAMPAIGN_IMPORT,
    IMPORT_COLUMNS,
    read_import_manifest,
    read_staged_rows,
)
from rtcdp_assets.aep_to_campaign.campaign_audience_import.recipient_matching import (
    load_email_suppression,
    recipients_by_id,
)
from rtcdp_assets.shared.masking import mask_value

IMPORT_KEY = AssetKey(CAMPAIGN_IMPORT)


def _staged_frame(staged: Sequence[pa.Table]) -> pd.DataFrame:
    if not staged:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in IMPORT_COLUMNS})
    return pd.concat([t.to_pandas() for t in staged], ignore_index=True)


def _mismatch(row: Any) -> str:
    if pd.isna(row.external_id_campaign):
        return "(no such Campaign recipient)"
    if row.external_id != row.external_id_campaign:
        return "(external_id differs from Campaign's)"
    return "(email differs from Campaign's)"


def source_of_truth_result(
    staged: Sequence[pa.Table], recipients: pd.DataFrame, join_identity: str
) -> AssetCheckResult:
    """Every row is a Campaign recipient that exists, under its own external ID and email."""
    rows = _staged_frame(staged)
    campaign = recipients.set_index("recipient_id")[["external_id", "email"]].fillna("")
    joined = rows.merge(
        campaign, left_on="recipient_id", right_index=True, how="left", suffixes=("", "_campaign")
    )
    bad = (
        joined["external_id_campaign"].isna()
        | (joined["external_id"] != joined["external_id_campaign"])
        | (joined["email"] != joined["email_campaign"])
    )
    # Recipient IDs and emails are personal: an example says what differs, not the values.
    examples = [
        f"recipient_id={mask_value(r.recipient_id)} email={mask_value(r.email)} {_mismatch(r)}"
        for r in joined[bad].head(10).itertuples()
    ]
    return AssetCheckResult(
        asset_key=IMPORT_KEY,
        check_name="source_of_truth",
        passed=not bad.any(),
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"{of(int(bad.sum()), len(rows), 'rows')} match no Campaign recipient with the same "
            f"external ID and email (joined on {join_identity or 'recipient ID'})"
        ),
        metadata={
            "rows_checked": len(rows),
            "rows_without_campaign_profile": int(bad.sum()),
            "join_identity": join_identity,
            "examples": MetadataValue.json(examples),
        },
    )


def suppression_result(staged: Sequence[pa.Table], suppressed: pd.Series) -> AssetCheckResult:
    rows = _staged_frame(staged)
    reasons = rows["email"].str.lower().map(suppressed)
    hit = reasons.notna()
    return AssetCheckResult(
        asset_key=IMPORT_KEY,
        check_name="suppression",
        passed=not hit.any(),
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"{of(int(hit.sum()), len(rows), 'addresses')} are quarantined, denylisted or opted out"
        ),
        metadata={
            "rows_checked": len(rows),
            "suppressed_addresses": int(hit.sum()),
            "by_reason": MetadataValue.json(
                {k: int(v) for k, v in sorted(reasons[hit].value_counts().items())}
            ),
            "examples": MetadataValue.json(
                [
                    f"{mask_value(e)} ({r})"
                    for e, r in zip(rows["email"][hit].head(10), reasons[hit].head(10), strict=True)
                ]
            ),
        },
    )


def file_row_limit_result(
    staged: Sequence[pa.Table], manifest: Mapping[str, Any], settings: AudienceSettings
) -> AssetCheckResult:
    counts = {f["name"]: t.num_rows for f, t in zip(manifest["files"], staged, strict=True)}
    over = {n: c for n, c in counts.items() if c > settings.max_rows_per_file}
    stated = {f["name"]: f["rows"] for f in manifest["files"]}
    return AssetCheckResult(
        asset_key=IMPORT_KEY,
        check_name="file_row_limit",
        passed=not over and stated == counts,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"{of(len(over), len(counts), 'files')} over {count(settings.max_rows_per_file)} rows"
            + ("" if stated == counts else "; the manifest's row counts differ from the files")
        ),
        metadata={
            "rows_per_file": MetadataValue.json(counts),
            "limit": settings.max_rows_per_file,
            "files_over_limit": MetadataValue.json(over),
            "manifest_matches_files": stated == counts,
        },
    )


def _in_export(warehouse: Warehouse, dataset: str, partition: str, name: str) -> tuple[int, int]:
    """(rows, rows with in_export) of one stored table."""
    with warehouse.local_copy(dataset, partition, name) as local:
        if local is None:
            return 0, 0
        column = pq.read_table(local, columns=["in_export"]).column("in_export")
    return len(column), int(pc.sum(pc.fill_null(column, False).cast(pa.int64())).as_py() or 0)


def import_reconciliation_result(
    warehouse: Warehouse, staged: Sequence[pa.Table], audience_id: str, stamp: str
) -> AssetCheckResult:
    record = read_export_record(warehouse, audience_id, stamp)
    membership = read_index(warehouse, AUDIENCE_MEMBERSHIP, audience_id)["exports"].get(stamp, {})
    rejected = 0
    with warehouse.local_copy(
        SEGMENT_EXPORTS, f"{audience_id}/{stamp}", "rejects.parquet"
    ) as local:
        if local is not None:
            rejected = pq.ParquetFile(local).metadata.num_rows
    members, members_in = _in_export(
        warehouse, AUDIENCE_MEMBERSHIP, f"{audience_id}/{stamp}", "members.parquet"
    )
    excluded, excluded_in = _in_export(
        warehouse, CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", "excluded.parquet"
    )
    quarantined, quarantined_in = _in_export(
        warehouse, CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", "quarantine.parquet"
    )
    file_rows = sum(t.num_rows for t in staged)
    duplicates = membership.get("duplicate_member", 0)
    exited_non_member = membership.get("exited_non_member", 0)
    imported_in = members_in - excluded_in - quarantined_in
    accounted = (
        imported_in + excluded_in + duplicates + exited_non_member + quarantined_in + rejected
    )
    balanced = accounted == record["rows_in"] and file_rows == members - excluded - quarantined
    return AssetCheckResult(
        asset_key=IMPORT_KEY,
        check_name="import_reconciliation",
        passed=balanced,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"{count(record['rows_in'])} rows in, {count(accounted)} accounted for: "
            f"{count(imported_in)} imported + "
            f"{count(excluded_in + duplicates + exited_non_member)} excluded + "
            f"{count(quarantined_in + rejected)} quarantined; the file holds "
            f"{plural(file_rows, 'row')} of {count(members - excluded - quarantined)} expected"
        ),
        metadata={
            "rows_in": record["rows_in"],
            "imported": imported_in,
            "excluded": excluded_in + duplicates + exited_non_member,
            "quarantined": quarantined_in + rejected,
            "accounted": accounted,
            "file_rows": file_rows,
            "file_rows_expected": members - excluded - quarantined,
        },
    )


IMPORT_SPECS = [
    guardrail_spec(
        "source_of_truth",
        IMPORT_KEY,
        "Every row of the import file is an existing Campaign recipient, with its own external "
        "ID and email: no profile can be created from an AEP audience. Blocks the upload.",
        blocking=True,
        source="blueprint: Campaign is the source of truth; no profile may be created from an "
        "AEP audience (§f1)",
        limit="0 members without a Campaign profile",
    ),
    guardrail_spec(
        "suppression",
        IMPORT_KEY,
        "No address of the email import is quarantined, denylisted or opted out "
        "(suppression_list). Blocks the upload.",
        blocking=True,
        source="Campaign quarantine and opt-outs (§b5, preferences); AEP Email Targeting (§e5)",
        limit="0 quarantined or opted-out addresses",
    ),
    guardrail_spec(
        "file_row_limit",
        IMPORT_KEY,
        "Every file the platform writes holds at most `max_rows_per_file` rows. Blocks the upload.",
        blocking=True,
        source="AEP batch files: 5,000,000 rows per file (§a1, §e3)",
        limit="5,000,000 rows per file (audience_settings.max_rows_per_file)",
    ),
    guardrail_spec(
        "import_reconciliation",
        IMPORT_KEY,
        "Rows in the export files = imported + excluded by reason + quarantined by reason, and "
        "the file holds exactly the members neither excluded nor quarantined. Blocks the upload.",
        blocking=True,
        source="project: nothing lost, counts reconcile",
        limit="rows in = imported + excluded + quarantined",
    ),
]


@multi_asset_check(specs=IMPORT_SPECS, name="campaign_audience_import_checks")
def campaign_audience_import_checks(
    context: AssetCheckExecutionContext,
    warehouse: Warehouse,
    audience_settings: AudienceSettings,
) -> Iterator[AssetCheckResult]:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    staged = read_staged_rows(warehouse, audience_id, stamp)
    # Only the recipients the file names: memory follows the import, not all of Campaign.
    recipients = recipients_by_id(
        warehouse,
        context.instance.get_materialized_partitions(AssetKey("profiles")),
        pa.chunked_array([t.column("recipient_id") for t in staged], type=pa.string()),
    )
    manifest = read_import_manifest(warehouse, audience_id, stamp)
    yield source_of_truth_result(staged, recipients, manifest.get("join_identity", ""))
    yield suppression_result(staged, load_email_suppression(warehouse))
    yield file_row_limit_result(staged, manifest, audience_settings)
    yield import_reconciliation_result(warehouse, staged, audience_id, stamp)


@asset_check(
    asset=IMPORT_KEY,
    name="data_usage_policy",
    blocking=True,
    partitions_def=audience_partitions,
    description=(
        "The data-usage policies of rtcdp_assets/shared/governance.yaml allow exporting every "
        "field of the import file for the destination's marketing actions; each violation names "
        "the field, label, policy and marketing action. Blocks the upload."
    ),
    metadata={
        "guardrail/source": "pattern: data-usage labels enforced on destinations (§e4, §e5)",
        "guardrail/limit": "0 policy violations",
    },
)
def campaign_import_usage_policy() -> AssetCheckResult:
    return usage_policy_result(CAMPAIGN_IMPORT, IMPORT_COLUMNS)
