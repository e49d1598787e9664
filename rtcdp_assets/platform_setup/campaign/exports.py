"""The Campaign export workflows the `campaign_to_aep` datasets expect, derived from the flows.

Everything a workflow must produce is read from the code that reads its files: the columns and
both layouts' headers from the dataset's `ExportFormat`, the file name forms from the flow's
`file_pattern` (each example is checked against it here), the cadence from the partitions'
cron, the completion marker from `CompletionRule.campaign_export`, the folder from the
settings. Only the Classic XPath of each column is added (query_sources.py).
"""

from __future__ import annotations

from typing import Any

from resources.settings import PipelineSettings
from rtcdp_assets.campaign_to_aep.broadlog import broadlog_flow
from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportDescription
from rtcdp_assets.campaign_to_aep.non_deliverables import non_deliverables_flow
from rtcdp_assets.campaign_to_aep.preferences import preferences_flow
from rtcdp_assets.campaign_to_aep.profiles import profiles_flow
from rtcdp_assets.campaign_to_aep.push_subscriptions import push_subscriptions_flow
from rtcdp_assets.campaign_to_aep.tracking_log import tracking_log_flow
from rtcdp_assets.platform_setup.campaign.query_sources import QUERY_SOURCES, QuerySource
from rtcdp_assets.shared.file_completion import CompletionRule
from rtcdp_assets.shared.partitions import four_hourly_partitions

# Every Campaign export the code location reads (a test compares it with the definitions'
# export sensors, so a new dataset cannot be left out).
EXPORT_FLOWS: tuple[CampaignExportDescription, ...] = (
    broadlog_flow,
    tracking_log_flow,
    non_deliverables_flow,
    preferences_flow,
    profiles_flow,
    push_subscriptions_flow,
)
CLASSIC, STANDARD = "campaign_classic", "campaign_standard"
# The stamp the examples use: a time inside the window 2026-11-23-08:00.
_EXAMPLE_DATE, _EXAMPLE_TIME = "20261123", "0930"


class SetupDrift(Exception):
    """What the generator derives no longer agrees with the code it is derived from."""


def cadence_hours() -> int:
    """Hours between two export windows, from the partitions' cron (`0 */<n> * * *`)."""
    fields = four_hourly_partitions.cron_schedule.split()
    if fields[0] != "0" or not fields[1].startswith("*/") or fields[2:] != ["*", "*", "*"]:
        raise SetupDrift(f"unexpected partition cron {four_hourly_partitions.cron_schedule!r}")
    return int(fields[1][2:])


def name_forms(flow: CampaignExportDescription) -> list[dict[str, str]]:
    """Every documented name form of the flow's files, each example checked against the very
    pattern its sensor applies (and the partition it lands in)."""
    prefix, stamp = flow.file_prefix, f"{_EXAMPLE_DATE}_{_EXAMPLE_TIME}"
    forms = [
        ("minutes", f"{prefix}_{stamp}.csv"),
        ("seconds", f"{prefix}_{stamp}00.csv"),
        ("gzip", f"{prefix}_{stamp}.csv.gz"),
        ("suffix (split part, variant)", f"{prefix}_{stamp}_2.csv"),
        ("suffix and gzip", f"{prefix}_{stamp}_part-2.csv.gz"),
        ("any letter case", f"{prefix.upper()}_{stamp}.CSV"),
    ]
    out = []
    for form, example in forms:
        partition = flow.partition_for(example)
        if partition is None:
            raise SetupDrift(f"{example} does not match {flow.file_pattern.pattern}")
        out.append({"form": form, "example": example, "partition": partition})
    return out


def _columns(flow: CampaignExportDescription, source: QuerySource) -> list[dict[str, Any]]:
    layouts = flow.fmt.layouts
    headers = {layout.name: {f: h for h, f in layout.columns.items()} for layout in layouts}
    if set(headers) != {CLASSIC, STANDARD}:
        raise SetupDrift(f"{flow.dataset}: layouts {sorted(headers)}")
    columns = []
    for spec in flow.fmt.fields:
        expression = source.expressions.get(spec.name)
        if expression is None:
            raise SetupDrift(f"{flow.dataset}.{spec.name} has no Classic expression")
        columns.append(
            {
                "field": spec.name,
                "type": spec.kind,
                "required": spec.name in flow.fmt.required,
                "personal": spec.personal,
                "classic_header": headers[CLASSIC].get(spec.name),
                "classic_expression": expression.xpath,
                "expression_source": expression.source,
                "standard_header": headers[STANDARD].get(spec.name),
                "allowed_values": sorted(spec.allowed, key=_code_order) if spec.allowed else None,
                "description": spec.description,
            }
        )
    unused = set(source.expressions) - {spec.name for spec in flow.fmt.fields}
    if unused:
        raise SetupDrift(f"{flow.dataset}: expressions for unknown fields {sorted(unused)}")
    return columns


def _code_order(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (1 << 30, value)


def export_workflow(flow: CampaignExportDescription, settings: PipelineSettings) -> dict[str, Any]:
    """The workflow Campaign must run for one dataset, as plain data."""
    source = QUERY_SOURCES[flow.dataset]
    rule = CompletionRule.campaign_export(settings)
    hours = cadence_hours()
    csv = flow.fmt.csv
    changed = source.expressions[source.changed_since]
    return {
        "dataset": flow.dataset,
        "sensor": f"{flow.dataset}_export_sensor",
        "description": flow.description,
        "query": {
            "classic_schema": source.classic_schema,
            "standard_resource": source.standard_resource,
            "schema_source": source.source or "UNCONFIRMED",
            "rows": f"`{changed.xpath}` ({source.changed_since}) after the previous successful "
            "execution (incremental)",
            "changed_since_field": source.changed_since,
            "note": source.note,
        },
        "columns": _columns(flow, source),
        "file": {
            "folder": settings.campaign_export_folder,
            "folder_setting": "campaign_export_folder",
            "prefix": flow.file_prefix,
            "name_pattern": f"{flow.file_prefix}_YYYYMMDD_HHMM[SS][_<suffix>].csv[.gz]",
            "regex": flow.file_pattern.pattern,
            "case_insensitive": True,
            "name_forms": name_forms(flow),
            "stamp": "the execution time in UTC: the file lands in that time's 4-hour partition; "
            "its rows may be older but never later than that window's end",
            "delimiter": csv.delimiter,
            "quote": csv.quote_char,
            "encoding": csv.encoding,
            "header_line": True,
        },
        "cadence": {
            "every_hours": hours,
            "cron_utc": four_hourly_partitions.cron_schedule,
            "timezone": four_hourly_partitions.timezone,
            "empty_window": "write the file with its header line even when no row changed",
        },
        "completion": {
            "rule": rule.rule,
            "rule_setting": "campaign_export_completion",
            "marker_suffix": rule.marker_suffix,
            "marker_setting": "completion_marker_suffix",
            "marker_name": f"<file name>{rule.marker_suffix}" if rule.rule == "marker" else None,
            "marker_example": f"{flow.file_prefix}_{_EXAMPLE_DATE}_{_EXAMPLE_TIME}.csv"
            f"{rule.marker_suffix}"
            if rule.rule == "marker"
            else None,
        },
    }


def export_workflows(settings: PipelineSettings) -> list[dict[str, Any]]:
    return [export_workflow(flow, settings) for flow in EXPORT_FLOWS]
