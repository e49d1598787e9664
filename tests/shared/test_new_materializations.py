"""`materializations_after`: the materializations of one asset after a sensor's cursor, oldest
first, at most `limit`, other assets' left out; the same records the three sensors read."""

from __future__ import annotations

from dagster import AssetKey, AssetMaterialization, DagsterInstance

from rtcdp_assets.shared.new_materializations import materializations_after, storage_id_cursor

BROADLOG = AssetKey("broadlog")


def test_reads_on_from_the_cursor_oldest_first_and_batched():
    instance = DagsterInstance.ephemeral()
    for pk in ("2026-12-01-00:00", "2026-12-01-04:00", "2026-12-01-08:00"):
        instance.report_runless_asset_event(AssetMaterialization(BROADLOG, partition=pk))
        instance.report_runless_asset_event(AssetMaterialization("tracking_log", partition=pk))

    first = materializations_after(instance, BROADLOG, storage_id_cursor(None), 2)
    assert [r.partition_key for r in first] == ["2026-12-01-00:00", "2026-12-01-04:00"]
    cursor = str(first[-1].storage_id)
    rest = materializations_after(instance, BROADLOG, storage_id_cursor(cursor), 2)
    assert [r.partition_key for r in rest] == ["2026-12-01-08:00"]
    assert materializations_after(instance, BROADLOG, rest[-1].storage_id, 2) == []
    assert storage_id_cursor("") is None
