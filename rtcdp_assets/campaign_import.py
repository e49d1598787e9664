"""AEP audience members → the file a Campaign import workflow loads (Campaign: source of truth).

    audience_membership ──▶ campaign_audience_import ──(blocking checks)──▶ …_published
     members after an        joined to Campaign `profiles`:            uploaded atomically to the
     export                  staged import file + quarantine           Campaign SFTP import folder,
                             + exclusions (warehouse)                  then `<name>.done`

Campaign is the source of truth for profiles (adobe-formats §f1): an AEP member whose join
identity (`audience_settings.join_identity`: the Campaign external ID, or the lower-cased email)
matches no Campaign recipient never reaches Campaign; it goes to the quarantine with the reason
`not_in_campaign` (`ambiguous_campaign_profile` when several recipients share the identity, so
nobody is imported under the wrong recipient). A member whose Campaign email address is in the
`suppression_list` (quarantined, denylisted or opted out) is excluded with that reason
(`quarantine`, `denylisted`, `opted_out`), whatever its membership status.

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

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions at definition time.
"""

import hashlib
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from resources.audience_settings import AudienceSettings
from resources.drop_zones import DropZone, Entry, join
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.masking import masked_preview
from rtcdp_assets.segments import (
    AUDIENCE_MEMBERSHIP,
    GROUP,
    SEGMENT_EXPORTS,
    audience_membership,
    audience_partitions,
    export_stamp_for_run,
    read_export_record,
    read_index,
    read_members,
)

CAMPAIGN_IMPORT = "campaign_audience_import"
PUBLISHED = "campaign_audience_import_published"
IMPORT_COLUMNS = (
    "recipient_id",
    "external_id",
    "email",
    "audience_id",
    "audience_name",
    "membership_status",
    "last_qualification_time",
    "export_time",
)
QUARANTINE_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("external_id", pa.string()),
        ("email", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("in_export", pa.bool_()),
    ]
)
EXCLUDED_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("recipient_id", pa.string()),
        ("email", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("in_export", pa.bool_()),
    ]
)


def import_file_names(audience_id: str, stamp: str, parts: int) -> list[str]:
    base = f"aep_audience_{audience_id}_{stamp}"
    return [f"{base}.csv" if i == 1 else f"{base}_{i}.csv" for i in range(1, parts + 1)]


# --------------------------------------------------------------------------------------------
# Inputs: Campaign recipients and the suppression list
# --------------------------------------------------------------------------------------------
def load_campaign_recipients(warehouse: Warehouse, partitions: set[str]) -> pd.DataFrame:
    """recipient_id, external_id, email of every Campaign recipient, latest version of each."""
    frames = []
    for pk in sorted(partitions):
        with warehouse.local_copy("profiles", pk, "data.parquet") as local:
            if local is not None:
                cols = ["recipient_id", "external_id", "email", "last_modified"]
                frames.append(pq.read_table(local, columns=cols).to_pandas())
    if not frames:
        raise Failure(
            description="No Campaign profiles are materialized: without the source of truth no "
            "member can be matched, so nothing is imported. Materialize `profiles` first."
        )
    df = pd.concat(frames, ignore_index=True)
    df = df.sort_values("last_modified", kind="stable").drop_duplicates("recipient_id", keep="last")
    return df[["recipient_id", "external_id", "email"]].sort_values("recipient_id", kind="stable")


def load_email_suppression(warehouse: Warehouse) -> pd.Series:
    """Suppressed email address -> reason (the first reason by name when there are several)."""
    with warehouse.local_copy("suppression_list", "current", "data.parquet") as local:
        if local is None:
            raise Failure(
                description="`suppression_list` is not materialized: importing without it could "
                "target quarantined or opted-out addresses. Materialize it first."
            )
        table = pq.read_table(local, columns=["channel", "address", "reason"])
    df = table.to_pandas()
    df = df[df["channel"] == "email"].sort_values(["address", "reason"], kind="stable")
    return df.drop_duplicates("address").set_index("address")["reason"]


# --------------------------------------------------------------------------------------------
# The join
# --------------------------------------------------------------------------------------------
@dataclass
class ImportRows:
    imported: pd.DataFrame  # IMPORT_COLUMNS + key, in_export; sorted by recipient_id
    excluded: pa.Table  # EXCLUDED_SCHEMA
    quarantined: pa.Table  # QUARANTINE_SCHEMA


def join_members(
    members: pa.Table,
    recipients: pd.DataFrame,
    suppressed: pd.Series,
    join_identity: str,
    audience_id: str,
    audience_name: str,
    export_time: str,
) -> ImportRows:
    m = members.to_pandas()
    key_column = "email" if join_identity == "email" else "external_id"
    r = recipients.dropna(subset=[key_column])
    counts = r[key_column].value_counts()
    ambiguous = set(counts[counts > 1].index)
    lookup = r[~r[key_column].isin(ambiguous)].set_index(key_column)

    found = m["key"].isin(lookup.index)
    is_ambiguous = m["key"].isin(ambiguous)
    quarantined = m[~found].assign(
        reason=np.where(is_ambiguous[~found], "ambiguous_campaign_profile", "not_in_campaign")
    )

    joined = m[found].copy()
    campaign = lookup.loc[joined["key"]]
    joined["recipient_id"] = campaign["recipient_id"].to_numpy()
    joined["campaign_external_id"] = (
        campaign.index.to_numpy()
        if key_column == "external_id"
        else campaign["external_id"].to_numpy()
    )
    joined["campaign_email"] = (
        campaign.index.to_numpy() if key_column == "email" else campaign["email"].to_numpy()
    )
    joined["reason"] = joined["campaign_email"].map(suppressed)
    excluded = joined[joined["reason"].notna()]
    kept = joined[joined["reason"].isna()]

    qualification = kept["last_qualification_time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    imported = pd.DataFrame(
        {
            "recipient_id": kept["recipient_id"].to_numpy(),
            "external_id": kept["campaign_external_id"].to_numpy(),
            "email": kept["campaign_email"].to_numpy(),
            "audience_id": audience_id,
            "audience_name": audience_name,
            "membership_status": kept["status"].to_numpy(),
            "last_qualification_time": qualification.to_numpy(),
            "export_time": export_time,
            "key": kept["key"].to_numpy(),
            "in_export": kept["in_export"].to_numpy(),
        }
    ).sort_values("recipient_id", kind="stable", ignore_index=True)
    return ImportRows(
        imported=imported,
        excluded=pa.Table.from_pandas(
            # The address Campaign would send to is the one that is suppressed.
            excluded.assign(email=excluded["campaign_email"])[[f.name for f in EXCLUDED_SCHEMA]],
            schema=EXCLUDED_SCHEMA,
            preserve_index=False,
        ),
        quarantined=pa.Table.from_pandas(
            quarantined[[f.name for f in QUARANTINE_SCHEMA]],
            schema=QUARANTINE_SCHEMA,
            preserve_index=False,
        ),
    )


# --------------------------------------------------------------------------------------------
# Writing CSV: vectorised, quoting only what needs it
# --------------------------------------------------------------------------------------------
def _csv_field(values: pa.Array) -> pa.Array:
    text = pc.fill_null(pc.cast(values, pa.string()), "")
    needs = pc.match_substring_regex(text, r'[",\r\n]')
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, text)


def csv_bytes(table: pa.Table, columns: tuple[str, ...] = IMPORT_COLUMNS) -> bytes:
    """RFC 4180 CSV with a header, quoting only values that need it, `\\n` line ends."""
    head = ",".join(columns) + "\n"
    if table.num_rows == 0:
        return head.encode()
    fields = [_csv_field(table.column(c).combine_chunks()) for c in columns]
    lines = pc.binary_join_element_wise(*fields, ",")
    lines = pc.binary_join_element_wise(lines, "", "\n").cast(pa.large_string())
    # The data buffer of a null-free string array is exactly the values back to back.
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
    start, end = offsets[lines.offset], offsets[lines.offset + len(lines)]
    return head.encode() + lines.buffers()[2].to_pybytes()[start:end]


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


# --------------------------------------------------------------------------------------------
# The assets
# --------------------------------------------------------------------------------------------
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
    members = read_members(warehouse, audience_id, stamp)
    name = audience_settings.audience_names.get(audience_id, "")
    rows = join_members(
        members,
        load_campaign_recipients(warehouse, profile_partitions),
        load_email_suppression(warehouse),
        audience_settings.join_identity,
        audience_id,
        name,
        record["export_time"],
    )
    total = len(rows.imported)
    limit = audience_settings.max_rows_per_file
    n_parts = max(1, -(-total // limit))
    names = import_file_names(audience_id, stamp, n_parts)
    files = []
    with tempfile.TemporaryDirectory(prefix="rtcdp-import-") as tmp:
        table = pa.Table.from_pandas(
            rows.imported[list(IMPORT_COLUMNS)].astype(object),
            schema=pa.schema([(c, pa.string()) for c in IMPORT_COLUMNS]),
            preserve_index=False,
        )
        for i, file_name in enumerate(names):
            part = table.slice(i * limit, limit)
            data = csv_bytes(part)
            local = Path(tmp) / file_name
            local.write_bytes(data)
            warehouse.put_file(CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", file_name, local)
            files.append(
                {
                    "name": file_name,
                    "part": i + 1,
                    "rows": part.num_rows,
                    "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
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
        int(rows.imported["in_export"].sum()),
        _count_by_reason(rows.excluded),
        _count_by_reason(rows.quarantined),
    )
    manifest = {
        "audience_id": audience_id,
        "audience_name": name,
        "export_id": record["export_id"],
        "export_stamp": stamp,
        "export_time": record["export_time"],
        "join_identity": audience_settings.join_identity,
        "columns": list(IMPORT_COLUMNS),
        "files": files,
        "rows": total,
        "rows_by_status": {
            k: int(v) for k, v in sorted(rows.imported["membership_status"].value_counts().items())
        },
        "rows_from_previous_state": int((~rows.imported["in_export"].astype(bool)).sum()),
        "excluded": _all_reasons(rows.excluded),
        "quarantined": _all_reasons(rows.quarantined),
        "reconciliation": reconciliation,
    }
    # Written last: the manifest is what says the staged import is complete.
    warehouse.put_json(CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", "manifest.json", manifest)
    return manifest


def _all_reasons(table: pa.Table) -> dict[str, int]:
    if table.num_rows == 0:
        return {}
    return {
        item["values"]: item["counts"]
        for item in sorted(
            pc.value_counts(table.column("reason")).to_pylist(), key=lambda i: i["values"]
        )
    }


def read_import_manifest(warehouse: Warehouse, audience_id: str, stamp: str) -> dict[str, Any]:
    manifest = warehouse.get_json(CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", "manifest.json")
    if manifest is None:
        raise Failure(description=f"No staged Campaign import for audience {audience_id} {stamp}.")
    return manifest


@asset(
    name=CAMPAIGN_IMPORT,
    partitions_def=audience_partitions,
    group_name=GROUP,
    kinds={"parquet", "csv"},
    deps=[
        audience_membership,
        # Every audience is matched against all Campaign recipients, whatever window brought them.
        AssetDep(AssetKey("profiles"), partition_mapping=AllPartitionMapping()),
        AssetKey("suppression_list"),
    ],
    description=(
        "Audience members joined to Campaign profiles, as the staged Campaign import file; "
        "members without a Campaign profile are quarantined (`not_in_campaign`), suppressed "
        "addresses excluded with their reason. Checked before it is uploaded."
    ),
)
def campaign_audience_import(
    context: AssetExecutionContext, warehouse: Warehouse, audience_settings: AudienceSettings
) -> MaterializeResult:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    manifest = build_import(
        warehouse,
        audience_settings,
        context.instance.get_materialized_partitions(AssetKey("profiles")),
        audience_id,
        stamp,
    )
    quarantine = warehouse.read_table(
        CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", "quarantine.parquet"
    )
    return MaterializeResult(
        metadata={
            "dagster/row_count": manifest["rows"],
            "export_id": manifest["export_id"],
            "files": MetadataValue.json(manifest["files"]),
            "rows_by_status": MetadataValue.json(manifest["rows_by_status"]),
            "excluded_by_reason": MetadataValue.json(manifest["excluded"]),
            "quarantined_by_reason": MetadataValue.json(manifest["quarantined"]),
            "reconciliation": MetadataValue.json(manifest["reconciliation"]),
            "quarantine_preview": MetadataValue.md(
                masked_preview(quarantine, {"email", "key", "external_id"})
            ),
            "warehouse_path": warehouse.path(CAMPAIGN_IMPORT, audience_id, stamp),
        }
    )


def upload_verified(
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    staged: tuple[str, str, str],
    target: str,
    sha256: str,
    marker: Mapping[str, Any],
) -> Entry:
    """Upload a staged import file to Campaign only if its bytes are still the ones the checks
    passed, atomically, then its `.done` marker (the marker says the file is complete)."""
    dataset, folder, name = staged
    with warehouse.local_copy(dataset, folder, name) as local:
        if local is None:
            raise Failure(description=f"Staged import file {name} is missing.")
        digest = hashlib.sha256(local.read_bytes()).hexdigest()
        if digest != sha256:
            raise Failure(
                description=f"Staged {name} changed after it was checked "
                f"(SHA-256 {digest} != {sha256}); not uploading it."
            )
        entry = campaign_sftp.write_atomic(target, local)
    campaign_sftp.write_bytes(
        f"{target}.done", json.dumps(dict(marker), indent=2, sort_keys=True).encode()
    )
    return entry


def publish_import(
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    settings: PipelineSettings,
    audience_id: str,
    stamp: str,
) -> list[dict[str, Any]]:
    manifest = read_import_manifest(warehouse, audience_id, stamp)
    published = []
    for f in manifest["files"]:
        target = join(settings.campaign_import_folder, f["name"])
        marker = {
            "file": f["name"],
            "rows": f["rows"],
            "bytes": f["bytes"],
            "sha256": f["sha256"],
            "part": f["part"],
            "parts": len(manifest["files"]),
            "audience_id": audience_id,
            "audience_name": manifest["audience_name"],
            "export_id": manifest["export_id"],
            "export_time": manifest["export_time"],
            "columns": manifest["columns"],
        }
        entry = upload_verified(
            warehouse,
            campaign_sftp,
            (CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", f["name"]),
            target,
            f["sha256"],
            marker,
        )
        published.append({"path": target, "rows": f["rows"], "bytes": entry.size})
    return published


@asset(
    name=PUBLISHED,
    partitions_def=audience_partitions,
    group_name=GROUP,
    kinds={"sftp", "csv"},
    deps=[campaign_audience_import],
    description=(
        "The checked Campaign import file(s) of the export, uploaded atomically to the Campaign "
        "SFTP import folder, each followed by its `.done` completion marker."
    ),
    pool="campaign_sftp",
)
def campaign_audience_import_published(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    campaign_sftp: DropZone,
    settings: PipelineSettings,
) -> MaterializeResult:
    audience_id = context.partition_key
    stamp = export_stamp_for_run(context.run.tags, warehouse, audience_id)
    published = publish_import(warehouse, campaign_sftp, settings, audience_id, stamp)
    return MaterializeResult(
        metadata={
            "dagster/row_count": sum(p["rows"] for p in published),
            "import_files": MetadataValue.json(published),
            "campaign_sftp": campaign_sftp.describe(),
            "segment_exports_record": f"{SEGMENT_EXPORTS}/{audience_id}/{stamp}/export.json",
        }
    )
