"""XDM partitions as the real pipeline writes them, for tests of what reads them (checks,
encoders): a generated Campaign export with defects, ingested by the dataset's own flow."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from resources import LocalDropZone, PipelineSettings, Warehouse
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportDescription
from rtcdp_assets.definitions import CAMPAIGN_EXPORTS
from rtcdp_dev.sample_data import generate_dataset
from tests.drop_files import write_settled

PK = "2026-11-23-08:00"
WINDOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
FLOWS: dict[str, CampaignExportDescription] = {d.flow.dataset: d.flow for d in CAMPAIGN_EXPORTS}


def ingest_generated(
    tmp_path: Path, dataset: str, rows: int = 3000, warehouse: Warehouse | None = None
) -> Warehouse:
    """The dataset's partition PK, ingested from a generated export (3 % defects)."""
    generated = generate_dataset(
        dataset, WINDOW, rows, seed=11, defect_rate=0.03, now=datetime(2026, 11, 24, tzinfo=UTC)
    )
    write_settled(tmp_path / "zone" / "export" / generated.name, generated.content)
    write_settled(tmp_path / "zone" / "export" / f"{generated.name}.done", b"")
    zone = LocalDropZone(root=str(tmp_path / "zone"))
    warehouse = warehouse or Warehouse(zone=LocalDropZone(root=str(tmp_path / "warehouse")))
    flow = FLOWS[dataset]
    flow.ingest_partition(zone, warehouse, PipelineSettings(), PK, to_xdm=flow.to_xdm)
    return warehouse


def real_xdm(tmp_path: Path, dataset: str) -> pa.Table:
    """The XDM table the pipeline writes for a generated export of `dataset`."""
    return ingest_generated(tmp_path, dataset).read_table(FLOWS[dataset].xdm_dataset, PK)
