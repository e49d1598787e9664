"""The data-usage policy check result, from the policy model in `rtcdp_assets.shared.governance`."""

from collections.abc import Sequence

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

from asset_checks.check_descriptions import plural
from rtcdp_assets.shared.governance import load


def usage_policy_result(dataset: str, fields: Sequence[str]) -> AssetCheckResult:
    """Blocking result for a destination-bound asset: passes when no policy denies exporting
    these fields for the destination's marketing actions; otherwise explains every violation."""
    governance = load()
    violations = governance.evaluate(dataset, fields)
    labels = governance.field_labels(dataset, fields)
    return AssetCheckResult(
        passed=not violations,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"{plural(len(violations), 'policy violation')} for "
            f"{plural(len(fields), 'field')} under "
            f"{plural(len(governance.policies), 'policy', 'policies')}"
            + (f": {violations[0].explain()}" if violations else "")
        ),
        metadata={
            "marketing_actions": MetadataValue.json(list(governance.destinations[dataset])),
            "fields_exported": MetadataValue.json(list(fields)),
            "labels_by_field": MetadataValue.json({f: sorted(ls) for f, ls in labels.items()}),
            "policies_evaluated": len(governance.policies),
            "violations": MetadataValue.json([v.explain() for v in violations]),
        },
    )
