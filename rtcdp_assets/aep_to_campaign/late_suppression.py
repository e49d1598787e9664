"""`late_suppression_sensor`: destination files and waiting Campaign imports built again when
a quarantine, denylist or opt-out arrives after they were written.

Each new `suppression_list` materialization (itself rebuilt after every new `non_deliverables`
or `preferences` partition) is compared, per audience, with what already left:

- destination files: the latest `destination_exports` of the audience (the export its last
  materialization names). Affected when a staged file holds an address the list now suppresses
  on that file's channel: `email` and `social_ads.email_lc_sha256` against the email channel,
  `sms.phone_e164` and `social_ads.phone_sha256_e164` against the SMS channel (the hashed
  forms compared as SHA-256 of the normalised address). The request runs
  `destination_export_job` for that export again (same file names: the landing files are
  overwritten); the destination filter excludes the members on the re-run.
- Campaign imports still waiting: the latest `campaign_audience_import_published` whose every
  file and `.done` marker are still in the Campaign import folder (Campaign's import workflow
  has not taken them). Affected when the staged import holds an email the list suppresses.
  The request builds and uploads the import again (`audience_import_job`, only those two
  assets, same export named in the tags): the same file names are replaced, with the marker.

Only audiences whose files hold a newly suppressed address are requested (a set lookup over
the staged files, no rebuild to find out); files built after the list's materialization are
not read at all (that build read the list). The cursor is the last `suppression_list`
materialization handled; run keys are `late_suppression:<asset>:<audience>@<stamp>@
suppression_list-<storage id>`, so a re-tick never requests twice. Tags and metadata carry the
reason, the trigger and the count of affected rows, never an address.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    EventLogRecord,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from resources.drop_zones import DropZone
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import (
    AUDIENCES_PARTITION_NAME,
    TAG_AUDIENCE,
    TAG_EXPORT_TIME,
)
from rtcdp_assets.aep_to_campaign.audience_exports.join_identities import normalise_phone
from rtcdp_assets.aep_to_campaign.campaign_audience_import.import_file import (
    CAMPAIGN_IMPORT,
    read_staged_rows,
)
from rtcdp_assets.aep_to_campaign.campaign_audience_import.import_file import (
    PUBLISHED as IMPORT_PUBLISHED,
)
from rtcdp_assets.aep_to_campaign.destinations.staged_files import (
    DESTINATION_EXPORTS,
    read_destination_manifest,
    read_staged_file,
)
from rtcdp_assets.shared.late_suppression import run_tags

SUPPRESSION_LIST = AssetKey("suppression_list")
DESTINATION_KEY = AssetKey(DESTINATION_EXPORTS)
IMPORT_KEY = AssetKey(CAMPAIGN_IMPORT)
IMPORT_PUBLISHED_KEY = AssetKey(IMPORT_PUBLISHED)


@dataclass(frozen=True)
class Suppressed:
    """The addresses the current suppression list holds, in the forms the files carry."""

    emails: pa.Array  # trimmed, lower-case
    phones: pa.Array  # E.164

    @classmethod
    def load(cls, warehouse: Warehouse) -> "Suppressed | None":
        with warehouse.local_copy("suppression_list", "current", "data.parquet") as local:
            if local is None:
                return None
            table = pq.read_table(local, columns=["channel", "address"])
        channel = table.column("channel").combine_chunks()
        address = table.column("address").combine_chunks()
        emails = address.filter(pc.fill_null(pc.equal(channel, "email"), False))
        phones, valid = normalise_phone(
            address.filter(pc.fill_null(pc.equal(channel, "sms"), False))
        )
        return cls(
            emails=pc.unique(pc.utf8_lower(pc.utf8_trim_whitespace(emails))),
            phones=pc.unique(phones.filter(valid)),
        )

    def by_column(self) -> dict[str, pa.Array]:
        """Destination-file column → the suppressed values in that column's form."""
        return {
            "email": self.emails,
            "email_lc_sha256": _sha256(self.emails),
            "phone_e164": self.phones,
            "phone_sha256_e164": _sha256(self.phones),
        }


def _sha256(values: pa.Array) -> pa.Array:
    return pa.array(
        [hashlib.sha256(v.encode()).hexdigest() for v in values.to_pylist() if v], pa.string()
    )


def _hits(values: pa.ChunkedArray | pa.Array, suppressed: pa.Array) -> int:
    found = pc.is_in(values, value_set=suppressed)
    return int(pc.sum(pc.cast(pc.fill_null(found, False), pa.int64())).as_py() or 0)


def destination_hits(
    warehouse: Warehouse, audience_id: str, stamp: str, suppressed: Suppressed
) -> int:
    """Rows of the staged destination files of one export that carry a suppressed address."""
    columns = suppressed.by_column()
    hits = 0
    for f in read_destination_manifest(warehouse, audience_id, stamp)["files"]:
        table = read_staged_file(warehouse, audience_id, stamp, f["name"])
        hit_rows = pa.array([False] * table.num_rows, pa.bool_())
        for column, values in columns.items():
            if column in table.column_names and len(values):
                found = pc.is_in(table.column(column), value_set=values)
                hit_rows = pc.or_(hit_rows, pc.fill_null(found, False))
        hits += _hits(hit_rows, pa.array([True]))
    return hits


def import_hits(warehouse: Warehouse, audience_id: str, stamp: str, suppressed: Suppressed) -> int:
    """Rows of a staged Campaign import whose email the list suppresses."""
    if not len(suppressed.emails):
        return 0
    return sum(
        _hits(pc.utf8_lower(pc.utf8_trim_whitespace(t.column("email"))), suppressed.emails)
        for t in read_staged_rows(warehouse, audience_id, stamp)
    )


def _latest(instance: DagsterInstance, key: AssetKey, audience_id: str) -> EventLogRecord | None:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[audience_id]), limit=1
    ).records
    return records[0] if records else None


def _metadata_value(record: EventLogRecord, name: str) -> Any:
    materialization = record.asset_materialization
    entry = materialization.metadata.get(name) if materialization is not None else None
    return None if entry is None else entry.value


def waiting_import(
    instance: DagsterInstance, campaign_sftp: DropZone, audience_id: str
) -> str | None:
    """The export stamp of the audience's last uploaded import if Campaign has not taken it
    yet (every file and its `.done` marker still in the import folder), else None."""
    record = _latest(instance, IMPORT_PUBLISHED_KEY, audience_id)
    if record is None:
        return None
    files = _metadata_value(record, "import_files") or []
    source = _metadata_value(record, "segment_exports_record") or ""
    parts = source.split("/")
    if not files or len(parts) < 3:
        return None
    for f in files:
        if campaign_sftp.stat(f["path"]) is None or campaign_sftp.stat(f"{f['path']}.done") is None:
            return None
    return parts[-2]


@dataclass(frozen=True)
class Rebuild:
    """One audience export to build again, and why (a count, no address)."""

    asset: str  # destination_exports or campaign_audience_import
    audience_id: str
    stamp: str
    rows: int

    def run_request(self, job_name: str, storage_id: int) -> RunRequest:
        selection = [IMPORT_KEY, IMPORT_PUBLISHED_KEY] if self.asset == CAMPAIGN_IMPORT else None
        return RunRequest(
            run_key=(
                f"late_suppression:{self.asset}:{self.audience_id}@{self.stamp}"
                f"@suppression_list-{storage_id}"
            ),
            job_name=job_name,
            partition_key=self.audience_id,
            asset_selection=selection,
            tags={
                TAG_AUDIENCE: self.audience_id,
                TAG_EXPORT_TIME: self.stamp,
                **run_tags(f"suppression_list:{storage_id}", self.rows),
            },
        )


def plan_rebuilds(
    instance: DagsterInstance,
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    audiences: Iterable[str],
    list_storage_id: int | None = None,
) -> list[Rebuild]:
    """The destination exports and waiting imports that hold an address the current list
    suppresses, by audience. With `list_storage_id` (the list's materialization), an audience
    whose files were built after it is skipped unread: that build read this list."""
    suppressed = Suppressed.load(warehouse)
    if suppressed is None:
        return []
    built_at = {
        key: instance.event_log_storage.get_latest_storage_id_by_partition(
            key, DagsterEventType.ASSET_MATERIALIZATION
        )
        for key in (DESTINATION_KEY, IMPORT_KEY)
    }

    def stale(key: AssetKey, audience_id: str) -> bool:
        built = built_at[key].get(audience_id)
        return built is not None and (list_storage_id is None or built < list_storage_id)

    out = []
    for audience_id in sorted(audiences):
        record = (
            _latest(instance, DESTINATION_KEY, audience_id)
            if stale(DESTINATION_KEY, audience_id)
            else None
        )
        stamp = _metadata_value(record, "export_stamp") if record is not None else None
        if stamp:
            rows = destination_hits(warehouse, audience_id, stamp, suppressed)
            if rows:
                out.append(Rebuild(DESTINATION_EXPORTS, audience_id, stamp, rows))
        waiting = (
            waiting_import(instance, campaign_sftp, audience_id)
            if stale(IMPORT_KEY, audience_id)
            else None
        )
        if waiting:
            rows = import_hits(warehouse, audience_id, waiting, suppressed)
            if rows:
                out.append(Rebuild(CAMPAIGN_IMPORT, audience_id, waiting, rows))
    return out


def build_late_suppression_sensor(import_job: Any, destination_job: Any) -> SensorDefinition:
    """The sensor requesting `import_job` (audience_import_job) and `destination_job`
    (destination_export_job) for `plan_rebuilds`; both are unresolved asset jobs."""
    job_of = {CAMPAIGN_IMPORT: import_job.name, DESTINATION_EXPORTS: destination_job.name}

    @sensor(
        name="late_suppression_sensor",
        jobs=[import_job, destination_job],
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "When the suppression list is rebuilt, builds again the latest destination files "
            "and the Campaign imports not yet taken by Campaign that hold an address it now "
            "suppresses."
        ),
    )
    def late_suppression_sensor(
        context: SensorEvaluationContext, warehouse: Warehouse, campaign_sftp: DropZone
    ) -> SensorResult | SkipReason:
        after = int(context.cursor) if context.cursor else None
        records = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=SUPPRESSION_LIST, after_storage_id=after), limit=1
        ).records  # the newest: the list is rebuilt whole, older versions say nothing more
        if not records:
            return SkipReason("no new suppression list")
        last = records[0].storage_id
        audiences = context.instance.get_dynamic_partitions(AUDIENCES_PARTITION_NAME)
        plan = plan_rebuilds(context.instance, warehouse, campaign_sftp, audiences, last)
        return SensorResult(
            run_requests=[item.run_request(job_of[item.asset], last) for item in plan],
            cursor=str(last),
            skip_reason=None if plan else SkipReason("no file that left holds a new suppression"),
        )

    return late_suppression_sensor
