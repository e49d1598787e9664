"""non_deliverables: Campaign's quarantine list (nms:address) and the suppression list built on it.

Accepted file names: `nonDeliverables_YYYYMMDD_HHMM[SS][_<suffix>].csv[.gz]`.

| canonical       | Campaign Classic v7/v8 | Campaign Standard | required |
|-----------------|------------------------|-------------------|----------|
| address_id      | iAddressId             | id                | yes      |
| address         | sAddress               | address           | yes      |
| channel         | iType                  | channel           | yes      |
| status          | iStatus                | status            | yes      |
| failure_reason  | iFailureReason         | failureReason     |          |
| error_count     | iErrorCount            | errorCount        |          |
| error_text      | sText                  | errorText         |          |
| last_error      | tsLastError            | lastErrorDate     |          |
| created         | tsCreated              | created           |          |
| last_modified   | tsLastModified         | lastModified      | yes      |
| org_unit        | sOrgUnit               | orgUnit           |          |

Status and channel codes are UNCONFIRMED beyond `2 = Valid` (docs/formats.md §b5), so both
mappings live in `PipelineSettings` (`address_status_codes`, `address_channel_codes`). Rows of a
channel with no XDM field (postal mail) are quarantined with `unknown_code:channel`, not
dropped. Device tokens quarantined on the push channels (`push_ios`, `push_android`) become
`pushNotificationDetails` items with `denylisted` = quarantined or denylisted, and the token
in identityMap under its platform's namespace (`push_token_namespaces`).
"""

import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AutomationCondition,
    DagsterInstance,
    MaterializeResult,
    MetadataValue,
    asset,
)

from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportFlow
from rtcdp_assets.shared import push_token_formats, xdm
from rtcdp_assets.shared.ingest import ExportFormat, FieldSpec, Layout
from rtcdp_assets.shared.masking import masked_preview
from rtcdp_assets.shared.xdm_conformance import (
    FG_IDENTITY_MAP,
    FG_PROFILE_PERSONAL_DETAILS,
    FG_PROFILE_PUSH_NOTIFICATION_DETAILS,
    PROFILE,
)

# Not eager(): its "no dependency missing" is never true here, as the deps are 4-hourly and
# most windows hold no export; and its "newly missing" would build an empty list before any
# quarantine or preference has arrived. Each new (or re-run) partition of either dep is enough.
SUPPRESSION_LIST_CONDITION = (
    AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("after a new non_deliverables or preferences partition")

FIELDS = (
    FieldSpec("address_id", "int", required=True, description="Quarantine entry ID (PK)."),
    FieldSpec("address", "string", required=True, personal=True, description="Email or phone."),
    FieldSpec("channel", "int", required=True, description="Channel code (0 email, 1 SMS, ...)."),
    FieldSpec("status", "int", required=True, description="Address status code."),
    FieldSpec("failure_reason", "int", description="Failure reason code (§b3)."),
    FieldSpec("error_count", "int", description="Consecutive soft errors."),
    FieldSpec("error_text", "string", personal=True, description="Last error message."),
    FieldSpec("last_error", "timestamp", description="Date of the last error."),
    FieldSpec("created", "timestamp", description="When the address entered the list."),
    FieldSpec("last_modified", "timestamp", required=True, description="Last change."),
    FieldSpec("org_unit", "string", description="Campaign organizational unit."),
)

CLASSIC = Layout(
    "campaign_classic",
    {
        "iAddressId": "address_id",
        "sAddress": "address",
        "iType": "channel",
        "iStatus": "status",
        "iFailureReason": "failure_reason",
        "iErrorCount": "error_count",
        "sText": "error_text",
        "tsLastError": "last_error",
        "tsCreated": "created",
        "tsLastModified": "last_modified",
        "sOrgUnit": "org_unit",
    },
)
STANDARD = Layout(
    "campaign_standard",
    {
        "id": "address_id",
        "address": "address",
        "channel": "channel",
        "status": "status",
        "failureReason": "failure_reason",
        "errorCount": "error_count",
        "errorText": "error_text",
        "lastErrorDate": "last_error",
        "created": "created",
        "lastModified": "last_modified",
        "orgUnit": "org_unit",
    },
)

NON_DELIVERABLES_FORMAT = ExportFormat(
    dataset="non_deliverables", fields=FIELDS, layouts=(CLASSIC, STANDARD)
)

# Campaign address status → XDM email/phone status (emailaddress / phonenumber data types).
XDM_STATUS = {
    "valid": "active",
    "with_errors": "active",
    "quarantine": "blocked",
    "denylisted": "blacklisted",
}
SUPPRESSING_STATUSES = frozenset({"quarantine", "denylisted"})
# channel label → (XDM object, identity namespace)
CHANNEL_TARGETS = {
    "email": ("personalEmail", "Email"),
    "sms": ("mobilePhone", "Phone"),
    "phone": ("homePhone", "Phone"),
    "fax": ("faxPhone", "Phone"),
}
# push channel label → push platform of its device tokens
PUSH_CHANNEL_PLATFORMS = {"push_ios": "apns", "push_android": "fcm"}


def non_deliverables_to_xdm(batch: pa.RecordBatch, settings: PipelineSettings) -> pa.RecordBatch:
    """Quarantine entries → profile-side records carrying the address status."""
    channel = xdm.lookup(batch.column("channel"), settings.address_channel_codes)
    status = xdm.lookup(batch.column("status"), settings.address_status_codes)
    xdm_status = xdm.lookup(status, XDM_STATUS)
    address = batch.column("address")
    email = pc.utf8_lower(address)
    columns: dict[str, pa.Array] = {
        "_id": xdm.event_ids(
            "campaign-address",
            batch.column("address_id"),
            pc.cast(batch.column("last_modified"), pa.int64()),
        )
    }
    identities: dict[str, pa.Array] = {}
    for label, (target, namespace) in CHANNEL_TARGETS.items():
        is_channel = pc.fill_null(pc.equal(channel, label), False)
        value = email if label == "email" else address
        field_name = "address" if label == "email" else "number"
        columns[target] = xdm.struct(
            {field_name: value, "status": xdm_status}, mask=pc.invert(is_channel)
        )
        item = pc.if_else(is_channel, value, pa.scalar(None, pa.string()))
        identities[namespace] = (
            item if namespace not in identities else pc.coalesce(identities[namespace], item)
        )
    platform = xdm.lookup(channel, PUSH_CHANNEL_PLATFORMS)
    no_token = pa.scalar(None, pa.string())
    token = pc.if_else(
        pc.is_null(platform), no_token, push_token_formats.normalized(address, platform)
    )
    columns["pushNotificationDetails"] = push_token_formats.push_details(
        app_id=pa.nulls(len(address), pa.string()),  # quarantine is per address, not per app
        token=token,
        platform=platform,
        denylisted=pc.fill_null(
            pc.is_in(status, value_set=pa.array(sorted(SUPPRESSING_STATUSES))), False
        ),
    )
    identity_map = {ns: xdm.identities(values, primary=True) for ns, values in identities.items()}
    # A push row's token is its only identity: primary, like the email or phone of the other
    # rows (a Profile record needs one primary identity, docs/formats.md §i2).
    for ns, values in push_token_formats.token_identities(
        token, platform, settings.push_token_namespaces, primary=True
    ).items():
        identity_map[ns] = values if ns not in identity_map else _either(identity_map[ns], values)
    columns["identityMap"] = xdm.struct(identity_map)
    return pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))


def _either(a: pa.Array, b: pa.Array) -> pa.Array:
    """Two identity lists of one namespace where at most one is set per row."""
    return pc.if_else(pc.is_null(a), b, a)


def _allowed_codes(settings: PipelineSettings) -> dict[str, frozenset[str]]:
    supported = {
        code
        for code, label in settings.address_channel_codes.items()
        if label in CHANNEL_TARGETS or label in PUSH_CHANNEL_PLATFORMS
    }
    return {
        "status": frozenset(settings.address_status_codes),
        "channel": frozenset(supported),
    }


non_deliverables_flow = CampaignExportFlow(
    fmt=NON_DELIVERABLES_FORMAT,
    file_prefix="nonDeliverables",
    to_xdm=non_deliverables_to_xdm,
    xdm_class=PROFILE,
    xdm_field_groups=(
        FG_PROFILE_PERSONAL_DETAILS,
        FG_PROFILE_PUSH_NOTIFICATION_DETAILS,
        FG_IDENTITY_MAP,
    ),
    record_kind="profile",
    description=(
        "Campaign's non-deliverable addresses (the quarantine list, nms:address): one typed row "
        "per address and channel, from the 4-hourly export."
    ),
    column_lineage={
        "_id": ("address_id", "last_modified"),
        "personalEmail.address": ("address", "channel"),
        "personalEmail.status": ("status", "channel"),
        "mobilePhone.number": ("address", "channel"),
        "mobilePhone.status": ("status", "channel"),
        "homePhone.number": ("address", "channel"),
        "homePhone.status": ("status", "channel"),
        "faxPhone.number": ("address", "channel"),
        "faxPhone.status": ("status", "channel"),
        "identityMap.Email": ("address", "channel"),
        "identityMap.Phone": ("address", "channel"),
        "identityMap.{apns}": ("address", "channel"),
        "identityMap.{fcm}": ("address", "channel"),
        "pushNotificationDetails.token": ("address", "channel"),
        "pushNotificationDetails.platform": ("channel",),
        "pushNotificationDetails.denylisted": ("status", "channel"),
    },
    # Campaign's quarantine is per address, not per app.
    constant_columns={"pushNotificationDetails.appID": "null"},
    allowed_codes=_allowed_codes,
)

non_deliverables_defs = non_deliverables_flow.build()


@asset(
    name="suppression_list",
    group_name="campaign_to_aep",
    kinds={"parquet"},
    deps=[AssetKey("non_deliverables"), AssetKey("preferences")],
    # Rebuilt whenever a non-deliverables or preferences partition lands, by the daemon's
    # automation sensor, so the audience import always excludes the latest suppressions.
    automation_condition=SUPPRESSION_LIST_CONDITION,
    description=(
        "Addresses that must never be targeted: the latest quarantine status of every address "
        "(quarantined or denylisted) and recipients' channel opt-outs (preferences). The import "
        "flow excludes these with their reason."
    ),
)
def suppression_list(
    context: AssetExecutionContext, warehouse: Warehouse, settings: PipelineSettings
) -> MaterializeResult:
    table = build_suppression_list(
        warehouse,
        settings,
        context.instance.get_materialized_partitions(AssetKey("non_deliverables")),
        context.instance.get_materialized_partitions(AssetKey("preferences")),
    )
    with tempfile.TemporaryDirectory(prefix="rtcdp-sup-") as tmp:
        local = Path(tmp) / "data.parquet"
        pq.write_table(table, local, compression="zstd")
        warehouse.put_file("suppression_list", "current", "data.parquet", local)
    by_reason = pc.value_counts(table.column("reason")).to_pylist() if table.num_rows else []
    return MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "suppressed_by_reason": MetadataValue.json(
                {item["values"]: item["counts"] for item in by_reason}
            ),
            "preview": MetadataValue.md(masked_preview(table, {"address"})),
            "warehouse_path": warehouse.path("suppression_list", "current", "data.parquet"),
        }
    )


SUPPRESSION_SCHEMA = pa.schema(
    [
        ("channel", pa.string()),
        ("address", pa.string()),
        ("reason", pa.string()),
        ("since", pa.timestamp("us", tz="UTC")),
    ]
)


def build_suppression_list(
    warehouse: Warehouse,
    settings: PipelineSettings,
    non_deliverable_partitions: set[str],
    preference_partitions: set[str],
) -> pa.Table:
    """Latest state per address wins, so an address released from quarantine is not suppressed."""
    frames = []
    for pk in sorted(non_deliverable_partitions):
        t = _read(
            warehouse, "non_deliverables", pk, ["address", "channel", "status", "last_modified"]
        )
        if t is not None:
            frames.append(t.to_pandas())
    rows: list[pd.DataFrame] = []
    if frames:
        df = pd.concat(frames, ignore_index=True)
        df["channel"] = df["channel"].astype(str).map(settings.address_channel_codes)
        df["status"] = df["status"].astype(str).map(settings.address_status_codes)
        df["address"] = df["address"].where(df["channel"] != "email", df["address"].str.lower())
        df = df.sort_values("last_modified", kind="stable").drop_duplicates(
            ["channel", "address"], keep="last"
        )
        df = df[df["status"].isin(SUPPRESSING_STATUSES)]
        rows.append(
            pd.DataFrame(
                {
                    "channel": df["channel"],
                    "address": df["address"],
                    "reason": df["status"],
                    "since": df["last_modified"],
                }
            )
        )
    prefs = []
    for pk in sorted(preference_partitions):
        cols = ["email", "blacklist", "blacklist_email", "last_modified"]
        t = _read(warehouse, "preferences", pk, cols)
        if t is not None:
            prefs.append(t.to_pandas())
    if prefs:
        p = pd.concat(prefs, ignore_index=True).dropna(subset=["email"])
        p = p.sort_values("last_modified", kind="stable").drop_duplicates("email", keep="last")
        p = p[p["blacklist"] | p["blacklist_email"]]
        rows.append(
            pd.DataFrame(
                {
                    "channel": "email",
                    "address": p["email"],
                    "reason": "opted_out",
                    "since": p["last_modified"],
                }
            )
        )
    if not rows:
        return SUPPRESSION_SCHEMA.empty_table()
    out = pd.concat(rows, ignore_index=True).sort_values(["channel", "address", "reason"])
    out = out.drop_duplicates(["channel", "address", "reason"])
    out["since"] = pd.to_datetime(out["since"], utc=True)
    return pa.Table.from_pandas(out, schema=SUPPRESSION_SCHEMA, preserve_index=False)


def _read(warehouse: Warehouse, dataset: str, pk: str, columns: list[str]) -> pa.Table | None:
    with warehouse.local_copy(dataset, pk, "data.parquet") as local:
        return None if local is None else pq.read_table(local, columns=columns)


def quarantined_tokens(
    instance: DagsterInstance, warehouse: Warehouse, settings: PipelineSettings, up_to: str
) -> set[str]:
    """Device tokens Campaign holds as quarantined or denylisted on the push channels, as of
    the `non_deliverables` partitions materialized up to window `up_to` (latest state per
    address wins, so a released token is active again). Bounded by the window, a re-run of a
    partition sees the same quarantine state."""
    partitions = {
        pk
        for pk in instance.get_materialized_partitions(AssetKey("non_deliverables"))
        if pk <= up_to
    }
    table = build_suppression_list(warehouse, settings, partitions, set())
    push = table.filter(
        pc.is_in(table.column("channel"), value_set=pa.array(sorted(PUSH_CHANNEL_PLATFORMS)))
    )
    platform = xdm.lookup(push.column("channel"), PUSH_CHANNEL_PLATFORMS)
    return set(push_token_formats.normalized(push.column("address"), platform).to_pylist()) - {None}
