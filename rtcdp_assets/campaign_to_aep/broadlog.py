"""broadLog: Campaign delivery logs (one row per message sent or attempted).

Accepted file names: `broadLog_YYYYMMDD_HHMM[SS][_<suffix>].csv` and the same with `.gz`, in the
Campaign SFTP export folder. The time in the name puts the file in its 4-hour UTC window
(`broadLog_20261123_0930.csv` → partition `2026-11-23-08:00`).

Two column layouts are recognised from the header (all columns may come in any order; columns
not listed are ignored):

| canonical       | Campaign Classic v7/v8 | Campaign Standard | required |
|-----------------|------------------------|-------------------|----------|
| broadlog_id     | iBroadLogId            | id                | yes      |
| delivery_id     | iDeliveryId            | delivery-id       | yes      |
| recipient_id    | iRecipientId           | profile-id        | yes      |
| external_id     | sExternalId            | externalId        |          |
| address         | sAddress               | address           | (1)      |
| channel         | iMessageType           | deliveryType      |          |
| status          | iStatus                | status            | yes      |
| failure_type    | iFailureType           | failureType       |          |
| failure_reason  | iFailureReason         | failureReason     |          |
| event_date      | tsEvent                | eventDate         | yes      |
| contact_date    | tsContact              | contactDate       |          |
| last_modified   | tsLastModified         | lastModified      |          |
| delivery_label  | sDeliveryLabel         | deliveryLabel     |          |
| campaign_id     | iOperationId           | campaign-id       |          |
| org_unit        | sOrgUnit               | orgUnit           |          |

Classic column names follow Campaign's SQL naming (`i` integer, `s` string, `ts` timestamp);
docs/formats.md §g marks several of them UNCONFIRMED, which is why layouts are data, not code.

Channels (`delivery_channels.py`, docs/formats.md §b7): `channel` is the delivery's message type
(a code or a Campaign Standard name); without the column the row takes
`settings.broadlog_default_channel`. (1) The address is checked for its channel: an email
(`invalid_email`), a mobile or phone number that becomes E.164 (`invalid_phone_number`), an
APNs / FCM device token (`invalid_push_token`); none for direct mail. An unknown channel code is
`unknown_channel`. Each such row goes to the rejects with its raw values.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from resources.settings import PipelineSettings
from rtcdp_assets.campaign_to_aep import delivery_channels as channels
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportFlow
from rtcdp_assets.shared import push_token_formats, xdm
from rtcdp_assets.shared.campaign_codes import BROADLOG_STATUS_LABELS
from rtcdp_assets.shared.ingest import ExportFormat, FieldSpec, Layout, RowRules, RowValues
from rtcdp_assets.shared.xdm_conformance import (
    EXPERIENCE_EVENT,
    FG_CAMPAIGN_DELIVERY_LOG,
    FG_DIRECT_MARKETING,
)

STATUS_LABELS = BROADLOG_STATUS_LABELS

# failureReason technical values for email (docs/formats.md §b3, V8-FAIL).
FAILURE_REASONS = {
    "0": "not_defined",
    "1": "user_unknown",
    "2": "invalid_domain",
    "3": "unreachable",
    "4": "account_disabled",
    "5": "mailbox_full",
    "6": "not_connected",
    "7": "address_not_specified",
    "8": "denylisted_address",
    "9": "address_in_quarantine",
    "10": "double",
    "11": "excluded_by_sql_rule",
    "12": "excluded_after_arbitration",
    "14": "bad_quality_address",
    "15": "unqualified_address",
    "16": "not_eligible_for_offers",
    "17": "target_limited_in_size",
    "20": "refused",
    "25": "error_ignored",
    "127": "control_address",
}

FIELDS = (
    FieldSpec("broadlog_id", "int", required=True, description="Delivery log ID (PK)."),
    FieldSpec("delivery_id", "int", required=True, description="Delivery (NmsDelivery) ID."),
    FieldSpec(
        "recipient_id",
        "int",
        required=True,
        personal=True,
        description="Campaign recipient ID.",
    ),
    FieldSpec(
        "external_id",
        "string",
        personal=True,
        description="Recipient external ID (AEP identity).",
    ),
    FieldSpec(
        "address",
        "string",
        personal=True,
        column_required=True,  # every row but a direct-mail one needs a value (row rules)
        description="Target address: email, mobile number or device token (none: direct mail).",
    ),
    FieldSpec("status", "int", required=True, description="Delivery status code (iStatus)."),
    FieldSpec("failure_type", "int", description="Failure type code (hard/soft/ignored)."),
    FieldSpec(
        "failure_reason",
        "int",
        allowed=frozenset(FAILURE_REASONS),
        description="Failure reason code (§b3 table).",
    ),
    FieldSpec("event_date", "timestamp", required=True, description="When the log was written."),
    FieldSpec("contact_date", "timestamp", description="Contact date of the delivery."),
    FieldSpec("last_modified", "timestamp", description="Last modification of the log."),
    FieldSpec("delivery_label", "string", description="Delivery label."),
    FieldSpec("campaign_id", "string", description="Campaign (operation) ID."),
    FieldSpec("org_unit", "string", description="Campaign organizational unit."),
    FieldSpec("channel", "string", description="Delivery channel code (messageType, §b7)."),
)

CLASSIC = Layout(
    "campaign_classic",
    {
        "iBroadLogId": "broadlog_id",
        "iDeliveryId": "delivery_id",
        "iRecipientId": "recipient_id",
        "sExternalId": "external_id",
        "sAddress": "address",
        "iStatus": "status",
        "iFailureType": "failure_type",
        "iFailureReason": "failure_reason",
        "tsEvent": "event_date",
        "tsContact": "contact_date",
        "tsLastModified": "last_modified",
        "sDeliveryLabel": "delivery_label",
        "iOperationId": "campaign_id",
        "sOrgUnit": "org_unit",
        "iMessageType": "channel",
    },
)
STANDARD = Layout(
    "campaign_standard",
    {
        "id": "broadlog_id",
        "delivery-id": "delivery_id",
        "profile-id": "recipient_id",
        "externalId": "external_id",
        "address": "address",
        "status": "status",
        "failureType": "failure_type",
        "failureReason": "failure_reason",
        "eventDate": "event_date",
        "contactDate": "contact_date",
        "lastModified": "last_modified",
        "deliveryLabel": "delivery_label",
        "campaign-id": "campaign_id",
        "orgUnit": "org_unit",
        "deliveryType": "channel",
    },
)

BROADLOG_FORMAT = ExportFormat(dataset="broadlog", fields=FIELDS, layouts=(CLASSIC, STANDARD))


def identity_map_of_addresses(
    labels: pa.Array,
    address: pa.Array,
    recipient_identity: pa.Array,
    settings: PipelineSettings,
) -> pa.StructArray:
    """identityMap per channel: the Campaign recipient (primary) and the address the message
    went to: Email, Phone (E.164) or the device token under its platform's namespace (the
    namespaces `push_subscriptions` uses, `settings.push_token_namespaces`)."""
    addresses = channels.normalized_addresses(labels, address, settings)
    primary_ns = settings.campaign_identity_namespace
    entries: dict[str, pa.Array] = {
        "Email": xdm.identities(addresses["email"], primary=False),
        "Phone": xdm.identities(addresses["phone"], primary=False),
        **push_token_formats.token_identities(
            addresses["push_token"], addresses["push_platform"], settings.push_token_namespaces
        ),
    }
    entries.pop(primary_ns, None)  # the recipient identity owns its namespace
    entries[primary_ns] = xdm.identities(recipient_identity, primary=True)
    return xdm.struct(entries)


def xdm_channels(labels: pa.Array, address: pa.Array, settings: PipelineSettings) -> pa.Array:
    """`_experience.campaign.channel`: the row's channel label, Campaign Standard's one push
    code resolved to push_ios / push_android by the token's platform."""
    platform = channels.push_platforms(labels, address, settings)
    by_platform = pc.if_else(pc.equal(platform, "apns"), "push_ios", "push_android")
    return pc.if_else(channels.is_channel(labels, channels.PUSH), by_platform, labels)


def broadlog_to_xdm(batch: pa.RecordBatch, settings: PipelineSettings) -> pa.RecordBatch:
    """Typed broadLog rows → XDM ExperienceEvents (Campaign Delivery Logs field group).

    Email rows: failed + hard → emailBounced; failed + soft → emailBouncedSoft; every other
    row → emailSent, whose measures say what happened (sends for sent, notSent for pending
    or cancelled, excludes for ignored failures), so every typed row has exactly one event.
    Every other channel (SMS, phone, fax, push, direct mail) → `message.feedback`, the XDM
    event type of a message's delivery feedback (sent / bounce / error) that is not tied to
    email; the same measures tell the outcome (docs/formats.md §b7).
    """
    labels = channels.channel_labels(
        batch.column("channel"), settings, settings.broadlog_default_channel
    )
    is_email = channels.is_channel(labels, channels.EMAIL)
    status = xdm.lookup(batch.column("status"), STATUS_LABELS)
    ftype = xdm.lookup(batch.column("failure_type"), settings.failure_type_codes)
    failed = pc.fill_null(pc.equal(status, "failed"), False)
    hard = pc.and_(failed, pc.fill_null(pc.equal(ftype, "hard"), False))
    soft = pc.and_(failed, pc.fill_null(pc.equal(ftype, "soft"), False))
    sent = pc.fill_null(pc.equal(status, "sent"), False)
    not_sent = pc.fill_null(pc.is_in(status, value_set=pa.array(["pending", "cancelled"])), False)
    excluded = pc.and_(failed, pc.invert(pc.or_(hard, soft)))
    email_event = pc.if_else(
        hard,
        "directMarketing.emailBounced",
        pc.if_else(soft, "directMarketing.emailBouncedSoft", "directMarketing.emailSent"),
    )
    event_type = pc.if_else(is_email, email_event, pa.scalar("message.feedback"))
    event_ts = pc.cast(batch.column("event_date"), pa.int64())
    # Each id is turned into text once, for the `_id` and for its own field.
    broadlog_id = xdm.as_text(batch.column("broadlog_id"))
    recipient_id = xdm.as_text(batch.column("recipient_id"))
    ids = xdm.event_ids("campaign-broadlog", broadlog_id, batch.column("status"), event_ts)
    recipient_identity = pc.coalesce(batch.column("external_id"), recipient_id)
    n = batch.num_rows
    address = batch.column("address")
    identity_map = identity_map_of_addresses(labels, address, recipient_identity, settings)
    direct_marketing = xdm.struct(
        {
            "sends": xdm.measure(sent),
            "bounces": xdm.measure(pc.or_(hard, soft)),
            "nonDeliverables": xdm.measure(hard),
            "notSent": xdm.measure(not_sent),
            "excludes": xdm.measure(excluded),
        }
    )
    campaign = xdm.struct(
        {
            "broadlogID": broadlog_id,
            "deliveryID": xdm.as_text(batch.column("delivery_id")),
            "recipientID": recipient_id,
            "externalID": recipient_identity,
            "campaignID": batch.column("campaign_id"),
            "deliveryLabel": batch.column("delivery_label"),
            "channel": xdm_channels(labels, address, settings),
            "status": status,
            "reason": xdm.lookup(batch.column("failure_reason"), FAILURE_REASONS),
            "quarantine": hard,
        }
    )
    return pa.RecordBatch.from_arrays(
        [
            ids,
            batch.column("event_date"),
            event_type,
            xdm.constant("system", n),
            identity_map,
            direct_marketing,
            xdm.struct({"campaign": campaign}),
        ],
        names=[
            "_id",
            "timestamp",
            "eventType",
            "producedBy",
            "identityMap",
            "directMarketing",
            "_experience",
        ],
    )


def _allowed_codes(settings: PipelineSettings) -> dict[str, frozenset[str]]:
    return {
        "status": frozenset(STATUS_LABELS),
        "failure_type": frozenset(settings.failure_type_codes),
    }


def _channel_rules(settings: PipelineSettings) -> RowRules:
    """Unknown channel codes and addresses that are not valid for their row's channel."""

    def rules(typed: pa.RecordBatch) -> list[tuple[pa.Array, str, str]]:
        labels = channels.channel_labels(
            typed.column("channel"), settings, settings.broadlog_default_channel
        )
        return channels.address_rules(labels, typed.column("address"), settings)

    return rules


def _channel_addresses(settings: PipelineSettings) -> RowValues:
    """The typed address as its channel publishes it: an email in lower case (Campaign's
    quarantine is case-sensitive, docs/formats.md §b2), a number in E.164, a device token as
    `push_token_formats` compares it; so duplicates are found whatever the exported form."""

    def values(typed: pa.RecordBatch) -> dict[str, pa.Array]:
        labels = channels.channel_labels(
            typed.column("channel"), settings, settings.broadlog_default_channel
        )
        address = typed.column("address")
        forms = channels.normalized_addresses(labels, address, settings)
        published = pc.coalesce(forms["email"], forms["phone"], forms["push_token"])
        # Rows the rules reject keep what they had (their values are not kept anyway).
        return {"address": pc.coalesce(published, address)}

    return values


broadlog_flow = CampaignExportFlow(
    fmt=BROADLOG_FORMAT,
    file_prefix="broadLog",
    to_xdm=broadlog_to_xdm,
    xdm_class=EXPERIENCE_EVENT,
    xdm_field_groups=(FG_DIRECT_MARKETING, FG_CAMPAIGN_DELIVERY_LOG),
    record_kind="event",
    description=(
        "Campaign delivery logs (broadLog): one typed row per message of every channel "
        "(email, SMS, phone, push, direct mail), from the 4-hourly export on the Campaign SFTP "
        "server. Malformed rows (an address invalid for its channel included) go to "
        "rejects.parquet with a reason."
    ),
    column_lineage={
        "_id": ("broadlog_id", "status", "event_date"),
        "timestamp": ("event_date",),
        "eventType": ("status", "failure_type", "channel"),
        "identityMap.Email": ("address", "channel"),
        "identityMap.Phone": ("address", "channel"),
        "identityMap.{apns}": ("address", "channel"),
        "identityMap.{fcm}": ("address", "channel"),
        "identityMap.{campaign}": ("external_id", "recipient_id"),
        "directMarketing.sends.value": ("status",),
        "directMarketing.bounces.value": ("status", "failure_type"),
        "directMarketing.nonDeliverables.value": ("status", "failure_type"),
        "directMarketing.notSent.value": ("status",),
        "directMarketing.excludes.value": ("status", "failure_type"),
        "_experience.campaign.broadlogID": ("broadlog_id",),
        "_experience.campaign.deliveryID": ("delivery_id",),
        "_experience.campaign.recipientID": ("recipient_id",),
        "_experience.campaign.externalID": ("external_id", "recipient_id"),
        "_experience.campaign.campaignID": ("campaign_id",),
        "_experience.campaign.deliveryLabel": ("delivery_label",),
        "_experience.campaign.channel": ("channel", "address"),
        "_experience.campaign.status": ("status",),
        "_experience.campaign.reason": ("failure_reason",),
        "_experience.campaign.quarantine": ("status", "failure_type"),
    },
    constant_columns={"producedBy": "'system'"},
    allowed_codes=_allowed_codes,
    row_rules=_channel_rules,
    row_values=_channel_addresses,
)

broadlog_defs = broadlog_flow.build()
