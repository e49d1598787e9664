"""AEP audience members → the file a Campaign import workflow loads (Campaign: source of truth).

Modules: `import_file` (names, columns, manifest and rows of the staged file),
`recipient_matching` (Campaign recipients and suppressed addresses), `member_join` (members
joined to recipients), `iso_times` and `csv_writer` (fast CSV writing), `import_build` (the
staged import and its reconciliation), `upload` (verified upload to Campaign), `assets`.

    audience_membership ──▶ campaign_audience_import ──(blocking checks)──▶ …_published
     members after an        joined to Campaign `profiles`:            uploaded atomically to the
     export                  staged import file + quarantine           Campaign SFTP import folder,
                             + exclusions (warehouse)                  then `<name>.done`

Campaign is the source of truth for profiles (docs/formats.md §f1): an AEP member whose join
identity (the first of `audience_settings.join_identities` the export carries: the Campaign external
ID, the trimmed lower-cased email, or the mobile phone in E.164; see
`audience_exports/join_identities.py`) matches no Campaign recipient never reaches Campaign; it goes
to the quarantine with the reason `not_in_campaign` (`ambiguous_campaign_profile` when several
recipients share the identity, so nobody is imported under the wrong recipient). A member whose
Campaign email address is in the `suppression_list` (quarantined, denylisted or opted out) is
excluded with that reason (`quarantine`, `denylisted`, `opted_out`), whatever its membership status.

Campaign recipients are every `profiles` partition materialized so far, the latest version of
each recipient (by `last_modified`). Without any profiles partition, or without a materialized
`suppression_list`, the import fails rather than guess.

**The import file.** CSV, UTF-8 (no BOM), comma, header line, `"`-quoting only where a value
holds a comma, a quote or a line break (quotes doubled), `\\n` line ends, rows sorted by
`recipient_id` (as text) so a re-run writes the same bytes:

| column                  | content                                                             |
|-------------------------|---------------------------------------------------------------------|
| recipient_id            | Campaign recipient key (iRecipientId / PKey): reconcile on this     |
| external_id             | Campaign external ID of the recipient (sExternalId)                 |
| email                   | Campaign email address of the recipient, lower-cased                |
| audience_id             | AEP audience (segment) ID                                           |
| audience_name           | `audience_settings.audience_names[audience_id]`, else empty         |
| membership_status       | realized (entered with this export) / existing / exited (left)      |
| last_qualification_time | AEP lastQualificationTime, ISO 8601 UTC, empty if not exported      |
| export_time             | time of the AEP export, ISO 8601 UTC                                |

The file holds the whole membership after the export (realized and existing) plus the members
who left with it (exited), so a workflow may either replace the Campaign list with the rows that
are not `exited` or apply the file as a delta. Name: `aep_audience_<audience id>_<export stamp
YYYYMMDD_HHMMSS>.csv` in `settings.campaign_import_folder`; beyond `max_rows_per_file` rows the
next parts are `..._2.csv`, `..._3.csv`. Each part is uploaded under a temporary name and renamed
(`write_atomic`); after it, `<part name>.done` is written, a JSON object with `file`, `rows`,
`bytes`, `sha256`, `part`, `parts`, `audience_id`, `audience_name`, `export_id`, `export_time`
and `columns`. A Campaign workflow should: collect `*.done` files, read the CSV the marker
names, check its row count, load it (Data loading: UTF-8, comma, header), reconcile on
`recipient_id` against nms:recipient with "reject" for unknown keys (never create), and update
the list of the audience.

Warehouse: `campaign_audience_import/<audience id>/<stamp>/` holds the staged file(s),
`quarantine.parquet` (key, external_id, email, status, reason, in_export), `excluded.parquet`
(key, recipient_id, email, status, reason, in_export) and `manifest.json` (files with SHA-256,
counts by reason, the per-export reconciliation), written last.
"""

from rtcdp_assets.aep_to_campaign.campaign_audience_import.csv_writer import csv_bytes
from rtcdp_assets.aep_to_campaign.campaign_audience_import.import_file import (
    CAMPAIGN_IMPORT,
    IMPORT_COLUMNS,
)
from rtcdp_assets.shared.campaign_import_files import upload_verified

# Imported by other wings and tests/shared.
__all__ = ["CAMPAIGN_IMPORT", "IMPORT_COLUMNS", "csv_bytes", "upload_verified"]
