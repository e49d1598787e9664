"""`reject_rate`: the share of a partition's rows rejected, WARN above 1 %, blocking above 20 %."""

from __future__ import annotations

from dagster import AssetCheckSeverity

from asset_checks.campaign_to_aep.reject_rate import reject_counts
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs
from tests.drop_files import drop_campaign_export
from tests.results import check_evaluations_by_name, landing_files
from tests.runs import campaign_assets_and_checks, materialize_partition

PK = "2026-11-23-08:00"
NAME = "broadLog_20261123_0800.csv"
HEADER = (
    "iBroadLogId,iDeliveryId,iRecipientId,sExternalId,sAddress,iStatus,iFailureType,"
    "iFailureReason,tsEvent,sDeliveryLabel"
)
BROADLOG = campaign_assets_and_checks(broadlog_defs)


def export(rows: int, bad_emails: int, bad_statuses: int = 0) -> str:
    """`rows` broadLog rows, the first ones rejected: `bad_emails` as invalid_email, then
    `bad_statuses` as unknown_code:status."""
    lines = [HEADER]
    for i in range(1, rows + 1):
        address = "not-an-email" if i <= bad_emails else f"user{i}@example.com"
        status = 42 if bad_emails < i <= bad_emails + bad_statuses else 1
        lines.append(
            f"{i},10,{100 + i},CUST-{i},{address},{status},0,0,2026-11-23 08:01:00,Newsletter"
        )
    return "\n".join(lines) + "\n"


def run(root, resources, content: str):
    drop_campaign_export(root, NAME, content)
    result = materialize_partition(BROADLOG, resources, PK)
    published = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    return result, check_evaluations_by_name(result)["reject_rate"], published


def test_half_a_percent_of_rejects_passes(embedded_env):
    root, resources = embedded_env
    result, check, published = run(root, resources, export(200, bad_emails=1))
    assert result.success and check.passed
    meta = check.metadata
    assert (meta["rows_checked"].value, meta["rows_rejected"].value) == (200, 1)
    assert meta["reject_rate"].value == 0.005
    assert "broadlog_published" in published


def test_five_percent_warns_and_publication_goes_on(embedded_env):
    root, resources = embedded_env
    result, check, published = run(root, resources, export(200, bad_emails=6, bad_statuses=4))
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert check.metadata["reject_rate"].value == 0.05
    # the top reasons, counts only: no rejected value is shown
    assert check.metadata["top_reasons"].value == {"invalid_email": 6, "unknown_code:status": 4}
    assert "not-an-email" not in str({k: v.value for k, v in check.metadata.items()})
    assert result.success and "broadlog_published" in published


def test_thirty_percent_is_an_error_and_nothing_is_published(embedded_env):
    root, resources = embedded_env
    result, check, published = run(root, resources, export(100, bad_emails=20, bad_statuses=10))
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR
    assert check.metadata["top_reasons"].value == {"invalid_email": 20, "unknown_code:status": 10}
    assert not result.success
    assert "broadlog" in published and "broadlog_published" not in published
    assert landing_files(root) == []


def test_the_thresholds_are_settings(tmp_path):
    from resources import embedded_resources

    resources = embedded_resources(
        tmp_path, reject_rate_warn_above=0.1, reject_rate_block_above=0.4
    )
    result, check, published = run(tmp_path, resources, export(100, bad_emails=30))
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert check.metadata["warn_above"].value == 0.1
    assert check.metadata["block_above"].value == 0.4
    assert result.success and "broadlog_published" in published


def test_a_whole_file_quarantine_counts_its_rows_when_they_are_known():
    manifest = {
        "rows_out": 90,
        "rows_rejected": 10,
        "reasons": {"invalid_email": 10},
        "files": [
            {"source_file": "a.csv", "status": "processed", "rows_in": 100},
            {
                "source_file": "b.csv",
                "status": "quarantined",
                "reason": "truncated_file",
                "rows_in": 50,
            },
            {
                "source_file": "c.csv.gz",
                "status": "quarantined",
                "reason": "row_too_large",
                "rows_in": None,
            },
            {"source_file": "d.csv", "status": "duplicate", "rows_in": None},
        ],
    }
    rows, reasons, unknown = reject_counts(manifest)
    assert rows == 150
    assert reasons == {"invalid_email": 10, "truncated_file": 50}
    assert unknown == ["c.csv.gz: row_too_large"]


def test_an_export_with_no_rows_passes(embedded_env):
    """Campaign writes the header alone when a window had no activity."""
    root, resources = embedded_env
    result, check, _ = run(root, resources, export(0, bad_emails=0))
    assert result.success and check.passed
    assert check.metadata["rows_checked"].value == 0
