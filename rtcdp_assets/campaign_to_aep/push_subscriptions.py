"""push_subscriptions: Campaign mobile-app subscriptions (nms:appSubscriptionRcp) as XDM push.

Accepted file names: `appSubscriptions_YYYYMMDD_HHMM[SS][_<suffix>].csv[.gz]`, written every
4 hours by a Campaign export workflow into the SFTP export folder, like the other datasets.
The blueprint leaves this export to the implementation (no public source names the file or its
columns: UNCONFIRMED), so the names below are this project's contract with that workflow,
following Campaign's SQL naming rule (docs/formats.md §b1).

| canonical         | Campaign Classic v7/v8 | Campaign Standard | required |
|-------------------|------------------------|-------------------|----------|
| subscription_id   | iAppSubscriptionRcpId  | id                | yes      |
| subscriber_key    | sUserKey               | userKey           | yes      |
| recipient_id      | iRecipientId           | profileId         |          |
| app_id            | sAppId                 | appId             | yes      |
| platform          | sPlatform              | platform          | yes      |
| token             | sRegistrationToken     | registrationToken | yes      |
| registration_date | tsCreated              | created           |          |
| last_modified     | tsLastModified         | lastModified      | yes      |
| opted_in          | iOptIn                 | optIn             | yes      |
| org_unit          | sOrgUnit               | orgUnit           |          |

Row rules: the platform must be one of `PipelineSettings.push_platform_codes` (default `iOS` →
`apns`, `Android` → `fcm`), else `unknown_code:platform`; the token must match its platform's
format (`rtcdp_assets/shared/push_token_formats.py`), else `invalid_push_token`. Both reject
the row into the quarantine with its raw values; the counts reconcile like every dataset's.

Mapping (XDM Individual Profile, "Push Notification Details" + identityMap + consents): one
record per subscription, `_id` from the subscription key and its last change;
`pushNotificationDetails` = [{appID, token, platform, denylisted, identity}] where `identity`
is the subscriber key in its namespace (`push_subscriber_namespace`); identityMap holds the
subscriber key (primary) and the token under its platform's namespace
(`push_token_namespaces`, UNCONFIRMED codes); `consents.marketing.push` carries the opt-in state
(`y`/`n`, at the subscription's last change).

Campaign's quarantine wins: a token that Campaign lists as quarantined or denylisted on the
push channels (the latest state in the `non_deliverables` partitions up to this window) is
published with `denylisted: true`, never as an active token, and the blocking
`push_quarantine_respected` check verifies that before publication.
"""

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext

from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportFlow, XdmMapper
from rtcdp_assets.campaign_to_aep.non_deliverables import quarantined_tokens
from rtcdp_assets.shared import push_token_formats, xdm
from rtcdp_assets.shared.ingest import ExportFormat, FieldSpec, Layout, RowRules
from rtcdp_assets.shared.xdm_conformance import (
    FG_IDENTITY_MAP,
    FG_PROFILE_CONSENTS,
    FG_PROFILE_PUSH_NOTIFICATION_DETAILS,
    PROFILE,
)

FILE_PREFIX = "appSubscriptions"

FIELDS = (
    FieldSpec("subscription_id", "int", required=True, description="Subscription key (PK)."),
    FieldSpec(
        "subscriber_key",
        "string",
        required=True,
        personal=True,
        description="The app's user key Campaign reconciles with the recipient.",
    ),
    FieldSpec(
        "recipient_id",
        "string",
        personal=True,
        description="Campaign recipient of the subscription.",
    ),
    FieldSpec("app_id", "string", required=True, description="Mobile application ID."),
    FieldSpec("platform", "string", required=True, description="iOS / Android (see settings)."),
    FieldSpec(
        "token", "string", required=True, personal=True, description="APNs / FCM device token."
    ),
    FieldSpec("registration_date", "timestamp", description="When the device registered."),
    FieldSpec("last_modified", "timestamp", required=True, description="Last change."),
    FieldSpec("opted_in", "bool", required=True, description="Push notifications allowed."),
    FieldSpec("org_unit", "string", description="Campaign organizational unit."),
)

CLASSIC = Layout(
    "campaign_classic",
    {
        "iAppSubscriptionRcpId": "subscription_id",
        "sUserKey": "subscriber_key",
        "iRecipientId": "recipient_id",
        "sAppId": "app_id",
        "sPlatform": "platform",
        "sRegistrationToken": "token",
        "tsCreated": "registration_date",
        "tsLastModified": "last_modified",
        "iOptIn": "opted_in",
        "sOrgUnit": "org_unit",
    },
)
STANDARD = Layout(
    "campaign_standard",
    {
        "id": "subscription_id",
        "userKey": "subscriber_key",
        "profileId": "recipient_id",
        "appId": "app_id",
        "platform": "platform",
        "registrationToken": "token",
        "created": "registration_date",
        "lastModified": "last_modified",
        "optIn": "opted_in",
        "orgUnit": "org_unit",
    },
)

PUSH_SUBSCRIPTIONS_FORMAT = ExportFormat(
    dataset="push_subscriptions", fields=FIELDS, layouts=(CLASSIC, STANDARD)
)


def subscriber_namespace(settings: PipelineSettings) -> str:
    return settings.push_subscriber_namespace or settings.campaign_identity_namespace


def map_subscriptions(
    batch: pa.RecordBatch, settings: PipelineSettings, quarantined: Sequence[str] = ()
) -> pa.RecordBatch:
    """Typed subscriptions → XDM profile records; tokens in `quarantined` are denylisted."""
    platform = xdm.lookup(batch.column("platform"), settings.push_platform_codes)
    token = push_token_formats.normalized(batch.column("token"), platform)
    denylisted = pc.fill_null(pc.is_in(token, value_set=pa.array(quarantined, pa.string())), False)
    subscriber = batch.column("subscriber_key")
    namespace = subscriber_namespace(settings)
    identity_map = {
        namespace: xdm.identities(subscriber, primary=True),
        **{
            code: items
            for code, items in push_token_formats.token_identities(
                token, platform, settings.push_token_namespaces
            ).items()
            if code != namespace
        },
    }
    time = batch.column("last_modified")
    consent = pc.if_else(pc.fill_null(batch.column("opted_in"), False), "y", "n")
    return pa.RecordBatch.from_arrays(
        [
            xdm.event_ids(
                "campaign-push-subscription",
                batch.column("subscription_id"),
                pc.cast(time, pa.int64()),
            ),
            xdm.struct(identity_map),
            push_token_formats.push_details(
                app_id=batch.column("app_id"),
                token=token,
                platform=platform,
                denylisted=denylisted,
                identity_of_token=push_token_formats.identity(namespace, subscriber),
            ),
            xdm.struct(
                {"marketing": xdm.struct({"push": xdm.struct({"val": consent, "time": time})})}
            ),
        ],
        names=["_id", "identityMap", "pushNotificationDetails", "consents"],
    )


def push_subscriptions_to_xdm(batch: pa.RecordBatch, settings: PipelineSettings) -> pa.RecordBatch:
    """The mapping without quarantine state (every token published as Campaign exported it)."""
    return map_subscriptions(batch, settings)


def _bind_quarantine(
    context: AssetExecutionContext, warehouse: Warehouse, settings: PipelineSettings
) -> XdmMapper:
    quarantined = sorted(
        quarantined_tokens(context.instance, warehouse, settings, context.partition_key)
    )
    context.log.info(f"{len(quarantined)} push tokens quarantined by Campaign up to this window")

    def mapper(batch: pa.RecordBatch, s: PipelineSettings) -> pa.RecordBatch:
        return map_subscriptions(batch, s, quarantined)

    return mapper


def _token_rules(settings: PipelineSettings) -> RowRules:
    def rules(typed: pa.RecordBatch) -> list[tuple[pa.Array, str, str]]:
        platform = xdm.lookup(typed.column("platform"), settings.push_platform_codes)
        bad = push_token_formats.invalid_tokens(typed.column("token"), platform, settings)
        return [(bad, push_token_formats.INVALID_PUSH_TOKEN, "token")]

    return rules


def _allowed_codes(settings: PipelineSettings) -> dict[str, frozenset[str]]:
    return {"platform": frozenset(settings.push_platform_codes)}


push_subscriptions_flow = CampaignExportFlow(
    fmt=PUSH_SUBSCRIPTIONS_FORMAT,
    file_prefix=FILE_PREFIX,
    to_xdm=push_subscriptions_to_xdm,
    xdm_class=PROFILE,
    xdm_field_groups=(FG_PROFILE_PUSH_NOTIFICATION_DETAILS, FG_PROFILE_CONSENTS, FG_IDENTITY_MAP),
    record_kind="profile",
    description=(
        "Campaign's mobile-app push subscriptions (nms:appSubscriptionRcp): subscriber, app, "
        "platform and device token, typed per 4-hour export with invalid tokens quarantined."
    ),
    column_lineage={
        "_id": ("subscription_id", "last_modified"),
        "identityMap.{subscriber}": ("subscriber_key",),
        "identityMap.{apns}": ("token", "platform"),
        "identityMap.{fcm}": ("token", "platform"),
        "pushNotificationDetails.appID": ("app_id",),
        "pushNotificationDetails.token": ("token", "platform"),
        "pushNotificationDetails.platform": ("platform",),
        # Compared with the tokens Campaign quarantined (non_deliverables) at mapping time.
        "pushNotificationDetails.denylisted": ("token", "platform"),
        "pushNotificationDetails.identity.xid": ("subscriber_key",),
        "consents.marketing.push.val": ("opted_in",),
        "consents.marketing.push.time": ("last_modified",),
    },
    constant_columns={"pushNotificationDetails.identity.namespace.code": "'{subscriber}'"},
    allowed_codes=_allowed_codes,
    row_rules=_token_rules,
    bind_xdm=_bind_quarantine,
)

push_subscriptions_defs = push_subscriptions_flow.build()
