"""Consent per identity value: what the people at an address or a number said.

A destination file holds each identity value once (duplicates.py), and Campaign recipients
may share one (a family phone, a shared address). The consent of a value, for a destination's
consent, is taken over every Campaign recipient (latest profile) holding it, in the form the
file holds it (email trimmed and lower-cased, phone in E.164, the SHA-256 of those for hashed
identities):

- "n" when any of them said "n" (the person at that address or number said no);
- else "y" when one of them said "y";
- else unknown (no recipient holds it, or none with a known consent): absent from the table.

Both the export's filter (exclusions.py, `consent_reasons`) and the blocking check
`consent_respected` (asset_checks/aep_to_campaign/consent_checks.py) decide with this table,
so the filter never sends a row the check would fail.
"""

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.join_identities import normalise_phone
from rtcdp_assets.aep_to_campaign.destinations.contracts import (
    Identity,
    normalise_email,
    sha256_hex,
)
from rtcdp_assets.shared.consents import consent_values, latest_rows

# email and phone are named by identity kind (`Identity.kind`).
PEOPLE_SCHEMA = pa.schema(
    [("recipient_id", pa.string()), ("email", pa.string()), ("phone", pa.string())]
)
VALUE_CONSENTS_SCHEMA = pa.schema([("value", pa.string()), ("consent", pa.string())])


def campaign_people(warehouse: Warehouse, profile_partitions: set[str]) -> pa.Table:
    """recipient_id, email (normalised), phone (E.164) of the latest version of each Campaign
    recipient (PEOPLE_SCHEMA; an address that does not normalise is null)."""
    tables = []
    for pk in sorted(profile_partitions):
        with warehouse.local_copy("profiles", pk, "data.parquet") as local:
            if local is not None:
                columns = ["recipient_id", "email", "mobile_phone", "last_modified"]
                tables.append(pq.read_table(local, columns=columns))
    if not tables:
        return PEOPLE_SCHEMA.empty_table()
    rows = pa.concat_tables(tables, promote_options="permissive")
    rows = rows.set_column(0, "recipient_id", pc.cast(rows.column("recipient_id"), pa.string()))
    latest = latest_rows(rows, "recipient_id")
    email, email_ok = normalise_email(pc.cast(latest.column("email").combine_chunks(), pa.string()))
    phone, phone_ok = normalise_phone(
        pc.cast(latest.column("mobile_phone").combine_chunks(), pa.string())
    )
    null = pa.scalar(None, pa.string())
    return pa.table(
        {
            "recipient_id": latest.column("recipient_id"),
            "email": pc.if_else(email_ok, email, null),
            "phone": pc.if_else(phone_ok, phone, null),
        },
        schema=PEOPLE_SCHEMA,
    )


def value_consents(
    identity: Identity, people: pa.Table, preferences: pa.Table, consent: str
) -> pa.Table:
    """VALUE_CONSENTS_SCHEMA, one row per value of `identity` (in the file's form) held by a
    recipient with a known `consent`: "n" when any holder said no, else "y"."""
    values = people.column(identity.kind).combine_chunks()
    if identity.hashed:
        values = sha256_hex(values)
    at = pc.index_in(
        people.column("recipient_id").combine_chunks(),
        value_set=preferences.column("recipient_id").combine_chunks(),
        skip_nulls=True,
    )
    given = consent_values(preferences, consent).take(at)
    rows = pa.table({"value": values, "consent": pc.cast(given, pa.string())})
    rows = rows.filter(pc.and_(pc.is_valid(rows.column("value")), pc.is_valid(given)))
    # "n" sorts before "y": the minimum is "n" as soon as one holder said no.
    by_value = rows.group_by("value", use_threads=False).aggregate([("consent", "min")])
    return pa.table(
        {"value": by_value.column("value"), "consent": by_value.column("consent_min")},
        schema=VALUE_CONSENTS_SCHEMA,
    )


def consent_of(consents: pa.Table, values: pa.Array) -> pa.Array:
    """ "y", "n" or null (unknown) for each of `values` (file form) from `value_consents`."""
    at = pc.index_in(values, value_set=consents.column("value").combine_chunks(), skip_nulls=True)
    return consents.column("consent").combine_chunks().take(at)
