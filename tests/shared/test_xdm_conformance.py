"""XDM conformance validator: Adobe's own examples, broadLog records, rejections, privacy.

The examples are Adobe's own, vendored unchanged in ``tests/shared/xdm_examples`` (CC BY 4.0,
refreshed by ``scripts/vendor_xdm.py``); the schemas are the validator's vendored closure.
"""

from __future__ import annotations

import copy
import io
import json
import random
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft6Validator

from resources.settings import PipelineSettings
from rtcdp_assets.campaign_to_aep import broadlog as broadlog_module
from rtcdp_assets.campaign_to_aep import non_deliverables, preferences, profiles, tracking_log
from rtcdp_assets.shared import xdm
from rtcdp_assets.shared import xdm_conformance as xc
from rtcdp_assets.shared.ingest import ingest_file
from rtcdp_assets.shared.xdm_conformance import (
    EXPERIENCE_EVENT,
    FG_CAMPAIGN_DELIVERY_LOG,
    FG_CAMPAIGN_TRACKING_LOG,
    FG_DIRECT_MARKETING,
    FG_IDENTITY_MAP,
    FG_PROFILE_CONSENTS,
    FG_PROFILE_PERSON_DETAILS,
    FG_PROFILE_PERSONAL_DETAILS,
    FG_PROFILE_PUSH_DETAILS,
    FG_PROFILE_PUSH_NOTIFICATION_DETAILS,
    FG_PROFILE_SEGMENTATION,
    PROFILE,
    VENDORED_ROOT,
    VENDORED_ROOTS,
    XdmSchema,
    compilation,
    dataset_form_path,
    formats,
    schema_closure,
    shape_check,
)
from rtcdp_dev import sample_data

EXAMPLES_ROOT = Path(__file__).resolve().parent / "xdm_examples"
CAMPAIGN = "extensions/adobe/experience/campaign"

BROADLOG_GROUPS = [FG_DIRECT_MARKETING, FG_CAMPAIGN_DELIVERY_LOG, FG_CAMPAIGN_TRACKING_LOG]
PROFILE_GROUPS = [
    FG_PROFILE_PERSON_DETAILS,
    FG_PROFILE_PERSONAL_DETAILS,
    FG_PROFILE_PUSH_DETAILS,
    FG_PROFILE_PUSH_NOTIFICATION_DETAILS,
    FG_PROFILE_CONSENTS,
    FG_IDENTITY_MAP,
    FG_PROFILE_SEGMENTATION,
]


@pytest.fixture(scope="module")
def broadlog() -> XdmSchema:
    return XdmSchema.compose(EXPERIENCE_EVENT, BROADLOG_GROUPS, root=VENDORED_ROOT)


@pytest.fixture(scope="module")
def profile() -> XdmSchema:
    return XdmSchema.compose(PROFILE, PROFILE_GROUPS, root=VENDORED_ROOT)


def broadlog_record() -> dict[str, Any]:
    """A delivery-log event as the Campaign export produces it, in the dataset form."""
    return {
        "_id": "a3c1f0b2-5d7e-4f41-9a61-0d7c3e2b9f10",
        "timestamp": "2024-05-02T09:15:27.000Z",
        "eventType": "directMarketing.emailSent",
        "identityMap": {
            "ECID": [{"id": "92312748749128", "authenticatedState": "ambiguous", "primary": True}],
            "CRMID": [{"id": "CUST-000123", "authenticatedState": "authenticated"}],
        },
        "directMarketing": {"sends": {"value": 1}},
        "_experience": {
            "campaign": {
                "broadlogID": "102",
                "deliveryID": "103",
                "campaignID": "100",
                "campaignName": "Spring newsletter",
                "recipientID": "3",
                "channel": "Email",
                "deliveryName": "DM200",
                "quarantine": False,
                "status": "sent",
            }
        },
    }


# --- an independent source-form -> dataset-form converter for Adobe's example instances ------
# Written from Adobe's "Namespacing in XDM / Compatibility Mode" page, not from the module, so a
# wrong rename rule in the module cannot make both sides agree.

# Map-typed fields: their keys are data (namespaces, segment ids, identities), not names.
MAP_DEPTH = {
    "xdm:identityMap": 1,
    "xdm:segmentMembership": 2,
    "xdm:idSpecific": 2,
    "xdm:subscriptions": 1,
    "xdm:subscribers": 1,
}


def convert_name(name: str) -> list[str]:
    if name in ("@id", "@type"):  # AEP shows them as _id and _type (e.g. channel._type)
        return ["_" + name[1:]]
    if name.startswith("xdm:"):
        return [name[4:]]
    if name.startswith("https://ns.adobe.com/experience/"):
        return ["_experience", *name[len("https://ns.adobe.com/experience/") :].split("/")]
    if ":" in name and "//" not in name:
        prefix, local = name.split(":", 1)
        return [f"_{prefix}", local]
    raise AssertionError(f"example uses a name the test does not expect: {name}")


def to_dataset_form(value: Any, map_depth: int = 0) -> Any:
    if isinstance(value, list):
        return [to_dataset_form(item) for item in value]
    if not isinstance(value, dict):
        return value
    if map_depth:
        return {key: to_dataset_form(item, map_depth - 1) for key, item in value.items()}
    out: dict[str, Any] = {}
    for key, item in value.items():
        *parents, leaf = convert_name(key)
        target = out
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = to_dataset_form(item, MAP_DEPTH.get(key, 0))
    return out


def example(relative: str) -> Any:
    return json.loads((EXAMPLES_ROOT / relative).read_text(encoding="utf-8"))


def schema_id_of(relative_example: str) -> str:
    schema_file = relative_example.split(".example.", 1)[0] + ".schema.json"
    return json.loads((VENDORED_ROOT / schema_file).read_text(encoding="utf-8"))["$id"]


@pytest.fixture(scope="module")
def fuller_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vendored closure plus the vendored schemas outside it (profile-work-details)."""
    root = tmp_path_factory.mktemp("xdm") / "xdm"
    shutil.copytree(VENDORED_ROOT, root)
    for path in EXAMPLES_ROOT.rglob("*.schema.json"):
        target = root / path.relative_to(EXAMPLES_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return root.resolve()


EVENT_REQUIRED = {
    "_id": "urn:uuid:0d6a4c1e-0000-4000-8000-000000000001",
    "timestamp": "2017-09-26T15:52:25+00:00",
}


# --- the vendored copies ----------------------------------------------------------------------


def test_vendored_set_is_exactly_the_closure_of_the_roots() -> None:
    expected = {
        path.relative_to(VENDORED_ROOT).as_posix()
        for path in schema_closure(VENDORED_ROOT, VENDORED_ROOTS).values()
    }
    actual = {p.relative_to(VENDORED_ROOT).as_posix() for p in VENDORED_ROOT.rglob("*.schema.json")}
    assert actual == expected
    assert (VENDORED_ROOT / "LICENSE").is_file()
    readme = (VENDORED_ROOT / "README.md").read_text(encoding="utf-8")
    assert "4a4fc5f8dd175cd81f2419b85130a6fc25053890" in readme
    assert "CC BY 4.0" in readme
    assert all(root in readme for root in VENDORED_ROOTS)


def test_roots_are_the_real_ids() -> None:
    index = xc.schema_index(VENDORED_ROOT)
    expected_files = {
        EXPERIENCE_EVENT: "components/classes/experienceevent.schema.json",
        PROFILE: "components/classes/profile.schema.json",
        FG_DIRECT_MARKETING: (
            "components/fieldgroups/experience-event/experienceevent-directmarketing.schema.json"
        ),
        FG_CAMPAIGN_DELIVERY_LOG: f"{CAMPAIGN}/experienceevent-campaign-delivery-log.schema.json",
        FG_CAMPAIGN_TRACKING_LOG: f"{CAMPAIGN}/experienceevent-campaign-tracking-log.schema.json",
        FG_PROFILE_CONSENTS: "components/fieldgroups/profile/profile-consents.schema.json",
        FG_IDENTITY_MAP: "components/fieldgroups/shared/identitymap.schema.json",
        FG_PROFILE_SEGMENTATION: "components/fieldgroups/shared/segmentation.schema.json",
    }
    for schema_id, relative in expected_files.items():
        assert index[schema_id] == VENDORED_ROOT / relative


# --- renaming --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "dataset"),
    [
        ("xdm:eventType", ("eventType",)),
        ("@id", ("_id",)),
        ("@type", ("_type",)),
        (
            "https://ns.adobe.com/experience/campaign/broadlogID",
            ("_experience", "campaign", "broadlogID"),
        ),
        ("repo:createDate", ("_repo", "createDate")),
        ("schema:latitude", ("_schema", "latitude")),
        # Adobe's own Compatibility Mode examples:
        ("https://ns.adobe.com/xdm/channels/application", ("_channels", "application")),
        (
            "https://ns.adobe.com/vendorA/product/stockNumber",
            ("_vendorA", "product", "stockNumber"),
        ),
        ("tenantId:internalSku", ("_tenantId", "internalSku")),
        ("component_id", ("component_id",)),
    ],
)
def test_dataset_form_path(source: str, dataset: tuple[str, ...]) -> None:
    assert dataset_form_path(source) == dataset


def test_unmapped_uri_names_fail_loudly() -> None:
    with pytest.raises(ValueError, match="no dataset-form mapping"):
        dataset_form_path("https://ns.example.com/asset_name")


def test_composed_schema_has_dataset_form_fields(broadlog: XdmSchema) -> None:
    paths = set(broadlog.field_paths())
    assert {
        "_id",
        "timestamp",
        "eventType",
        "identityMap",
        "identityMap.*[].authenticatedState",
        "directMarketing.sends.value",
        "_experience.campaign.broadlogID",
        "_experience.campaign.trackinglogID",
        "_experience.campaign.quarantine",
    } <= paths
    assert not [p for p in paths if "xdm:" in p or "@" in p or "://" in p]


# --- Adobe's example instances ---------------------------------------------------------------

DATATYPE_AND_FIELD_GROUP_EXAMPLES = [
    "components/behaviors/time-series.example.1.json",
    "components/behaviors/record.example.1.json",
    "components/datatypes/consent/consent-preferences.example.1.json",
    "components/datatypes/data/measure.example.1.json",
    "components/datatypes/demographic/address.example.1.json",
    "components/datatypes/demographic/emailaddress.example.1.json",
    "components/datatypes/demographic/geo.example.1.json",
    "components/datatypes/demographic/geo.example.2.json",
    "components/datatypes/demographic/phonenumber.example.1.json",
    "components/datatypes/device.example.1.json",
    "components/datatypes/environment.example.1.json",
    "components/datatypes/identity.example.1.json",
    "components/datatypes/identityitem.example.1.json",
    "components/datatypes/marketing/direct-marketing.example.1.json",
    "components/datatypes/person/person-name.example.1.json",
    "components/datatypes/person/person-name.example.2.json",
    "components/datatypes/person/person-name.example.3.json",
    "components/datatypes/person/person.example.1.json",
    "components/datatypes/profilestitchidentity.example.1.json",
    "components/datatypes/segmentidentity.example.1.json",
    "components/datatypes/segmentmembership.example.1.json",
    "components/fieldgroups/profile/profile-consents.example.1.json",
    "components/fieldgroups/profile/profile-person-details.example.1.json",
    "components/fieldgroups/profile/profile-personal-details.example.1.json",
    "components/fieldgroups/profile/profile-personal-details.example.2.json",
    "components/fieldgroups/profile/profile-push-notification-details.example.1.json",
    "components/fieldgroups/profile/profile-push-notification-details.example.2.json",
]


@pytest.mark.parametrize("relative", DATATYPE_AND_FIELD_GROUP_EXAMPLES)
def test_adobe_example_validates_against_its_own_schema(relative: str) -> None:
    schema = XdmSchema.compose(schema_id_of(relative), root=VENDORED_ROOT)
    assert schema.errors(to_dataset_form(example(relative))) == []


@pytest.mark.parametrize(
    "relative",
    [
        f"{CAMPAIGN}/experienceevent-campaign-delivery-log.example.1.json",
        f"{CAMPAIGN}/experienceevent-campaign-tracking-log.example.1.json",
        "components/fieldgroups/experience-event/experienceevent-directmarketing.example.1.json",
    ],
)
def test_adobe_event_field_group_example_validates_as_experience_event(
    broadlog: XdmSchema, relative: str
) -> None:
    # The field-group examples carry only their own fields; an event needs _id and timestamp.
    record = {**EVENT_REQUIRED, **to_dataset_form(example(relative))}
    assert broadlog.errors(record) == []
    assert broadlog.is_valid(record)


def test_adobe_campaign_examples_land_under_experience_campaign(broadlog: XdmSchema) -> None:
    record = to_dataset_form(
        example(f"{CAMPAIGN}/experienceevent-campaign-delivery-log.example.1.json")
    )
    assert record["_experience"]["campaign"]["broadlogID"] == "102"
    assert record["_experience"]["campaign"]["quarantine"] is False


@pytest.mark.parametrize(
    "relative",
    [
        "components/fieldgroups/shared/identitymap.example.1.json",
        "components/fieldgroups/shared/identitymap.example.2.json",
    ],
)
def test_adobe_identity_map_examples_validate(broadlog: XdmSchema, relative: str) -> None:
    # These examples are the map itself, keyed by namespace URIs (data, not field names).
    record = {**EVENT_REQUIRED, "identityMap": to_dataset_form(example(relative), map_depth=1)}
    assert broadlog.errors(record) == []


@pytest.mark.parametrize(
    "relative",
    [
        "components/fieldgroups/profile/profile-consents.example.1.json",
        "components/fieldgroups/profile/profile-person-details.example.1.json",
        "components/fieldgroups/profile/profile-personal-details.example.1.json",
        "components/fieldgroups/profile/profile-personal-details.example.2.json",
        "components/fieldgroups/profile/profile-push-notification-details.example.1.json",
        "components/fieldgroups/profile/profile-push-notification-details.example.2.json",
    ],
)
def test_adobe_profile_examples_validate_in_the_composed_profile(
    profile: XdmSchema, relative: str
) -> None:
    assert profile.errors(to_dataset_form(example(relative))) == []


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        # The example says "sessionlength"; the data type defines "sessionLength".
        (
            "components/datatypes/application.example.2.json",
            "sessionlength: field is not defined in the schema",
        ),
        # The example says "typeId"; the device data type defines "typeID".
        (
            "components/datatypes/pushnotificationtoken.example.1.json",
            "device.typeId: field is not defined in the schema",
        ),
        # segmentmembership has no "timestamp" (it has lastQualificationTime); the map keys
        # (namespace, segment id / e-mail address) are masked.
        (
            "components/fieldgroups/shared/segmentation.example.1.json",
            "segmentMembership.*.*.timestamp: field is not defined in the schema",
        ),
    ],
)
def test_stale_upstream_examples_are_caught_by_the_unknown_field_check(
    relative: str, message: str
) -> None:
    schema = XdmSchema.compose(schema_id_of(relative), root=VENDORED_ROOT)
    assert message in schema.errors(to_dataset_form(example(relative)))


# --- broadLog records ------------------------------------------------------------------------


def test_valid_broadlog_record_passes(broadlog: XdmSchema) -> None:
    record = broadlog_record()
    assert broadlog.errors(record) == []
    assert broadlog.is_valid(record)
    report = broadlog.validate_many([record, broadlog_record()])
    assert (report.checked, report.invalid, report.valid) == (2, 0, 2)
    assert report.examples == []
    assert report.error_counts == {}


def test_custom_event_type_is_accepted_because_meta_enum_is_only_a_suggestion(
    broadlog: XdmSchema,
) -> None:
    record = broadlog_record()
    record["eventType"] = "rtcdp.customDeliveryEvent"
    assert broadlog.is_valid(record)


def mutated(change: Any) -> dict[str, Any]:
    record = broadlog_record()
    change(record)
    return record


def _set(path: str, value: Any) -> Any:
    def change(record: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        target = record
        for parent in parents:
            target = target[int(parent)] if isinstance(target, list) else target[parent]
        target[leaf] = value

    return change


def _delete(name: str) -> Any:
    return lambda record: record.pop(name)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            _set("_experience.campaign.quarantine", "yes"),
            "_experience.campaign.quarantine: expected type 'boolean', got string",
        ),
        (
            _set("directMarketing.sends.value", "1"),
            "directMarketing.sends.value: expected type 'number', got string",
        ),
        (
            _set("identityMap.ECID", {"id": "92312748749128"}),
            "identityMap.*: expected type 'array', got object",
        ),
        (_set("eventType", 7), "eventType: expected type 'string', got integer"),
        (_set("unknownTopLevel", "x"), "unknownTopLevel: field is not defined in the schema"),
        (
            _set("_experience.campaign.broadlogId", "102"),
            "_experience.campaign.broadlogId: field is not defined in the schema",
        ),
        (
            _set("_experience.analytics", {"x": 1}),
            "_experience.analytics: field is not defined in the schema",
        ),
        (
            _set("directMarketing.sends.count", 1),
            "directMarketing.sends.count: field is not defined in the schema",
        ),
        (
            _set("identityMap.ECID.0.authenticated", True),
            "identityMap.*[0].authenticated: field is not defined in the schema",
        ),
        (_delete("_id"), "_id: required field is missing"),
        (_delete("timestamp"), "timestamp: required field is missing"),
        (
            _set("directMarketing.sends", {}),
            "directMarketing.sends.value: required field is missing",
        ),
        (
            _set("identityMap.ECID.0.authenticatedState", "AUTHENTICATED"),
            "identityMap.*[0].authenticatedState: value is not one of "
            "['ambiguous', 'authenticated', 'loggedOut']",
        ),
        (_set("timestamp", "2024-05-02 09:15:27"), "timestamp: does not match format 'date-time'"),
        (_set("timestamp", "2024-05-02T09:15:27"), "timestamp: does not match format 'date-time'"),
        (_set("timestamp", "2024-02-30T09:15:27Z"), "timestamp: does not match format 'date-time'"),
        (_set("timestamp", "2024-05-02"), "timestamp: does not match format 'date-time'"),
        (_set("timestamp", "1714641327"), "timestamp: does not match format 'date-time'"),
        (_set("_id", "not a uri reference"), "_id: does not match format 'uri-reference'"),
        # The source form is not the dataset form: namespaced names are unknown fields.
        (_set("xdm:eventType", "x"), "xdm:eventType: field is not defined in the schema"),
    ],
)
def test_broadlog_defects_are_rejected_with_their_path(
    broadlog: XdmSchema, change: Any, expected: str
) -> None:
    record = mutated(change)
    errors = broadlog.errors(record)
    assert expected in errors, errors
    assert not broadlog.is_valid(record)
    report = broadlog.validate_many([broadlog_record(), record])
    assert (report.checked, report.invalid) == (2, 1)
    assert (1, expected) in report.examples


def test_non_object_record_is_rejected(broadlog: XdmSchema) -> None:
    assert broadlog.errors([]) == ["<record>: expected type 'object', got array"]  # type: ignore[arg-type]


def test_include_values_shows_jsonschema_wording(broadlog: XdmSchema) -> None:
    record = mutated(_set("_experience.campaign.quarantine", "yes"))
    assert broadlog.errors(record, include_values=True) == [
        "_experience.campaign.quarantine: 'yes' is not of type 'boolean'"
    ]


# --- privacy ---------------------------------------------------------------------------------

FAKE_EMAIL = "jane.doe.4711@example.invalid"


def test_messages_never_contain_record_values(profile: XdmSchema) -> None:
    record = {
        "personalEmail": {"address": FAKE_EMAIL.replace("@", "(at)"), "primary": FAKE_EMAIL},
        "mobilePhone": {"number": [FAKE_EMAIL]},
        "identityMap": {"Email": [{"id": FAKE_EMAIL, "authenticatedState": FAKE_EMAIL}]},
        "segmentMembership": {"Email": {FAKE_EMAIL: {"status": FAKE_EMAIL, "timestamp": 1}}},
        "person": {"name": {"firstName": {"value": FAKE_EMAIL}}},
    }
    # The test would be meaningless if the values did not reach the messages' raw material.
    raw = " ".join(profile.errors(record, include_values=True))
    assert FAKE_EMAIL in raw

    errors = profile.errors(record)
    assert "personalEmail.address: does not match format 'email'" in errors
    assert "personalEmail.primary: expected type 'boolean', got string" in errors
    assert "segmentMembership.*.*.timestamp: field is not defined in the schema" in errors
    assert "person.name.firstName: expected type 'string', got object" in errors
    report = profile.validate_many([record])
    published = json.dumps(
        {"examples": report.examples, "counts": report.error_counts, "errors": errors}
    )
    for fragment in (FAKE_EMAIL, "jane.doe", "example.invalid", "4711"):
        assert fragment not in published


def test_error_counts_group_by_kind_without_indices(broadlog: XdmSchema) -> None:
    records = []
    for position in range(3):
        record = broadlog_record()
        record["identityMap"]["ECID"].append({"id": str(position), "authenticatedState": "bad"})
        record["_experience"]["campaign"]["quarantine"] = "no"
        records.append(record)
    report = broadlog.validate_many(records, max_examples=4)
    assert (report.checked, report.invalid) == (3, 3)
    assert len(report.examples) == 4
    assert report.error_counts == {
        "_experience.campaign.quarantine: expected type 'boolean', got string": 3,
        "identityMap.*[].authenticatedState: value is not one of "
        "['ambiguous', 'authenticated', 'loggedOut']": 3,
    }


# --- composition, roots, caching -------------------------------------------------------------


def test_compose_is_cached() -> None:
    first = XdmSchema.compose(EXPERIENCE_EVENT, BROADLOG_GROUPS, root=VENDORED_ROOT)
    again = XdmSchema.compose(EXPERIENCE_EVENT, tuple(BROADLOG_GROUPS), root=str(VENDORED_ROOT))
    assert first is again


def test_field_group_must_extend_the_class() -> None:
    with pytest.raises(ValueError, match="does not extend"):
        XdmSchema.compose(PROFILE, [FG_CAMPAIGN_DELIVERY_LOG], root=VENDORED_ROOT)


def test_env_var_points_at_the_full_tree(
    monkeypatch: pytest.MonkeyPatch, fuller_tree: Path
) -> None:
    work_details = "https://ns.adobe.com/xdm/context/profile-work-details"
    with pytest.raises(KeyError, match="VENDORED_ROOTS"):
        XdmSchema.compose(PROFILE, [work_details], root=VENDORED_ROOT)
    monkeypatch.setenv(xc.ROOT_ENV_VAR, str(fuller_tree))
    schema = XdmSchema.compose(PROFILE, [work_details])
    assert schema.root == fuller_tree
    assert schema.is_valid({"workEmail": {"address": "someone@example.com"}})
    assert not schema.is_valid({"workEmail": {"adress": "someone@example.com"}})


def test_default_root_is_the_vendored_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(xc.ROOT_ENV_VAR, raising=False)
    assert XdmSchema.compose(EXPERIENCE_EVENT).root == VENDORED_ROOT


def test_same_verdicts_as_the_full_tree(broadlog: XdmSchema, fuller_tree: Path) -> None:
    full = XdmSchema.compose(EXPERIENCE_EVENT, BROADLOG_GROUPS, root=fuller_tree)
    records = [broadlog_record(), mutated(_set("_experience.campaign.seedMember", "1"))]
    assert [full.errors(r) for r in records] == [broadlog.errors(r) for r in records]


def test_compiled_schema_agrees_with_plain_jsonschema_on_the_composed_refs(
    broadlog: XdmSchema, profile: XdmSchema
) -> None:
    # The validator runs an inlined, allOf-folded copy for speed; it must not change a verdict.
    samples: list[tuple[XdmSchema, dict[str, Any]]] = [(broadlog, broadlog_record())]
    for change in (
        _set("_experience.campaign.quarantine", "yes"),
        _set("identityMap.ECID.0.authenticatedState", "nope"),
        _set("directMarketing.sends", {"id": 3}),
        _delete("_id"),
        _set("timestamp", "yesterday"),
        _set("producedBy", None),
    ):
        samples.append((broadlog, mutated(change)))
    consents = to_dataset_form(
        example("components/fieldgroups/profile/profile-consents.example.1.json")
    )
    samples.append((profile, consents))
    broken = copy.deepcopy(consents)
    broken["consents"]["marketing"]["email"]["val"] = "maybe"
    broken["consents"]["idSpecific"]["ECID"]["x"] = {"share": {"val": 3}}
    samples.append((profile, broken))
    samples.append((profile, {"mobilePhone": {"number": 5}, "pushNotificationDetails": [{}]}))

    for schema, record in samples:
        plain = Draft6Validator(
            schema.schema, registry=schema.registry, format_checker=formats.FORMAT_CHECKER
        )
        expected = sorted((list(e.absolute_path), e.validator) for e in plain.iter_errors(record))
        compiled = Draft6Validator(
            schema.compiled_schema, registry=schema.registry, format_checker=formats.FORMAT_CHECKER
        )
        actual = sorted((list(e.absolute_path), e.validator) for e in compiled.iter_errors(record))
        assert actual == expected, record
    assert sum(1 for schema, record in samples if not schema.is_valid(record)) == 8


# --- formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2017-09-26T15:52:25+00:00", True),
        ("2017-09-26T15:52:25.123456789Z", True),
        ("2017-09-26t15:52:25z", True),
        ("2016-12-31T23:59:60Z", True),
        ("2017-09-26T15:52:25", False),
        ("2017-09-26T25:52:25Z", False),
        ("2017-09-26T15:52Z", False),
        ("2017-9-26T15:52:25Z", False),
        ("2017-09-26T15:52:25+0000", False),
    ],
)
def test_date_time_format(value: str, ok: bool) -> None:
    assert formats._is_date_time(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("a3c1f0b2-5d7e-4f41-9a61-0d7c3e2b9f10", True),
        ("https://data.adobe.io/entities/identity/92312748749128", True),
        ("urn:uuid:0d6a4c1e", True),
        ("../relative/path?q=1#frag", True),
        ("%41bc", True),
        ("has space", False),
        ("bad%zz", False),
        ("1abc:def", False),
        ("a#b#c", False),
    ],
)
def test_uri_reference_format(value: str, ok: bool) -> None:
    assert formats._is_uri_reference(value) is ok


def test_all_of_folding_keeps_branches_that_could_interact() -> None:
    closed = {"properties": {"a": {"type": "string"}}, "additionalProperties": False}
    other = {"properties": {"b": {"type": "string"}}, "required": ["b"]}
    # additionalProperties:false of one branch must not see the other branch's "b".
    assert compilation.merge_all_of({"allOf": [closed, other]}) == {**closed, "allOf": [other]}
    both = {"allOf": [{"properties": {"a": {"type": "string"}}, "required": ["a"]}, other]}
    assert compilation.merge_all_of(both) == {
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "required": ["a", "b"],
    }
    clash = {
        "allOf": [
            {"properties": {"a": {"type": "string"}}},
            {"properties": {"a": {"maxLength": 3}}},
        ]
    }
    assert compilation.merge_all_of(clash) == {
        "properties": {"a": {"type": "string", "maxLength": 3}}
    }
    assert compilation.merge_all_of({"allOf": [{"type": "string"}, {"type": "number"}]}) == {
        "type": "string",
        "allOf": [{"type": "number"}],
    }


# --- fast path of validate_many: same report as plain jsonschema ------------------------------
# Records come from the real pipeline (generated export -> ingest -> the flow's XDM mapping ->
# to_records), so the shapes are the ones production sees; mutated copies add every kind of
# defect at random positions. The fast report must equal the plain one field for field, with
# room for every message as an example, so each message of each record is compared.

FAST_PATH_WINDOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
FAST_PATH_NOW = datetime(2026, 11, 23, 19, 46, 47, tzinfo=UTC)
FAST_PATH_FLOWS = {
    "broadlog": broadlog_module.broadlog_flow,
    "tracking_log": tracking_log.tracking_log_flow,
    "non_deliverables": non_deliverables.non_deliverables_flow,
    "preferences": preferences.preferences_flow,
    "profiles": profiles.profiles_flow,
}
# Replacement values of every JSON type (both float kinds, NaN included) and a non-JSON one.
ODD_VALUES: list[Any] = [
    "x", "", "not a uri reference", "2024-02-30T09:15:27Z", 7, -1, 0, 1.0, 1.5, float("nan"),
    True, False, None, [], [1], ["a", "a"], {}, {"a": 1}, datetime(2024, 1, 1),
]  # fmt: skip
BAD_TEXT = [
    "2024-05-02 09:15:27", "2024-02-30T09:15:27Z", "France", "fr", "F", "AUTHENTICATED",
    "maybe", "has space", "x" * 300, "1234", "",
]  # fmt: skip


def pipeline_records(dataset: str, rows: int, seed: int) -> list[dict[str, Any]]:
    flow = FAST_PATH_FLOWS[dataset]
    settings = PipelineSettings()
    generated = sample_data.generate_dataset(
        dataset, FAST_PATH_WINDOW, rows, seed=seed, now=FAST_PATH_NOW
    )
    records: list[dict[str, Any]] = []
    for part in ingest_file(
        io.BytesIO(generated.content),
        source_file=generated.name,
        fmt=flow.fmt,
        allowed_overrides=flow.allowed_codes(settings),
    ):
        if part.good.num_rows:
            records.extend(xdm.to_records(flow.to_xdm(part.good, settings)))
    return records


def positions(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path inside a record (objects' keys and arrays' indices)."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, sub in value.items():
            found.extend(positions(sub, (*path, key)))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            found.extend(positions(sub, (*path, index)))
    return found


def mutate(record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A copy with one to three defects, each at a random position."""
    record = copy.deepcopy(record)
    for _ in range(rng.randint(1, 3)):
        paths = positions(record)
        if not paths:
            record["unknownTopLevel"] = 1
            continue
        *parents, last = rng.choice(paths)
        target: Any = record
        for part in parents:
            target = target[part]
        kind = rng.randrange(6)
        if kind == 0:  # wrong type (or a non-JSON value) at a random position
            target[last] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif kind == 1 and isinstance(target, dict):  # missing field, required or not
            del target[last]
        elif kind == 2 and isinstance(target, dict):  # unknown field beside a real one
            target[f"{last}X"] = copy.deepcopy(rng.choice(ODD_VALUES[:8]))
        elif kind == 3 and isinstance(target[last], str):  # bad enum/format/pattern value
            target[last] = rng.choice(BAD_TEXT)
        elif kind == 4 and isinstance(target[last], dict):  # unknown field inside an object
            target[last]["unknownField"] = "x"
        else:
            target[last] = rng.choice(BAD_TEXT)
    return record


# (dotted path, bad value, whether to add the field when its parent object exists)
TARGETED_DEFECTS: list[tuple[str, Any, bool]] = [
    ("timestamp", "2024-02-30T09:15:27Z", False),
    ("timestamp", "yesterday", False),
    ("_id", "not a uri reference", False),
    ("homeAddress.countryCode", "France", False),
    ("mobilePhone.countryCode", "0033", True),
    ("person.gender", "m", False),
    ("consents.marketing.email.val", "maybe", False),
    ("personalEmail.address", "no-at-sign", False),
    ("person.birthDate", "1960-02-30", False),
    ("person.birthYear", 0, True),  # numeric bounds
    ("person.birthYear", 40000, True),
    ("person.birthYear", False, True),
    ("homeAddress._schema", {"latitude": 91.5, "longitude": -180}, True),
]


def targeted_defects(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The defects the brief names, wherever the dataset has the field (or its parent)."""
    out: list[dict[str, Any]] = []
    for record in records[:50]:
        for dotted, value, add in TARGETED_DEFECTS:
            *parents, leaf = dotted.split(".")
            changed = copy.deepcopy(record)
            target: Any = changed
            if all(isinstance(target := target.get(p), dict) for p in parents) and (
                add or leaf in target
            ):
                target[leaf] = value
                out.append(changed)
        if record.get("identityMap"):
            changed = copy.deepcopy(record)
            for identities in changed["identityMap"].values():
                identities[0]["authenticatedState"] = "AUTHENTICATED"
            out.append(changed)
        for required in ("_id", "timestamp"):
            if required in record:
                out.append({k: v for k, v in record.items() if k != required})
    return out


@pytest.mark.parametrize("dataset", sorted(FAST_PATH_FLOWS))
def test_fast_validate_many_equals_plain_jsonschema(dataset: str) -> None:
    flow = FAST_PATH_FLOWS[dataset]
    schema = flow.xdm_schema()
    assert schema._shape_split_ok  # else the comparison below would compare the plain path
    records = pipeline_records(dataset, 3000, seed=11)
    assert len(records) > 2500
    rng = random.Random(f"{dataset}-mutations")
    mutated_records = [mutate(record, rng) for record in rng.sample(records, 2500)]
    batch: list[Any] = [
        *records,
        *mutated_records,
        *targeted_defects(records),
        [],  # not an object
        {"identityMap": {"ECID": ({"id": "1"},)}},  # a tuple is not a JSON array
    ]
    rng.shuffle(batch)

    # The fast path really serves the pipeline's records (no silent fallback).
    check = shape_check.ShapeCheck(schema)
    assert all(check.messages(record) == [] for record in records[:200])

    plain = schema.validate_many(batch, max_examples=10**9, fast=False)
    fast = schema.validate_many(batch, max_examples=10**9)
    assert fast == plain
    assert list(fast.error_counts.items()) == list(plain.error_counts.items())  # order too
    assert plain.invalid > 2000 and len(plain.error_counts) > 20
    # The default example budget cuts the same messages.
    assert schema.validate_many(batch) == schema.validate_many(batch, fast=False)
    # Record by record too: the fast messages are errors()'s, not just the same report.
    for record in batch[:1500]:
        messages = check.messages(record)
        assert messages is None or messages == schema.errors(record), record


def test_fast_path_routes_non_json_values_to_the_plain_path(broadlog: XdmSchema) -> None:
    check = shape_check.ShapeCheck(broadlog)
    assert check.messages(broadlog_record()) == []
    for odd in (datetime(2024, 5, 2), ("a",), {1: "x"}):
        record = mutated(_set("timestamp", odd))
        assert check.messages(record) is None
        report = broadlog.validate_many([record])
        assert report == broadlog.validate_many([record], fast=False)
        assert report.invalid == 1


def test_fast_path_distinguishes_values_equal_across_types(profile: XdmSchema) -> None:
    # 0 == 0.0 == False as dict keys, but minimum skips booleans (a type error instead): the
    # value memo must not hand False's verdict to 0.
    records = [{"person": {"birthYear": value}} for value in (False, 0, 0.0, True, 1, 1.0, 1.5)]
    fast = profile.validate_many(records, max_examples=100)
    assert fast == profile.validate_many(records, max_examples=100, fast=False)
    assert fast.error_counts == {
        "person.birthYear: expected type 'integer', got boolean": 2,
        "person.birthYear: is less than the minimum of 1": 2,
        "person.birthYear: expected type 'integer', got number": 1,
    }


def test_opaque_keywords_are_detected() -> None:
    assert shape_check.has_key({"properties": {"a": {"anyOf": [{}]}}}, shape_check.OPAQUE_KEYWORDS)
    assert shape_check.has_key([{"items": {"not": {}}}], shape_check.OPAQUE_KEYWORDS)
    assert not shape_check.has_key(
        {"properties": {"a": {"enum": [1]}}}, shape_check.OPAQUE_KEYWORDS
    )
