"""Building the staged import of one export: matched members as CSV part files, the quarantine,
the exclusions and the manifest with the per-export reconciliation.
"""

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import Failure

from resources.audience_settings import AudienceSettings
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import AUDIENCE_MEMBERSHIP
from rtcdp_assets.aep_to_campaign.audience_exports.export_records import (
    read_export_record,
    read_index,
)
from rtcdp_assets.aep_to_campaign.audience_exports.join_identities import recorded_identity
from rtcdp_assets.aep_to_campaign.campaign_audience_import.import_file import (
    CAMPAIGN_IMPORT,
    IMPORT_COLUMNS,
    import_file_names,
)
from rtcdp_assets.aep_to_campaign.campaign_audience_import.iso_times import iso_seconds
from rtcdp_assets.aep_to_campaign.campaign_audience_import.member_join import (
    MEMBER_COLUMNS,
    identity_matches,
    join_handed_over,
)
from rtcdp_assets.aep_to_campaign.campaign_audience_import.recipient_matching import (
    JOIN_KEY,
    load_email_suppression,
    match_handed_over_keys,
    release_memory,
)
from rtcdp_assets.shared.campaign_import_files import write_csv


def _iso_times(part: pa.Table) -> pa.Table:
    at = part.schema.get_field_index("last_qualification_time")
    return part.set_column(
        at, "last_qualification_time", iso_seconds(part.column("last_qualification_time"))
    )


# --------------------------------------------------------------------------------------------
# Reconciliation per export
# --------------------------------------------------------------------------------------------
def reconcile_export(
    export_record: Mapping[str, Any],
    membership: Mapping[str, Any],
    imported_in_export: int,
    excluded_in_export: Mapping[str, int],
    quarantined_in_export: Mapping[str, int],
) -> dict[str, Any]:
    """rows in the export files = imported + excluded by reason + quarantined by reason."""
    excluded = {
        "duplicate_member": membership["duplicate_member"],
        "exited_non_member": membership["exited_non_member"],
        **excluded_in_export,
    }
    quarantined = {**export_record["reasons"], **quarantined_in_export}
    excluded = {k: int(v) for k, v in sorted(excluded.items()) if v}
    quarantined = {k: int(v) for k, v in sorted(quarantined.items()) if v}
    accounted = imported_in_export + sum(excluded.values()) + sum(quarantined.values())
    return {
        "rows_in": export_record["rows_in"],
        "imported": imported_in_export,
        "excluded": excluded,
        "quarantined": quarantined,
        "accounted": accounted,
        "balanced": accounted == export_record["rows_in"],
    }


def _count_by_reason(table: pa.Table) -> dict[str, int]:
    in_export = table.filter(pc.fill_null(table.column("in_export"), False))
    if in_export.num_rows == 0:
        return {}
    return {
        item["values"]: item["counts"]
        for item in pc.value_counts(in_export.column("reason")).to_pylist()
    }


def build_import(
    warehouse: Warehouse,
    audience_settings: AudienceSettings,
    profile_partitions: set[str],
    audience_id: str,
    stamp: str,
) -> dict[str, Any]:
    record = read_export_record(warehouse, audience_id, stamp)
    membership = read_index(warehouse, AUDIENCE_MEMBERSHIP, audience_id)["exports"].get(stamp)
    if membership is None:
        raise Failure(
            description=f"Export {stamp} of audience {audience_id} is not applied to the "
            "membership yet; materialize audience_membership for it first."
        )
    name = audience_settings.audience_names.get(audience_id, "")
    identity = recorded_identity(membership, audience_settings)
    suppressed = load_email_suppression(warehouse)
    with warehouse.local_copy(
        AUDIENCE_MEMBERSHIP, f"{audience_id}/{stamp}", "members.parquet"
    ) as f:
        if f is None:
            raise FileNotFoundError(f"members.parquet of {audience_id}/{stamp}")
        # The keys first: matching needs only them, and the other columns can wait for it.
        recipients = match_handed_over_keys(
            warehouse,
            profile_partitions,
            [pq.read_table(f, columns=["key"]).column("key")],
            identity,
        )
        # Matched before the other member columns are read: the hash join's tables then sit
        # next to the keys only.
        matched = identity_matches(
            pq.read_table(f, columns=["key"]).column("key"), recipients.column(JOIN_KEY)
        )
        release_memory()
        members = pq.read_table(f, columns=MEMBER_COLUMNS)
    # Handed over, not kept here: the join drops each column after its last use.
    tables = [members, recipients]
    del members, recipients
    rows = join_handed_over(
        tables,
        suppressed,
        identity,
        (audience_id, name, record["export_time"]),
        for_csv=True,
        matched=matched,
    )
    release_memory()
    imported = rows.imported
    total = imported.num_rows
    limit = audience_settings.max_rows_per_file
    n_parts = max(1, -(-total // limit))
    names = import_file_names(audience_id, stamp, n_parts)
    files = []
    with tempfile.TemporaryDirectory(prefix="rtcdp-import-") as tmp:
        table = imported.select(list(IMPORT_COLUMNS))
        for i, file_name in enumerate(names):
            part = table.slice(i * limit, limit)
            local = Path(tmp) / file_name
            size, sha256 = write_csv(part, local, IMPORT_COLUMNS, _iso_times)
            warehouse.put_file(CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", file_name, local)
            files.append(
                {
                    "name": file_name,
                    "part": i + 1,
                    "rows": part.num_rows,
                    "bytes": size,
                    "sha256": sha256,
                }
            )
        for file_name, out in (
            ("quarantine.parquet", rows.quarantined),
            ("excluded.parquet", rows.excluded),
        ):
            local = Path(tmp) / file_name
            pq.write_table(out, local, compression="zstd")
            warehouse.put_file(CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", file_name, local)
    reconciliation = reconcile_export(
        record,
        membership,
        _true_count(imported.column("in_export")),
        _count_by_reason(rows.excluded),
        _count_by_reason(rows.quarantined),
    )
    manifest = {
        "audience_id": audience_id,
        "audience_name": name,
        "export_id": record["export_id"],
        "export_stamp": stamp,
        "export_time": record["export_time"],
        "join_identity": identity,
        "columns": list(IMPORT_COLUMNS),
        "files": files,
        "rows": total,
        "rows_by_status": _all_counts(imported.column("membership_status")),
        "rows_from_previous_state": total - _true_count(imported.column("in_export")),
        "excluded": _all_reasons(rows.excluded),
        "quarantined": _all_reasons(rows.quarantined),
        "reconciliation": reconciliation,
    }
    # Written last: the manifest is what says the staged import is complete.
    warehouse.put_json(CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", "manifest.json", manifest)
    return manifest


def _true_count(values: pa.ChunkedArray) -> int:
    return int(pc.sum(pc.fill_null(values, False).cast(pa.int64())).as_py() or 0)


def _all_counts(values: pa.ChunkedArray) -> dict[str, int]:
    counts = pc.value_counts(values.drop_null()).to_pylist()
    return {
        item["values"]: int(item["counts"]) for item in sorted(counts, key=lambda i: i["values"])
    }


def _all_reasons(table: pa.Table) -> dict[str, int]:
    if table.num_rows == 0:
        return {}
    return {
        item["values"]: item["counts"]
        for item in sorted(
            pc.value_counts(table.column("reason")).to_pylist(), key=lambda i: i["values"]
        )
    }
