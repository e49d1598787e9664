"""`aep_setup_plan`: the AEP setup plan from inside Dagster, in plan mode only.

It runs the same code as `rtcdp-aep-setup plan` with the run's own settings and landing zone,
and writes the plan to the warehouse under `aep_setup_plan/<run id>/` (one JSON file per
request and `summary.md`; a folder per run, so an older plan's requests never mix in). Its
metadata are counts only (schemas, datasets, namespaces, descriptors, dataflows, requests) and
the summary, which holds field paths and names, never a value.
Nothing is sent to AEP: applying stays a deliberate act (`rtcdp-aep-setup apply`).

No `from __future__ import annotations` here: Dagster reads the op's annotations.
"""

from dagster import MetadataValue, OpExecutionContext, Output, in_process_executor, job, op

from resources.drop_zones import DropZone, join
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.platform_setup.aep.blueprint import build_blueprint
from rtcdp_assets.platform_setup.aep.landing import landing_from_zone
from rtcdp_assets.platform_setup.aep.plan_files import SUMMARY_FILE, plan_documents

PLAN_FOLDER = "aep_setup_plan"


@op(
    description=(
        "Derive the AEP setup (schemas, descriptors, namespaces, datasets, dataflows) from the "
        "XDM mappings and write its request files and summary.md to the warehouse."
    )
)
def write_aep_setup_plan(
    context: OpExecutionContext,
    settings: PipelineSettings,
    aep_landing: DropZone,
    warehouse: Warehouse,
) -> Output[int]:
    blueprint = build_blueprint(settings, landing_from_zone(aep_landing))
    files = plan_documents(blueprint)
    folder = join(PLAN_FOLDER, context.run_id)
    for name, text in sorted(files.items()):
        warehouse.zone.write_bytes(join(folder, name), text.encode("utf-8"))
    requests = len(files) - 1
    context.log.info(f"AEP setup plan: {requests} requests written to {folder}/")
    return Output(
        requests,
        metadata={
            "schemas": len(blueprint.datasets),
            "datasets": len(blueprint.datasets),
            "profile_enabled_datasets": sum(d.profile_enabled for d in blueprint.datasets),
            "namespaces": len(blueprint.namespaces),
            "descriptors": sum(len(d.descriptors) for d in blueprint.datasets),
            "dataflows": len(blueprint.datasets),
            "requests": requests,
            "tenant_fields": sum(len(d.composition.homeless) for d in blueprint.datasets),
            "plan_folder": folder,
            "summary": MetadataValue.md(files[SUMMARY_FILE]),
        },
    )


@job(
    name="aep_setup_plan",
    description="Write the AEP setup plan (plan mode of rtcdp-aep-setup) to the warehouse.",
    executor_def=in_process_executor,
)
def aep_setup_plan() -> None:
    write_aep_setup_plan()
