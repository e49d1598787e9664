"""Settings of the AEP audience → Campaign import flow (segments.py, campaign_import.py).

Every guardrail limit is a setting with the documented Adobe value as its default, so a
deployment whose contract or Campaign options differ (e.g. `NmsCdp_Aep_Audience_List_Limit`)
changes configuration, not code. The CSV options of an AEP batch destination are chosen per
destination connection in AEP's activation UI, so they are configured per destination name (the
`%DESTINATION%` part of the file name), with `default_destination` for any other name.
"""

from dagster import Config, ConfigurableResource
from pydantic import Field, field_validator

AEP_ROWS_PER_FILE = 5_000_000  # AEP splits exported files at 5,000,000 rows (docs/formats.md §a1)
JOIN_IDENTITIES = ("external_id", "email", "phone")  # the default order of join_identities


def join_identities_from_env(value: str | None) -> list[str]:
    """`RTCDP_AUDIENCE_JOIN_IDENTITIES` (comma-separated, in order); the older single-value
    `RTCDP_AUDIENCE_JOIN_IDENTITY` is a list of one."""
    if not value or not value.strip():
        return list(JOIN_IDENTITIES)
    return [part.strip() for part in value.split(",") if part.strip()]


class AepDestinationOptions(Config):
    """How one AEP destination connection writes its files (docs/formats.md §a2, §a3, §a5)."""

    kind: str = Field(
        default="batch",
        pattern="^(batch|campaign_managed_services)$",
        description=(
            "'campaign_managed_services' for the Adobe Campaign Managed Cloud Services "
            "destination (at most `max_audiences_campaign_destination` audiences), else 'batch'."
        ),
    )
    export_mode: str = Field(
        default="full",
        pattern="^(full|incremental)$",
        description=(
            "'full': every file holds the whole audience (it replaces the membership); "
            "'incremental': the first file is a full backfill, later files hold only changes "
            "(realized / existing / exited)."
        ),
    )
    delimiter: str = Field(default=",", description="One of , ; : | or a tab.")
    quote_char: str = Field(
        default='"',
        description="'\"' (double quotes) or '' for AEP's 'Null Character' (no quoting).",
    )
    escape_char: str = Field(
        default="\\",
        description="Escape of a quote inside a quoted value: '\\' (AEP default) or \"'\".",
    )
    null_value: str = Field(
        default="",
        description=(
            "What AEP writes for a null value: '' (empty), '\"\"' or 'NULL' (AEP's `null` option)."
        ),
    )
    empty_value: str = Field(
        default="", description="What AEP writes for an empty string: '', '\"\"' or 'NULL'."
    )
    header: bool = Field(default=True, description="First line holds the column names.")
    columns: list[str] = Field(
        default_factory=list, description="Column names when `header` is false, in file order."
    )
    encoding: str = Field(
        default="utf-8",
        pattern="^(utf-8|utf-16|utf-16-le|utf-16-be)$",
        description="UTF-8 (default) or UTF-16.",
    )
    manifest_required: bool = Field(
        default=False,
        description=(
            "The 'Include manifest file' toggle is on: an export is complete only once a "
            "manifest lists every file with its size."
        ),
    )
    rows_per_file: int = Field(
        default=AEP_ROWS_PER_FILE,
        description="AEP's split size (maxFileRowCount): every part but the last holds this many.",
    )
    external_id_column: str = Field(
        default="external_id",
        description=(
            "Column holding the Campaign external ID (e.g. `crmId` if renamed). Every column "
            "setting may be an XDM path: the path and its CSV form (dots → `_`) are both "
            "recognised (docs/formats.md §a2)."
        ),
    )
    email_column: str = Field(
        default="personalEmail.address",
        description=(
            "Column holding the email address: `personalEmail.address` or, in AEP's CSV "
            "headers and Adobe's sample export, `personalEmail_address`."
        ),
    )
    phone_column: str = Field(
        default="mobilePhone.number",
        description="Column holding the mobile phone (`mobilePhone.number` / `_number`).",
    )
    status_column: str = Field(
        default="",
        description=(
            "Column of the membership status; '' = `segmentMembership_ups_<audience id>_status` "
            "or `segmentMembershipStatus` (Campaign Managed Services). Without the column every "
            "row counts as realized."
        ),
    )
    qualification_time_column: str = Field(
        default="",
        description="'' = `segmentMembership_ups_<audience id>_lastQualificationTime`.",
    )


CONSENT_NAMES = ("any", "email", "sms", "call", "fax", "postalMail", "push")


class ActivationConsentOptions(Config):
    """Options of one activation destination (email, sms, social_ads): which consent it asks
    for, what a member without that consent gets (docs/formats.md §c5), and whether its
    publication waits for an approved dry run."""

    consent: str = Field(
        default="",
        description=(
            "The XDM `consents.marketing` consent the destination needs: 'any' (the general "
            "marketing consent), 'email', 'sms', 'call', 'fax', 'postalMail' or 'push'. '' = "
            "the destination's own channel (email → email, sms → sms, push → push), 'any' for "
            "social and ad platforms."
        ),
    )
    missing_consent: str = Field(
        default="exclude",
        pattern="^(exclude|include)$",
        description=(
            "A member whose consent is unknown (no Campaign recipient, no preferences row, or "
            "an empty flag): 'exclude' (reason `missing_consent`) or 'include'."
        ),
    )
    review_first: bool = Field(
        default=False,
        description=(
            "Publication of this destination's file waits until the audience export's "
            "`activation_dry_run` is approved: run tag `rtcdp/approved_dry_run=<dry-run id>` "
            "or the warehouse file `activation_dry_run/<audience>/<stamp>/approved`. The other "
            "destinations of the export publish at once."
        ),
    )

    @field_validator("consent")
    @classmethod
    def _known_consent(cls, value: str) -> str:
        if value and value not in CONSENT_NAMES:
            raise ValueError(f"consent must be one of {', '.join(CONSENT_NAMES)}, not {value!r}")
        return value


class AudienceSettings(ConfigurableResource):
    """Deployment settings and guardrail limits of the audience flow."""

    destination_folder: str = Field(
        default="",
        description="Folder of the AEP destination container AEP writes the exports to.",
    )
    destinations: dict[str, AepDestinationOptions] = Field(
        default_factory=dict,
        description="Per destination name (the first part of the file name): its file options.",
    )
    default_destination: AepDestinationOptions = Field(
        default_factory=AepDestinationOptions,
        description="Options of every destination not listed in `destinations`.",
    )
    join_identities: list[str] = Field(
        default_factory=lambda: list(JOIN_IDENTITIES),
        min_length=1,
        description=(
            "How an AEP member finds its Campaign profile, in order of preference: each export "
            "is joined by the first of these its columns carry, and quarantined "
            "(`unknown_layout`) when it carries none. 'external_id' (the Campaign external "
            "ID, recommended by Adobe for the Campaign destination), 'email' (trimmed, "
            "lower-cased), 'phone' (the mobile phone in E.164 on both sides)."
        ),
    )
    activation_consents: dict[str, ActivationConsentOptions] = Field(
        default_factory=dict,
        description="Per activation destination (email, sms, social_ads): its consent options.",
    )
    default_activation_consent: ActivationConsentOptions = Field(
        default_factory=ActivationConsentOptions,
        description="Consent options of every activation destination not listed above.",
    )
    audience_names: dict[str, str] = Field(
        default_factory=dict, description="Audience ID -> name, written to the import file."
    )
    campaign_import_review_first: bool = Field(
        default=False,
        description=(
            "Publication of the Campaign import (`campaign_audience_import_published`) waits "
            "until the audience export's `activation_dry_run` is approved: run tag "
            "`rtcdp/approved_dry_run=<dry-run id>` or the warehouse file "
            "`activation_dry_run/<audience>/<stamp>/approved`; `destination_export_sensor` "
            "publishes it once that file appears. Off: published at once."
        ),
    )
    max_audiences_campaign_destination: int = Field(
        default=25,
        description="Audiences per Campaign Managed Services destination "
        "(Campaign option NmsCdp_Aep_Audience_List_Limit).",
    )
    max_audiences_per_sandbox: int = Field(
        default=4000, description="AEP guardrail: batch audiences per sandbox."
    )
    max_fields_per_audience: int = Field(
        default=20, description="Fields per audience export (NmsCdp_Aep_Destinations_Max_Columns)."
    )
    allowed_cadence_hours: list[int] = Field(
        default_factory=lambda: [3, 6, 8, 12, 24],
        description="Incremental exports every 3, 6, 8 or 12 h; full exports daily (24).",
    )
    cadence_grace_minutes: int = Field(
        default=90, description="Tolerance around the expected interval between two exports."
    )
    cadence_lookback_exports: int = Field(
        default=10, description="How many recent exports of an audience the cadence check reads."
    )
    max_rows_per_file: int = Field(
        default=AEP_ROWS_PER_FILE,
        description="Rows per file the platform writes (Campaign import).",
    )
    max_runs_per_tick: int = Field(
        default=100,
        description=(
            "Run requests per sensor tick; the rest waits for the next tick (AEP's soft limit is "
            "100 audiences exported per hour)."
        ),
    )
    pending_expiry_hours: float = Field(
        default=48.0,
        description="How long the sensor keeps re-checking an incomplete export before giving up.",
    )

    @field_validator("join_identities")
    @classmethod
    def _known_identities(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(JOIN_IDENTITIES))
        if unknown or len(set(value)) != len(value):
            raise ValueError(
                f"join_identities must list each of {', '.join(JOIN_IDENTITIES)} at most "
                f"once, not {value}"
            )
        return value

    def destination(self, name: str) -> AepDestinationOptions:
        return self.destinations.get(name, self.default_destination)

    def activation_consent(self, destination: str) -> ActivationConsentOptions:
        return self.activation_consents.get(destination, self.default_activation_consent)
