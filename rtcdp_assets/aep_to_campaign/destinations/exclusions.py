"""Who must not reach a destination file: suppressed addresses and members without consent.

One function, `exclude_members`, applied by `build_destination_exports` (and the dry run) before
the duplicate selection (duplicates.py) and before any contract is evaluated, so the member kept
for a shared identity value is a sendable one, and every build (the first one, or a re-run after
a late quarantine or opt-out) filters with the suppression list and the consents as they are at
that run.

A member of destination d is excluded, with the first reason that applies:
1. an identity d would receive is suppressed on its channel in the `suppression_list` (email →
   `email`, phone → `sms`): reason `quarantine`, `denylisted` or `opted_out`, the reasons the
   Campaign audience import uses (rtcdp_assets/shared/suppression.py);
2. the consent d asks for (`consent_for`) is "n" for ANY Campaign recipient holding the value
   d receives first (the contract's first identity, as the file holds it: a family phone, a
   shared address; value_consents.py), or for the member's own Campaign recipient (found by the
   export's join identity in `profiles`, like the phone): `opted_out`;
3. d's setting `missing_consent` is `exclude` (the default), and either no recipient with a
   known consent holds that value, or the member's own recipient has no known consent (no
   recipient, no preferences row, an empty flag): `missing_consent`. Consent is personal:
   another holder's "y" on a family phone does not stand in for a member who never gave one.

Rules 2 and 3 on the value are `consent_reasons`, the very function the blocking check
`consent_respected` re-derives the files with (it sees values, not members); the member's own
"n" or missing consent only adds exclusions, so the filter never sends a row the check fails.
"""

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from resources.audience_settings import AudienceSettings
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.join_identities import normalise_phone
from rtcdp_assets.aep_to_campaign.destinations.contracts import (
    Contract,
    evaluate_identity,
    normalise_email,
)
from rtcdp_assets.aep_to_campaign.destinations.value_consents import (
    campaign_people,
    consent_of,
    value_consents,
)
from rtcdp_assets.shared.consents import GENERAL_CONSENT, consent_values, latest_preferences
from rtcdp_assets.shared.suppression import (
    first_reason_per_address,
    load_suppression,
    reasons_for,
)

MISSING_CONSENT = "missing_consent"
OPTED_OUT = "opted_out"
# identity kind → the suppression list's channel of that kind of address
SUPPRESSION_CHANNEL = {"email": "email", "phone": "sms"}
EXCLUDED_SCHEMA = pa.schema(
    [("destination", pa.string()), ("key", pa.string()), ("reason", pa.string())]
)


@dataclass(frozen=True)
class ExclusionInputs:
    """What every destination of one build is filtered with."""

    suppression: pa.Table  # channel, address (email lower-case, phone E.164), reason
    preferences: pa.Table  # latest preferences row per recipient (shared/consents.py)
    people: pa.Table  # every Campaign recipient's email and phone (value_consents.py)


def load_exclusion_inputs(
    warehouse: Warehouse, profile_partitions: set[str], preference_partitions: set[str]
) -> ExclusionInputs:
    suppression = load_suppression(warehouse, tuple(sorted(set(SUPPRESSION_CHANNEL.values()))))
    return ExclusionInputs(
        suppression=normalised_suppression(suppression),
        preferences=latest_preferences(warehouse, preference_partitions),
        people=campaign_people(warehouse, profile_partitions),
    )


def normalised_suppression(suppression: pa.Table) -> pa.Table:
    """The list's addresses in the form the destination files hold: email trimmed and
    lower-cased, phone in E.164 (a phone Campaign stored another way still matches)."""
    address = suppression.column("address").combine_chunks()
    email, email_ok = normalise_email(address)
    phone, phone_ok = normalise_phone(address)
    is_sms = pc.equal(suppression.column("channel").combine_chunks(), SUPPRESSION_CHANNEL["phone"])
    form = pc.if_else(
        is_sms,
        pc.if_else(phone_ok, phone, address),
        pc.if_else(email_ok, email, address),
    )
    # Two stored forms of one address keep the first reason by name, as the list does.
    return first_reason_per_address(suppression.set_column(1, "address", form))


def consent_for(contract: Contract, audience_settings: AudienceSettings) -> str:
    """The consent destination `contract` asks for: its setting, else its channel's consent,
    else the general marketing consent (social and ad platforms)."""
    named = audience_settings.activation_consent(contract.destination).consent
    return named or contract.channel_consent or GENERAL_CONSENT


def exclusion_reasons(
    contract: Contract,
    sources: pa.Table,
    inputs: ExclusionInputs,
    audience_settings: AudienceSettings,
) -> pa.Array:
    """The exclusion reason of each member source row for `contract` (null: may be sent)."""
    null_str = pa.scalar(None, pa.string())
    reason = pa.nulls(sources.num_rows, pa.string())
    for identity in contract.identities:
        values = pc.cast(sources.column(identity.source).combine_chunks(), pa.string())
        normalise = normalise_email if identity.kind == "email" else normalise_phone
        normalised, valid = normalise(values)
        address = pc.if_else(valid, normalised, null_str)
        channel = SUPPRESSION_CHANNEL[identity.kind]
        reason = pc.coalesce(reason, reasons_for(inputs.suppression, channel, address))
    recipient = (
        sources.column("recipient_id").combine_chunks()
        if "recipient_id" in sources.column_names
        else pa.nulls(sources.num_rows, pa.string())
    )
    preferences = inputs.preferences
    at = pc.index_in(
        recipient, value_set=preferences.column("recipient_id").combine_chunks(), skip_nulls=True
    )
    own = consent_values(preferences, consent_for(contract, audience_settings)).take(at)
    reason = pc.coalesce(reason, pc.if_else(pc.equal(own, "n"), OPTED_OUT, null_str))
    first = contract.identities[0]
    value, _ = evaluate_identity(first, sources.column(first.source).combine_chunks())
    by_value = consent_reasons(contract, value, inputs.people, preferences, audience_settings)
    reason = pc.coalesce(reason, by_value)
    if audience_settings.activation_consent(contract.destination).missing_consent == "exclude":
        # Consent is the member's own: another holder's "y" on a shared phone does not stand
        # in for a member who never gave one (stricter than the check, which sees values only).
        reason = pc.coalesce(reason, pc.if_else(pc.is_null(own), MISSING_CONSENT, null_str))
    return reason


def consent_reasons(
    contract: Contract,
    values: pa.Array,
    people: pa.Table,
    preferences: pa.Table,
    audience_settings: AudienceSettings,
) -> pa.Array:
    """The consent rule of the filter and of `consent_respected`, per value of the contract's
    first identity in the file's form (null: no value, nothing to judge): `opted_out` when a
    recipient holding it said "n" to the destination's consent, `missing_consent` when none
    with a known consent holds it and the destination excludes a missing consent, else null."""
    null_str = pa.scalar(None, pa.string())
    consents = value_consents(
        contract.identities[0], people, preferences, consent_for(contract, audience_settings)
    )
    given = consent_of(consents, values)
    reason = pc.if_else(pc.equal(given, "n"), OPTED_OUT, null_str)
    if audience_settings.activation_consent(contract.destination).missing_consent == "exclude":
        unknown = pc.and_(pc.is_valid(values), pc.is_null(given))
        reason = pc.coalesce(reason, pc.if_else(unknown, MISSING_CONSENT, null_str))
    return reason


def exclude_members(
    contract: Contract,
    sources: pa.Table,
    inputs: ExclusionInputs,
    audience_settings: AudienceSettings,
) -> tuple[pa.Table, pa.Table]:
    """(the member sources that may reach the destination's file, the excluded rows as
    EXCLUDED_SCHEMA with their reason)."""
    reason = exclusion_reasons(contract, sources, inputs, audience_settings)
    kept = sources.filter(pc.is_null(reason))
    excluded = pa.table(
        {
            "destination": pa.array([contract.destination] * sources.num_rows, pa.string()),
            "key": pc.cast(sources.column("key"), pa.string()),
            "reason": reason,
        },
        schema=EXCLUDED_SCHEMA,
    ).filter(pc.is_valid(reason))
    return kept, excluded
