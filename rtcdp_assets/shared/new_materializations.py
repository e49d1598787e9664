"""The materializations of one asset since a sensor's cursor: the start of every sensor that
reacts to an asset being loaded (`late_quarantine_sensor`, `orphan_recheck_sensor`,
`destination_export_sensor`). The cursor is the storage id of the last materialization handled,
so a re-tick or a restart reads each one once.
"""

from collections.abc import Sequence

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, EventLogRecord


def storage_id_cursor(cursor: str | None) -> int | None:
    """The storage id a sensor keeps as its whole cursor (None: from the first one)."""
    return int(cursor) if cursor else None


def materializations_after(
    instance: DagsterInstance, asset_key: AssetKey, after: int | None, limit: int
) -> Sequence[EventLogRecord]:
    """At most `limit` materializations of `asset_key` after storage id `after`, oldest first
    (the next tick reads on from the last one returned)."""
    return instance.fetch_materializations(
        AssetRecordsFilter(asset_key=asset_key, after_storage_id=after),
        limit=limit,
        ascending=True,
    ).records
