"""Mobile push on the embedded default: Campaign's app subscriptions through the real Dagster
flow with XDM validation, token-format quarantine with exact counts, Campaign's push quarantine
published as denylisted (and the blocking check failing when it is not), and the AEP dataset
export of the Mobile SDK route with the duplicate-registration warning."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetCheckSeverity, materialize

from asset_checks.campaign_to_aep.dataset_checks import campaign_export_checks
from asset_checks.campaign_to_aep.push_subscription_checks import (
    quarantine_result,
    token_format_result,
)
from asset_checks.mobile_push.aep_push_token_checks import (
    aep_push_tokens_checks,
    duplicate_registration_check,
)
from resources import PipelineSettings
from rtcdp_assets.campaign_to_aep.non_deliverables import (
    non_deliverables_defs,
    non_deliverables_flow,
    quarantined_tokens,
)
from rtcdp_assets.campaign_to_aep.push_subscriptions import (
    map_subscriptions,
    push_subscriptions_defs,
    push_subscriptions_flow,
)
from rtcdp_assets.mobile_push import aep_push_tokens as aep
from rtcdp_assets.mobile_push.push_token_columns import arrow_table
from rtcdp_assets.shared.xdm_conformance import XdmSchema
from rtcdp_dev import sample_data as sd
from tests.drop_files import drop_flow_export, flow_csv
from tests.results import check_evaluations_by_name, materialization, read_published
from tests.runs import campaign_assets_and_checks, evaluate_sensor, materialize_partition

PK = "2026-11-23-08:00"
STAMP = "20261123_0800"
WINDOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 19, tzinfo=UTC)
FLOW = push_subscriptions_flow

APNS = "9f" * 32
APNS_UPPER = "AB12" * 16
FCM = "cT9xq2B7RmKf3LwZp0Yv1a:APA91b" + "Qz8_kX-2" * 17


def drop(root, flow, content: str | bytes, stamp=STAMP) -> None:
    drop_flow_export(root, flow, content, stamp, age_seconds=600)


def subscription(n: int, platform: str, token: str, **extra: str) -> dict[str, str]:
    return {
        "subscription_id": str(n),
        "subscriber_key": f"CUST-{n}",
        "recipient_id": str(1000 + n),
        "app_id": "com.example.shop",
        "platform": platform,
        "token": token,
        "registration_date": "2026-01-01 10:00:00",
        "last_modified": f"2026-11-23 08:{n:02d}:00",
        "opted_in": "1",
        "org_unit": "default",
        **extra,
    }


def run(defs, resources, instance, pk=PK):
    return materialize_partition(campaign_assets_and_checks(defs), resources, pk, instance)


def run_aep(resources, instance, pk=PK):
    return materialize(
        [aep.aep_push_tokens, aep_push_tokens_checks, duplicate_registration_check],
        partition_key=pk,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def published(root, resources, pk=PK):
    return read_published(root / "aep_landing", FLOW.landing_paths(resources["settings"], pk)[0])


@pytest.mark.parametrize("layout", ["classic", "standard"])
def test_realistic_push_export_end_to_end(embedded_env_with_instance, layout):
    root, resources, instance = embedded_env_with_instance
    generated = sd.generate_push_subscriptions(
        WINDOW, 1500, seed=5, layout=layout, defect_rate=0.03, now=NOW
    )
    assert generated.expected_rejects["invalid_push_token"] > 0
    assert generated.expected_rejects["unknown_code:platform"] > 0
    drop(root, FLOW, generated.content)
    # the sensor finds the file and asks for its window
    sensor = push_subscriptions_defs.sensor
    (request,) = evaluate_sensor(sensor, resources, instance).run_requests
    assert request.partition_key == PK

    result = run(push_subscriptions_defs, resources, instance)
    assert result.success
    evaluations = check_evaluations_by_name(result)
    # The sample's 3 % of defective rows is above reject_rate's 1 %: a warning, published.
    assert {k for k, v in evaluations.items() if not v.passed} == {"reject_rate"}
    assert evaluations["reject_rate"].severity == AssetCheckSeverity.WARN
    top_reasons = evaluations["reject_rate"].metadata["top_reasons"].value
    assert top_reasons == generated.expected_rejects  # fewer than 10 reasons: all of them
    assert {"reconciliation", "push_token_format", "push_quarantine_respected"} <= set(evaluations)
    fmt = evaluations["push_token_format"].metadata
    assert (
        fmt["rows_quarantined_invalid_push_token"].value
        == generated.expected_rejects["invalid_push_token"]
    )
    assert fmt["invalid_tokens_in_typed_rows"].value == 0

    records = published(root, resources)
    assert len(records) == generated.expected_valid
    schema = XdmSchema.compose(FLOW.xdm_class, list(FLOW.xdm_field_groups))
    assert [schema.errors(r) for r in records] == [[] for _ in records]
    items = [r["pushNotificationDetails"][0] for r in records]
    assert {i["platform"] for i in items} == {"apns", "fcm"}
    assert not any(i["denylisted"] for i in items)
    for record, item in zip(records, items, strict=True):
        namespace = "APNS" if item["platform"] == "apns" else "FCM"
        assert record["identityMap"][namespace][0]["id"] == item["token"]
        assert record["identityMap"]["external_id"][0]["primary"] is True
        assert item["identity"]["xid"] == record["identityMap"]["external_id"][0]["id"]

    # every defective row is in the quarantine with its reason, line and raw values
    rejects = pq.read_table(root / "warehouse" / "push_subscriptions" / PK / "rejects.parquet")
    assert dict(
        zip(*[rejects.column(c).to_pylist() for c in ("line_number", "reason")], strict=True)
    ) == (generated.reject_lines)
    token_column = "sRegistrationToken" if layout == "classic" else "registrationToken"
    bad_tokens = [r for r in rejects.to_pylist() if r["reason"] == "invalid_push_token"]
    assert all(r["column"] == token_column and token_column in r["raw"] for r in bad_tokens)
    mat = materialization(result, "push_subscriptions")
    assert mat.metadata["rows_in"].value == 1500
    assert_metadata_without_tokens(result, [(i["appID"], i["token"], "") for i in items])
    assert mat.metadata["rows_rejected"].value == 1500 - generated.expected_valid


def test_token_format_rejects_with_exact_counts(embedded_env_with_instance):
    root, resources, instance = embedded_env_with_instance
    rows = [
        subscription(1, "iOS", APNS),
        subscription(2, "iOS", APNS_UPPER),  # hex case means nothing: accepted, lower-cased
        subscription(3, "Android", FCM),
        subscription(4, "iOS", APNS[:63]),  # one character short
        subscription(5, "Android", "APA91b-short"),  # truncated FCM token
        subscription(6, "iOS", FCM),  # an FCM token on an iOS subscription
        subscription(7, "iOS", f"<{APNS[:8]} {APNS[8:16]}>"),
        subscription(8, "Windows", APNS),  # a platform the pipeline does not know
    ]
    # 5 rows of 8 rejected on purpose: reject_rate must not block what is under test here.
    settings = resources["settings"].model_dump()
    resources["settings"] = PipelineSettings(**{**settings, "reject_rate_block_above": 1.0})
    drop(root, FLOW, flow_csv(FLOW, rows))
    result = run(push_subscriptions_defs, resources, instance)
    assert result.success
    manifest = json.loads(
        (root / "warehouse" / "push_subscriptions" / PK / "manifest.json").read_text()
    )
    assert manifest["rows_in"] == 8 and manifest["rows_out"] == 3
    assert manifest["reasons"] == {"invalid_push_token": 4, "unknown_code:platform": 1}
    rejects = pq.read_table(root / "warehouse" / "push_subscriptions" / PK / "rejects.parquet")
    assert rejects.column("line_number").to_pylist() == [5, 6, 7, 8, 9]
    assert json.loads(rejects.column("raw")[0].as_py())["sRegistrationToken"] == APNS[:63]
    records = published(root, resources)
    assert [r["pushNotificationDetails"][0]["token"] for r in records] == [
        APNS,
        APNS_UPPER.lower(),
        FCM,
    ]
    assert check_evaluations_by_name(result)["push_token_format"].passed

    # The check itself fails when a malformed token reaches the typed rows.
    warehouse, settings = resources["warehouse"], resources["settings"]
    typed = warehouse.read_table("push_subscriptions", PK)
    broken = typed.set_column(
        typed.schema.get_field_index("token"), "token", [["too-short", APNS, FCM]]
    )
    pq.write_table(broken, root / "warehouse" / "push_subscriptions" / PK / "data.parquet")
    failing = token_format_result("push_subscriptions", warehouse, settings, PK)
    assert not failing.passed and failing.severity == AssetCheckSeverity.ERROR
    assert failing.metadata["invalid_tokens_in_typed_rows"].value == 1


QUARANTINE = [
    {  # Campaign quarantined the iOS token (upper case in nms:address)
        "address_id": "71",
        "address": APNS_UPPER,
        "channel": "41",
        "status": "3",
        "failure_reason": "1",
        "last_modified": "2026-11-23 08:00:00",
    },
    {  # the Android token was released (valid again): it stays active
        "address_id": "72",
        "address": FCM,
        "channel": "42",
        "status": "2",
        "last_modified": "2026-11-23 08:01:00",
    },
]


def test_quarantined_token_is_never_published_active(embedded_env_with_instance):
    root, resources, instance = embedded_env_with_instance
    drop(root, non_deliverables_flow, flow_csv(non_deliverables_flow, QUARANTINE))
    nd = run(non_deliverables_defs, resources, instance)
    assert nd.success and all(e.passed for e in nd.get_asset_check_evaluations())
    # the quarantine list itself carries the device tokens as push details
    nd_path = non_deliverables_flow.landing_paths(resources["settings"], PK)[0]
    nd_records = read_published(root / "aep_landing", nd_path)
    assert nd_records[0]["pushNotificationDetails"] == [
        {"denylisted": True, "platform": "apns", "token": APNS_UPPER.lower()}
    ]
    assert nd_records[0]["identityMap"]["APNS"][0]["id"] == APNS_UPPER.lower()
    assert nd_records[1]["pushNotificationDetails"][0]["denylisted"] is False

    rows = [
        subscription(1, "iOS", APNS),
        subscription(2, "iOS", APNS_UPPER),
        subscription(3, "Android", FCM),
    ]
    drop(root, FLOW, flow_csv(FLOW, rows, layout_index=1))
    result = run(push_subscriptions_defs, resources, instance)
    assert result.success
    denylisted = {
        r["pushNotificationDetails"][0]["token"]: r["pushNotificationDetails"][0]["denylisted"]
        for r in published(root, resources)
    }
    assert denylisted == {APNS: False, APNS_UPPER.lower(): True, FCM: False}
    check = check_evaluations_by_name(result)["push_quarantine_respected"]
    assert check.passed
    assert check.metadata["quarantined_tokens_in_partition"].value == 1

    # Had the token been published active, the blocking check fails.
    warehouse, settings = resources["warehouse"], resources["settings"]
    quarantined = quarantined_tokens(instance, warehouse, settings, PK)
    assert quarantined == {APNS_UPPER.lower()}
    typed = warehouse.read_table("push_subscriptions", PK)
    unguarded = map_subscriptions(typed.to_batches()[0], settings)  # no quarantine applied
    pq.write_table(
        pa.Table.from_batches([unguarded]),
        root / "warehouse" / "push_subscriptions_xdm" / PK / "data.parquet",
    )
    failing = quarantine_result("push_subscriptions_xdm", warehouse, PK, quarantined)
    assert not failing.passed
    assert failing.metadata["quarantined_tokens_published_active"].value == 1
    spec = next(
        s
        for c in campaign_export_checks(push_subscriptions_defs.flow)
        for s in c.check_specs
        if s.name == "push_quarantine_respected"
    )
    assert spec.blocking

    # A token quarantined only in a later window does not change this window's re-run.
    assert quarantined_tokens(instance, warehouse, settings, "2026-11-23-04:00") == set()


def write_aep(root, export) -> None:
    for path in export.write(root / "aep_dataset_export"):
        os.utime(path, (time.time() - 600,) * 2)


def test_duplicate_registration_warns_then_passes_when_disjoint(embedded_env_with_instance):
    root, resources, instance = embedded_env_with_instance
    generated = sd.generate_push_subscriptions(WINDOW, 600, seed=9, defect_rate=0.02, now=NOW)
    drop(root, FLOW, generated.content)
    assert run(push_subscriptions_defs, resources, instance).success
    typed = resources["warehouse"].read_table("push_subscriptions", PK)
    platforms = {"iOS": "apns", "Android": "fcm"}
    campaign = [
        (a, t.lower() if platforms[p] == "apns" else t, platforms[p])
        for a, t, p in zip(
            *[typed.column(c).to_pylist() for c in ("app_id", "token", "platform")], strict=True
        )
    ]

    export = sd.aep_push_token_export(
        campaign,
        seed=9,
        export_time=datetime(2026, 11, 23, 9, 15, tzinfo=UTC),
        overlap=7,
        aep_only=40,
        defects=5,
        parts=2,
    )
    assert export.partition == PK
    write_aep(root, export)
    first = evaluate_sensor(aep.aep_push_tokens_sensor, resources, instance)
    (request,) = first.run_requests
    assert request.partition_key == PK
    again = evaluate_sensor(aep.aep_push_tokens_sensor, resources, instance, first.cursor)
    assert not again.run_requests  # the same export never runs twice

    result = run_aep(resources, instance)
    assert result.success
    evaluations = check_evaluations_by_name(result)
    assert evaluations["reconciliation"].passed
    duplicate = evaluations["duplicate_registration"]
    assert not duplicate.passed and duplicate.severity == AssetCheckSeverity.WARN
    assert duplicate.metadata["tokens_registered_through_both_routes"].value == 7
    assert duplicate.metadata["apps_concerned"].value == export.overlap_by_app
    assert duplicate.metadata["aep_tokens"].value == 47
    manifest = json.loads(
        (root / "warehouse" / "aep_push_tokens" / PK / "manifest.json").read_text()
    )
    assert manifest["rows_in"] == export.records == 52
    assert manifest["rows_out"] == export.expected_rows_out == 47
    assert manifest["reasons"] == export.expected_rejects
    assert sum(export.expected_rejects.values()) == 5
    assert_metadata_without_tokens(result, campaign)

    # Another window whose export shares no token with Campaign: the check passes (Parquet).
    disjoint = sd.aep_push_token_export(
        campaign,
        seed=9,
        export_time=datetime(2026, 11, 23, 13, 0, tzinfo=UTC),
        overlap=0,
        aep_only=30,
        defects=2,
        fmt="parquet",
    )
    write_aep(root, disjoint)
    pk2 = "2026-11-23-12:00"
    second = evaluate_sensor(aep.aep_push_tokens_sensor, resources, instance, first.cursor)
    assert [r.partition_key for r in second.run_requests] == [pk2]
    result = run_aep(resources, instance, pk=pk2)
    assert result.success
    evaluations = check_evaluations_by_name(result)
    assert evaluations["duplicate_registration"].passed
    assert evaluations["duplicate_registration"].metadata["campaign_tokens"].value == len(
        set(campaign)
    )
    assert evaluations["reconciliation"].passed
    manifest = json.loads(
        (root / "warehouse" / "aep_push_tokens" / pk2 / "manifest.json").read_text()
    )
    assert manifest["rows_out"] == 30 and manifest["reasons"] == disjoint.expected_rejects


def assert_metadata_without_tokens(result, campaign) -> None:
    """Device tokens identify devices: the UI shows them masked, never whole."""
    texts = [
        json.dumps({k: str(v.value) for k, v in e.metadata.items()})
        for e in result.get_asset_check_evaluations()
    ]
    texts += [
        json.dumps({k: str(v.value) for k, v in m.materialization.metadata.items()})
        for m in result.get_asset_materialization_events()
    ]
    tokens = {t for _, t, _ in campaign}
    assert not any(t in text for t in tokens for text in texts)


def test_aep_export_waits_for_unsettled_files_and_quarantines_unreadable_ones(
    embedded_env_with_instance,
):
    root, resources, instance = embedded_env_with_instance
    folder = root / "aep_dataset_export" / "aep_dataset_exports" / "ds1" / "exportTime=202611230930"
    folder.mkdir(parents=True)
    good = folder / "part-00000-a.json"
    good.write_text(
        json.dumps(
            {
                "_id": "r1",
                "pushNotificationDetails": [
                    {"appID": "com.example.shop", "token": APNS_UPPER, "platform": "apns"}
                ],
            }
        )
        + "\n"
    )
    corrupt = folder / "part-00001-a.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    (folder / "_SUCCESS").write_text("")  # not a data file: ignored
    os.utime(good, (time.time() - 600,) * 2)
    # a part still being written holds the whole window back
    assert not evaluate_sensor(aep.aep_push_tokens_sensor, resources, instance).run_requests
    os.utime(corrupt, (time.time() - 600,) * 2)
    (request,) = evaluate_sensor(aep.aep_push_tokens_sensor, resources, instance).run_requests
    assert request.partition_key == PK

    result = run_aep(resources, instance)
    assert not result.success  # the blocking reconciliation check failed
    reconciliation = check_evaluations_by_name(result)["reconciliation"]
    assert not reconciliation.passed
    assert reconciliation.metadata["files_quarantined"].value == [
        "aep_dataset_exports/ds1/exportTime=202611230930/part-00001-a.parquet: corrupt_parquet"
    ]
    typed = resources["warehouse"].read_table("aep_push_tokens", PK).to_pylist()
    assert [(r["token"], r["dataset_id"], r["_line_number"]) for r in typed] == [
        (APNS_UPPER.lower(), "ds1", 1)
    ]


def test_arrow_and_per_record_paths_agree(embedded_env_with_instance):
    """Plain JSON lines and Parquet take the Arrow path, gzip'd JSON the per-record one: the
    same records give the same typed rows and the same rejects either way."""
    root, resources, _ = embedded_env_with_instance
    export = sd.aep_push_token_export(
        [], seed=3, export_time=datetime(2026, 11, 23, 9, tzinfo=UTC), overlap=0, aep_only=40
    )
    (content,) = export.files.values()
    item = {"appID": "com.example.shop", "token": APNS, "platform": "apns"}
    extra = [
        {"_id": "x1", "identityMap": {"ECID": [{"id": "1" * 38}]}},  # no push details
        {"_id": "x2", "pushNotificationDetails": [{**item, "token": APNS[:40]}]},
        {"_id": "x3", "pushNotificationDetails": [{**item, "platform": "wns"}]},
        {"_id": "x4", "pushNotificationDetails": [{**item, "appID": " "}]},
        {"_id": "x5", "pushNotificationDetails": [item, {**item, "token": None}]},
        {"_id": "x6", "pushNotificationDetails": [{**item, "token": FCM, "platform": "fcm"}]},
    ]
    data = content + "".join(json.dumps(r) + "\n" for r in extra).encode()
    base = root / "aep_dataset_export" / "aep_dataset_exports" / "ds1"
    plain = base / "exportTime=202611230900" / "part-0.json"
    zipped = base / "exportTime=202611231300" / "part-0.json.gz"
    parquet = base / "exportTime=202611231700" / "part-0.parquet"
    plain.parent.mkdir(parents=True)
    zipped.parent.mkdir(parents=True)
    parquet.parent.mkdir(parents=True)
    plain.write_bytes(data)
    zipped.write_bytes(sd.gzip_bytes(data))
    pq.write_table(pa.Table.from_pylist([json.loads(line) for line in data.splitlines()]), parquet)
    assert arrow_table(plain, plain.name) is not None
    assert arrow_table(parquet, parquet.name) is not None
    assert arrow_table(zipped, zipped.name) is None
    outcomes = []
    for pk in (PK, "2026-11-23-12:00", "2026-11-23-16:00"):
        manifest = aep.ingest_window(
            resources["aep_dataset_export"], resources["warehouse"], resources["settings"], pk
        )
        typed = resources["warehouse"].read_table("aep_push_tokens", pk)
        rejects = resources["warehouse"].read_table("aep_push_tokens", pk, "rejects.parquet")
        outcomes.append(
            (
                manifest["reasons"],
                typed.drop_columns(["export_time", "_source_file"]).to_pylist(),
                rejects.select(["line_number", "reason", "column"]).to_pylist(),
            )
        )
    assert outcomes[0] == outcomes[1] == outcomes[2]
    reasons, typed, rejects = outcomes[0]
    assert reasons == {
        "invalid_push_token": 1,
        "missing_required_value": 2,
        "no_push_details": 1,
        "unknown_code:platform": 1,
    }
    assert len(typed) == 40 + 2  # x5's first item and x6
    assert rejects[-1] == {
        "line_number": 45,
        "reason": "missing_required_value",
        "column": "pushNotificationDetails[1].token",
    }


def test_aep_export_of_a_window_before_the_first_partition_is_left_alone(
    embedded_env_with_instance,
):
    root, resources, instance = embedded_env_with_instance
    # Before the default first window (RTCDP_PARTITIONS_START, 2026-11-01-00:00).
    folder = root / "aep_dataset_export" / "aep_dataset_exports" / "ds1" / "exportTime=202610312300"
    folder.mkdir(parents=True)
    part = folder / "part-00000-a.json"
    part.write_text(json.dumps({"_id": "r1", "pushNotificationDetails": []}) + "\n")
    os.utime(part, (time.time() - 600,) * 2)
    result = evaluate_sensor(aep.aep_push_tokens_sensor, resources, instance)
    assert not result.run_requests
    assert "window 2026-10-31-20:00 is before the first partition 2026-11-01-00:00" in (
        result.skip_reason.skip_message
    )
    assert part.exists()
