"""AEP audience exports → audience membership: file names, completeness, the sensor, two assets.

Modules: `datasets` (names, partitions, run tags), `file_names` (export and manifest names),
`completeness` (exports as listed, and whether they are complete), `tick_plan` (the sensor's
decision), `aep_csv_stream` and `file_reader` (reading AEP files), `export_records` (what the
warehouse says was processed), `segment_exports` and `membership` (the two assets),
`job_and_sensor` (the job, the guardrail job and the sensor around the checks passed in).

AEP's batch destinations write one file per audience and export into the Azure Blob container
behind the `aep_destination` resource (folder `audience_settings.destination_folder`):

    <destination>_<audience id>[_<optional parts>]_<timestamp>[_<custom text>][_<n>].<extension>
    <destination>_segment<audience id>_<YYYYMMDDHHMMSS>.csv      (2020 Campaign, Adobe's sample)
    manifest-<destinationId>-<dataflowRunId>.json                 (optional)

with `<extension>` one of csv, csv.gz, txt (the old Campaign card's TAB_DELIMITED), json,
json.gz, parquet (`file_names.read_export_name`).

- The audience ID is the UUID after `segment`, else the first UUID of the name: with a custom
  template it may stand anywhere (the destination is whatever comes before it, possibly
  nothing); a later UUID (the dataflow's destination ID) is an optional part.
- `<timestamp>` is `YYYYMMDD_HHMMSS` (SDK and sample manifest), `MMDDYYYY_HHMMSS` (what the UI
  documentation says), `YYYYMMDDHHMMSS` (2020 names) or a 10-digit Unix timestamp
  (docs/formats.md §a1): the first valid one after the audience ID. The two 8+6-digit forms
  cannot be confused: a YYYYMMDD date of this century starts with `20`, which is no month.
  Times are UTC. Every form is normalised to the export stamp `YYYYMMDD_HHMMSS`. A name
  without one (AEP's static name, overwritten by every export) is not processed: exports of
  an audience could be neither told apart nor ordered.
- A name that fails is left alone and reported at WARN by the sensor with the part that
  failed (`no audience ID (UUID) in the name`, `timestamp 20201308_061804 is not a valid
  date …`, `no date/time part …`, `extension .xlsx …`). Hidden and temporary names are silent.
- `<n>` numbers the split files of one export: AEP starts a new file every 5,000,000 rows
  (`name.csv`, `name_2.csv`, `name_3.csv`, …). Every part but the last holds exactly
  `rows_per_file` rows; a part that does not makes the export `inconsistent_split`.
- The manifest lists `exportResults[]` (`sinkPath`, `name`, `size`) of one dataflow run, for
  possibly many audiences; files are matched to it by name.
- Optional name parts AEP can insert between the audience ID and the timestamp (audience name,
  dataflow name and ID, organization, sandbox) and custom text after it (the SDK's fixed order
  puts `CUSTOM_TEXT` last) are accepted and ignored. Two files that name the same part of one
  export (e.g. `x.csv` and `x_1.csv`, custom text `1`) make the export wait, with a warning,
  rather than have one picked.
- One audience is expected from one destination; the membership of an audience activated to
  two destinations that both land here would interleave.

**Completeness.** An export (destination, audience, timestamp) is processed only when it is
complete: parts 1..n all present, none modified within `settings.file_settle_seconds`, and, when
a manifest lists any of its files (or the destination has `manifest_required`), every listed
file present with the listed size and no part missing from the manifest. Otherwise it waits and
the sensor says why (`waiting for split file(s) _2`, `waiting for the manifest`, `x.csv is 120
bytes, manifest says 140`). An export still incomplete after `pending_expiry_hours` is given up
with a warning. A file a manifest lists but the folder lacks is a warning (`waiting for x_2.csv:
listed in manifest-….json but not in the folder`; for an export none of whose files are there,
`manifest-….json lists x.csv, not in the folder`). Each waiting export's files (and such a
manifest) are written to the file ledger as `pending` with the reason, once per change of
reason, so the `no_stuck_pending` check reports them after `ledger_pending_alert_hours`; the
run that processes the files settles them, and a manifest whose files all arrived becomes
`processed`.

**The sensor** (`aep_audience_export_sensor`) lists the folder once per tick. Each complete
export becomes exactly one run of `audience_import_job` for the audience's dynamic partition
(`DynamicPartitionsDefinition("audiences")`, one key per audience ID). The run key is the export
ID plus a digest of its files' names and ETags, so one export runs once and a rewritten export
runs again; the tags name the destination, audience, export time and the files with their ETags
and sizes. Partition keys are added only for audiences the instance does not know yet (one query
for the known keys per tick; never re-added). The cursor is the highest file time already
handled, the file digests of the exports requested at exactly that time, and the exports still
waiting (with when they were first seen), so a tick costs one listing however many exports were
processed before, and a tick that finds no file newer than the watermark parses no name at all.
At most `max_runs_per_tick` runs are requested per tick; a full tick stops the watermark after
the last export it requested, so the rest come next tick. When it registers new audiences it
also reports the `audience_count` check. (Measured: a tick over 8,000 files of 4,000 audiences
takes about 0.3 s on the 2-core build box.)

A run reprocesses the export named in its tags, identically; if AEP's retention has removed the
files meanwhile, the rows stored for exactly those files (same ETags) are kept. A run without
tags (started by hand, a backfill) takes the next unprocessed export of an incremental
destination, else the latest complete export.

**Reading.** CSV goes through `ingest.ingest_file` after `AepCsvStream` has rewritten the
destination's options (delimiter, quote, escape, null output, header, UTF-16) into plain
RFC 4180 UTF-8; gzip is inflated with the same bomb guard. JSON Lines and Parquet files are
flattened (`person.name.firstName` → `person_name_firstName`, as in AEP's CSV headers) and go
through the same validation.

Runs of one audience must not overlap (membership is applied export after export): the run tag
`rtcdp/audience_id` is there for the instance's run queue, see `AUDIENCE_RUN_QUEUE_CONFIG`.

**Source files stay where AEP put them** (AEP owns the container and its retention). What was
processed is recorded in the warehouse instead:

    segment_exports/<audience>/<stamp>/data.parquet        typed member rows
    segment_exports/<audience>/<stamp>/rejects.parquet     rows quarantined with a reason
    segment_exports/<audience>/<stamp>/export.json         files, ETags, counts, status, columns
    segment_exports/<audience>/manifest.json               index of its exports (written last)
    audience_membership/<audience>/<stamp>/members.parquet state after the export
    audience_membership/<audience>/<stamp>/diff.parquet    added / removed / unchanged
    audience_membership/<audience>/manifest.json           index of applied exports (written last)

(`<audience>` is the audience ID, `<stamp>` the export stamp `YYYYMMDD_HHMMSS`.)

`segment_exports` columns: `external_id`, `email`, `phone`, `status` (realized / existing /
exited; a file without the status column means every row is realized),
`last_qualification_time`, `_source_file`, `_line_number`. The export is joined by the first of
`audience_settings.join_identities` its header carries (`join_identities.py`; recorded as
`join_identity` in export.json and the metadata). A row without it is a reject
`missing_required_value` (`invalid_email`, `invalid_phone` when it is not an address or an
E.164 number); a file that cannot be read at all (`corrupt_gzip`, `truncated_gzip`,
`bad_encoding`, `unknown_layout` when it carries none of the join identities, naming them,
`inconsistent_split`, ...) quarantines the whole export, which is then not applied. An export
joined by another identity than the membership so far is refused by `audience_membership`
(its members could not be compared).

`audience_membership` rows: `key` (the join identity), `external_id`, `email`, `status`
(`realized` = entered with this export, `existing` = still a member, `exited` = left with this
export), `aep_status` (as exported; null for members carried over by an incremental export),
`last_qualification_time`, `member_since` (export stamp) and `in_export`. A full export replaces
the membership; an incremental one applies realized/existing/exited to the previous state (the
first incremental file, a full backfill, applies to an empty state). The diff of an export is
always computed against the state after the previous applied export, so re-running an export
gives the same result. Duplicate rows of one member keep the latest qualification (AEP's rule)
and count as `duplicate_member`; an `exited` row of someone who was not a member counts as
`exited_non_member`.
"""
