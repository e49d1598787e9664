"""The one masking policy (rtcdp_assets/shared/masking.py), value by value."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from rtcdp_assets.campaign_to_aep.broadlog import broadlog_flow
from rtcdp_assets.campaign_to_aep.profiles import PROFILES_FORMAT, profiles_flow
from rtcdp_assets.campaign_to_aep.push_subscriptions import push_subscriptions_flow
from rtcdp_assets.shared.masking import (
    MASK,
    mask_parse_error,
    mask_reject_raw,
    mask_text,
    mask_value,
    mask_xdm,
    masked_preview,
    xdm_path_is_shown,
)

APNS = "a16aa32fce49e6b2d549755c803ec39f0c47171fed282b48303f1caefaeef4dc"


@pytest.mark.parametrize(
    ("value", "shown"), [("Gabriel", MASK), ("1964-05-16", MASK), (1035310, MASK), ("", "")]
)
def test_a_personal_value_is_three_dots_and_an_empty_one_stays_empty(value, shown):
    assert mask_value(value) == shown
    assert mask_value(None) == ""


def test_free_text_loses_its_emails_phones_and_tokens():
    text = f"bounce for ana.lopez@example.org (+33639984425), device {APNS}; 550 5.1.1"
    assert mask_text(text) == (
        f"bounce for {MASK}email ({MASK}phone), device {MASK}token; 550 5.1.1"
    )
    fcm = "mRJ5yrFs8QLTkta4i1-yX2:APA91bRqDWkoBwslqv8wwh4KNcZIjTSsV-3YF8jN7YQxdkDiBsP9JCm6"
    assert mask_text(f"token={fcm}") == f"token={MASK}token"
    # dates, counts and IDs stay readable
    assert mask_text("2026-12-04 16:00:02 rows=3502293") == "2026-12-04 16:00:02 rows=3502293"


def test_every_personal_field_of_a_format_is_masked_in_its_preview():
    row = {
        "recipient_id": "1035310",
        "external_id": "CUST-13712190",
        "email": "smith.gabriel@example.com",
        "first_name": "Gabriel",
        "last_name": "Smith",
        "middle_name": None,
        "mobile_phone": "+33639984425",
        "birth_date": "1967-03-28",
        "country_code": "FR",
        "city": "Lyon",
        "zip_code": "69009",
    }
    preview = masked_preview(pa.Table.from_pylist([row]), PROFILES_FORMAT.personal_fields)
    header, _, cells = preview.splitlines()
    shown = dict(zip(header.strip("| ").split(" | "), cells.strip("| ").split(" | "), strict=True))
    personal = PROFILES_FORMAT.personal_fields
    assert {"first_name", "last_name", "birth_date", "zip_code", "external_id"} <= personal
    assert {k: v for k, v in shown.items() if k in personal} == {
        k: "" if row[k] is None else MASK for k in row if k in personal
    }
    assert shown["country_code"] == "FR" and shown["city"] == "Lyon"


def test_a_quarantined_row_shows_its_plain_columns_and_masks_the_personal_ones():
    columns = PROFILES_FORMAT.personal_columns
    assert {"sFirstName", "sLastName", "dBirthDate", "sZipCode", "first_name"} <= columns
    raw = json.dumps({"iRecipientId": "1035310", "sFirstName": "Gabriel", "iGender": "7"})
    shown = json.loads(mask_reject_raw(raw, columns))
    assert shown == {"iRecipientId": MASK, "sFirstName": MASK, "iGender": "7"}
    # a dataset whose personal columns are not known: every value masked
    assert json.loads(mask_reject_raw(raw, None)) == dict.fromkeys(shown, MASK)
    # a row that could not be split into columns is free text
    assert mask_reject_raw("1035310,Gabriel,Smith,", columns) == f"{MASK}line"
    assert mask_reject_raw("12345", columns) == f"{MASK}line"  # JSON, but not a row


def test_a_parse_error_keeps_the_column_counts_not_the_row():
    message = "CSV parse error: Expected 16 columns, got 12: 1035310,CUST-1,Gabriel,Smith"
    assert mask_parse_error(message) == f"CSV parse error: Expected 16 columns, got 12: {MASK}line"


def test_xdm_paths_fed_by_a_personal_field_identities_and_unknown_paths_are_masked():
    lineage, personal = profiles_flow.column_lineage, PROFILES_FORMAT.personal_fields
    for path in ("person.name.firstName", "person.birthDate", "homeAddress.postalCode"):
        assert not xdm_path_is_shown(path, lineage, personal), path
    assert not xdm_path_is_shown("identityMap.external_id.id", lineage, personal)
    assert xdm_path_is_shown("identityMap.external_id.primary", lineage, personal)
    assert not xdm_path_is_shown("_experience.campaign.somethingNew", lineage, personal)
    assert xdm_path_is_shown("homeAddress.countryCode", lineage, personal)
    assert xdm_path_is_shown("person.gender", lineage, personal)


def test_an_xdm_record_keeps_its_shape_and_codes_and_loses_its_personal_values():
    record = {
        "_id": "campaign-push-subscription-20046574-1796400029000000",
        "identityMap": {"APNS": [{"id": APNS, "primary": False}]},
        "pushNotificationDetails": [
            {
                "appID": "com.example.shop",
                "platform": "apns",
                "token": APNS,
                "identity": {"namespace": {"code": "external_id"}, "xid": "CUST-52384295"},
            }
        ],
        "consents": {"marketing": {"push": {"val": "y"}}},
    }
    flow = push_subscriptions_flow
    shown = mask_xdm(record, flow.column_lineage, flow.fmt.personal_fields)
    assert APNS not in json.dumps(shown) and "CUST-52384295" not in json.dumps(shown)
    detail = shown["pushNotificationDetails"][0]
    assert detail["appID"] == "com.example.shop" and detail["platform"] == "apns"
    assert detail["token"] == MASK and detail["identity"]["xid"] == MASK
    assert shown["identityMap"] == {"APNS": [{"id": MASK, "primary": False}]}
    assert shown["consents"] == {"marketing": {"push": {"val": "y"}}}


def test_broadlog_external_and_recipient_ids_are_personal():
    assert {"recipient_id", "external_id", "address"} <= broadlog_flow.fmt.personal_fields
    assert {"iRecipientId", "sExternalId", "sAddress"} <= broadlog_flow.fmt.personal_columns
