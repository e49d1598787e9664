"""Every Campaign channel in the delivery and tracking logs: the channel comes from the export's
message-type column (or the dataset setting), the address is checked for that channel, and the
XDM event, channel and identities follow it (docs/formats.md §b7).

The exports are written by hand, as Campaign's export workflows write them: Classic SQL column
names with numeric codes, Standard REST names with `deliveryType` codes or enumeration names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources import embedded_resources
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs, broadlog_flow
from rtcdp_assets.campaign_to_aep.export_flow.xdm_writer import rows_by_channel
from rtcdp_assets.campaign_to_aep.tracking_log import tracking_log_defs, tracking_log_flow
from rtcdp_assets.shared.xdm_conformance import XdmSchema
from tests.drop_files import drop_flow_export
from tests.results import check_evaluations_by_name, materialization, read_published
from tests.runs import campaign_assets_and_checks, materialize_partition

PK = "2026-11-23-08:00"
STAMP = "20261123_0800"
# Real shapes: an APNs token is 32 bytes in hex (iOS hands it over in upper or lower case);
# an FCM registration token is an instance ID, a colon and an `APA91b…` part.
APNS = "7C4F2A9E1B3D5F60718293A4B5C6D7E8F9012A3B4C5D6E7F8091A2B3C4D5E6F7"
FCM = (
    "dGhpc2lzYW5pbnN0YW5jZQ:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx2ZIhVVLRQqFGeHBo1Y8-"
    "rpgN_9vNm6_rYIqbUrFvJ3P8gQ4F5xW6eRtY7uI8oP9aS0dF1gH2jK3lZ4xC5vB6nM7qW8eR9tY0uI1oP2aS3dF"
)
CLASSIC_HEADER = (
    "iBroadLogId,iDeliveryId,iRecipientId,sExternalId,sAddress,iStatus,iFailureType,"
    "iFailureReason,tsEvent,sDeliveryLabel,iMessageType"
)
# The column order of Adobe's privacy export of broadLogRcp rows (docs/formats.md §b3).
STANDARD_HEADER = (
    "deliveryLabel,deliveryType,contactDate,id,address,status,eventDate,delivery-id,"
    "profile-id,externalId"
)


def classic_broadlog(*rows: str) -> str:
    return "\n".join([CLASSIC_HEADER, *rows]) + "\n"


def standard_broadlog(*rows: str) -> str:
    return "\n".join([STANDARD_HEADER, *rows]) + "\n"


def resources_for(root: Path, **settings: Any) -> dict[str, Any]:
    # The hand-written exports here reject up to most of their rows on purpose: what is under
    # test is each row's outcome, so the reject_rate guardrail (tested on its own) never blocks.
    return embedded_resources(root, **{"reject_rate_block_above": 1.0, **settings})


def run(root: Path, resources: dict[str, Any], flow, defs, content: str):
    drop_flow_export(root, flow, content, STAMP, age_seconds=600)
    return materialize_partition(campaign_assets_and_checks(defs), resources, PK)


def published(root: Path, flow, resources) -> list[dict[str, Any]]:
    records = read_published(root / "aep_landing", flow.landing_paths(resources["settings"], PK)[0])
    assert records is not None
    return records


def rejects(root: Path, dataset: str) -> dict[int, tuple[str, str]]:
    table = pq.read_table(root / "warehouse" / dataset / PK / "rejects.parquet")
    return {r["line_number"]: (r["reason"], r["column"]) for r in table.to_pylist()}


def assert_conforms(flow, records: list[dict[str, Any]]) -> None:
    schema = XdmSchema.compose(flow.xdm_class, list(flow.xdm_field_groups))
    assert [schema.errors(r) for r in records] == [[] for _ in records]


def by_broadlog_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["_experience"]["campaign"]["broadlogID"]: r for r in records}


def identity(record: dict[str, Any], namespace: str) -> list[tuple[str, bool]]:
    return [(i["id"], i["primary"]) for i in record["identityMap"].get(namespace, [])]


def test_the_reported_sms_row_is_published_as_an_sms_event_with_a_phone_identity(tmp_path):
    """The case of issue 18: an SMS row with `+33612345678` used to be rejected as
    invalid_email while the rest was published."""
    resources = resources_for(tmp_path)
    content = classic_broadlog(
        "1001,5,100,CUST-1,ann@example.com,1,0,0,2026-11-23 08:01:00,Welcome,0",
        "1002,6,101,CUST-2,+33612345678,1,0,0,2026-11-23 08:02:00,Flash sale SMS,1",
    )
    result = run(tmp_path, resources, broadlog_flow, broadlog_defs, content)
    assert result.success
    failed = {k for k, v in check_evaluations_by_name(result).items() if not v.passed}
    assert failed == set()
    records = by_broadlog_id(published(tmp_path, broadlog_flow, resources))
    assert set(records) == {"1001", "1002"}
    sms = records["1002"]
    assert sms["eventType"] == "message.feedback"
    assert sms["_experience"]["campaign"]["channel"] == "sms"
    assert identity(sms, "Phone") == [("+33612345678", False)]
    assert identity(sms, "external_id") == [("CUST-2", True)]
    assert "Email" not in sms["identityMap"]
    assert records["1001"]["eventType"] == "directMarketing.emailSent"
    assert_conforms(broadlog_flow, list(records.values()))
    xdm_meta = materialization(result, "broadlog_xdm").metadata
    assert xdm_meta["rows_by_channel"].value == {"email": 1, "sms": 1}


def test_every_channel_of_a_classic_export_is_published_with_its_identity(tmp_path):
    resources = resources_for(tmp_path, phone_default_country_code="33")
    content = classic_broadlog(
        "2001,5,100,CUST-1,Ann.Lee@Example.com,1,0,0,2026-11-23 08:01:00,Newsletter,0",
        "2002,6,101,CUST-2,+33 6 12 34 56 78,1,0,0,2026-11-23 08:02:00,SMS,1",
        "2003,6,102,,06 98 76 54 32,2,2,1,2026-11-23 08:03:00,SMS,1",  # national form
        "2004,6,103,CUST-4,0033145678901,1,0,0,2026-11-23 08:04:00,Call,2",
        f"2005,7,104,CUST-5,{APNS},1,0,0,2026-11-23 08:05:00,Push iOS,41",
        f"2006,7,105,CUST-6,{FCM},1,0,0,2026-11-23 08:06:00,Push Android,42",
        "2007,8,106,CUST-7,,1,0,0,2026-11-23 08:07:00,Catalogue,3",  # direct mail
    )
    result = run(tmp_path, resources, broadlog_flow, broadlog_defs, content)
    assert result.success
    typed = materialization(result, "broadlog").metadata
    assert (typed["rows_in"].value, typed["rows_rejected"].value) == (7, 0)
    records = by_broadlog_id(published(tmp_path, broadlog_flow, resources))
    assert_conforms(broadlog_flow, list(records.values()))
    channel = {k: r["_experience"]["campaign"]["channel"] for k, r in records.items()}
    assert channel == {
        "2001": "email",
        "2002": "sms",
        "2003": "sms",
        "2004": "phone",
        "2005": "push_ios",
        "2006": "push_android",
        "2007": "direct_mail",
    }
    # The typed rows hold the address as published, so duplicates match whatever the form.
    typed_rows = pq.read_table(tmp_path / "warehouse/broadlog" / PK / "data.parquet").to_pylist()
    assert {r["broadlog_id"]: r["address"] for r in typed_rows} == {
        2001: "ann.lee@example.com",
        2002: "+33612345678",
        2003: "+33698765432",
        2004: "+33145678901",
        2005: APNS.lower(),
        2006: FCM,
        2007: None,
    }
    assert identity(records["2001"], "Email") == [("ann.lee@example.com", False)]
    assert identity(records["2002"], "Phone") == [("+33612345678", False)]
    assert identity(records["2003"], "Phone") == [("+33698765432", False)]
    assert identity(records["2003"], "external_id") == [("102", True)]  # no external ID
    assert identity(records["2004"], "Phone") == [("+33145678901", False)]
    # The namespaces push_subscriptions uses; APNs tokens compared in lower case.
    assert identity(records["2005"], "APNS") == [(APNS.lower(), False)]
    assert identity(records["2006"], "FCM") == [(FCM, False)]
    assert set(records["2007"]["identityMap"]) == {"external_id"}
    events = {k: r["eventType"] for k, r in records.items()}
    assert events["2001"] == "directMarketing.emailSent"
    assert {events[k] for k in channel if k != "2001"} == {"message.feedback"}
    assert records["2003"]["directMarketing"]["bounces"] == {"value": 1.0}  # a hard SMS bounce
    xdm_meta = materialization(result, "broadlog_xdm").metadata
    assert xdm_meta["rows_by_channel"].value == {
        "direct_mail": 1,
        "email": 1,
        "phone": 1,
        "push_android": 1,
        "push_ios": 1,
        "sms": 2,
    }


def test_a_bad_address_is_rejected_with_its_channels_reason(tmp_path):
    resources = resources_for(tmp_path)  # no default country code: national numbers fail
    content = classic_broadlog(
        "3001,5,100,CUST-1,ann@example.com,1,0,0,2026-11-23 08:01:00,Newsletter,0",
        "3002,5,101,CUST-2,ann.example.com,1,0,0,2026-11-23 08:02:00,Newsletter,0",
        "3003,6,102,CUST-3,06 12 34 56 78,1,0,0,2026-11-23 08:03:00,SMS,1",
        "3004,6,103,CUST-4,+33 6 12 AB 56 78,1,0,0,2026-11-23 08:04:00,SMS,1",
        f"3005,7,104,CUST-5,{APNS[:40]},1,0,0,2026-11-23 08:05:00,Push iOS,41",
        f"3006,7,105,CUST-6,{APNS},1,0,0,2026-11-23 08:06:00,Push Android,42",  # not FCM
        "3007,7,106,CUST-7,(null),1,0,0,2026-11-23 08:07:00,Push iOS,41",
        "3008,6,107,CUST-8,,1,0,0,2026-11-23 08:08:00,SMS,1",
        "3009,9,108,CUST-9,ann@example.com,1,0,0,2026-11-23 08:09:00,WhatsApp,120",
        "3010,8,109,CUST-10,,1,0,0,2026-11-23 08:10:00,Catalogue,3",
    )
    result = run(tmp_path, resources, broadlog_flow, broadlog_defs, content)
    assert result.success
    assert rejects(tmp_path, "broadlog") == {
        3: ("invalid_email", "sAddress"),
        4: ("invalid_phone_number", "sAddress"),
        5: ("invalid_phone_number", "sAddress"),
        6: ("invalid_push_token", "sAddress"),
        7: ("invalid_push_token", "sAddress"),
        8: ("invalid_push_token", "sAddress"),
        9: ("missing_required_value", "sAddress"),
        10: ("unknown_channel", "iMessageType"),
    }
    typed = materialization(result, "broadlog").metadata
    assert typed["rows_in"].value == 10
    assert typed["dagster/row_count"].value + typed["rows_rejected"].value == 10
    assert typed["rejects_by_reason"].value == {
        "invalid_email": 1,
        "invalid_phone_number": 2,
        "invalid_push_token": 3,
        "missing_required_value": 1,
        "unknown_channel": 1,
    }
    # No personal value in what the UI shows.
    shown = json.dumps({k: str(v.value) for k, v in typed.items()})
    assert "0612345678" not in shown.replace(" ", "") and APNS[:40] not in shown
    rows = pq.read_table(tmp_path / "warehouse/broadlog" / PK / "data.parquet").to_pylist()
    assert sorted(r["broadlog_id"] for r in rows) == [3001, 3010]
    check = check_evaluations_by_name(result)["reconciliation"]
    assert check.passed


@pytest.mark.parametrize(
    ("code", "address", "namespace", "value", "channel"),
    [
        ("1", "+447700900123", "Phone", "+447700900123", "sms"),
        ("sms", "+1 (415) 555-0100", "Phone", "+14155550100", "sms"),
        ("40", APNS, "APNS", APNS.lower(), "push_ios"),
        ("pushNotification", FCM, "FCM", FCM, "push_android"),
        ("paper", "", None, None, "direct_mail"),
        ("email", "Bo@Example.org", "Email", "bo@example.org", "email"),
    ],
)
def test_standard_exports_carry_the_channel_as_delivery_type(
    tmp_path, code, address, namespace, value, channel
):
    """Campaign Standard writes `deliveryType` (its privacy export of broadLogRcp rows) as a
    code or as the enumeration name; its one push code says nothing of the platform, which
    the token's shape then tells."""
    resources = resources_for(tmp_path)
    content = standard_broadlog(
        "Send via email,0,2026-11-23 07:58:31.667Z,8003,customer@example.com,1,"
        "2026-11-23 08:01:34.726Z,8569153,8569152,CUST-1",
        f"Send,{code},2026-11-23 07:59:00.000Z,8004,{address},1,"
        "2026-11-23 08:02:00.000Z,8569154,8569155,CUST-2",
    )
    result = run(tmp_path, resources, broadlog_flow, broadlog_defs, content)
    assert result.success
    assert "campaign_standard" in materialization(result, "broadlog").metadata["source_files"].value
    records = by_broadlog_id(published(tmp_path, broadlog_flow, resources))
    assert_conforms(broadlog_flow, list(records.values()))
    record = records["8004"]
    assert record["_experience"]["campaign"]["channel"] == channel
    if namespace:
        assert identity(record, namespace) == [(value, False)]
    assert identity(record, "external_id") == [("CUST-2", True)]
    assert records["8003"]["_experience"]["campaign"]["channel"] == "email"


def test_an_export_without_a_channel_column_takes_the_dataset_setting(tmp_path):
    header = "iBroadLogId,iDeliveryId,iRecipientId,sExternalId,sAddress,iStatus,tsEvent"
    email_rows = f"{header}\n1,5,100,CUST-1,ann@example.com,1,2026-11-23 08:01:00\n"
    resources = resources_for(tmp_path / "default")
    result = run(tmp_path / "default", resources, broadlog_flow, broadlog_defs, email_rows)
    (record,) = published(tmp_path / "default", broadlog_flow, resources)
    assert record["_experience"]["campaign"]["channel"] == "email"
    assert result.success

    # An SMS-only export workflow without the column: the setting says so.
    sms_rows = f"{header}\n2,6,101,CUST-2,+33612345678,1,2026-11-23 08:02:00\n"
    root = tmp_path / "sms"
    resources = resources_for(root, broadlog_default_channel="sms")
    assert run(root, resources, broadlog_flow, broadlog_defs, sms_rows).success
    (record,) = published(root, broadlog_flow, resources)
    assert record["_experience"]["campaign"]["channel"] == "sms"
    assert identity(record, "Phone") == [("+33612345678", False)]
    # ... and an email address in it is not a phone number.
    root = tmp_path / "sms-bad"
    resources = resources_for(root, broadlog_default_channel="sms")
    assert run(root, resources, broadlog_flow, broadlog_defs, email_rows).success
    assert rejects(root, "broadlog") == {2: ("invalid_phone_number", "sAddress")}


TRACKING_CLASSIC = (
    "iTrackingLogId,iBroadLogId,iDeliveryId,iRecipientId,sExternalId,iUrlType,iUrlId,sUrl,"
    "tsLog,iMessageType\n"
    "1,11,5,100,CUST-1,2,1,,2026-11-23 08:10:00,0\n"
    "2,12,6,101,CUST-2,1,601,https://www.example.com/s?c=6,2026-11-23 08:11:00,1\n"
    "3,13,7,102,CUST-3,2,1,,2026-11-23 08:12:00,41\n"
    "4,14,7,103,CUST-4,1,701,https://www.example.com/p?c=7,2026-11-23 08:13:00,42\n"
    "5,15,9,104,CUST-5,2,1,,2026-11-23 08:14:00,77\n"
)
TRACKING_STANDARD = (
    "deliveryLabel,deliveryType,urlLabel,trackedDevice,id,logDate,url-id,urlType,delivery-id,"
    "broadLog-id,profile-id\n"
    "Send via email,0,Open,pc,5000,2026-11-23 08:10:51.650Z,1,2,8569153,8003,8569152\n"
    "Send via SMS,sms,Offer,mobile,5001,2026-11-23 08:11:00.000Z,7,1,8569154,8004,8569155\n"
    "Push,pushNotification,Open,mobile,5002,2026-11-23 08:12:00.000Z,1,2,8569156,8005,8569157\n"
)


@pytest.mark.parametrize("layout", ["classic", "standard"])
def test_tracking_events_follow_their_channel(tmp_path, layout):
    resources = resources_for(tmp_path)
    content = TRACKING_CLASSIC if layout == "classic" else TRACKING_STANDARD
    result = run(tmp_path, resources, tracking_log_flow, tracking_log_defs, content)
    assert result.success
    records = published(tmp_path, tracking_log_flow, resources)
    assert_conforms(tracking_log_flow, records)
    seen = {
        r["_experience"]["campaign"]["trackinglogID"]: (
            r["_experience"]["campaign"]["channel"],
            r["eventType"],
        )
        for r in records
    }
    if layout == "classic":
        assert seen == {
            "1": ("email", "directMarketing.emailOpened"),
            "2": ("sms", "message.tracking"),
            "3": ("push_ios", "pushTracking.applicationOpened"),
            "4": ("push_android", "pushTracking.customAction"),
        }
        assert rejects(tmp_path, "tracking_log") == {6: ("unknown_channel", "iMessageType")}
    else:
        assert seen == {
            "5000": ("email", "directMarketing.emailOpened"),
            "5001": ("sms", "message.tracking"),
            "5002": ("push", "pushTracking.applicationOpened"),
        }
    meta = materialization(result, "tracking_log_xdm").metadata
    assert sum(meta["rows_by_channel"].value.values()) == len(records)


def test_records_per_channel_are_counted_over_every_row_group(tmp_path):
    """`rows_by_channel` reads the channel column a batch at a time: the counts over several
    row groups equal those of the whole column, a null channel and a record without
    `_experience` counting as "None"."""
    channels = ["email", "sms", None, "push_ios"] * 40_000
    experience = [{"campaign": {"channel": c, "messageID": "m"}} for c in channels]
    experience[7] = None
    table = pa.table({"_id": [str(i) for i in range(len(channels))], "_experience": experience})
    path = tmp_path / "xdm.parquet"
    pq.write_table(table, path, row_group_size=50_000)
    assert pq.ParquetFile(path).metadata.num_row_groups > 1

    counts = rows_by_channel(path, table.schema)

    assert counts == {"None": 40_001, "email": 40_000, "push_ios": 39_999, "sms": 40_000}
    assert list(counts) == sorted(counts)
    assert rows_by_channel(path, table.drop_columns(["_experience"]).schema) is None
