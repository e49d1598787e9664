"""`CampaignExportFlow`: a dataset's description turned into its Dagster objects, and the
steps a test or a benchmark calls directly."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetsDefinition,
    AssetSelection,
    define_asset_job,
    in_process_executor,
)

from resources.drop_zones import DropZone
from resources.file_ledger import FileLedger
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.campaign_to_aep.export_flow import ingest_step, xdm_writer
from rtcdp_assets.campaign_to_aep.export_flow.description import (
    EXPORT_FRESHNESS_CHECK,
    CampaignExportDescription,
    SourceFile,
    XdmMapper,
)
from rtcdp_assets.campaign_to_aep.export_flow.ingest_asset import build_ingest_assets
from rtcdp_assets.campaign_to_aep.export_flow.ingest_step import PartitionOutput
from rtcdp_assets.campaign_to_aep.export_flow.publish_step import build_published_asset
from rtcdp_assets.campaign_to_aep.export_flow.source_readiness import RunRelease
from rtcdp_assets.campaign_to_aep.export_flow.tick_planning import build_export_sensor
from rtcdp_assets.campaign_to_aep.export_flow.xdm_writer import XdmOutput
from rtcdp_assets.shared.check_outcome_tags import tag_failed_checks


@dataclass
class CampaignExportDefinitions:
    """A dataset's assets, job and sensor. Its checks are built in asset_checks/campaign_to_aep
    (`campaign_export_checks`); the job picks them up by asset. A `Definitions` holding the job
    must also hold the typed asset's `export_freshness` check, which the job leaves out."""

    assets: list[AssetsDefinition]
    sensor: Any
    job: Any
    flow: "CampaignExportFlow"


@dataclass(frozen=True)
class CampaignExportFlow(CampaignExportDescription):
    """A Campaign → AEP dataset: its description plus the steps that build and move it."""

    def build(self) -> CampaignExportDefinitions:
        ingest = build_ingest_assets(self)
        published = build_published_asset(self)
        # The checks on this flow's assets run with a partition, except the window-spanning
        # export freshness, which runs on its own schedule.
        job = define_asset_job(
            f"{self.dataset}_job",
            selection=AssetSelection.assets(ingest, published)
            - AssetSelection.checks(AssetCheckKey(self.typed_key, EXPORT_FRESHNESS_CHECK)),
            executor_def=in_process_executor,
            description=f"Ingest, map, check and publish one {self.dataset} partition.",
            hooks={tag_failed_checks},
        )
        return CampaignExportDefinitions(
            assets=[ingest, published],
            sensor=build_export_sensor(self, job),
            job=job,
            flow=self,
        )

    def resolve_sources(
        self, zone: DropZone, settings: PipelineSettings, pk: str
    ) -> list[SourceFile]:
        return ingest_step.resolve_sources(self, zone, settings, pk)

    def ingest_partition(
        self,
        zone: DropZone,
        warehouse: Warehouse,
        settings: PipelineSettings,
        pk: str,
        log: Any = None,
        ledger: FileLedger | None = None,
        run_id: str | None = None,
        to_xdm: XdmMapper | None = None,
        release: RunRelease | None = None,
        now: datetime | None = None,
    ) -> PartitionOutput:
        return ingest_step.ingest_partition(
            self, zone, warehouse, settings, pk, log, ledger, run_id, to_xdm, release, now
        )

    def map_partition(
        self, warehouse: Warehouse, settings: PipelineSettings, pk: str, to_xdm: XdmMapper
    ) -> XdmOutput:
        return xdm_writer.map_partition(self, warehouse, settings, pk, to_xdm)
