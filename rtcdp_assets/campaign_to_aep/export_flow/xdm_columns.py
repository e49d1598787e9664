"""The columns of an XDM asset as a reviewer reads them: every leaf field with its type, a
description and the typed columns it comes from (`dagster/column_schema`,
`dagster/column_lineage`, and `column_lineage_table`, the same lineage as Markdown because the
open-source UI does not draw column lineage).

A leaf is a field that is neither a struct nor a list of structs, written as its dotted path
(`_experience.campaign.broadlogID`; a list of structs adds no marker:
`pushNotificationDetails.token`). One exception: an identityMap namespace
(`identityMap.Email`) is one leaf, since its items are always XDM's identity shape
{id, authenticatedState, primary}.

identityMap namespaces are settings, so a dataset writes its lineage keys with placeholders
(`identityMap.{campaign}`) that `resolved_lineage` fills from the settings: `{campaign}` the
Campaign recipient identity (`campaign_identity_namespace`), `{email}` `{phone}` `{email_sha256}`
`{phone_sha256}` the destination identities (`destination_identity_namespaces`; a role the
setting leaves out is not written, nor is its lineage), `{subscriber}` the push subscriber key
(`push_subscriber_namespace`, else the recipient identity), `{apns}` / `{fcm}` the device token
namespaces (`push_token_namespaces`). A leaf that no typed column feeds (a constant) is
declared in the dataset's `constant_columns`, so every leaf is accounted for.
"""

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
from dagster import (
    AssetKey,
    MetadataValue,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
)

from resources.identity_settings import DEFAULT_DESTINATION_IDENTITY_NAMESPACES
from resources.settings import PipelineSettings
from rtcdp_assets.campaign_to_aep.export_flow.description import CampaignExportDescription

# What each XDM field means, for the column schema. identityMap namespaces are described by
# role in `_identity_description`.
XDM_FIELD_DESCRIPTIONS: Mapping[str, str] = {
    "_id": "Unique record ID (AEP de-duplicates on it), derived from the Campaign row.",
    "timestamp": "When the event happened (UTC).",
    "eventType": "XDM event type of the Campaign log row.",
    "producedBy": "Who produced the event (a constant per dataset: see column_lineage_table).",
    "directMarketing.sends.value": "1 when the message was sent.",
    "directMarketing.bounces.value": "1 when the message bounced (hard or soft).",
    "directMarketing.nonDeliverables.value": "1 when the address became non-deliverable.",
    "directMarketing.notSent.value": "1 when the message was not sent (pending, cancelled).",
    "directMarketing.excludes.value": "1 when the recipient was excluded from the delivery.",
    "directMarketing.opens.value": "1 for an open.",
    "directMarketing.clicks.value": "1 for a click.",
    "directMarketing.unsubscriptions.value": "1 for an unsubscription click.",
    "directMarketing.mirrorPages.value": "1 for a mirror-page view.",
    "_experience.campaign.broadlogID": "Campaign delivery log ID.",
    "_experience.campaign.trackinglogID": "Campaign tracking log ID.",
    "_experience.campaign.deliveryID": "Campaign delivery ID.",
    "_experience.campaign.recipientID": "Campaign recipient ID.",
    "_experience.campaign.externalID": "Recipient external ID (else the recipient ID).",
    "_experience.campaign.campaignID": "Campaign (operation) ID.",
    "_experience.campaign.deliveryLabel": "Delivery label.",
    "_experience.campaign.channel": "Delivery channel (email, sms, push_ios, ...).",
    "_experience.campaign.status": "Delivery status label.",
    "_experience.campaign.reason": "Failure reason label.",
    "_experience.campaign.quarantine": "True when the failure quarantines the address.",
    "_experience.campaign.url": "Tracked URL.",
    "_experience.campaign.urlCategory": "Tracked URL category (open, click, opt-out, ...).",
    "personalEmail.address": "Email address (lower case).",
    "personalEmail.status": "Email address status in XDM terms (active, blocked, ...).",
    "mobilePhone.number": "Mobile phone number.",
    "mobilePhone.status": "Mobile number status in XDM terms.",
    "homePhone.number": "Phone number.",
    "homePhone.status": "Phone number status in XDM terms.",
    "faxPhone.number": "Fax number.",
    "faxPhone.status": "Fax number status in XDM terms.",
    "pushNotificationDetails.appID": "Mobile app ID of the push subscription.",
    "pushNotificationDetails.token": "Device token, normalised per platform.",
    "pushNotificationDetails.platform": "Push platform (apns, apnsSandbox, fcm).",
    "pushNotificationDetails.denylisted": "True when Campaign quarantined or denylisted the token.",
    "pushNotificationDetails.identity.namespace.code": "Namespace of the subscriber identity.",
    "pushNotificationDetails.identity.xid": "Subscriber identity of the device.",
    "person.name.firstName": "First name (personal).",
    "person.name.lastName": "Last name (personal).",
    "person.name.middleName": "Middle name (personal).",
    "person.gender": "Gender.",
    "person.birthDate": "Birth date (personal).",
    "homeAddress.city": "City of the postal address (personal).",
    "homeAddress.postalCode": "Postal code (personal).",
    "homeAddress.countryCode": "Country code (ISO 3166-1 alpha-2).",
    **{
        f"consents.marketing.{channel}.{part}": text
        for channel in ("any", "email", "sms", "call", "fax", "postalMail", "push")
        for part, text in (
            ("val", f"Marketing consent for {channel} (y / n)."),
            ("time", f"When the {channel} marketing consent was last changed."),
        )
    },
}


def identity_namespaces(settings: PipelineSettings) -> dict[str, str]:
    """Placeholder → identityMap namespace code, from the settings."""
    tokens = settings.push_token_namespaces
    return {
        **{
            role: settings.destination_identity_namespaces.get(role, "")
            for role in DEFAULT_DESTINATION_IDENTITY_NAMESPACES
        },
        "campaign": settings.campaign_identity_namespace,
        "subscriber": settings.push_subscriber_namespace or settings.campaign_identity_namespace,
        "apns": tokens.get("apns", "APNS"),
        "fcm": tokens.get("fcm", "FCM"),
    }


def resolved_lineage(
    flow: CampaignExportDescription, settings: PipelineSettings
) -> dict[str, tuple[str, ...]]:
    """XDM leaf path → typed columns, placeholders filled; two placeholders naming the same
    namespace (APNs and FCM sharing one) merge their columns."""
    names = identity_namespaces(settings)
    out: dict[str, tuple[str, ...]] = {}
    for path, columns in flow.column_lineage.items():
        key = path.format(**names)
        if key.endswith("."):  # a destination identity role the settings leave out
            continue
        out[key] = tuple(dict.fromkeys((*out.get(key, ()), *columns)))
    return out


def resolved_constants(
    flow: CampaignExportDescription, settings: PipelineSettings
) -> dict[str, str]:
    names = identity_namespaces(settings)
    return {
        path.format(**names): value.format(**names) for path, value in flow.constant_columns.items()
    }


def leaf_columns(schema: pa.Schema) -> list[tuple[str, pa.DataType]]:
    """Every leaf field of an XDM Arrow schema as (dotted path, type), in schema order."""
    leaves: list[tuple[str, pa.DataType]] = []

    def walk(path: str, type_: pa.DataType) -> None:
        if pa.types.is_list(type_) and pa.types.is_struct(type_.value_type):
            if path.startswith("identityMap."):
                leaves.append((path, type_))
                return
            type_ = type_.value_type
        if pa.types.is_struct(type_):
            for child in type_:
                walk(f"{path}.{child.name}", child.type)
            return
        leaves.append((path, type_))

    for field in schema:
        walk(field.name, field.type)
    return leaves


def _identity_description(path: str, settings: PipelineSettings) -> str | None:
    if not path.startswith("identityMap."):
        return None
    namespace = path.split(".", 1)[1]
    names = identity_namespaces(settings)
    roles = {
        names["campaign"]: "Campaign recipient identity (external ID, else recipient ID)",
        names["subscriber"]: "push subscriber key",
        names["apns"]: "APNs device tokens",
        names["fcm"]: "FCM device tokens",
        "Email": "email address",
        "Phone": "phone number (E.164)",
        **{
            names[role]: text
            for role, text in (
                ("email", "email address (trimmed, lower case)"),
                ("phone", "mobile phone number (E.164)"),
                ("email_sha256", "SHA-256 of the trimmed, lower-cased email"),
                ("phone_sha256", "SHA-256 of the E.164 mobile phone number"),
            )
            if names[role]
        },
    }
    role = roles.get(namespace, "identity")
    return f"identityMap namespace {namespace}: {role}, as [{{id, authenticatedState, primary}}]."


def column_description(path: str, settings: PipelineSettings) -> str:
    return (
        _identity_description(path, settings)
        or XDM_FIELD_DESCRIPTIONS.get(path)
        or f"XDM field {path}."
    )


def xdm_arrow_schema(flow: CampaignExportDescription, settings: PipelineSettings) -> pa.Schema:
    """The schema the XDM mapping writes, from an empty typed batch (no data needed)."""
    empty = pa.RecordBatch.from_pylist([], schema=flow.fmt.typed_schema)
    return flow.to_xdm(empty, settings).schema


def xdm_column_schema(schema: pa.Schema, settings: PipelineSettings) -> TableSchema:
    return TableSchema(
        columns=[
            TableColumn(path, str(type_), description=column_description(path, settings))
            for path, type_ in leaf_columns(schema)
        ]
    )


def xdm_column_lineage(
    flow: CampaignExportDescription, settings: PipelineSettings, typed_key: AssetKey
) -> TableColumnLineage:
    return TableColumnLineage(
        deps_by_column={
            path: [TableColumnDep(asset_key=typed_key, column_name=c) for c in columns]
            for path, columns in resolved_lineage(flow, settings).items()
        }
    )


def lineage_table(
    flow: CampaignExportDescription, schema: pa.Schema, settings: PipelineSettings
) -> MetadataValue:
    """Markdown: one row per XDM leaf, with the typed columns it comes from or its constant."""
    lineage = resolved_lineage(flow, settings)
    constants = resolved_constants(flow, settings)
    rows = ["| XDM field | from `" + flow.dataset + "` columns |", "|---|---|"]
    for path, _type in leaf_columns(schema):
        if path in lineage:
            source = ", ".join(f"`{c}`" for c in lineage[path])
        elif path in constants:
            source = f"constant: {constants[path]}"
        else:
            source = "_no lineage declared_"
        rows.append(f"| `{path}` | {source} |")
    return MetadataValue.md("\n".join(rows))


def xdm_spec_metadata(
    flow: CampaignExportDescription, settings: PipelineSettings, schema: pa.Schema | None = None
) -> dict[str, Any]:
    """Column schema, lineage and its table for `<dataset>_xdm`, for the spec (default
    settings, shown before the first run) and for each materialization (the run's settings and
    the schema it wrote)."""
    schema = schema if schema is not None else xdm_arrow_schema(flow, settings)
    return {
        "dagster/column_schema": xdm_column_schema(schema, settings),
        "dagster/column_lineage": xdm_column_lineage(flow, settings, flow.typed_key),
        "column_lineage_table": lineage_table(flow, schema, settings),
    }
