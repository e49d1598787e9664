"""A check with guardrail metadata appears in the guardrail catalog and in the data-quality
report without an edit to either: both find the code location's checks themselves."""

from __future__ import annotations

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    DagsterInstance,
    Definitions,
    MaterializeResult,
    asset,
    asset_check,
    materialize,
)

from asset_checks.catalog import guardrails, render
from asset_checks.partition_reconciliation import partition_check_spec
from rtcdp_assets.operations.data_quality_report import build_data_quality_report
from rtcdp_assets.shared.partitions import four_hourly_partitions

PK = "2026-11-23-08:00"


@asset(name="sftp_footprint", partitions_def=four_hourly_partitions)
def sftp_footprint() -> MaterializeResult:
    return MaterializeResult()


@asset(name="archive")
def archive() -> MaterializeResult:
    return MaterializeResult()


# A check of the kind another helper adds (a quota on one 4-hour window), built the standard way.
QUOTA_SPEC = partition_check_spec(
    "sftp_quota",
    AssetKey("sftp_footprint"),
    "The platform's footprint on the Campaign SFTP against the quota.",
    blocking=False,
    source="Campaign contract: SFTP storage",
    limit="WARN at 80 % of the quota",
)


@asset_check(
    asset=sftp_footprint,
    name="sftp_quota",
    partitions_def=four_hourly_partitions,
    description=QUOTA_SPEC.description,
    metadata=QUOTA_SPEC.metadata,
)
def sftp_quota() -> AssetCheckResult:
    return AssetCheckResult(
        passed=False,
        severity=AssetCheckSeverity.WARN,
        description="83 % of the quota",
        metadata={"records_over_limit": 3},
    )


# An unpartitioned one (a retention sweep), and a check without guardrail metadata.
@asset_check(
    asset=archive,
    name="archive_retention",
    description="Nothing in the archive older than the retention.",
    metadata={"guardrail/source": "project: archive retention", "guardrail/limit": "15 days"},
)
def archive_retention() -> AssetCheckResult:
    return AssetCheckResult(passed=True, description="0 files past retention")


@asset_check(asset=archive, name="not_a_guardrail")
def not_a_guardrail() -> AssetCheckResult:
    return AssetCheckResult(passed=True)


def test_a_new_guardrail_check_shows_in_the_catalog_and_the_report(tmp_path):
    from resources import embedded_resources

    # As definitions.py builds it: the report reads the code location's checks when it runs.
    report = build_data_quality_report(["sftp_footprint"], lambda: defs.resolve_asset_graph())
    checks = [sftp_quota, archive_retention, not_a_guardrail]
    resources = embedded_resources(tmp_path)
    defs = Definitions(
        assets=[sftp_footprint, archive, report], asset_checks=checks, resources=resources
    )

    catalog = render(guardrails(defs))
    assert (
        "| sftp_footprint | sftp_quota | no | Campaign contract: SFTP storage | "
        "WARN at 80 % of the quota | The platform's footprint on the Campaign SFTP against "
        "the quota. |"
    ) in catalog
    assert "| archive | archive_retention | no | project: archive retention | 15 days |" in (
        catalog
    )

    instance = DagsterInstance.ephemeral()
    assert materialize([archive, archive_retention], instance=instance).success
    everything = [sftp_footprint, report, *checks]
    # Before its check ran, the window's report lists it as not run.
    first = materialize(
        [report, sftp_footprint, archive, *checks],
        partition_key=PK,
        resources=resources,
        instance=instance,
        selection=[report],
    )
    markdown = first.asset_materializations_for_node("data_quality_report")[0].metadata
    assert "| sftp_footprint | sftp_quota | not run |" in markdown["report"].value
    assert materialize(
        everything,
        partition_key=PK,
        resources=resources,
        instance=instance,
        selection=[sftp_footprint],
    ).success
    second = materialize(
        [report, sftp_footprint, archive, *checks],
        partition_key=PK,
        resources=resources,
        instance=instance,
        selection=[report],
    )
    meta = second.asset_materializations_for_node("data_quality_report")[0].metadata
    text = meta["report"].value
    assert meta["checks"].value == 2  # the two guardrails, not the check without metadata
    assert meta["checks_failed"].value == 1
    assert "| sftp_footprint | sftp_quota | FAILED | WARN | records_over_limit=3 |" in text
    # the unpartitioned guardrail shows its latest result
    assert "| archive | archive_retention | passed |" in text
    assert "not_a_guardrail" not in text
    page = (tmp_path / "warehouse/data_quality_report" / PK / "report.html").read_text()
    assert "sftp_quota" in page and "archive_retention" in page
