"""trackingLog: recipients' reactions to deliveries (opens, clicks, unsubscriptions, mirror pages).

Accepted file names: `trackingLog_YYYYMMDD_HHMM[SS][_<suffix>].csv[.gz]` in the export folder.

| canonical        | Campaign Classic v7/v8 | Campaign Standard | required |
|------------------|------------------------|-------------------|----------|
| tracking_log_id  | iTrackingLogId         | id                | yes      |
| broadlog_id      | iBroadLogId            | broadLog-id       | yes      |
| delivery_id      | iDeliveryId            | delivery-id       | yes      |
| recipient_id     | iRecipientId           | profile-id        | yes      |
| external_id      | sExternalId            | externalId        |          |
| url_type         | iUrlType               | urlType           | yes      |
| url_id           | iUrlId                 | url-id            |          |
| url              | sUrl                   | url               |          |
| url_category     | sUrlCategory           | urlCategory       |          |
| log_date         | tsLog                  | logDate           | yes      |
| device           | sTrackedDevice         | trackedDevice     |          |
| org_unit         | sOrgUnit               | orgUnit           |          |
| channel          | iMessageType           | deliveryType      |          |

URL types (docs/formats.md §b4): 1 email click, 2 open, 3 opt-out (unsubscription link),
4 web page, 5 transaction, 6 mirror page.

Channels (`delivery_channels.py`, docs/formats.md §b7): `channel` is the delivery's message type;
without the column a row takes `settings.tracking_log_default_channel`; an unknown code rejects
the row as `unknown_channel`.
"""

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetKey

from resources.settings import PipelineSettings
from rtcdp_assets.campaign_to_aep import delivery_channels as channels
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportFlow
from rtcdp_assets.shared import xdm
from rtcdp_assets.shared.campaign_codes import TRACKING_URL_TYPES
from rtcdp_assets.shared.ingest import ExportFormat, FieldSpec, Layout, RowRules
from rtcdp_assets.shared.xdm_conformance import (
    EXPERIENCE_EVENT,
    FG_CAMPAIGN_TRACKING_LOG,
    FG_DIRECT_MARKETING,
)

URL_TYPES = TRACKING_URL_TYPES

FIELDS = (
    FieldSpec("tracking_log_id", "int", required=True, description="Tracking log ID (PK)."),
    FieldSpec("broadlog_id", "int", required=True, description="The delivery log it reacts to."),
    FieldSpec("delivery_id", "int", required=True, description="Delivery ID."),
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
        "url_type",
        "int",
        required=True,
        allowed=frozenset(URL_TYPES),
        description="1 click, 2 open, 3 opt-out, 4 web, 5 transaction, 6 mirror page.",
    ),
    FieldSpec("url_id", "int", description="Tracked URL ID (1 = the built-in open URL)."),
    # Tracked URLs can carry personal tokens in their query strings.
    FieldSpec("url", "string", personal=True, description="Tracked URL."),
    FieldSpec("url_category", "string", description="URL category (email, facebook, ...)."),
    FieldSpec("log_date", "timestamp", required=True, description="When the reaction happened."),
    FieldSpec("device", "string", description="Tracked device (pc, mobile, ...)."),
    FieldSpec("org_unit", "string", description="Campaign organizational unit."),
    FieldSpec("channel", "string", description="Delivery channel code (messageType, §b7)."),
)

CLASSIC = Layout(
    "campaign_classic",
    {
        "iTrackingLogId": "tracking_log_id",
        "iBroadLogId": "broadlog_id",
        "iDeliveryId": "delivery_id",
        "iRecipientId": "recipient_id",
        "sExternalId": "external_id",
        "iUrlType": "url_type",
        "iUrlId": "url_id",
        "sUrl": "url",
        "sUrlCategory": "url_category",
        "tsLog": "log_date",
        "sTrackedDevice": "device",
        "sOrgUnit": "org_unit",
        "iMessageType": "channel",
    },
)
STANDARD = Layout(
    "campaign_standard",
    {
        "id": "tracking_log_id",
        "broadLog-id": "broadlog_id",
        "delivery-id": "delivery_id",
        "profile-id": "recipient_id",
        "externalId": "external_id",
        "urlType": "url_type",
        "url-id": "url_id",
        "url": "url",
        "urlCategory": "url_category",
        "logDate": "log_date",
        "trackedDevice": "device",
        "orgUnit": "org_unit",
        "deliveryType": "channel",
    },
)

TRACKING_LOG_FORMAT = ExportFormat(
    dataset="tracking_log", fields=FIELDS, layouts=(CLASSIC, STANDARD)
)


def tracking_log_to_xdm(batch: pa.RecordBatch, settings: PipelineSettings) -> pa.RecordBatch:
    """Typed trackingLog rows → ExperienceEvents (Campaign Tracking Logs field group).

    Email: open → emailOpened (opens); opt-out → emailUnsubscribed (unsubscriptions); mirror
    page → emailClicked (mirrorPages); email click, web page and transaction → emailClicked
    (clicks). Push: open → pushTracking.applicationOpened, any other reaction →
    pushTracking.customAction. SMS, phone, fax, direct mail → message.tracking (the XDM event
    type of opens, clicks and custom reactions to a message that is not tied to a channel). The
    measures are the same for every channel (docs/formats.md §b7).
    """
    labels = channels.channel_labels(
        batch.column("channel"), settings, settings.tracking_log_default_channel
    )
    kind = xdm.lookup(batch.column("url_type"), URL_TYPES)
    opened = pc.fill_null(pc.equal(kind, "open"), False)
    unsubscribed = pc.fill_null(pc.equal(kind, "opt_out"), False)
    mirror = pc.fill_null(pc.equal(kind, "mirror_page"), False)
    clicked = pc.invert(pc.or_(pc.or_(opened, unsubscribed), mirror))
    email_event = pc.if_else(
        opened,
        "directMarketing.emailOpened",
        pc.if_else(
            unsubscribed, "directMarketing.emailUnsubscribed", "directMarketing.emailClicked"
        ),
    )
    push_event = pc.if_else(opened, "pushTracking.applicationOpened", "pushTracking.customAction")
    event_type = pc.if_else(
        channels.is_channel(labels, channels.EMAIL),
        email_event,
        pc.if_else(
            channels.is_channel(labels, channels.PUSH_CHANNELS),
            push_event,
            pa.scalar("message.tracking"),
        ),
    )
    ids = xdm.event_ids(
        "campaign-trackinglog",
        batch.column("tracking_log_id"),
        pc.cast(batch.column("log_date"), pa.int64()),
    )
    recipient_identity = pc.coalesce(
        batch.column("external_id"), xdm.as_text(batch.column("recipient_id"))
    )
    n = batch.num_rows
    campaign = xdm.struct(
        {
            "trackinglogID": xdm.as_text(batch.column("tracking_log_id")),
            "broadlogID": xdm.as_text(batch.column("broadlog_id")),
            "deliveryID": xdm.as_text(batch.column("delivery_id")),
            "recipientID": xdm.as_text(batch.column("recipient_id")),
            "externalID": recipient_identity,
            "url": batch.column("url"),
            "urlCategory": batch.column("url_category"),
            "channel": labels,
        }
    )
    return pa.RecordBatch.from_arrays(
        [
            ids,
            batch.column("log_date"),
            event_type,
            xdm.constant("self", n),
            xdm.struct(
                {
                    settings.campaign_identity_namespace: xdm.identities(
                        recipient_identity, primary=True
                    )
                }
            ),
            xdm.struct(
                {
                    "opens": xdm.measure(opened),
                    "clicks": xdm.measure(clicked),
                    "unsubscriptions": xdm.measure(unsubscribed),
                    "mirrorPages": xdm.measure(mirror),
                }
            ),
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


def _channel_rules(settings: PipelineSettings) -> RowRules:
    """A reaction of an unknown channel code is rejected (it has no address to check)."""

    def rules(typed: pa.RecordBatch) -> list[tuple[pa.Array, str, str]]:
        labels = channels.channel_labels(
            typed.column("channel"), settings, settings.tracking_log_default_channel
        )
        return [(pc.is_null(labels), channels.UNKNOWN_CHANNEL, "channel")]

    return rules


tracking_log_flow = CampaignExportFlow(
    fmt=TRACKING_LOG_FORMAT,
    file_prefix="trackingLog",
    to_xdm=tracking_log_to_xdm,
    xdm_class=EXPERIENCE_EVENT,
    xdm_field_groups=(FG_DIRECT_MARKETING, FG_CAMPAIGN_TRACKING_LOG),
    record_kind="event",
    description=(
        "Campaign tracking logs (trackingLog): opens, clicks, unsubscriptions and mirror-page "
        "views, one typed row per reaction, from the 4-hourly export."
    ),
    upstream=(AssetKey("broadlog"),),
    column_lineage={
        "_id": ("tracking_log_id", "log_date"),
        "timestamp": ("log_date",),
        "eventType": ("url_type", "channel"),
        "identityMap.{campaign}": ("external_id", "recipient_id"),
        "directMarketing.opens.value": ("url_type",),
        "directMarketing.clicks.value": ("url_type",),
        "directMarketing.unsubscriptions.value": ("url_type",),
        "directMarketing.mirrorPages.value": ("url_type",),
        "_experience.campaign.trackinglogID": ("tracking_log_id",),
        "_experience.campaign.broadlogID": ("broadlog_id",),
        "_experience.campaign.deliveryID": ("delivery_id",),
        "_experience.campaign.recipientID": ("recipient_id",),
        "_experience.campaign.externalID": ("external_id", "recipient_id"),
        "_experience.campaign.url": ("url",),
        "_experience.campaign.urlCategory": ("url_category",),
        "_experience.campaign.channel": ("channel",),
    },
    constant_columns={"producedBy": "'self'"},
    row_rules=_channel_rules,
)

tracking_log_defs = tracking_log_flow.build()
