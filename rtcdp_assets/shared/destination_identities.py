"""The identities the activation destinations need, one list for both directions of data.

`aep_to_campaign/destinations/contracts.py` builds each destination's file from them, and
`campaign_to_aep/profiles.py` publishes them in the profiles' `identityMap`, so AEP can export
what a destination asks for (wings cannot import each other: the list lives here).

| role         | namespace (default)  | profiles column | form                                   |
|--------------|----------------------|-----------------|----------------------------------------|
| email        | `Email`              | `email`         | trimmed, lower-cased                   |
| phone        | `Phone_E.164`        | `mobile_phone`  | E.164                                  |
| email_sha256 | `Email_LC_SHA256`    | `email`         | SHA-256 hex of the trimmed lower case  |
| phone_sha256 | `Phone_SHA256_E.164` | `mobile_phone`  | SHA-256 hex of the E.164 number        |

Namespaces are settings (`destination_identity_namespaces`, docs/formats.md §d).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from resources.identity_settings import DEFAULT_DESTINATION_IDENTITY_NAMESPACES

Kind = Literal["email", "phone"]


@dataclass(frozen=True)
class DestinationIdentity:
    """One identity role: where its value comes from and in which form."""

    role: str
    source: str  # column of Campaign `profiles` (and of the destinations' member sources)
    kind: Kind
    hashed: bool

    @property
    def default_namespace(self) -> str:
        return DEFAULT_DESTINATION_IDENTITY_NAMESPACES[self.role]


DESTINATION_IDENTITIES: Mapping[str, DestinationIdentity] = {
    i.role: i
    for i in (
        DestinationIdentity("email", "email", "email", hashed=False),
        DestinationIdentity("phone", "mobile_phone", "phone", hashed=False),
        DestinationIdentity("email_sha256", "email", "email", hashed=True),
        DestinationIdentity("phone_sha256", "mobile_phone", "phone", hashed=True),
    )
}
# The identity roles each activation destination receives (its contract's identities, in
# order); every one must be in the published profiles (`destination_identities` check).
DESTINATION_NEEDS: Mapping[str, tuple[str, ...]] = {
    "email": ("email",),
    "sms": ("phone",),
    "social_ads": ("email_sha256", "phone_sha256"),
}


def needed_roles() -> tuple[str, ...]:
    """Every role some destination needs, each once, in destination order."""
    return tuple(dict.fromkeys(role for roles in DESTINATION_NEEDS.values() for role in roles))


def sha256_hex(values: pa.Array) -> pa.Array:
    """SHA-256 hex digest of each value (null stays null). Arrow has no SHA-256 kernel; one
    C call per value is the cheapest found (bench/README.md, `contracts.sha256_hex`)."""
    return pa.array(
        [None if v is None else hashlib.sha256(v.encode()).hexdigest() for v in values.to_pylist()],
        pa.string(),
    )


def hashed_present(values: pa.Array) -> pa.Array:
    """`sha256_hex` over the non-null values only (nulls skip the Python loop)."""
    present = pc.is_valid(values)
    picked = pc.filter(values, present)
    out = pa.nulls(len(values), pa.string())
    if not len(picked):
        return out
    return pc.replace_with_mask(out, present, sha256_hex(picked))


def normalised_email(values: pa.Array) -> pa.Array:
    """Trimmed and lower-cased: the form `Email_LC_SHA256` hashes (docs/formats.md §d)."""
    return pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(values, pa.string())))
