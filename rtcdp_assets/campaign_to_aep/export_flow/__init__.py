"""The shape every Campaign → AEP dataset shares, written once.

A dataset module (broadlog.py, tracking_log.py, ...) describes its export: the file names, the
columns of each Campaign layout, the validation rules and the XDM mapping. `CampaignExportFlow`
turns that description into the same Dagster objects for every dataset:

    <dataset>_export_sensor ──▶ <dataset> ──▶ <dataset>_xdm ──▶ <dataset>_published
      (SFTP export folder)     typed rows      XDM records       AEP landing container
                               + quarantine    (checked, blocking)

The checks that guard them are built in asset_checks/campaign_to_aep; the job runs those on
its assets by selection. `<dataset>` and `<dataset>_xdm` come from one op
(`<dataset>_ingest`, a subsettable multi-asset): each file is read once and written as typed
and XDM Parquet in the same pass. Materializing `<dataset>_xdm` alone maps the stored typed
partition again (after a change of mapping, for example).

Files move `export/` → `export/archive/<dataset>/` after their rows are safely in the
warehouse, or → `export/quarantine/<dataset>/` with a reason when they cannot be read at all.
Nothing is ever deleted.

The package's modules, one per step: description (names, folders), ingest_step and
ingest_asset (typed + XDM in one pass), xdm_writer, publish_step, tick_planning (the sensor),
asset_metadata, and flow (`CampaignExportFlow.build`).
"""

from rtcdp_assets.campaign_to_aep.export_flow.asset_metadata import table_schema
from rtcdp_assets.campaign_to_aep.export_flow.description import (
    EXPORT_FRESHNESS_CHECK,
    CampaignExportDescription,
    RecordKind,
    SourceFile,
    XdmMapper,
)
from rtcdp_assets.campaign_to_aep.export_flow.flow import (
    CampaignExportDefinitions,
    CampaignExportFlow,
)
from rtcdp_assets.campaign_to_aep.export_flow.ingest_step import PartitionOutput
from rtcdp_assets.campaign_to_aep.export_flow.tick_planning import (
    SOURCE_FILE_TAG,
    SOURCE_IDENTITY_TAG,
    TickPlan,
    plan_tick,
)
from rtcdp_assets.campaign_to_aep.export_flow.xdm_writer import XdmOutput, XdmWriter

__all__ = [
    "EXPORT_FRESHNESS_CHECK",
    "SOURCE_FILE_TAG",
    "SOURCE_IDENTITY_TAG",
    "CampaignExportDefinitions",
    "CampaignExportDescription",
    "CampaignExportFlow",
    "PartitionOutput",
    "RecordKind",
    "SourceFile",
    "TickPlan",
    "XdmMapper",
    "XdmOutput",
    "XdmWriter",
    "plan_tick",
    "table_schema",
]
