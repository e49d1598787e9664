"""Guardrail checks of the AEP audience → Campaign import flow.

On `segment_exports`, per audience partition, on the export the run processed:
- `export_reconciliation` (blocking): per file, rows in = typed rows + rejected rows (recounted
  from the stored data), and no file of the export was quarantined as unreadable. A failure
  stops the membership update and the import: a partial export is never applied.
- `audience_field_count` (WARN): at most `max_fields_per_audience` (20) columns per export.
- `activation_cadence` (WARN): a full export arrives daily, an incremental one every 3, 6, 8 or
  12 hours; an interval between consecutive exports shorter than the expected cadence (burst)
  or longer (gap), beyond `cadence_grace_minutes`, is flagged.

On `segment_exports`, across audiences (not partitioned; the sensor also reports it whenever it
registers new audiences, and `audience_guardrails_job` runs it on demand):
- `audience_count` (WARN): at most `max_audiences_campaign_destination` (25) audiences per
  Campaign Managed Services destination, at most `max_audiences_per_sandbox` (4,000) batch
  audiences in the sandbox (every audience registered as a partition or seen in the container).

On `campaign_audience_import`, per audience partition, on the staged file before it is uploaded
(all blocking: a failure keeps the file off the Campaign SFTP server):
- `source_of_truth`: every row of the import file is an existing Campaign recipient, with that
  recipient's external ID and email (Campaign is the source of truth, adobe-formats §f1).
- `suppression`: no address of the email import is quarantined, denylisted or opted out.
- `file_row_limit`: every file the platform writes holds at most `max_rows_per_file` rows.
- `import_reconciliation`: rows in the export files = imported + excluded by reason +
  quarantined by reason, recounted from what is stored.

Each spec carries `guardrail/*` metadata (source, limit) like asset_checks/campaign_exports.py.
The result functions take plain arguments and are unit-tested without Dagster runs.
"""

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from itertools import pairwise
from statistics import median
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    asset_check,
    multi_asset_check,
)

from asset_checks.campaign_to_aep.export_checks import recount_files
from resources.audience_settings import AudienceSettings
from resources.drop_zones import DropZone
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports import (
    AUDIENCE_MEMBERSHIP,
    SEGMENT_EXPORTS,
    audience_partitions,
    export_stamp_for_run,
    group_listing,
    read_export_record,
    read_index,
)
from rtcdp_assets.aep_to_campaign.campaign_audience_import import (
    CAMPAIGN_IMPORT,
    IMPORT_COLUMNS,
    load_email_suppression,
    read_import_manifest,
    recipients_by_id,
)
from rtcdp_assets.shared.governance import usage_policy_result
from rtcdp_assets.shared.masking import mask_email

EXPORTS_KEY = AssetKey(SEGMENT_EXPORTS)
IMPORT_KEY = AssetKey(CAMPAIGN_IMPORT)


def _spec(
    name: str,
    asset: AssetKey,
    description: str,
    *,
    blocking: bool,
    source: str,
    limit: str,
    partitioned: bool = True,
) -> AssetCheckSpec:
    return AssetCheckSpec(
        name=name,
        asset=asset,
        blocking=blocking,
        description=description,
        partitions_def=audience_partitions if partitioned else None,
        metadata={"guardrail/source": source, "guardrail/limit": limit},
    )


# --------------------------------------------------------------------------------------------
# segment_exports
# --------------------------------------------------------------------------------------------
def export_reconciliation_result(
    warehouse: Warehouse, audience_id: str, stamp: str
) -> AssetCheckResult:
    record = read_export_record(warehouse, audience_id, stamp)
    counted, mismatches = recount_files(
        warehouse, SEGMENT_EXPORTS, f"{audience_id}/{stamp}", record["files"], "name"
    )
    return AssetCheckResult(
        asset_key=EXPORTS_KEY,
        check_name="export_reconciliation",
        passed=not mismatches and record["status"] == "processed",
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "export_id": record["export_id"],
            "rows_in": record["rows_in"],
            "rows_out": sum(counted["good"].values()),
            "rows_rejected": sum(counted["rejected"].values()),
            "rejects_by_reason": MetadataValue.json(record["reasons"]),
            "files_quarantined": MetadataValue.json(record["quarantine_reasons"]),
            "mismatches": MetadataValue.json(mismatches),
        },
    )


def field_count_result(record: Mapping[str, Any], settings: AudienceSettings) -> AssetCheckResult:
    columns = record["columns"]
    return AssetCheckResult(
        asset_key=EXPORTS_KEY,
        check_name="audience_field_count",
        passed=len(columns) <= settings.max_fields_per_audience,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "fields": len(columns),
            "limit": settings.max_fields_per_audience,
            "columns": MetadataValue.json(columns),
        },
    )


def cadence_result(
    exports: Mapping[str, Mapping[str, Any]], settings: AudienceSettings, stamp: str
) -> AssetCheckResult:
    """Intervals between the recent exports up to `stamp` against the expected cadence."""
    recent = sorted(s for s in exports if s <= stamp)[-(settings.cadence_lookback_exports + 1) :]
    times = [
        datetime.fromisoformat(exports[s]["export_time"].replace("Z", "+00:00")) for s in recent
    ]
    hours = [(b - a).total_seconds() / 3600 for a, b in pairwise(times)]
    mode = exports[stamp]["mode"] if stamp in exports else "full"
    grace = settings.cadence_grace_minutes / 60
    allowed = sorted(settings.allowed_cadence_hours)
    if not hours:
        expected = None
    elif mode == "full":
        expected = 24.0  # full exports are daily
    else:
        # The configured cadence is not in the files: the allowed one nearest the typical interval.
        typical = median(hours)
        expected = float(min(allowed, key=lambda c: abs(c - typical)))
    bursts = [h for h in hours if expected is not None and h < expected - grace]
    gaps = [h for h in hours if expected is not None and h > expected + grace]
    return AssetCheckResult(
        asset_key=EXPORTS_KEY,
        check_name="activation_cadence",
        passed=not bursts and not gaps,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "export_mode": mode,
            "exports_considered": len(recent),
            "expected_interval_hours": expected if expected is not None else "n/a",
            "intervals_hours": MetadataValue.json([round(h, 2) for h in hours]),
            "bursts": len(bursts),
            "gaps": len(gaps),
            "allowed_cadence_hours": MetadataValue.json(allowed),
        },
    )


EXPORT_SPECS = [
    _spec(
        "export_reconciliation",
        EXPORTS_KEY,
        "Per file of the export: rows in = typed rows + rejected rows, and no file was "
        "quarantined as unreadable (corrupt, truncated, inconsistent split). Blocks the "
        "membership update and the Campaign import of a partial export.",
        blocking=True,
        source="project: nothing lost, counts reconcile; AEP split files (§a1)",
        limit="rows in = rows out + rows rejected; 0 files quarantined",
    ),
    _spec(
        "audience_field_count",
        EXPORTS_KEY,
        "At most `max_fields_per_audience` columns per audience export (WARN).",
        blocking=False,
        source="Campaign Managed Services destination: ≤20 fields per audience "
        "(NmsCdp_Aep_Destinations_Max_Columns, §f3); blueprint ≤20 attributes per segment (§f1)",
        limit="20 fields per audience export (audience_settings.max_fields_per_audience)",
    ),
    _spec(
        "activation_cadence",
        EXPORTS_KEY,
        "Exports arrive daily (full) or every 3, 6, 8 or 12 h (incremental); a burst or a gap "
        "between consecutive exports is flagged (WARN).",
        blocking=False,
        source="AEP destination guardrail: daily full or 3/6/8/12 h incremental (§a5, §e3)",
        limit="interval = cadence ± audience_settings.cadence_grace_minutes",
    ),
]


@multi_asset_check(specs=EXPORT_SPECS, name="segment_exports_checks")
def segment_exports_checks(
    context: AssetCheckExecutionContext,
    warehouse: Warehouse,
    audience_settings: AudienceSettings,
) -> Iterator[AssetCheckResult]:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    yield export_reconciliation_result(warehouse, audience_id, stamp)
    yield field_count_result(read_export_record(warehouse, audience_id, stamp), audience_settings)
    exports = read_index(warehouse, SEGMENT_EXPORTS, audience_id)["exports"]
    yield cadence_result(exports, audience_settings, stamp)


# --------------------------------------------------------------------------------------------
# audience_count (across audiences)
# --------------------------------------------------------------------------------------------
def audience_count_outcome(
    registered: set[str], by_destination: Mapping[str, set[str]], settings: AudienceSettings
) -> tuple[bool, dict[str, Any]]:
    campaign = {
        dest: len(auds)
        for dest, auds in sorted(by_destination.items())
        if settings.destination(dest).kind == "campaign_managed_services"
    }
    over_campaign = {
        d: n for d, n in campaign.items() if n > settings.max_audiences_campaign_destination
    }
    sandbox = len(registered | set().union(*by_destination.values()))
    passed = not over_campaign and sandbox <= settings.max_audiences_per_sandbox
    return passed, {
        "audiences_in_sandbox": sandbox,
        "sandbox_limit": settings.max_audiences_per_sandbox,
        "audiences_per_campaign_destination": MetadataValue.json(campaign),
        "campaign_destination_limit": settings.max_audiences_campaign_destination,
        "campaign_destinations_over_limit": MetadataValue.json(over_campaign),
        "audiences_per_destination": MetadataValue.json(
            {d: len(a) for d, a in sorted(by_destination.items())}
        ),
    }


def audience_count_evaluation(
    registered: set[str], by_destination: Mapping[str, set[str]], settings: AudienceSettings
) -> AssetCheckEvaluation:
    passed, metadata = audience_count_outcome(registered, by_destination, settings)
    return AssetCheckEvaluation(
        asset_key=EXPORTS_KEY,
        check_name="audience_count",
        passed=passed,
        metadata=metadata,
        severity=AssetCheckSeverity.WARN,
    )


AUDIENCE_COUNT_SPEC = _spec(
    "audience_count",
    EXPORTS_KEY,
    "At most 25 audiences per Campaign Managed Services destination and at most 4,000 batch "
    "audiences per sandbox (WARN; both configurable).",
    blocking=False,
    source="Campaign Managed Services: ≤25 audiences (NmsCdp_Aep_Audience_List_Limit, §f3); "
    "AEP: ≤4000 batch audiences per sandbox (§e1)",
    limit="25 per Campaign destination, 4000 per sandbox",
    partitioned=False,
)


@asset_check(
    asset=EXPORTS_KEY,
    name="audience_count",
    description=AUDIENCE_COUNT_SPEC.description,
    blocking=False,
    metadata=dict(AUDIENCE_COUNT_SPEC.metadata),
)
def audience_count(
    context: AssetCheckExecutionContext,
    aep_destination: DropZone,
    audience_settings: AudienceSettings,
) -> AssetCheckResult:
    listing = group_listing(aep_destination.list(audience_settings.destination_folder))
    by_destination: dict[str, set[str]] = {}
    for export in listing.exports.values():
        by_destination.setdefault(export.destination, set()).add(export.audience_id)
    registered = set(context.instance.get_dynamic_partitions(audience_partitions.name))
    passed, metadata = audience_count_outcome(registered, by_destination, audience_settings)
    return AssetCheckResult(passed=passed, severity=AssetCheckSeverity.WARN, metadata=metadata)


# --------------------------------------------------------------------------------------------
# campaign_audience_import (on the staged file, before upload)
# --------------------------------------------------------------------------------------------
def read_staged_rows(warehouse: Warehouse, audience_id: str, stamp: str) -> list[pa.Table]:
    manifest = read_import_manifest(warehouse, audience_id, stamp)
    tables = []
    for f in manifest["files"]:
        with warehouse.local_copy(CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", f["name"]) as local:
            if local is None:
                tables.append(pa.table({c: pa.array([], pa.string()) for c in IMPORT_COLUMNS}))
                continue
            tables.append(
                pacsv.read_csv(
                    local,
                    convert_options=pacsv.ConvertOptions(
                        column_types=dict.fromkeys(IMPORT_COLUMNS, pa.string()),
                        strings_can_be_null=False,
                    ),
                )
            )
    return tables


def _staged_frame(staged: Sequence[pa.Table]) -> pd.DataFrame:
    if not staged:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in IMPORT_COLUMNS})
    return pd.concat([t.to_pandas() for t in staged], ignore_index=True)


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
    examples = [
        f"recipient_id={r.recipient_id} email={mask_email(r.email or '')}"
        for r in joined[bad].head(10).itertuples()
    ]
    return AssetCheckResult(
        asset_key=IMPORT_KEY,
        check_name="source_of_truth",
        passed=not bad.any(),
        severity=AssetCheckSeverity.ERROR,
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
        metadata={
            "rows_checked": len(rows),
            "suppressed_addresses": int(hit.sum()),
            "by_reason": MetadataValue.json(
                {k: int(v) for k, v in sorted(reasons[hit].value_counts().items())}
            ),
            "examples": MetadataValue.json([mask_email(e) for e in rows["email"][hit].head(10)]),
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
    _spec(
        "source_of_truth",
        IMPORT_KEY,
        "Every row of the import file is an existing Campaign recipient, with its own external "
        "ID and email: no profile can be created from an AEP audience. Blocks the upload.",
        blocking=True,
        source="blueprint: Campaign is the source of truth; no profile may be created from an "
        "AEP audience (§f1)",
        limit="0 members without a Campaign profile",
    ),
    _spec(
        "suppression",
        IMPORT_KEY,
        "No address of the email import is quarantined, denylisted or opted out "
        "(suppression_list). Blocks the upload.",
        blocking=True,
        source="Campaign quarantine and opt-outs (§b5, preferences); AEP Email Targeting (§e5)",
        limit="0 quarantined or opted-out addresses",
    ),
    _spec(
        "file_row_limit",
        IMPORT_KEY,
        "Every file the platform writes holds at most `max_rows_per_file` rows. Blocks the upload.",
        blocking=True,
        source="AEP batch files: 5,000,000 rows per file (§a1, §e3)",
        limit="5,000,000 rows per file (audience_settings.max_rows_per_file)",
    ),
    _spec(
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
    yield source_of_truth_result(staged, recipients, audience_settings.join_identity)
    yield suppression_result(staged, load_email_suppression(warehouse))
    yield file_row_limit_result(
        staged, read_import_manifest(warehouse, audience_id, stamp), audience_settings
    )
    yield import_reconciliation_result(warehouse, staged, audience_id, stamp)


@asset_check(
    asset=IMPORT_KEY,
    name="data_usage_policy",
    blocking=True,
    partitions_def=audience_partitions,
    description=(
        "The data-usage policies of asset_checks/governance.yaml allow exporting every field of "
        "the import file for the destination's marketing actions; each violation names the "
        "field, label, policy and marketing action. Blocks the upload."
    ),
    metadata={
        "guardrail/source": "pattern: data-usage labels enforced on destinations (§e4, §e5)",
        "guardrail/limit": "0 policy violations",
    },
)
def campaign_import_usage_policy() -> AssetCheckResult:
    return usage_policy_result(CAMPAIGN_IMPORT, IMPORT_COLUMNS)


PARTITIONED_AUDIENCE_CHECKS = [
    segment_exports_checks,
    campaign_audience_import_checks,
    campaign_import_usage_policy,
]
UNPARTITIONED_AUDIENCE_CHECKS = [audience_count]
