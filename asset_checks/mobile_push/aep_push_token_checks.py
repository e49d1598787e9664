"""The checks on `aep_push_tokens`.

- `reconciliation` (blocking): per export file, push items and records in = typed rows +
  quarantined rows, and every file could be read (the same recount as the Campaign datasets').
- `duplicate_registration` (WARN): see duplicate_registration.py.
"""

from collections.abc import Iterator

from dagster import AssetCheckExecutionContext, AssetCheckResult, multi_asset_check

from asset_checks.mobile_push.duplicate_registration import build_duplicate_registration_check
from asset_checks.partition_reconciliation import partition_check_spec, reconcile
from resources.warehouse import Warehouse
from rtcdp_assets.mobile_push.aep_push_tokens import aep_push_tokens
from rtcdp_assets.mobile_push.push_token_records import DATASET

_reconciliation_spec = partition_check_spec(
    "reconciliation",
    aep_push_tokens.key,
    "Per export file: push items and records in = typed rows + quarantined rows, and every "
    "file could be read. Blocks use of an incomplete partition.",
    blocking=True,
    source="project: nothing lost, counts reconcile",
    limit="rows in = rows out + rows rejected",
)


@multi_asset_check(specs=[_reconciliation_spec], name="aep_push_tokens_checks")
def aep_push_tokens_checks(
    context: AssetCheckExecutionContext, warehouse: Warehouse
) -> Iterator[AssetCheckResult]:
    # The same recount as the Campaign datasets': per file, stored rows against the manifest.
    yield reconcile(DATASET, warehouse, context.partition_key)


duplicate_registration_check = build_duplicate_registration_check(aep_push_tokens)

aep_push_token_checks = [aep_push_tokens_checks, duplicate_registration_check]
