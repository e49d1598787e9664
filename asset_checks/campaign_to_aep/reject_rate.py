"""`reject_rate` on each Campaign dataset's typed asset: the share of a partition's rows that
were rejected, so that a systematic rejection (a whole channel, a changed export layout) never
passes with every other check green.

Passes up to `settings.reject_rate_warn_above` (1 %), fails with WARN up to
`settings.reject_rate_block_above` (20 %), and with ERROR above it; the spec is blocking, so an
ERROR stops the publication. The counts come from the partition's manifest (which
`reconciliation` holds against the stored Parquet): reason codes and counts, never a value.

A file quarantined whole counts with all its rows when its manifest entry knows how many
(`rows_in`); an unreadable file's rows are unknown, so it is listed apart and left to
`reconciliation`, which already blocks on it.
"""

from collections import Counter
from typing import Any

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from asset_checks.check_descriptions import of, share
from asset_checks.partition_reconciliation import partition_check_spec
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse

REJECT_RATE_CHECK = "reject_rate"
TOP_REASONS = 10


def reject_rate_spec(key: AssetKey) -> AssetCheckSpec:
    return partition_check_spec(
        REJECT_RATE_CHECK,
        key,
        "Share of the partition's rows rejected (with the top reasons): WARN above "
        "settings.reject_rate_warn_above, ERROR above settings.reject_rate_block_above, which "
        "blocks publication. A systematic rejection never passes silently.",
        blocking=True,
        source="project: rejected rows are counted and a systematic rejection stops publication",
        limit="WARN above 1 %, ERROR (blocking) above 20 % of rows (settings)",
    )


def reject_counts(manifest: dict[str, Any]) -> tuple[int, Counter[str], list[str]]:
    """(rows seen, rejects by reason, files quarantined whole whose row count is unknown)."""
    reasons: Counter[str] = Counter(manifest.get("reasons") or {})
    rows = int(manifest.get("rows_out") or 0) + int(manifest.get("rows_rejected") or 0)
    unknown: list[str] = []
    for entry in manifest.get("files", []):
        if entry.get("status") != "quarantined":
            continue
        if isinstance(entry.get("rows_in"), int):
            reasons[entry["reason"]] += entry["rows_in"]
            rows += entry["rows_in"]
        else:
            unknown.append(f"{entry['source_file']}: {entry['reason']}")
    return rows, reasons, unknown


def reject_rate_result(
    dataset: str, warehouse: Warehouse, settings: PipelineSettings, pk: str
) -> AssetCheckResult:
    key = AssetKey(dataset)
    manifest = warehouse.get_json(dataset, pk, "manifest.json")
    if manifest is None:
        return AssetCheckResult(
            asset_key=key,
            check_name=REJECT_RATE_CHECK,
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            description="The partition has no manifest: the reject rate cannot be computed.",
            metadata={"error": "partition has no manifest"},
        )
    rows, reasons, unknown = reject_counts(manifest)
    rejected = sum(reasons.values())
    rate = rejected / rows if rows else 0.0
    warn, block = settings.reject_rate_warn_above, settings.reject_rate_block_above
    severity = AssetCheckSeverity.ERROR if rate > block else AssetCheckSeverity.WARN
    return AssetCheckResult(
        asset_key=key,
        check_name=REJECT_RATE_CHECK,
        passed=rate <= warn,
        severity=severity,
        description=(
            f"{of(rejected, rows, 'rows')} rejected {share(rejected, rows)}; "
            f"WARN above {warn:.2%}, ERROR above {block:.2%}"
        ),
        metadata={
            "rows_checked": rows,
            "rows_rejected": rejected,
            "reject_rate": MetadataValue.float(round(rate, 6)),
            "top_reasons": MetadataValue.json(dict(reasons.most_common(TOP_REASONS))),
            "warn_above": MetadataValue.float(warn),
            "block_above": MetadataValue.float(block),
            "files_quarantined_rows_unknown": MetadataValue.json(unknown),
        },
    )
