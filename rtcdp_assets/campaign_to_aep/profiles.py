"""profiles: the Campaign recipient extract, the pattern's source of truth for profiles.

Accepted file names: `profiles_YYYYMMDD_HHMM[SS][_<suffix>].csv[.gz]`. Each partition is a typed
snapshot of the recipients exported in that window, and XDM Individual Profile records for AEP.

| canonical     | Campaign Classic v7/v8 | Campaign Standard | required |
|---------------|------------------------|-------------------|----------|
| recipient_id  | iRecipientId           | PKey              | yes      |
| external_id   | sExternalId            | externalId        |          |
| email         | sEmail                 | email             |          |
| first_name    | sFirstName             | firstName         |          |
| last_name     | sLastName              | lastName          |          |
| middle_name   | sMiddleName            | middleName        |          |
| mobile_phone  | sMobilePhone           | mobilePhone       |          |
| gender        | iGender                | gender            |          |
| birth_date    | dBirthDate             | birthDate         |          |
| email_format  | iEmailFormat           | emailFormat       |          |
| country_code  | sCountryCode           | countryCode       |          |
| city          | sCity                  | city              |          |
| zip_code      | sZipCode               | zipCode           |          |
| created       | tsCreated              | created           |          |
| last_modified | tsLastModified         | lastModified      | yes      |
| org_unit      | sOrgUnit               | orgUnit           |          |

Gender 0/1/2 = unknown/male/female and emailFormat 0/1/2 = unknown/text/HTML (§b2, §b6).

identityMap: the Campaign recipient identity (external ID, else recipient ID) is the one
primary identity; beside it every identity an activation destination needs
(rtcdp_assets/shared/destination_identities.py, namespaces from
`destination_identity_namespaces`): the email, the mobile phone in E.164 (the broadlog's rule,
`delivery_channels.e164`, with `phone_default_country_code`), and their SHA-256 hashes (of the
trimmed lower-cased email, of the E.164 number; docs/formats.md §d). A value that cannot take
the form (a national number without a default country code) is left out of identityMap;
`mobilePhone.number` keeps the number as exported.
"""

import pyarrow as pa
import pyarrow.compute as pc

from resources.settings import PipelineSettings
from rtcdp_assets.campaign_to_aep.delivery_channels import e164
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportFlow
from rtcdp_assets.shared import xdm
from rtcdp_assets.shared.destination_identities import hashed_present, normalised_email
from rtcdp_assets.shared.ingest import ExportFormat, FieldSpec, Layout
from rtcdp_assets.shared.xdm_conformance import (
    FG_IDENTITY_MAP,
    FG_PROFILE_PERSON_DETAILS,
    FG_PROFILE_PERSONAL_DETAILS,
    PROFILE,
)

GENDERS = {"0": "not_specified", "1": "male", "2": "female"}

FIELDS = (
    FieldSpec(
        "recipient_id",
        "string",
        required=True,
        personal=True,
        description="Campaign recipient key.",
    ),
    FieldSpec(
        "external_id",
        "string",
        personal=True,
        description="External ID (the AEP identity).",
    ),
    FieldSpec("email", "email", personal=True, description="Email (lower-cased)."),
    FieldSpec("first_name", "string", personal=True, description="First name."),
    FieldSpec("last_name", "string", personal=True, description="Last name."),
    FieldSpec("middle_name", "string", personal=True, description="Middle name."),
    FieldSpec("mobile_phone", "string", personal=True, description="Mobile phone."),
    FieldSpec("gender", "int", allowed=frozenset(GENDERS), description="0/1/2."),
    FieldSpec("birth_date", "date", personal=True, description="Birth date."),
    FieldSpec("email_format", "int", allowed=frozenset({"0", "1", "2"}), description="0/1/2."),
    FieldSpec("country_code", "string", description="ISO 3166-1 alpha-2 ('XX' = unknown)."),
    FieldSpec("city", "string", description="City."),
    FieldSpec("zip_code", "string", personal=True, description="Postal code."),
    FieldSpec("created", "timestamp", description="Creation date."),
    FieldSpec("last_modified", "timestamp", required=True, description="Last change."),
    FieldSpec("org_unit", "string", description="Campaign organizational unit."),
)

CLASSIC = Layout(
    "campaign_classic",
    {
        "iRecipientId": "recipient_id",
        "sExternalId": "external_id",
        "sEmail": "email",
        "sFirstName": "first_name",
        "sLastName": "last_name",
        "sMiddleName": "middle_name",
        "sMobilePhone": "mobile_phone",
        "iGender": "gender",
        "dBirthDate": "birth_date",
        "iEmailFormat": "email_format",
        "sCountryCode": "country_code",
        "sCity": "city",
        "sZipCode": "zip_code",
        "tsCreated": "created",
        "tsLastModified": "last_modified",
        "sOrgUnit": "org_unit",
    },
)
STANDARD = Layout(
    "campaign_standard",
    {
        "PKey": "recipient_id",
        "externalId": "external_id",
        "email": "email",
        "firstName": "first_name",
        "lastName": "last_name",
        "middleName": "middle_name",
        "mobilePhone": "mobile_phone",
        "gender": "gender",
        "birthDate": "birth_date",
        "emailFormat": "email_format",
        "countryCode": "country_code",
        "city": "city",
        "zipCode": "zip_code",
        "created": "created",
        "lastModified": "last_modified",
        "orgUnit": "org_unit",
    },
)

PROFILES_FORMAT = ExportFormat(dataset="profiles", fields=FIELDS, layouts=(CLASSIC, STANDARD))


def _present(values: pa.Array) -> pa.Array:
    return pc.invert(pc.is_null(values))


def destination_identities(
    batch: pa.RecordBatch, settings: PipelineSettings
) -> dict[str, pa.Array]:
    """identityMap namespace -> values of every destination identity role the settings name
    (null where the profile has none)."""
    email = normalised_email(batch.column("email"))
    phone = e164(batch.column("mobile_phone"), settings.phone_default_country_code)
    values = {
        "email": email,
        "phone": phone,
        "email_sha256": hashed_present(email),
        "phone_sha256": hashed_present(phone),
    }
    return {
        namespace: values[role]
        for role, namespace in settings.destination_identity_namespaces.items()
        if namespace
    }


def profiles_to_xdm(batch: pa.RecordBatch, settings: PipelineSettings) -> pa.RecordBatch:
    email, mobile = batch.column("email"), batch.column("mobile_phone")
    first, last, middle = (batch.column(c) for c in ("first_name", "last_name", "middle_name"))
    has_name = pc.or_(pc.or_(_present(first), _present(last)), _present(middle))
    country = pc.utf8_upper(batch.column("country_code"))
    city, zip_code = batch.column("city"), batch.column("zip_code")
    has_address = pc.or_(pc.or_(_present(country), _present(city)), _present(zip_code))
    recipient_identity = pc.coalesce(batch.column("external_id"), batch.column("recipient_id"))
    gender = xdm.lookup(batch.column("gender"), GENDERS)
    person = xdm.struct(
        {
            "name": xdm.struct(
                {"firstName": first, "lastName": last, "middleName": middle},
                mask=pc.invert(has_name),
            ),
            "gender": gender,
            "birthDate": pc.strftime(batch.column("birth_date"), format="%Y-%m-%d"),
        }
    )
    return pa.RecordBatch.from_arrays(
        [
            xdm.event_ids(
                "campaign-profile",
                batch.column("recipient_id"),
                pc.cast(batch.column("last_modified"), pa.int64()),
            ),
            xdm.struct(
                {
                    settings.campaign_identity_namespace: xdm.identities(
                        recipient_identity, primary=True
                    ),
                    **{
                        namespace: xdm.identities(values, primary=False)
                        for namespace, values in destination_identities(batch, settings).items()
                    },
                }
            ),
            person,
            xdm.struct({"address": email}, mask=pc.is_null(email)),
            xdm.struct({"number": mobile}, mask=pc.is_null(mobile)),
            xdm.struct(
                {"city": city, "postalCode": zip_code, "countryCode": country},
                mask=pc.invert(has_address),
            ),
        ],
        names=["_id", "identityMap", "person", "personalEmail", "mobilePhone", "homeAddress"],
    )


profiles_flow = CampaignExportFlow(
    fmt=PROFILES_FORMAT,
    file_prefix="profiles",
    to_xdm=profiles_to_xdm,
    xdm_class=PROFILE,
    xdm_field_groups=(FG_PROFILE_PERSON_DETAILS, FG_PROFILE_PERSONAL_DETAILS, FG_IDENTITY_MAP),
    record_kind="profile",
    description=(
        "Campaign recipients, the source of truth for profiles: a typed snapshot per window and "
        "XDM Individual Profile records for AEP."
    ),
    column_lineage={
        "_id": ("recipient_id", "last_modified"),
        "identityMap.{campaign}": ("external_id", "recipient_id"),
        "identityMap.{email}": ("email",),
        "identityMap.{phone}": ("mobile_phone",),
        "identityMap.{email_sha256}": ("email",),
        "identityMap.{phone_sha256}": ("mobile_phone",),
        "person.name.firstName": ("first_name",),
        "person.name.lastName": ("last_name",),
        "person.name.middleName": ("middle_name",),
        "person.gender": ("gender",),
        "person.birthDate": ("birth_date",),
        "personalEmail.address": ("email",),
        "mobilePhone.number": ("mobile_phone",),
        "homeAddress.city": ("city",),
        "homeAddress.postalCode": ("zip_code",),
        "homeAddress.countryCode": ("country_code",),
    },
)

profiles_defs = profiles_flow.build()
