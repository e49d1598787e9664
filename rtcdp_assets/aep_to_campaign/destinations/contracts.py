"""Identity contracts of the activation destinations: what each may receive, normalised or
hashed, and the rejects of rows that cannot meet it. Which identity roles each destination
gets, and their namespaces, come from rtcdp_assets/shared/destination_identities.py, the list
the published profiles carry too.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

# One E.164 rule for the audience join and the destination contracts.
from rtcdp_assets.aep_to_campaign.audience_exports.join_identities import (
    normalise_phone,
)
from rtcdp_assets.shared.destination_identities import (
    DESTINATION_IDENTITIES,
    sha256_hex,
)

__all__ = ["sha256_hex"]  # re-exported: the consent check and the bench hash through here

GOVERNANCE_PREFIX = "destination_"  # governance.yaml dataset of destination d: destination_<d>


Kind = Literal["email", "phone"]

EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"
SHA256_RE = r"^[0-9a-f]{64}$"
# 64 characters of anything, or a long run of hex digits: too long for a phone (15 digits) and
# without the `@` of an email, so the sender meant a hash.
LOOKS_HASHED_RE = r"^(?:[^@]{64}|[0-9A-Fa-f]{32,})$"

REJECTS_SCHEMA = pa.schema(
    [
        ("destination", pa.string()),
        ("key", pa.string()),
        ("namespace", pa.string()),
        ("reason", pa.string()),
    ]
)


@dataclass(frozen=True)
class Identity:
    """One identity a destination receives: its column, namespace, source and form."""

    column: str  # column of the destination file
    namespace: str  # AEP identity namespace symbol (docs/formats.md §d)
    source: str  # column of the member sources (see `member_sources`)
    kind: Kind
    hashed: bool
    required: bool = True


@dataclass(frozen=True)
class Contract:
    destination: str
    description: str
    identities: tuple[Identity, ...]
    # The consent of its channel; '' = the one the destination's settings name (social, ads).
    channel_consent: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(i.column for i in self.identities)

    @property
    def sources(self) -> tuple[str, ...]:
        """Member fields whose data the file carries (hashed or not): what governance labels."""
        return tuple(dict.fromkeys(i.source for i in self.identities))


def _identity(column: str, role: str, *, required: bool = True) -> Identity:
    """The contract identity of a shared role (its namespace, source column, form)."""
    shared = DESTINATION_IDENTITIES[role]
    return Identity(
        column,
        shared.default_namespace,
        shared.source,
        shared.kind,
        hashed=shared.hashed,
        required=required,
    )


CONTRACTS: tuple[Contract, ...] = (
    Contract(
        "email",
        "Email service provider: the plain email, trimmed and lower-cased.",
        (_identity("email", "email"),),
        channel_consent="email",
    ),
    Contract(
        "sms",
        "SMS provider: the mobile phone in E.164.",
        (_identity("phone_e164", "phone"),),
        channel_consent="sms",
    ),
    Contract(
        "social_ads",
        "Advertising platform: hashed identities only, never a plain email or phone.",
        (
            _identity("email_lc_sha256", "email_sha256"),
            _identity("phone_sha256_e164", "phone_sha256", required=False),
        ),
    ),
)
CONTRACTS_BY_NAME: Mapping[str, Contract] = {c.destination: c for c in CONTRACTS}


def normalise_email(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(normalised email or null, valid) for non-empty values."""
    text = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    valid = pc.fill_null(pc.match_substring_regex(text, EMAIL_RE), False)
    return text, valid


def _is_missing(values: pa.Array) -> pa.Array:
    trimmed = pc.utf8_trim_whitespace(values)
    return pc.fill_null(pc.equal(trimmed, ""), True)


def evaluate_identity(identity: Identity, values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(exported value or null, reason or null) per row for one identity of a contract.

    An optional identity that is missing exports an empty value with no reason."""
    values = pc.cast(values, pa.string())
    missing = _is_missing(values)
    if identity.kind == "email":
        normalised, valid = normalise_email(values)
        invalid_reason = "invalid_email"
    else:
        normalised, valid = normalise_phone(values)
        invalid_reason = "invalid_phone"
    null_str = pa.scalar(None, pa.string())
    if identity.hashed:
        trimmed = pc.utf8_trim_whitespace(values)
        looks_hashed = pc.fill_null(pc.match_substring_regex(trimmed, LOOKS_HASHED_RE), False)
        good_hash = pc.fill_null(pc.match_substring_regex(trimmed, SHA256_RE), False)
        plain_ok = pc.and_(pc.invert(looks_hashed), valid)
        hashed = sha256_hex(pc.if_else(plain_ok, normalised, null_str))
        value = pc.if_else(good_hash, trimmed, hashed)
        reason = pc.if_else(
            looks_hashed,
            pc.if_else(good_hash, null_str, "wrong_hash"),
            pc.if_else(valid, null_str, invalid_reason),
        )
    else:
        value = pc.if_else(valid, normalised, null_str)
        reason = pc.if_else(valid, null_str, invalid_reason)
    missing_reason = f"missing_identity:{identity.namespace}" if identity.required else None
    reason = pc.if_else(missing, pa.scalar(missing_reason, pa.string()), reason)
    value = pc.if_else(missing, null_str, value)
    return value, reason


@dataclass
class ContractResult:
    destination: str
    exported: pa.Table  # the contract's columns, strings ("" for a missing optional identity)
    rejects: pa.Table  # REJECTS_SCHEMA
    rows_in: int

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        return count_by_reason(self.rejects)

    def reconciliation(self) -> dict[str, Any]:
        rejected = sum(self.rejected_by_reason.values())
        return {
            "rows_in": self.rows_in,
            "exported": self.exported.num_rows,
            "rejected": self.rejected_by_reason,
            "balanced": self.rows_in == self.exported.num_rows + rejected,
        }


def count_by_reason(rejects: pa.Table) -> dict[str, int]:
    if rejects.num_rows == 0:
        return {}
    counts = pc.value_counts(rejects.column("reason")).to_pylist()
    return {c["values"]: int(c["counts"]) for c in sorted(counts, key=lambda c: c["values"])}


def contract_values(
    contract: Contract, sources: pa.Table
) -> tuple[dict[str, pa.Array], pa.Array, pa.Array]:
    """Per member source row: the file's value of each contract column ("" when missing), the
    first failing reason in contract order (null: the row meets the contract) and its
    namespace."""
    reason = pa.nulls(sources.num_rows, pa.string())
    namespace = pa.nulls(sources.num_rows, pa.string())
    columns: dict[str, pa.Array] = {}
    for identity in contract.identities:
        value, why = evaluate_identity(identity, sources.column(identity.source).combine_chunks())
        # The first failing identity in contract order names the reject.
        first = pc.and_(pc.is_null(reason), pc.is_valid(why))
        namespace = pc.if_else(first, pa.scalar(identity.namespace), namespace)
        reason = pc.coalesce(reason, why)
        columns[identity.column] = pc.fill_null(value, "")
    return columns, reason, namespace


def apply_contract(contract: Contract, sources: pa.Table) -> ContractResult:
    """Split the member sources (key + source columns) into the destination's rows and rejects."""
    columns, reason, namespace = contract_values(contract, sources)
    ok = pc.is_null(reason)
    exported = pa.table(columns).filter(ok)
    failed = pc.invert(ok)
    rejects = pa.table(
        {
            "destination": pa.array([contract.destination] * sources.num_rows, pa.string()),
            "key": pc.cast(sources.column("key"), pa.string()),
            "namespace": namespace,
            "reason": reason,
        },
        schema=REJECTS_SCHEMA,
    ).filter(failed)
    return ContractResult(contract.destination, exported, rejects, sources.num_rows)
