"""Is the suppression list as new as what it is built from? Publication to a destination waits
while it is not (docs: destinations/__init__.py, "Freshness").

The list is stale when a `non_deliverables` or `preferences` partition was materialized after
it: a quarantine or an opt-out has arrived that the list does not hold yet. Events are ordered
by their storage id in the event log (monotonic), not by clock, so two events in one second
are still ordered; the ages reported are wall-clock seconds from the events' timestamps.
"""

from dataclasses import dataclass
from typing import Any

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, EventLogRecord

from rtcdp_assets.shared.suppression import SUPPRESSION_LIST

SUPPRESSION_INPUTS = ("non_deliverables", "preferences")


@dataclass(frozen=True)
class SuppressionFreshness:
    list_storage_id: int | None  # the list's latest materialization, None: never built
    list_built_at: float | None  # its timestamp (seconds since the epoch)
    newest_input: str | None  # the input dataset materialized last, None: none yet
    newest_input_storage_id: int | None
    newest_input_at: float | None

    @property
    def stale(self) -> bool:
        if self.list_storage_id is None:
            return True
        return self.newest_input_storage_id is not None and (
            self.newest_input_storage_id > self.list_storage_id
        )

    def age_seconds(self, at: float) -> float | None:
        """How old the list is at time `at`."""
        return None if self.list_built_at is None else round(at - self.list_built_at, 3)

    def reason(self) -> str:
        if self.list_storage_id is None:
            return "the suppression list has never been built"
        if not self.stale:
            return "the suppression list is up to date"
        lag = round((self.newest_input_at or 0) - (self.list_built_at or 0), 3)
        return (
            f"the suppression list is older than the newest {self.newest_input} partition "
            f"(materialized {lag} s after the list was built); publication waits until "
            "suppression_list is rebuilt"
        )

    def metadata(self, at: float) -> dict[str, Any]:
        return {
            "suppression_list_age_seconds": self.age_seconds(at),
            "suppression_list_stale": self.stale,
            "suppression_list_storage_id": self.list_storage_id,
            "newest_suppression_input": self.newest_input or "",
            "newest_suppression_input_storage_id": self.newest_input_storage_id,
        }


def _latest(
    instance: DagsterInstance, asset: str, before_storage_id: int | None
) -> EventLogRecord | None:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), before_storage_id=before_storage_id), limit=1
    ).records
    return records[0] if records else None  # newest first


def suppression_freshness(
    instance: DagsterInstance, before_storage_id: int | None = None
) -> SuppressionFreshness:
    """The list's freshness now, or as it was just before the event `before_storage_id` (what
    a check re-derives for a publication that already happened)."""
    built = _latest(instance, SUPPRESSION_LIST, before_storage_id)
    inputs = [
        (record, asset)
        for asset in SUPPRESSION_INPUTS
        if (record := _latest(instance, asset, before_storage_id)) is not None
    ]
    newest = max(inputs, key=lambda pair: pair[0].storage_id, default=None)
    return SuppressionFreshness(
        list_storage_id=None if built is None else built.storage_id,
        list_built_at=None if built is None else built.timestamp,
        newest_input=None if newest is None else newest[1],
        newest_input_storage_id=None if newest is None else newest[0].storage_id,
        newest_input_at=None if newest is None else newest[0].timestamp,
    )
