"""The one `Definitions` of the code location (workspace.yaml loads this module).

Each Campaign dataset module builds its sensor, assets, checks and job from the shared
`CampaignExportFlow`; this module only gathers them and picks the resources for the
environment (`RTCDP_ENV`, see resources/__init__.py).
"""

import warnings

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
    PreviewWarning,
    in_process_executor,
)

# Partitioned asset checks are a preview feature in Dagster 1.13; they are what makes one check
# result per 4-hour partition possible, so the warning is expected here.
warnings.filterwarnings("ignore", category=PreviewWarning)

from asset_checks.aep_to_campaign.wiring import audience_defs, destination_defs, reach_defs  # noqa: E402
from asset_checks.campaign_to_aep.dataset_checks import campaign_export_checks  # noqa: E402
from asset_checks.campaign_to_aep.freshness import build_freshness_check, freshness_automation  # noqa: E402
from asset_checks.campaign_to_aep.orphan_recheck import build_orphan_recheck  # noqa: E402
from asset_checks.campaign_to_aep.tracking_checks import ORPHAN_CHECK_NAME  # noqa: E402
from asset_checks.customer_to_aep.offline_checks import offline_checks  # noqa: E402
from asset_checks.customer_to_campaign.import_checks import customer_import_checks  # noqa: E402
from asset_checks.mobile_push.aep_push_token_checks import aep_push_token_checks  # noqa: E402
from asset_checks.operations.ledger_checks import build_file_ledger_checks  # noqa: E402
from asset_checks.operations.sftp_checks import campaign_sftp_checks  # noqa: E402
from resources import environment_resources  # noqa: E402
from rtcdp_assets.aep_to_campaign.activation_triggers import (  # noqa: E402
    build_destination_export_sensor,
    build_reach_schedule,
)
from rtcdp_assets.aep_to_campaign.late_suppression import build_late_suppression_sensor  # noqa: E402
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs  # noqa: E402
from rtcdp_assets.campaign_to_aep.late_quarantine import build_late_quarantine_sensor  # noqa: E402
from rtcdp_assets.campaign_to_aep.non_deliverables import non_deliverables_defs, suppression_list  # noqa: E402
from rtcdp_assets.campaign_to_aep.preferences import preferences_defs  # noqa: E402
from rtcdp_assets.campaign_to_aep.profiles import profiles_defs  # noqa: E402
from rtcdp_assets.campaign_to_aep.push_subscriptions import push_subscriptions_defs  # noqa: E402
from rtcdp_assets.campaign_to_aep.tracking_log import tracking_log_defs  # noqa: E402
from rtcdp_assets.customer_to_aep.offline_assets import offline_data_defs  # noqa: E402
from rtcdp_assets.customer_to_campaign.customer_imports import customer_import_defs  # noqa: E402
from rtcdp_assets.mobile_push.aep_push_tokens import (  # noqa: E402
    aep_push_tokens,
    aep_push_tokens_job,
    aep_push_tokens_sensor,
)
from rtcdp_assets.operations.data_quality_report import (  # noqa: E402
    build_data_quality_report,
    build_data_quality_schedule,
)
from rtcdp_assets.operations.failed_run_checks import failed_run_checks_sensor  # noqa: E402
from rtcdp_assets.operations.ledger_snapshot import (  # noqa: E402
    build_file_ledger_schedule,
    file_ledger_asset,
)
from rtcdp_assets.operations.sftp_housekeeping import (  # noqa: E402
    build_housekeeping_schedule,
    campaign_sftp_housekeeping,
)
from rtcdp_assets.operations.upload_resume import build_upload_resume_sensor  # noqa: E402
from rtcdp_assets.platform_setup.aep.job import aep_setup_plan  # noqa: E402

CAMPAIGN_EXPORTS = [
    broadlog_defs,
    tracking_log_defs,
    non_deliverables_defs,
    preferences_defs,
    profiles_defs,
    push_subscriptions_defs,  # after non_deliverables: its mapping reads the push quarantine
]
# The partitioned checks of each Campaign dataset; its job runs them by selecting its assets.
campaign_export_check_defs = [
    check
    for flow in CAMPAIGN_EXPORTS
    for check in campaign_export_checks(flow.flow, [f.flow for f in CAMPAIGN_EXPORTS])
]

# orphan_tracking_rows again for the tracking partitions a newly loaded broadlog partition can
# settle (their reactions may have arrived before their sends).
orphan_recheck_job, orphan_recheck_sensor = build_orphan_recheck(
    next(
        c
        for c in campaign_export_check_defs
        if c.check_keys and next(iter(c.check_keys)).name == ORPHAN_CHECK_NAME
    )
)

# push_subscriptions partitions published before a quarantine of their tokens arrived: mapped
# and published again (same file, same record _ids).
late_quarantine_sensor = build_late_quarantine_sensor(push_subscriptions_defs.job)
# Destination files and Campaign imports not yet taken that hold an address the rebuilt
# suppression list now suppresses: built again.
late_suppression_sensor = build_late_suppression_sensor(
    audience_defs.jobs[0], destination_defs.jobs[0]
)
# Destination files after each audience import (the export named in the tags), and reach.
# A review_first Campaign import is published again, once approved, in audience_import_job.
destination_export_sensor = build_destination_export_sensor(
    destination_defs.jobs[0], next(j for j in audience_defs.jobs if j.name == "audience_import_job")
)
audience_reach_schedule = build_reach_schedule(reach_defs.jobs[0])
# Evaluates the automation conditions (suppression_list: rebuilt after each new quarantine or
# preference partition); on by default like the export sensors.
automation_sensor = AutomationConditionSensorDefinition(
    "suppression_list_automation",
    target=AssetSelection.assets(suppression_list),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)

# Every guardrail check of the code location, summarised per partition for reviewers: the
# report reads the checks of `defs` (below) when it runs, so a check with guardrail metadata
# appears without an edit here.
data_quality_report = build_data_quality_report(
    [flow.flow.dataset for flow in CAMPAIGN_EXPORTS],
    lambda: defs.resolve_asset_graph(),
    {flow.flow.dataset: flow.flow.fmt.personal_columns for flow in CAMPAIGN_EXPORTS},
)
data_quality_job, data_quality_schedule = build_data_quality_schedule(data_quality_report)

file_ledger_checks = build_file_ledger_checks([flow.flow for flow in CAMPAIGN_EXPORTS])
file_ledger_job, file_ledger_schedule = build_file_ledger_schedule(file_ledger_checks)

housekeeping_job, housekeeping_schedule = build_housekeeping_schedule(campaign_sftp_checks)
# Campaign uploads the SFTP storage guard refused, requested again once space frees.
upload_resume_sensor = build_upload_resume_sensor(
    {
        "campaign_audience_import_published": next(
            j for j in audience_defs.jobs if j.name == "audience_import_job"
        ),
        **{
            a.key.to_user_string(): customer_import_defs.jobs[0]
            for a in customer_import_defs.assets
        },
    }
)

freshness_checks = [build_freshness_check(flow.flow.typed_key) for flow in CAMPAIGN_EXPORTS]
freshness_job, freshness_schedule = freshness_automation(freshness_checks)

defs = Definitions(
    assets=[
        *(a for flow in CAMPAIGN_EXPORTS for a in flow.assets),
        suppression_list,
        data_quality_report,
        file_ledger_asset,
        campaign_sftp_housekeeping,
        *audience_defs.assets,
        *destination_defs.assets,
        *reach_defs.assets,
        *customer_import_defs.assets,
        *offline_data_defs.assets,
        aep_push_tokens,
    ],
    asset_checks=[
        *campaign_export_check_defs,
        *freshness_checks,
        file_ledger_checks,
        campaign_sftp_checks,
        *audience_defs.asset_checks,
        *destination_defs.asset_checks,
        *reach_defs.asset_checks,
        *customer_import_checks,
        *(check for ds in offline_data_defs.datasets for check in offline_checks(ds)),
        *aep_push_token_checks,
    ],
    sensors=[
        *(flow.sensor for flow in CAMPAIGN_EXPORTS),
        *audience_defs.sensors,
        *customer_import_defs.sensors,
        *offline_data_defs.sensors,
        aep_push_tokens_sensor,
        automation_sensor,
        orphan_recheck_sensor,
        upload_resume_sensor,
        late_quarantine_sensor,
        late_suppression_sensor,
        destination_export_sensor,
        failed_run_checks_sensor,
    ],
    jobs=[
        *(flow.job for flow in CAMPAIGN_EXPORTS),
        freshness_job,
        data_quality_job,
        file_ledger_job,
        housekeeping_job,
        *audience_defs.jobs,
        *destination_defs.jobs,
        *reach_defs.jobs,
        *customer_import_defs.jobs,
        *offline_data_defs.jobs,
        aep_push_tokens_job,
        orphan_recheck_job,
        aep_setup_plan,
    ],
    schedules=[
        freshness_schedule,
        data_quality_schedule,
        file_ledger_schedule,
        housekeeping_schedule,
        audience_reach_schedule,
    ],
    resources=environment_resources(),
    # Runs launched outside the jobs above (backfills, materializations from the UI) use the
    # implicit asset job: in one process like the jobs, not a process per step (each one
    # re-imports the code location, 10+ s on a busy node).
    executor=in_process_executor,
)
