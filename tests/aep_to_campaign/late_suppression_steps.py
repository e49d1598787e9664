"""Steps shared by the late-suppression tests of the audience side (embedded default and
sshd/Azurite): Campaign's side, an audience export through the import and the destination
files, late quarantine and opt-out exports, a tick of `late_suppression_sensor` and its runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dagster import (
    AssetSelection,
    DagsterInstance,
    ExecuteInProcessResult,
    RunRequest,
    materialize,
)

from asset_checks.aep_to_campaign.audience_checks import PARTITIONED_AUDIENCE_CHECKS
from asset_checks.aep_to_campaign.wiring import audience_defs, destination_defs
from rtcdp_assets.campaign_to_aep.non_deliverables import (
    NON_DELIVERABLES_FORMAT,
    non_deliverables_defs,
    suppression_list,
)
from rtcdp_assets.campaign_to_aep.preferences import PREFERENCES_FORMAT, preferences_defs
from rtcdp_assets.campaign_to_aep.profiles import profiles_defs
from rtcdp_assets.definitions import late_suppression_sensor
from rtcdp_dev import sample_audiences as sample
from tests.runs import sensor_requests

EVERY_AUDIENCE_ASSET = [
    *audience_defs.assets,
    *PARTITIONED_AUDIENCE_CHECKS,
    *destination_defs.assets,
    *destination_defs.asset_checks,
]


def phone(i: int) -> str:
    """Every third recipient an international number, every third a national one, the rest
    none: the SMS file holds a third of the members."""
    return {0: f"+33 6 12 34 {i:02d} 00", 1: f"06 12 34 {i:02d} 00", 2: ""}[i % 3]


def recipients(n: int = 60) -> list[dict[str, str]]:
    return [{**r, "mobile_phone": phone(i)} for i, r in enumerate(sample.campaign_recipients(n))]


def late_exports(
    stamp: str,
    quarantined_emails: Sequence[str] = (),
    denylisted_phones: Sequence[str] = (),
    opted_out: Sequence[Mapping[str, str]] = (),
) -> dict[str, bytes]:
    """nonDeliverables (email quarantine, status 3; SMS denylist, status 4) and preferences
    (email opt-out) exports of one stamp, Campaign Classic layout."""
    when = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}:00"
    entries = [(a, "0", "3") for a in quarantined_emails] + [
        (a, "1", "4") for a in denylisted_phones
    ]
    bounces = [
        {
            "address_id": str(900 + i),
            "address": address,
            "channel": channel,
            "status": status,
            "last_modified": when,
        }
        for i, (address, channel, status) in enumerate(entries)
    ]
    opt_outs = [
        {
            "recipient_id": r["recipient_id"],
            "external_id": r["external_id"],
            "email": r["email"],
            "blacklist": "0",
            "blacklist_email": "1",
            "last_modified": when,
        }
        for r in opted_out
    ]
    return {
        f"nonDeliverables_{stamp}.csv": sample.campaign_csv(NON_DELIVERABLES_FORMAT, bounces),
        f"preferences_{stamp}.csv": sample.campaign_csv(PREFERENCES_FORMAT, opt_outs),
    }


def load_campaign_partitions(
    resources: Mapping[str, Any],
    instance: DagsterInstance,
    pk: str,
    datasets: Sequence[Any] = (profiles_defs, non_deliverables_defs, preferences_defs),
) -> None:
    """The typed partitions of the files already dropped, then the suppression list (what its
    automation does after each new partition)."""
    for defs in datasets:
        assert materialize(
            [defs.assets[0]], partition_key=pk, resources=resources, instance=instance
        ).success
    assert materialize([suppression_list], resources=resources, instance=instance).success


def run_audience_export(
    resources: Mapping[str, Any], instance: DagsterInstance, request: RunRequest
) -> ExecuteInProcessResult:
    """The audience export's run, then its destination files, as the sensors ask for them."""
    return materialize(
        EVERY_AUDIENCE_ASSET,
        partition_key=request.partition_key,
        tags=request.tags,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def tick(
    resources: Mapping[str, Any], instance: DagsterInstance, cursor: str | None
) -> tuple[list[RunRequest], str | None]:
    return sensor_requests(late_suppression_sensor, resources, instance, cursor)


def run_request(
    resources: Mapping[str, Any], instance: DagsterInstance, request: RunRequest
) -> ExecuteInProcessResult:
    """The requested run: its job's assets (all of destination_export_job's, or the two the
    import request selects), their checks, its partition and tags."""
    if request.job_name == "destination_export_job":
        selection = AssetSelection.assets(*destination_defs.assets)
    else:
        selection = AssetSelection.assets(*(request.asset_selection or []))
    return materialize(
        EVERY_AUDIENCE_ASSET,
        partition_key=request.partition_key,
        selection=selection,
        tags=request.tags,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def failed_checks(result: ExecuteInProcessResult) -> dict[str, Any]:
    return {e.check_name: e.metadata for e in result.get_asset_check_evaluations() if not e.passed}


def count_rows(read: Callable[[str], list[dict[str, str]]], path: str) -> int:
    return len(read(path))
