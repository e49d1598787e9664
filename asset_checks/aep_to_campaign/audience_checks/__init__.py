"""Guardrail checks of the AEP audience → Campaign import flow.

Modules: `segment_export_checks`, `audience_count_check`, `campaign_import_checks`, and
`guardrail_spec` (the spec with its guardrail metadata they share).

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
  recipient's external ID and email (Campaign is the source of truth, docs/formats.md §f1).
- `suppression`: no address of the email import is quarantined, denylisted or opted out.
- `file_row_limit`: every file the platform writes holds at most `max_rows_per_file` rows.
- `import_reconciliation`: rows in the export files = imported + excluded by reason +
  quarantined by reason, recounted from what is stored.

Each spec carries `guardrail/*` metadata (source, limit) like
asset_checks/campaign_to_aep/export_checks.py. The result functions take plain arguments and are
unit-tested without Dagster runs.
"""

from asset_checks.aep_to_campaign.audience_checks.audience_count_check import (
    audience_count,
    audience_count_evaluation,
)
from asset_checks.aep_to_campaign.audience_checks.campaign_import_checks import (
    campaign_audience_import_checks,
    campaign_import_usage_policy,
)
from asset_checks.aep_to_campaign.audience_checks.segment_export_checks import (
    segment_exports_checks,
)

PARTITIONED_AUDIENCE_CHECKS = [
    segment_exports_checks,
    campaign_audience_import_checks,
    campaign_import_usage_policy,
]
UNPARTITIONED_AUDIENCE_CHECKS = [audience_count]

__all__ = [
    "PARTITIONED_AUDIENCE_CHECKS",
    "UNPARTITIONED_AUDIENCE_CHECKS",
    "audience_count_evaluation",
    "campaign_import_usage_policy",
]
