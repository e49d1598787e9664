"""The two kinds of customer file (profiles, personalization): columns, extra rules, file names."""

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from rtcdp_assets.shared.ingest import ExportFormat, FieldSpec, Layout

GROUP = "customer_to_campaign"
SOURCE_SUFFIXES = (".csv", ".csv.gz", ".parquet")

# Extra rules on typed values: (column, reason, predicate that is true for valid values).
Rule = tuple[str, str, Callable[[pa.Array], pa.Array]]


def _matches(pattern: str) -> Callable[[pa.Array], pa.Array]:
    return lambda values: pc.match_substring_regex(values, pattern)


def _hour(values: pa.Array) -> pa.Array:
    return pc.and_(pc.greater_equal(values, 0), pc.less_equal(values, 23))


@dataclass(frozen=True)
class CustomerDataset:
    """One kind of customer file and the Campaign import it becomes."""

    asset_name: str
    folder: str  # in the customer_source zone
    fields: tuple[FieldSpec, ...]
    rules: tuple[Rule, ...] = ()
    normalise_upper: tuple[str, ...] = ()
    description: str = ""

    @property
    def dataset(self) -> str:
        return self.folder

    @property
    def fmt(self) -> ExportFormat:
        names = {f.name: f.name for f in self.fields}
        return ExportFormat(self.asset_name, self.fields, (Layout("customer", names),))

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def file_name(self, snapshot: str) -> str:
        return f"customer_{self.dataset}_{snapshot}.csv"


PROFILES = CustomerDataset(
    asset_name="profile_import",
    folder="profiles",
    fields=(
        FieldSpec(
            "external_id",
            "string",
            required=True,
            personal=True,
            description="Campaign external ID.",
        ),
        FieldSpec("email", "email", required=True, personal=True, description="Email."),
        FieldSpec("first_name", "string", personal=True, description="First name."),
        FieldSpec("last_name", "string", personal=True, description="Last name."),
        FieldSpec("mobile_phone", "string", personal=True, description="+ and 6-15 digits."),
        FieldSpec("birth_date", "date", personal=True, description="YYYY-MM-DD."),
        FieldSpec("country_code", "string", description="ISO 3166-1 alpha-2."),
        FieldSpec("city", "string", description="City."),
        FieldSpec("zip_code", "string", personal=True, description="Postal code."),
    ),
    rules=(
        ("mobile_phone", "invalid_phone", _matches(r"^\+?[0-9]{6,15}$")),
        ("country_code", "invalid_country_code", _matches(r"^[A-Za-z]{2}$")),
    ),
    normalise_upper=("country_code",),
    description="Simplified customer profiles from the customer's source folder, as a Campaign "
    "recipient import file (reconcile on external_id).",
)
PERSONALIZATION = CustomerDataset(
    asset_name="personalization_import",
    folder="personalization",
    fields=(
        FieldSpec(
            "external_id",
            "string",
            required=True,
            personal=True,
            description="Campaign external ID.",
        ),
        FieldSpec(
            "preferred_channel",
            "string",
            allowed=frozenset({"email", "sms", "push", "direct_mail"}),
            description="Channel to orchestrate on.",
        ),
        FieldSpec("preferred_language", "string", description="ISO 639-1 [-region]."),
        FieldSpec("send_hour_utc", "int", description="Preferred send hour, 0-23 UTC."),
        FieldSpec("loyalty_tier", "string", description="Loyalty tier."),
        FieldSpec("offer_code", "string", description="Next-best offer code."),
        FieldSpec("offer_expiry", "date", description="Offer expiry, YYYY-MM-DD."),
    ),
    rules=(
        ("preferred_language", "invalid_language", _matches(r"^[a-z]{2}(-[A-Z]{2})?$")),
        ("send_hour_utc", "out_of_range:send_hour_utc", _hour),
    ),
    description="Orchestration and personalization attributes per recipient from the "
    "customer's source folder, as a Campaign import file (reconcile on external_id).",
)
CUSTOMER_DATASETS = (PROFILES, PERSONALIZATION)
