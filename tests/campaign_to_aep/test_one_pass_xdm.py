"""The XDM written in the ingestion pass equals the XDM mapped from the stored typed partition.

`<dataset>` and `<dataset>_xdm` come from one op that maps each batch while the file streams
in; materializing `<dataset>_xdm` alone maps the typed Parquet read back. Both must give the
same records, including when a partition rule (here `duplicate_row`) removes typed rows
after the pass, and for every Campaign dataset.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from resources import LocalDropZone, PipelineSettings, Warehouse, embedded_resources
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs
from rtcdp_assets.definitions import CAMPAIGN_EXPORTS
from rtcdp_dev.sample_data import generate_dataset
from tests.drop_files import write_settled

PK = "2026-11-23-08:00"
WINDOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
FLOWS = {defs.flow.dataset: defs.flow for defs in CAMPAIGN_EXPORTS}


def _drop_partition(root, dataset: str) -> int:
    """Two exports of the window: a generated one with defects, and a second holding every
    third line of the first again (duplicate rows for the partition rule). Returns how many
    lines the second file repeats."""
    generated = generate_dataset(
        dataset, WINDOW, 3000, seed=5, defect_rate=0.02, now=datetime(2026, 11, 24, tzinfo=UTC)
    )
    header, *lines = generated.content.decode().splitlines(keepends=True)
    export = root / "export"
    again = lines[::3]
    second = generated.name.replace("_0800", "_0930")
    # Settled, each with its completion marker (the default rule).
    for name, content in ((generated.name, generated.content), (second, header + "".join(again))):
        write_settled(export / name, content)
        write_settled(export / f"{name}.done", b"")
    return len(again)


@pytest.mark.parametrize("dataset", sorted(FLOWS))
def test_xdm_from_the_ingestion_pass_equals_xdm_mapped_from_the_typed_partition(tmp_path, dataset):
    flow = FLOWS[dataset]
    settings = PipelineSettings()
    zone = LocalDropZone(root=str(tmp_path / "zone"))
    warehouse = Warehouse(zone=LocalDropZone(root=str(tmp_path / "warehouse")))
    _drop_partition(tmp_path / "zone", dataset)

    out = flow.ingest_partition(zone, warehouse, settings, PK, to_xdm=flow.to_xdm)
    one_pass = warehouse.read_table(flow.xdm_dataset, PK)
    typed = warehouse.read_table(flow.dataset, PK)

    manifest = out.manifest
    assert manifest["reasons"].get("duplicate_row", 0) > 0  # the rule rewrote a part
    assert manifest["rows_in"] == manifest["rows_out"] + manifest["rows_rejected"]
    assert out.xdm is not None and out.xdm.rows == typed.num_rows == manifest["rows_out"] > 0

    again = flow.map_partition(warehouse, settings, PK, flow.to_xdm)
    re_mapped = warehouse.read_table(flow.xdm_dataset, PK)
    assert again.rows == out.xdm.rows and again.schema == out.xdm.schema
    assert one_pass.schema == re_mapped.schema
    assert one_pass.equals(re_mapped)


def test_the_xdm_asset_alone_maps_the_stored_typed_partition(tmp_path):
    """A subset run of `broadlog_xdm` (after a mapping change, say) reads no drop zone."""
    resources = embedded_resources(tmp_path)
    _drop_partition(tmp_path / "campaign_sftp", "broadlog")
    instance = DagsterInstance.ephemeral()
    first = materialize(
        broadlog_defs.assets, partition_key=PK, resources=resources, instance=instance
    )
    assert first.success
    xdm_path = tmp_path / "warehouse" / "broadlog_xdm" / PK / "data.parquet"
    fused = pq.read_table(xdm_path)
    xdm_path.unlink()
    # The sources are archived now: a run that read the zone again would find no new file
    # under export/, while the XDM asset alone only needs the warehouse.
    alone = materialize(
        broadlog_defs.assets,
        partition_key=PK,
        resources=resources,
        instance=instance,
        selection=[AssetKey("broadlog_xdm")],
    )
    assert alone.success
    materialized = {e.asset_key for e in alone.get_asset_materialization_events()}
    assert materialized == {AssetKey("broadlog_xdm")}
    assert pq.read_table(xdm_path).equals(fused)
