"""`<dataset>` and `<dataset>_xdm`: the subsettable multi-asset of the ingest step.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions (context and resource parameters) at definition time.
"""

from collections.abc import Iterator

import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    multi_asset,
)

from resources.drop_zones import DropZone
from resources.file_ledger import FileLedger
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.campaign_to_aep.export_flow.asset_metadata import (
    arrow_type_name,
    typed_metadata,
    xdm_preview,
)
from rtcdp_assets.campaign_to_aep.export_flow.description import (
    CampaignExportDescription,
    XdmMapper,
)
from rtcdp_assets.campaign_to_aep.export_flow.ingest_step import ingest_partition
from rtcdp_assets.campaign_to_aep.export_flow.source_readiness import RunRelease
from rtcdp_assets.campaign_to_aep.export_flow.tick_planning import (
    SOURCE_FILE_TAG,
    SOURCE_IDENTITY_TAG,
)
from rtcdp_assets.campaign_to_aep.export_flow.xdm_columns import xdm_spec_metadata
from rtcdp_assets.campaign_to_aep.export_flow.xdm_writer import XdmOutput, map_partition
from rtcdp_assets.shared.partitions import four_hourly_partitions


def build_ingest_assets(flow: CampaignExportDescription) -> AssetsDefinition:
    """`<dataset>` and `<dataset>_xdm`, written by one op in one pass over each file.

    Mapping in a second op meant reading and decoding the typed Parquet again: 5-17 %
    more time for the pair, less on larger files (bench/README.md). Either asset can still
    run alone: the XDM one then maps the stored typed partition.
    """
    typed_key, xdm_key = flow.typed_key, flow.xdm_key
    columns = [
        TableColumn(f.name, str(arrow_type_name(f.kind)), description=f.description)
        for f in flow.fmt.fields
    ]
    typed_spec = AssetSpec(
        key=typed_key,
        group_name="campaign_to_aep",
        kinds={"sftp", "parquet"},
        deps=list(flow.upstream),
        description=flow.description
        or f"Typed {flow.dataset} rows from Campaign exports, with a quarantine.",
        metadata={"dagster/column_schema": TableSchema(columns=columns)},
    )
    xdm_spec = AssetSpec(
        key=xdm_key,
        group_name="campaign_to_aep",
        kinds={"parquet"},
        deps=[typed_key],
        description=f"{flow.dataset} as XDM records ({flow.xdm_class}).",
        # Shown before the first run, with the default settings; each materialization
        # records them again with the run's settings (identityMap namespaces are settings).
        metadata=xdm_spec_metadata(flow, PipelineSettings()),
    )

    @multi_asset(
        name=f"{flow.dataset}_ingest",
        specs=[typed_spec, xdm_spec],
        partitions_def=four_hourly_partitions,
        can_subset=True,
        pool="campaign_sftp",
    )
    def ingest(
        context: AssetExecutionContext,
        campaign_sftp: DropZone,
        warehouse: Warehouse,
        settings: PipelineSettings,
        file_ledger: FileLedger,
    ) -> Iterator[MaterializeResult]:
        pk = context.partition_key
        selected = context.selected_asset_keys
        to_xdm: XdmMapper | None = None
        if xdm_key in selected:
            bind = flow.bind_xdm
            to_xdm = bind(context, warehouse, settings) if bind else flow.to_xdm
        xdm_out: XdmOutput | None = None
        if typed_key in selected:
            out = ingest_partition(
                flow,
                campaign_sftp,
                warehouse,
                settings,
                pk,
                log=context.log,
                ledger=file_ledger,
                run_id=context.run.run_id,
                to_xdm=to_xdm,
                # The sensor's word on the version it requested this run for.
                release=RunRelease.from_tags(
                    context.run.tags, SOURCE_FILE_TAG, SOURCE_IDENTITY_TAG
                ),
            )
            xdm_out = out.xdm
            yield MaterializeResult(
                asset_key=typed_key, metadata=typed_metadata(flow, out.manifest, warehouse)
            )
        elif to_xdm is not None:
            xdm_out = map_partition(flow, warehouse, settings, pk, to_xdm)
        # The steps after this one run in the same process (in-process executor): give back
        # what Arrow's pool keeps of the ingest's buffers, so their peaks start lower.
        pa.default_memory_pool().release_unused()
        if xdm_out is not None:
            # Records per delivery channel (Campaign events): a channel that vanishes shows.
            by_channel = (
                {}
                if xdm_out.rows_by_channel is None
                else {"rows_by_channel": MetadataValue.json(xdm_out.rows_by_channel)}
            )
            yield MaterializeResult(
                asset_key=xdm_key,
                metadata={
                    **by_channel,
                    "dagster/row_count": xdm_out.rows,
                    **xdm_spec_metadata(flow, settings, xdm_out.schema),
                    "preview": MetadataValue.md(xdm_preview(flow, warehouse, pk)),
                    "xdm_class": flow.xdm_class,
                    "xdm_field_groups": MetadataValue.json(list(flow.xdm_field_groups)),
                    "warehouse_path": warehouse.path(flow.xdm_dataset, pk, "data.parquet"),
                },
            )

    return ingest
