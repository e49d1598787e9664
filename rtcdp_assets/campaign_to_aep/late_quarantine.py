"""`late_quarantine_sensor`: maps and publishes again the `push_subscriptions` partitions whose
published tokens a late quarantine export changes.

`push_subscriptions_xdm` marks a token `denylisted` when Campaign quarantines it in a
`non_deliverables` partition up to its own window (`quarantined_tokens`). A nonDeliverables
export that lands after a push partition P of the same or a later window was published leaves
P's records stating the token is active. For each newly loaded `non_deliverables` partition N,
the sensor takes the push tokens N lists (any status: a release matters too), looks them up in
the stored XDM of the push partitions P >= N (whose quarantine state includes N) that were
mapped before N's materialization (one mapped after it already read N), and where a token's
published `denylisted` differs from the quarantine state up to P, requests one run of
`push_subscriptions_job` that maps P again from its stored typed rows and publishes it.
A push partition before N is left as it is: its window's state does not include N (so its
re-runs stay reproducible), and AEP gets the quarantine from N's own published records and from
every later push window.

What AEP receives: the same file name (`<dataset>_<YYYYMMDD_HHMM>.<ext>`) rewritten with the same
records, `_id` unchanged (subscription key + its last change, not the quarantine state), only
`pushNotificationDetails.denylisted` differing. The cloud-storage source ingests a rewritten
file again (docs/formats.md §h3); profile records of one primary identity in one dataset
update that identity's fragment, so the profile ends with the corrected state and no record is
added. An unchanged re-map gives the same bytes and the landing is left alone.

The cursor is the last `non_deliverables` materialization handled (event storage id); run keys
are `late_suppression:<P>@non_deliverables-<storage id>`, so a re-tick or a restart never
requests a partition twice for one arrival.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.campaign_to_aep.non_deliverables import (
    PUSH_CHANNEL_PLATFORMS,
    quarantined_tokens,
)
from rtcdp_assets.campaign_to_aep.push_subscriptions import push_subscriptions_flow
from rtcdp_assets.shared import push_token_formats, xdm
from rtcdp_assets.shared.late_suppression import run_tags
from rtcdp_assets.shared.new_materializations import materializations_after, storage_id_cursor

NON_DELIVERABLES = AssetKey("non_deliverables")
PUSH_XDM = push_subscriptions_flow.xdm_key
PUSH_PUBLISHED = AssetKey(push_subscriptions_flow.published_name)
# non_deliverables materializations read per tick: a backlog is worked through over ticks.
BATCH = 200


@dataclass(frozen=True)
class Republication:
    """One push partition to map and publish again, and why (counts only)."""

    partition: str
    triggers: tuple[str, ...]  # the non_deliverables partitions that change it
    to_denylist: int  # tokens published active that Campaign now quarantines
    to_release: int  # tokens published denylisted that Campaign released

    def run_request(self, last_storage_id: int) -> RunRequest:
        return RunRequest(
            run_key=f"late_suppression:{self.partition}@non_deliverables-{last_storage_id}",
            partition_key=self.partition,
            asset_selection=[PUSH_XDM, PUSH_PUBLISHED],
            tags=run_tags(
                "non_deliverables:" + ",".join(self.triggers), self.to_denylist, self.to_release
            ),
        )


def listed_push_tokens(warehouse: Warehouse, settings: PipelineSettings, pk: str) -> set[str]:
    """The device tokens (normalised) a non_deliverables partition lists on the push channels,
    whatever their status."""
    with warehouse.local_copy("non_deliverables", pk, "data.parquet") as local:
        if local is None:
            return set()
        table = pq.read_table(local, columns=["address", "channel"])
    channel = xdm.lookup(table.column("channel").combine_chunks(), settings.address_channel_codes)
    platform = xdm.lookup(channel, PUSH_CHANNEL_PLATFORMS)
    is_push = pc.is_valid(platform)
    address = table.column("address").combine_chunks().filter(is_push)
    tokens = push_token_formats.normalized(address, platform.filter(is_push))
    return set(tokens.to_pylist()) - {None}


def published_token_states(warehouse: Warehouse, pk: str) -> tuple[set[str], set[str]]:
    """(tokens stated active, tokens stated denylisted) in a stored push_subscriptions_xdm
    partition: what its publication told AEP."""
    with warehouse.local_copy(push_subscriptions_flow.xdm_dataset, pk, "data.parquet") as local:
        if local is None:
            return set(), set()
        details = pq.read_table(local, columns=["pushNotificationDetails"])
    items = pc.list_flatten(details.column("pushNotificationDetails").combine_chunks())
    tokens = pc.struct_field(items, "token")
    denylisted = pc.fill_null(pc.struct_field(items, "denylisted"), False)
    active = set(tokens.filter(pc.invert(denylisted)).to_pylist()) - {None}
    blocked = set(tokens.filter(denylisted).to_pylist()) - {None}
    return active, blocked


def plan_republications(
    instance: DagsterInstance,
    warehouse: Warehouse,
    settings: PipelineSettings,
    arrived: Mapping[str, int],
) -> list[Republication]:
    """The push partitions whose published token states the `arrived` non_deliverables
    partitions (partition → storage id of its new materialization) make wrong, in partition
    order. A push partition counts only if it was mapped before that materialization: one
    mapped after it already read the quarantine."""
    listed = {pk: listed_push_tokens(warehouse, settings, pk) for pk in sorted(arrived)}
    listed = {pk: tokens for pk, tokens in listed.items() if tokens}
    if not listed:
        return []
    mapped_at = instance.event_log_storage.get_latest_storage_id_by_partition(
        PUSH_XDM, DagsterEventType.ASSET_MATERIALIZATION
    )
    out = []
    for pk in sorted(p for p in mapped_at if p >= min(listed)):
        triggers = tuple(n for n in listed if n <= pk and mapped_at[pk] < arrived[n])
        if not triggers:
            continue
        changed = set().union(*(listed[n] for n in triggers))
        active, blocked = published_token_states(warehouse, pk)
        touched_active, touched_blocked = active & changed, blocked & changed
        if not touched_active and not touched_blocked:
            continue  # the targeted test: no token of this window is in the new exports
        quarantined = quarantined_tokens(instance, warehouse, settings, pk)
        to_denylist = len(touched_active & quarantined)
        to_release = len(touched_blocked - quarantined)
        if to_denylist or to_release:
            out.append(Republication(pk, triggers, to_denylist, to_release))
    return out


def build_late_quarantine_sensor(job: Any) -> SensorDefinition:
    """The sensor that requests `job` (push_subscriptions_job, an unresolved asset job, as
    `CampaignExportDefinitions.job`) for the partitions of `plan_republications`."""

    @sensor(
        name="late_quarantine_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "When a non_deliverables partition is loaded, maps and publishes again the "
            "push_subscriptions partitions already published with a token it quarantines (or "
            "releases): same file name, same record _ids, the token's denylisted corrected."
        ),
    )
    def late_quarantine_sensor(
        context: SensorEvaluationContext, warehouse: Warehouse, settings: PipelineSettings
    ) -> SensorResult | SkipReason:
        after = storage_id_cursor(context.cursor)
        records = materializations_after(context.instance, NON_DELIVERABLES, after, BATCH)
        if not records:
            return SkipReason("no new non_deliverables partition")
        last = records[-1].storage_id
        arrived = {r.partition_key: r.storage_id for r in records if r.partition_key}
        plan = plan_republications(context.instance, warehouse, settings, arrived)
        for item in plan:
            context.log.info(
                f"push_subscriptions {item.partition}: {item.to_denylist} token(s) to denylist, "
                f"{item.to_release} to release (non_deliverables {', '.join(item.triggers)})"
            )
        return SensorResult(
            run_requests=[item.run_request(last) for item in plan],
            cursor=str(last),
            skip_reason=None if plan else SkipReason("no published push token is affected"),
        )

    return late_quarantine_sensor
