"""The search behind the browser tests' "no raw personal value" assertion: it finds what the
input holds, as whole words, and not what merely looks alike."""

from __future__ import annotations

import gzip

from tests.browser.personal_values import (
    PersonalValueFinder,
    describe_leaks,
    input_files,
    personal_values,
)

PROFILES = (
    "iRecipientId,sExternalId,sEmail,sFirstName,sLastName,sMiddleName,sMobilePhone,iGender,"
    "dBirthDate,iEmailFormat,sCountryCode,sCity,sZipCode,tsCreated,tsLastModified,sOrgUnit\n"
    "1038144,CUST-56963888,ben_sanchez@inbox.test,Ben,Sánchez,Clara,+447700900007,1,1964-05-16,"
    "2,GB,Edinburgh,EH3 9UT,2019-03-05 04:36:41,2026-12-04 20:01:15,default\n"
    "1014049,CUST-48887231,becker.ben@example.com,Ben,Becker,,,1,,2,DE,Berlin,13234,"
    "2019-05-03 13:17:15,2026-12-04 20:01:28,default\n"
    # A column short (the sample's wrong_column_count defect): its cells are shifted.
    "1055407,CUST-62052454,d.okafor@example.net,Okafor,,,1,1941-07-04,2,DE,München,81062,"
    "2025-03-17 05:57:39,2026-12-04 21:56:52,default\n"
)
AUDIENCE = (
    "person_name_firstName,person_name_lastName,personalEmail_address,external_id\n"
    "Fatima,Martin,fatima1973@example.org,CUST-56450264\n"
)


def _demo_folders(tmp_path):
    archive = tmp_path / "campaign_sftp" / "export" / "archive" / "profiles"
    archive.mkdir(parents=True)
    (archive / "profiles_20261204_2000.csv@44417-1").write_text(PROFILES)
    (archive / "profiles_20261204_1600.csv.gz@1-2").write_bytes(
        gzip.compress(b"sExternalId,sEmail\nCUST-11111111,zoe@mail.test\n")
    )
    (tmp_path / "aep_destination").mkdir()
    (tmp_path / "aep_destination" / "Demo_Blob_x_20261205_001617.csv").write_text(AUDIENCE)
    (tmp_path / "aep_destination" / "manifest-x.json").write_text("{}")
    return tmp_path


def test_values_are_read_by_column_from_every_input_file(tmp_path):
    files = input_files(_demo_folders(tmp_path))
    assert len(files) == 3  # the manifest is no input of personal values
    values = personal_values(files)
    assert values["ben_sanchez@inbox.test"] == "email"
    assert values["+447700900007"] == "phone"
    assert values["Sánchez"] == values["Clara"] == values["Fatima"] == "name"
    assert values["1964-05-16"] == "birth date"
    assert values["EH3 9UT"] == "postal code"
    assert values["CUST-56450264"] == values["CUST-11111111"] == "external ID"  # gzip too
    # Five digits cannot be told from a count on a page; a shifted row gives only its address.
    assert "13234" not in values
    assert values["d.okafor@example.net"] == "email"
    assert "2025-03-17 05:57:39" not in values
    assert "default" not in values and "Edinburgh" not in values


def test_finds_values_as_whole_words_only(tmp_path):
    finder = PersonalValueFinder(personal_values(input_files(_demo_folders(tmp_path))))
    page = (
        'Benchmark Berlin 2026-12-04 | ***07 | b***@***.test | {"firstName":"ben"} '
        "ben.becker@example.comx, CUST-56963888, phone +447700900007."
    )
    found = finder.find(page)
    assert found == {
        "external ID": ["CUST-56963888"],
        "name": ["ben"],
        "phone": ["+447700900007"],
    }
    assert finder.find("Materialized (2) · 298 rows · a***@***.com · ***69cb") == {}
    assert describe_leaks({"preview": found}).splitlines()[1] == (
        "preview: 1 raw name value(s): ben"
    )
