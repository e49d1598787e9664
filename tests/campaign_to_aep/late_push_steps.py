"""Steps shared by the late-quarantine tests (embedded default and sshd/Azurite): Campaign-shaped
appSubscriptions and nonDeliverables exports, a run of the push flow, a tick of
`late_quarantine_sensor` and the run it requests, and what the landing holds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dagster import (
    AssetSelection,
    DagsterInstance,
    ExecuteInProcessResult,
    RunRequest,
    materialize,
)

from rtcdp_assets.campaign_to_aep.non_deliverables import non_deliverables_defs
from rtcdp_assets.campaign_to_aep.push_subscriptions import (
    push_subscriptions_defs,
    push_subscriptions_flow,
)
from rtcdp_assets.definitions import late_quarantine_sensor
from tests.drop_files import flow_csv
from tests.results import read_published
from tests.runs import campaign_assets_and_checks, sensor_requests

APNS_A = "9f" * 32
APNS_B = "AB12" * 16  # Campaign may export an APNs token in upper case; published lower-case
FCM_C = "cT9xq2B7RmKf3LwZp0Yv1a:APA91b" + "Qz8_kX-2" * 17
FCM_D = "dQ0yr3C8SnLg4MxAq1Zw2b:APA91b" + "Rz9_lY-3" * 17
APNS_E = "0e" * 32


def subscription(n: int, platform: str, token: str, window_hour: int) -> dict[str, str]:
    return {
        "subscription_id": str(n),
        "subscriber_key": f"CUST-{n}",
        "recipient_id": str(1000 + n),
        "app_id": "com.example.shop",
        "platform": platform,
        "token": token,
        "registration_date": "2026-01-01 10:00:00",
        "last_modified": f"2026-11-23 {window_hour:02d}:{n:02d}:00",
        "opted_in": "1",
        "org_unit": "default",
    }


def subscriptions_csv(rows: Sequence[Mapping[str, str]], layout_index: int) -> bytes:
    return flow_csv(push_subscriptions_flow, rows, layout_index).encode()


def quarantine_csv(entries: Sequence[tuple[str, str, str]], window_hour: int) -> bytes:
    """A nonDeliverables export (Classic layout) of (address, channel code, status code): every
    channel Campaign quarantines on (email 0, SMS 1, iOS 41, Android 42)."""
    rows = [
        {
            "address_id": str(500 + i),
            "address": address,
            "channel": channel,
            "status": status,
            "failure_reason": "1",
            "last_modified": f"2026-11-23 {window_hour:02d}:{10 + i:02d}:00",
        }
        for i, (address, channel, status) in enumerate(entries)
    ]
    return flow_csv(non_deliverables_defs.flow, rows).encode()


def load(defs: Any, resources: Mapping[str, Any], instance: DagsterInstance, pk: str) -> None:
    """One partition of `defs`' dataset through its assets and blocking checks."""
    result = materialize(
        campaign_assets_and_checks(defs),
        partition_key=pk,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    assert result.success and failed == [], failed


def tick(
    resources: Mapping[str, Any], instance: DagsterInstance, cursor: str | None
) -> tuple[list[RunRequest], str | None]:
    return sensor_requests(late_quarantine_sensor, resources, instance, cursor)


def run_request(
    resources: Mapping[str, Any], instance: DagsterInstance, request: RunRequest
) -> ExecuteInProcessResult:
    """The run the sensor asked for: its assets (with their checks) of its partition, its tags."""
    return materialize(
        campaign_assets_and_checks(push_subscriptions_defs),
        partition_key=request.partition_key,
        selection=AssetSelection.assets(*request.asset_selection or []),
        tags=request.tags,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def landing_states(
    read: Callable[[str], list[dict[str, Any]] | None], settings: Any, pk: str
) -> tuple[dict[str, bool], list[str]]:
    """(token -> denylisted, record _ids) of the published push partition."""
    path = push_subscriptions_flow.landing_paths(settings, pk)[0]
    records = read(path) or []
    states = {
        item["token"]: item["denylisted"]
        for record in records
        for item in record["pushNotificationDetails"]
    }
    return states, [r["_id"] for r in records]


def duplicates(ids: Sequence[str]) -> dict[str, int]:
    return {k: v for k, v in Counter(ids).items() if v > 1}


def reader(zone: Any) -> Callable[[str], list[dict[str, Any]] | None]:
    return lambda path: read_published(zone, path)
