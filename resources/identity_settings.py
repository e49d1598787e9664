"""Identity namespaces of the profiles we publish for the activation destinations.

The destinations (email, sms, social_ads) receive identities in the form their contract names
(rtcdp_assets/aep_to_campaign/destinations/contracts.py): AEP can only export an identity a
profile carries, so `profiles` publishes each of them in `identityMap`. The namespace codes of
the hashed and E.164 forms are UNCONFIRMED (docs/formats.md §d, §g item 6): settings, so a
sandbox whose codes differ changes configuration, not code. `PipelineSettings` inherits them.
"""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import Field, model_validator

# Identity role -> AEP namespace code (docs/formats.md §d; the codes the destination contracts
# and Adobe's Google Customer Match page use).
DEFAULT_DESTINATION_IDENTITY_NAMESPACES: dict[str, str] = {
    "email": "Email",  # plain email, trimmed and lower-cased
    "phone": "Phone_E.164",  # plain phone in E.164
    "email_sha256": "Email_LC_SHA256",  # SHA-256 of the trimmed, lower-cased email
    "phone_sha256": "Phone_SHA256_E.164",  # SHA-256 of the E.164 phone
}


class DestinationIdentitySettings(ConfigurableResource):
    """Namespaces of the destination identities `profiles` carries in identityMap."""

    destination_identity_namespaces: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_DESTINATION_IDENTITY_NAMESPACES),
        description=(
            "Identity role (email, phone, email_sha256, phone_sha256) -> identityMap namespace "
            "code under which `profiles` publishes it for the activation destinations (the "
            "standard namespaces of docs/formats.md §d); a role left out is not published, "
            "and the `destination_identities` check fails when a destination needs it."
        ),
    )

    @model_validator(mode="after")
    def _distinct_namespaces(self) -> Any:
        roles = self.destination_identity_namespaces
        unknown = sorted(set(roles) - set(DEFAULT_DESTINATION_IDENTITY_NAMESPACES))
        if unknown:
            raise ValueError(
                f"destination_identity_namespaces: unknown roles {unknown}; known: "
                f"{sorted(DEFAULT_DESTINATION_IDENTITY_NAMESPACES)}"
            )
        codes = [c for c in roles.values() if c]
        # identityMap is keyed by namespace: two roles (or a role and the Campaign recipient
        # namespace) under one code would collide in the record.
        campaign = getattr(self, "campaign_identity_namespace", None)
        if len(set(codes)) != len(codes) or campaign in codes:
            raise ValueError(
                "destination_identity_namespaces: each role needs its own namespace code, "
                "distinct from campaign_identity_namespace"
            )
        return self
