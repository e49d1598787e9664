"""preferences: recipients' channel opt-outs (nms:recipient denylist flags) as XDM consents.

Accepted file names: `preferences_YYYYMMDD_HHMM[SS][_<suffix>].csv[.gz]`.

| canonical             | Campaign Classic v7/v8    | Campaign Standard         | required |
|-----------------------|---------------------------|---------------------------|----------|
| recipient_id          | iRecipientId              | PKey                      | yes      |
| external_id           | sExternalId               | externalId                |          |
| email                 | sEmail                    | email                     |          |
| blacklist             | iBlackList                | blackList                 | yes      |
| blacklist_email       | iBlackListEmail           | blackListEmail            |          |
| blacklist_mobile      | iBlackListMobile          | blackListMobile           |          |
| blacklist_phone       | iBlackListPhone           | blackListPhone            |          |
| blacklist_fax         | iBlackListFax             | blackListFax              |          |
| blacklist_postal_mail | iBlackListPostalMail      | blackListPostalMail       |          |
| blacklist_push        | iBlackListPushnotification| blackListPushnotification |          |
| last_modified         | tsLastModified            | lastModified              | yes      |
| org_unit              | sOrgUnit                  | orgUnit                   |          |

Mapping (Adobe's Campaign ↔ AEP consent sample, docs/formats.md §c5): a channel flag, or the
global `blackList` (Campaign's delivery mapping applies it to every channel), gives
`consents.marketing.<channel>.val = "n"`, otherwise `"y"`; `time` is the recipient's
last modification. `blackList` alone drives `consents.marketing.any`.
"""

import pyarrow as pa
import pyarrow.compute as pc

from resources.settings import PipelineSettings
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportFlow
from rtcdp_assets.shared import xdm
from rtcdp_assets.shared.consents import PREFERENCE_FLAGS
from rtcdp_assets.shared.ingest import ExportFormat, FieldSpec, Layout
from rtcdp_assets.shared.xdm_conformance import FG_IDENTITY_MAP, FG_PROFILE_CONSENTS, PROFILE

# canonical flag → XDM consents.marketing channel (shared with the exits that ask for consent)
CHANNELS = PREFERENCE_FLAGS

FIELDS = (
    FieldSpec(
        "recipient_id",
        "string",
        required=True,
        personal=True,
        description="Campaign recipient key.",
    ),
    FieldSpec(
        "external_id",
        "string",
        personal=True,
        description="Recipient external ID (AEP identity).",
    ),
    FieldSpec("email", "email", personal=True, description="Recipient email (lower-cased)."),
    FieldSpec("blacklist", "bool", required=True, description="Opted out of every channel."),
    *(FieldSpec(flag, "bool", description=f"Opted out of {ch}.") for flag, ch in CHANNELS.items()),
    FieldSpec("last_modified", "timestamp", required=True, description="Last change."),
    FieldSpec("org_unit", "string", description="Campaign organizational unit."),
)

CLASSIC = Layout(
    "campaign_classic",
    {
        "iRecipientId": "recipient_id",
        "sExternalId": "external_id",
        "sEmail": "email",
        "iBlackList": "blacklist",
        "iBlackListEmail": "blacklist_email",
        "iBlackListMobile": "blacklist_mobile",
        "iBlackListPhone": "blacklist_phone",
        "iBlackListFax": "blacklist_fax",
        "iBlackListPostalMail": "blacklist_postal_mail",
        "iBlackListPushnotification": "blacklist_push",
        "tsLastModified": "last_modified",
        "sOrgUnit": "org_unit",
    },
)
STANDARD = Layout(
    "campaign_standard",
    {
        "PKey": "recipient_id",
        "externalId": "external_id",
        "email": "email",
        "blackList": "blacklist",
        "blackListEmail": "blacklist_email",
        "blackListMobile": "blacklist_mobile",
        "blackListPhone": "blacklist_phone",
        "blackListFax": "blacklist_fax",
        "blackListPostalMail": "blacklist_postal_mail",
        "blackListPushnotification": "blacklist_push",
        "lastModified": "last_modified",
        "orgUnit": "org_unit",
    },
)

PREFERENCES_FORMAT = ExportFormat(dataset="preferences", fields=FIELDS, layouts=(CLASSIC, STANDARD))


def _consent(opted_out: pa.Array, time: pa.Array) -> pa.StructArray:
    val = pc.if_else(pc.fill_null(opted_out, False), "n", "y")
    return xdm.struct({"val": val, "time": time})


def preferences_to_xdm(batch: pa.RecordBatch, settings: PipelineSettings) -> pa.RecordBatch:
    everything = batch.column("blacklist")
    time = batch.column("last_modified")
    marketing = {"any": _consent(everything, time)}
    for flag, channel in CHANNELS.items():
        marketing[channel] = _consent(pc.or_(everything, batch.column(flag)), time)
    recipient_identity = pc.coalesce(batch.column("external_id"), batch.column("recipient_id"))
    return pa.RecordBatch.from_arrays(
        [
            xdm.event_ids(
                "campaign-preferences",
                batch.column("recipient_id"),
                pc.cast(time, pa.int64()),
            ),
            xdm.struct(
                {
                    settings.campaign_identity_namespace: xdm.identities(
                        recipient_identity, primary=True
                    ),
                    "Email": xdm.identities(batch.column("email"), primary=False),
                }
            ),
            xdm.struct({"marketing": xdm.struct(marketing)}),
        ],
        names=["_id", "identityMap", "consents"],
    )


preferences_flow = CampaignExportFlow(
    fmt=PREFERENCES_FORMAT,
    file_prefix="preferences",
    to_xdm=preferences_to_xdm,
    xdm_class=PROFILE,
    xdm_field_groups=(FG_PROFILE_CONSENTS, FG_IDENTITY_MAP),
    record_kind="profile",
    description=(
        "Recipients' channel opt-outs from Campaign (optional export of the pattern), as XDM "
        "Consent and Preference Details for AEP."
    ),
    column_lineage={
        "_id": ("recipient_id", "last_modified"),
        "identityMap.{campaign}": ("external_id", "recipient_id"),
        "identityMap.Email": ("email",),
        "consents.marketing.any.val": ("blacklist",),
        "consents.marketing.any.time": ("last_modified",),
        **{
            f"consents.marketing.{channel}.val": ("blacklist", flag)
            for flag, channel in CHANNELS.items()
        },
        **{
            f"consents.marketing.{channel}.time": ("last_modified",)
            for channel in CHANNELS.values()
        },
    },
)

preferences_defs = preferences_flow.build()
