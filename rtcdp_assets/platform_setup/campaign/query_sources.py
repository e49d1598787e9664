"""Where Campaign finds each exported column: the query schema and, per canonical field, the
Classic expression (XPath on the schema) whose value goes under the layout's header.

The headers themselves are not here: they come from each dataset's layouts
(`rtcdp_assets/campaign_to_aep/<dataset>.py`), so a renamed or added column changes the
generated setup. What the layouts cannot say is the XPath Campaign Classic's Query / Data
extraction (file) reads a column from; each expression below names its docs/formats.md section,
or is UNCONFIRMED (no public source: check the schema's "Documentation" tab on your instance).
A field without an expression here fails the generator, so no column can be forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UNCONFIRMED = "UNCONFIRMED"


@dataclass(frozen=True)
class Expression:
    """The Classic XPath of one column and where it is documented."""

    xpath: str
    source: str  # a docs/formats.md section, or UNCONFIRMED


@dataclass(frozen=True)
class QuerySource:
    """What a Campaign export workflow queries for one dataset."""

    classic_schema: str
    standard_resource: str
    changed_since: str  # canonical field whose value selects the rows since the last run
    expressions: dict[str, Expression] = field(default_factory=dict)
    source: str = ""  # where the schema is documented
    note: str = ""


def _x(xpath: str, source: str = UNCONFIRMED) -> Expression:
    return Expression(xpath, source)


# Recipient attributes both recipient exports read (docs/formats.md §b2, §b6).
_RECIPIENT_KEY = {
    "recipient_id": _x("@id", "§b2"),
    # Classic has no built-in external ID (Standard's `externalId`, §b6): a schema extension.
    "external_id": _x("@externalId"),
    "email": _x("@email", "§b2"),
    "last_modified": _x("@lastModified", "§b2"),
    "org_unit": _x("@orgUnit"),
}

QUERY_SOURCES: dict[str, QuerySource] = {
    "broadlog": QuerySource(
        classic_schema="nms:broadLogRcp",
        standard_resource="nms:broadLogRcp (delivery logs)",
        changed_since="last_modified",
        source="§b3",
        expressions={
            "broadlog_id": _x("@id", "§b3"),
            "delivery_id": _x("@delivery-id", "§b3"),
            "recipient_id": _x("@recipient-id", "§b3"),
            "external_id": _x("[recipient/@externalId]"),
            "address": _x("@address", "§b3"),
            "channel": _x("[delivery/@messageType]", "§b7"),
            "status": _x("@status", "§b3"),
            "failure_type": _x("@failureType", "§b3"),
            "failure_reason": _x("@failureReason", "§b3"),
            "event_date": _x("@eventDate", "§b3"),
            "contact_date": _x("@contactDate", "§b3"),
            "last_modified": _x("@lastModified", "§b3"),
            "delivery_label": _x("[delivery/@label]"),
            "campaign_id": _x("[delivery/@operation-id]"),
            "org_unit": _x("[recipient/@orgUnit]"),
        },
    ),
    "tracking_log": QuerySource(
        classic_schema="nms:trackingLogRcp",
        standard_resource="nms:trackingLogRcp (tracking logs)",
        # Tracking rows are inserted, never updated (§b4): the log date selects new rows.
        changed_since="log_date",
        source="§b4",
        expressions={
            "tracking_log_id": _x("@id", "§b4"),
            "broadlog_id": _x("@broadLog-id", "§b4"),
            "delivery_id": _x("@delivery-id", "§b4"),
            "recipient_id": _x("@recipient-id", "§b4"),
            "external_id": _x("[recipient/@externalId]"),
            "url_type": _x("[url/@type]", "§b4"),
            "url_id": _x("@url-id", "§b4"),
            "url": _x("[url/@url]"),
            "url_category": _x("[url/@category]", "§b4"),
            "log_date": _x("@logDate", "§b4"),
            "device": _x("@trackedDevice", "§b4"),
            "org_unit": _x("[recipient/@orgUnit]"),
            "channel": _x("[delivery/@messageType]", "§b7"),
        },
    ),
    "non_deliverables": QuerySource(
        classic_schema="nms:address",
        standard_resource="nms:address (quarantines)",
        changed_since="last_modified",
        source="§b5",
        expressions={
            "address_id": _x("@id"),
            "address": _x("@address", "§b5"),
            "channel": _x("@type", "§b5"),
            "status": _x("@status", "§b5"),
            "failure_reason": _x("@failureReason"),
            "error_count": _x("@errorCount"),
            "error_text": _x("@text"),
            "last_error": _x("@lastError"),
            "created": _x("@created"),
            "last_modified": _x("@lastModified", "§b5"),
            "org_unit": _x("@orgUnit"),
        },
    ),
    "preferences": QuerySource(
        classic_schema="nms:recipient",
        standard_resource="nms:recipient (profiles)",
        changed_since="last_modified",
        source="§b2",
        expressions={
            **_RECIPIENT_KEY,
            "blacklist": _x("@blackList", "§b2"),
            "blacklist_email": _x("@blackListEmail", "§b2"),
            "blacklist_mobile": _x("@blackListMobile", "§b2"),
            "blacklist_phone": _x("@blackListPhone", "§b2"),
            "blacklist_fax": _x("@blackListFax", "§b2"),
            "blacklist_postal_mail": _x("@blackListPostalMail", "§b2"),
            # Standard's profile has it (§b6); Classic's nms:recipient does not say.
            "blacklist_push": _x("@blackListPushnotification"),
        },
    ),
    "profiles": QuerySource(
        classic_schema="nms:recipient",
        standard_resource="nms:recipient (profiles)",
        changed_since="last_modified",
        source="§b2",
        expressions={
            **_RECIPIENT_KEY,
            "first_name": _x("@firstName", "§b2"),
            "last_name": _x("@lastName", "§b2"),
            "middle_name": _x("@middleName", "§b2"),
            "mobile_phone": _x("@mobilePhone", "§b2"),
            "gender": _x("@gender", "§b2"),
            "birth_date": _x("@birthDate", "§b2"),
            "email_format": _x("@emailFormat", "§b2"),
            "country_code": _x("[location/@countryCode]", "§b2"),
            "city": _x("[location/@city]"),
            "zip_code": _x("[location/@zipCode]"),
            "created": _x("@created", "§b2"),
        },
    ),
    "push_subscriptions": QuerySource(
        classic_schema="nms:appSubscriptionRcp",
        standard_resource="nms:appSubscriptionRcp (mobile app subscribers)",
        changed_since="last_modified",
        note="No public source names this schema's fields: every expression is UNCONFIRMED "
        "(see rtcdp_assets/campaign_to_aep/push_subscriptions.py).",
        expressions={
            "subscription_id": _x("@id"),
            "subscriber_key": _x("@userKey"),
            "recipient_id": _x("@recipient-id"),
            "app_id": _x("[mobileApp/@uuid]"),
            "platform": _x("@platform"),
            "token": _x("@registrationToken"),
            "registration_date": _x("@created"),
            "last_modified": _x("@lastModified"),
            "opted_in": _x("@optIn"),
            "org_unit": _x("@orgUnit"),
        },
    ),
}
