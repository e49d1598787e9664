"""Pipeline settings: the knobs the pattern leaves to each deployment.

Values marked UNCONFIRMED in docs/formats.md (numeric codes no public source settles, identity
namespace codes, time zones of Campaign exports) live here so that a deployment can set them
from the environment instead of editing code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime

from pydantic import Field

from resources.guardrail_settings import GuardrailLimits
from resources.identity_settings import DestinationIdentitySettings

PARTITIONS_START_VARIABLE = "RTCDP_PARTITIONS_START"
# The month the first Campaign exports of this deployment are expected (every test and sample
# window falls after it); a deployment sets its go-live date, so the UI's partition counts and
# "filled" percentages start where data can exist.
DEFAULT_PARTITIONS_START = "2026-11-01-00:00"


def partitions_start(environ: Mapping[str, str] = os.environ) -> str:
    """The first 4-hour window (`YYYY-MM-DD-HH:MM`, UTC) of every time-partitioned asset, from
    `RTCDP_PARTITIONS_START` (`YYYY-MM-DD` or `YYYY-MM-DD-HH:MM`; rounded down to its 4-hour
    window), read when the definitions load. Files of earlier windows are left in the drop
    zone with a note, never read."""
    raw = environ.get(PARTITIONS_START_VARIABLE, "").strip() or DEFAULT_PARTITIONS_START
    for fmt in ("%Y-%m-%d-%H:%M", "%Y-%m-%d"):
        try:
            when = datetime.strptime(raw, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
        return when.replace(hour=when.hour - when.hour % 4, minute=0).strftime("%Y-%m-%d-%H:%M")
    raise ValueError(
        f"{PARTITIONS_START_VARIABLE}={raw!r}: expected YYYY-MM-DD or YYYY-MM-DD-HH:MM (UTC)"
    )


class PipelineSettings(GuardrailLimits, DestinationIdentitySettings):
    """Deployment-specific settings shared by assets, sensors and checks (the guardrail limits
    are inherited from `GuardrailLimits`, the destination identity namespaces from
    `DestinationIdentitySettings`)."""

    campaign_timezone: str = Field(
        default="UTC",
        description="Time zone of Campaign timestamps that carry no offset (IANA name).",
    )
    campaign_identity_namespace: str = Field(
        default="external_id",
        description=(
            "identityMap namespace code of the Campaign recipient identity (a custom "
            "namespace in AEP; 'external_id' as in the Campaign Managed Services destination)."
        ),
    )
    campaign_export_folder: str = Field(
        default="export", description="SFTP folder Campaign export workflows write to."
    )
    campaign_import_folder: str = Field(
        default="import", description="SFTP folder Campaign import workflows read from."
    )
    aep_landing_folder: str = Field(
        default="campaign", description="Folder in the AEP landing container for our output."
    )
    aep_publication_format: str = Field(
        default="parquet",
        pattern="^(parquet|json-lines)$",
        description=(
            "Form of the files published for AEP's cloud-storage source (docs/formats.md §h3): "
            "'parquet' (XDM Parquet, `.parquet`, the stored XDM partition) or 'json-lines' "
            "(`.json`). The AEP dataflow's data format must match; a switch moves the other "
            "form's file of a re-published partition to `<aep_landing_folder>/_superseded/`."
        ),
    )
    campaign_org_unit: str = Field(
        default="default",
        description="The one Campaign organizational unit this deployment serves.",
    )
    cadence_severity: str = Field(
        default="WARN",
        description="Severity of the export-cadence check: WARN (default) or ERROR.",
        pattern="^(WARN|ERROR)$",
    )
    orphan_lookback_hours: int = Field(
        default=7 * 24,
        description="How far back a trackingLog row's broadLog is searched before it is an orphan.",
    )
    freshness_grace_minutes: int = Field(
        default=60, description="How late an export may be after its 4-hour window."
    )
    freshness_lookback_windows: int = Field(
        default=6, description="How many recent due windows the freshness check looks at."
    )
    file_settle_seconds: float = Field(
        default=30.0,
        description=(
            "A drop-zone file modified more recently than this (by the server's clock) is "
            "treated as still being written and is left for a later tick, whatever the "
            "completion rule."
        ),
    )
    # -- when is a file written by someone else complete? (docs/deployment.md, "Completion") --
    campaign_export_completion: str = Field(
        default="marker",
        pattern="^(marker|rename|stability)$",
        description=(
            "Completion rule of the Campaign SFTP export folder. 'marker': a file is read only "
            "once `<name><completion_marker_suffix>` sits beside it, no older than the file "
            "(the safe default: Campaign's File transfer writes under the final name). "
            "'rename': the writer uploads under a temporary name and renames; any file under "
            "its final name is complete. 'stability': same size and modification time over "
            "two listings at least `stability_window_seconds` apart by our clock (cannot tell "
            "a long pause from the end of a file)."
        ),
    )
    customer_source_completion: str = Field(
        default="rename",
        pattern="^(marker|rename|stability)$",
        description=(
            "Completion rule of the customer_source zone (same values). 'rename' by default: "
            "in production the zone is Azure Blob or S3, where an object appears only once "
            "its upload is committed."
        ),
    )
    stability_window_seconds: float = Field(
        default=120.0,
        ge=0,
        description=(
            "Rule 'stability': how long (by our clock, across at least two listings) a file "
            "must keep the same size and modification time before it is read."
        ),
    )
    completion_marker_suffix: str = Field(
        default=".done",
        description=(
            "Rule 'marker': the suffix of the marker file written after the data file "
            "(`broadLog_20261123_0800.csv.done`). Empty means '.done'."
        ),
    )
    temporary_name_patterns: list[str] = Field(
        default_factory=list,
        description=(
            "Extra glob patterns (fnmatch, case-insensitive) of names a writer uses while a file "
            "is still being uploaded; never read. Always included: *.tmp, *.part, *.filepart, "
            "*.partial, *.uploading and names starting with '.' or '~'."
        ),
    )
    incomplete_file_grace_seconds: float = Field(
        default=600.0,
        ge=0,
        description=(
            "How long, by our clock, a file that its completion rule calls complete may still "
            "be empty or end in a cut line (fewer fields than the header, no line end) before "
            "it is quarantined as `empty_file` or `truncated_file`; until then it counts as "
            "still being written and nothing of it is published."
        ),
    )
    future_tolerance_seconds: int = Field(
        default=300, description="Clock skew tolerated before a timestamp counts as future."
    )
    export_time_tolerance_seconds: int = Field(
        default=3600,
        description=(
            "How far a row's timestamp may lie after the end of the 4-hour window its file's "
            "name puts it in (read as UTC) before the row is rejected as "
            "`timestamp_in_future`; covers clock skew between Campaign and its export workflow."
        ),
    )
    address_status_codes: dict[str, str] = Field(
        # Only 2 = Valid has a public source (docs/formats.md §b5): set your instance's codes.
        default={"1": "with_errors", "2": "valid", "3": "quarantine", "4": "denylisted"},
        description="nms:address status code -> valid / with_errors / quarantine / denylisted.",
    )
    address_channel_codes: dict[str, str] = Field(
        # NmsService iType / delivery messageType numbering (0 email, 1 SMS, 2 phone, 3 direct
        # mail, 4 fax; Campaign Standard 40 = push notification, docs/formats.md §b7). The
        # Classic push channels' codes (MESSAGETYPE_IOS / MESSAGETYPE_ANDROID, §b5) are
        # UNCONFIRMED: 41/42 are placeholders; set your instance's.
        default={
            "0": "email",
            "1": "sms",
            "2": "phone",
            "3": "direct_mail",
            "4": "fax",
            "40": "push",
            "41": "push_ios",
            "42": "push_android",
        },
        description="Campaign channel code (nms:address iType, a delivery's messageType) -> "
        "channel label: email, sms, phone, direct_mail, fax, push (platform from the token's "
        "shape; Campaign Standard's 40), push_ios, push_android.",
    )
    broadlog_default_channel: str = Field(
        default="email",
        description=(
            "Channel of broadLog rows whose export carries no channel column (or an empty "
            "value): email, sms, phone, direct_mail, fax, push, push_ios or push_android."
        ),
        pattern="^(email|sms|phone|direct_mail|fax|push|push_ios|push_android)$",
    )
    tracking_log_default_channel: str = Field(
        default="email",
        description=(
            "Channel of trackingLog rows whose export carries no channel column (or an empty "
            "value); same labels as broadlog_default_channel."
        ),
        pattern="^(email|sms|phone|direct_mail|fax|push|push_ios|push_android)$",
    )
    phone_default_country_code: str = Field(
        default="",
        description=(
            "Country calling code (digits, e.g. '33') given to SMS / phone / fax numbers "
            "exported in national form (no '+' or '00'): one leading trunk '0' is dropped, "
            "then '+<code>' is prepended. Empty: such numbers are rejected as "
            "invalid_phone_number, since E.164 cannot be guessed (docs/formats.md §b7)."
        ),
        pattern="^([1-9][0-9]{0,2})?$",
    )
    failure_type_codes: dict[str, str] = Field(
        # UNCONFIRMED numeric codes (docs/formats.md §b3): set them to your instance's values.
        default={"0": "undefined", "1": "soft", "2": "hard", "3": "ignored"},
        description="broadLog failureType code -> hard / soft / ignored / undefined.",
    )

    # -- mobile push (push_subscriptions, aep_push_tokens) -----------------------------------
    push_platform_codes: dict[str, str] = Field(
        # UNCONFIRMED: no public source gives how the subscription export writes the platform.
        default={"iOS": "apns", "Android": "fcm"},
        description=(
            "Platform value in Campaign's app-subscription export -> push platform "
            "(apns, apnsSandbox or fcm, as in XDM pushNotificationDetails.platform)."
        ),
    )
    push_token_namespaces: dict[str, str] = Field(
        # UNCONFIRMED: docs/formats.md §d lists the APNs / FCM namespace codes as unknown.
        default={"apns": "APNS", "apnsSandbox": "APNS", "fcm": "FCM"},
        description="Push platform -> identityMap namespace code of its device tokens.",
    )
    push_subscriber_namespace: str = Field(
        default="",
        description=(
            "identityMap namespace of the app subscriber key (Campaign's userKey); empty = "
            "campaign_identity_namespace, i.e. the key is the recipient's external ID."
        ),
    )
    apns_token_pattern: str = Field(
        # An APNs device token is 32 bytes, written as 64 hexadecimal characters.
        default="^[0-9A-Fa-f]{64}$",
        description="RE2 pattern every APNs device token must match.",
    )
    fcm_token_pattern: str = Field(
        # Permissive on purpose (FCM documents no format): an optional instance ID and colon,
        # then at least 100 URL-safe base64 characters (FCM tokens are ~150-180 long;
        # legacy GCM ones start with APA91b and have no colon).
        default="^([A-Za-z0-9_-]{11,64}:)?[A-Za-z0-9_-]{100,}$",
        description="RE2 pattern every FCM registration token must match.",
    )
    aep_dataset_export_folder: str = Field(
        default="aep_dataset_exports",
        description=(
            "Folder of AEP dataset exports in the aep_dataset_export zone: "
            "<folder>/<datasetId>/exportTime=YYYYMMDDHHMM/ (docs/formats.md §a1)."
        ),
    )
    aep_push_token_dataset_ids: list[str] = Field(
        default_factory=list,
        description=(
            "Dataset IDs whose exports hold the Mobile SDK push registrations; empty = every "
            "dataset folder under aep_dataset_export_folder."
        ),
    )
