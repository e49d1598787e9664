"""Guardrails of Campaign's push subscriptions (`push_subscriptions`, a Campaign export).

- `push_token_format` on `push_subscriptions` (blocking, ERROR): every typed subscription's
  token matches its platform's format (APNs 64 hex characters, FCM the permissive pattern of
  `PipelineSettings.fcm_token_pattern`). Rows that do not are quarantined at ingestion with
  `invalid_push_token`; the check proves none slipped through and reports how many were
  quarantined.
- `push_quarantine_respected` on `push_subscriptions_xdm` (blocking): no record bound for AEP
  carries a token that Campaign has quarantined or denylisted on the push channels unless it
  is marked `denylisted`.

The functions computing results take plain arguments, so tests can call them without runs.
"""

from collections import Counter
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
    multi_asset_check,
)

from asset_checks.check_descriptions import count, of, plural
from asset_checks.partition_reconciliation import partition_check_spec
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportDescription
from rtcdp_assets.campaign_to_aep.non_deliverables import quarantined_tokens
from rtcdp_assets.shared import push_token_formats, xdm


# --------------------------------------------------------------------------------------------
# push_token_format
# --------------------------------------------------------------------------------------------
def token_format_result(
    dataset: str, warehouse: Warehouse, settings: PipelineSettings, pk: str
) -> AssetCheckResult:
    checked = invalid = 0
    by_platform: Counter[str] = Counter()
    for batch in warehouse.iter_batches(dataset, pk):
        platform = xdm.lookup(batch.column("platform"), settings.push_platform_codes)
        bad = push_token_formats.invalid_tokens(batch.column("token"), platform, settings)
        invalid += pc.sum(pc.cast(bad, pa.int64())).as_py() or 0
        for item in pc.value_counts(pc.fill_null(platform, "unknown")).to_pylist():
            by_platform[item["values"]] += item["counts"]
        checked += batch.num_rows
    reasons = (warehouse.get_json(dataset, pk, "manifest.json") or {}).get("reasons", {})
    quarantined = reasons.get(push_token_formats.INVALID_PUSH_TOKEN, 0)
    return AssetCheckResult(
        asset_key=AssetKey(dataset),
        check_name="push_token_format",
        passed=invalid == 0,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"{of(invalid, checked, 'typed subscriptions')} have a malformed token; "
            f"{count(quarantined)} quarantined at ingestion as invalid_push_token"
        ),
        metadata={
            "rows_checked": checked,
            "rows_by_platform": MetadataValue.json(dict(sorted(by_platform.items()))),
            "invalid_tokens_in_typed_rows": invalid,
            "rows_quarantined_invalid_push_token": quarantined,
            "rows_quarantined_unknown_platform": reasons.get("unknown_code:platform", 0),
            "apns_token_pattern": settings.apns_token_pattern,
            "fcm_token_pattern": settings.fcm_token_pattern,
        },
    )


def build_token_format_check(
    flow: CampaignExportDescription, key: AssetKey
) -> AssetChecksDefinition:
    spec = partition_check_spec(
        "push_token_format",
        key,
        "Every typed push subscription's token matches its platform's format (APNs: 64 hex "
        "characters; FCM: the configured permissive pattern). Rows that do not are quarantined "
        "at ingestion with reason invalid_push_token.",
        blocking=True,
        source="APNs / FCM token formats (rtcdp_assets/shared/push_token_formats.py)",
        limit="0 malformed tokens published",
    )

    @multi_asset_check(specs=[spec], name=f"{flow.dataset}_token_checks")
    def token_checks(
        context: AssetCheckExecutionContext, warehouse: Warehouse, settings: PipelineSettings
    ) -> Iterator[AssetCheckResult]:
        yield token_format_result(flow.dataset, warehouse, settings, context.partition_key)

    return token_checks


# --------------------------------------------------------------------------------------------
# push_quarantine_respected
# --------------------------------------------------------------------------------------------
def _push_items(batch: pa.RecordBatch) -> pa.StructArray | None:
    if "pushNotificationDetails" not in batch.schema.names:
        return None
    return pc.list_flatten(batch.column("pushNotificationDetails"))


def quarantine_result(
    xdm_dataset: str, warehouse: Warehouse, pk: str, quarantined: set[str]
) -> AssetCheckResult:
    """Every published push item whose token Campaign has quarantined is `denylisted`."""
    records = items = quarantined_items = active = 0
    value_set = pa.array(sorted(quarantined), pa.string())
    for batch in warehouse.iter_batches(xdm_dataset, pk):
        records += batch.num_rows
        flat = _push_items(batch)
        if flat is None or not len(flat):
            continue
        items += len(flat)
        hit = pc.fill_null(pc.is_in(flat.field("token"), value_set=value_set), False)
        denied = pc.fill_null(flat.field("denylisted"), False)
        quarantined_items += pc.sum(pc.cast(hit, pa.int64())).as_py() or 0
        active += pc.sum(pc.cast(pc.and_(hit, pc.invert(denied)), pa.int64())).as_py() or 0
    return AssetCheckResult(
        asset_key=AssetKey(xdm_dataset),
        check_name="push_quarantine_respected",
        passed=active == 0,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"{of(active, quarantined_items, 'tokens Campaign quarantined')} published active "
            f"(not denylisted), among {plural(items, 'push item')}"
        ),
        metadata={
            "records_checked": records,
            "push_items_checked": items,
            "tokens_quarantined_by_campaign": len(quarantined),
            "quarantined_tokens_in_partition": quarantined_items,
            "quarantined_tokens_published_active": active,
        },
    )


def build_quarantine_check(flow: CampaignExportDescription, key: AssetKey) -> AssetChecksDefinition:
    spec = partition_check_spec(
        "push_quarantine_respected",
        key,
        "No push token that Campaign lists as quarantined or denylisted on the push channels "
        "(non_deliverables) is published to AEP as active: each is marked denylisted.",
        blocking=True,
        source="Campaign quarantine of device tokens (§b5) applied to AEP push details",
        limit="0 quarantined tokens published active",
    )

    @multi_asset_check(specs=[spec], name=f"{flow.xdm_dataset}_quarantine_checks")
    def quarantine_checks(
        context: AssetCheckExecutionContext, warehouse: Warehouse, settings: PipelineSettings
    ) -> Iterator[AssetCheckResult]:
        pk = context.partition_key
        quarantined = quarantined_tokens(context.instance, warehouse, settings, pk)
        yield quarantine_result(flow.xdm_dataset, warehouse, pk, quarantined)

    return quarantine_checks
