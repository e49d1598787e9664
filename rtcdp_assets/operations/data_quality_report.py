"""The data-quality review: one report per 4-hour partition for people who act on check results.

`data_quality_report` gathers the latest result of every guardrail check of the code location
(every check whose spec carries `guardrail/*` metadata, looked up in the code location's asset
graph when the report runs, so a new check appears without an edit here): a check on 4-hour
windows for the report's partition, any other check (unpartitioned, or on audience
partitions) its latest result. Each row says
passed, failed with severity, or not run, with the counts behind each failure, and a sample
of quarantined rows per dataset with their source file, line and reason, personal values
masked. It is shown as a Markdown table in the UI and written as a standalone HTML page
(`data_quality_report/<partition>/report.html` in the warehouse) for reviewers outside Dagster.
Nothing in it shows raw personal data.

No `from __future__ import annotations` here: Dagster reads the decorated function's annotations.
"""

import html
import json
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    BackfillPolicy,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    asset,
    define_asset_job,
    in_process_executor,
    schedule,
)
from dagster._core.event_api import PartitionKeyFilter

from resources.warehouse import Warehouse
from rtcdp_assets.shared.masking import mask_reject_raw, mask_text
from rtcdp_assets.shared.partitions import PARTITION_KEY_FORMAT, four_hourly_partitions

SAMPLE_REJECTS = 5
# Partitions listed in the UI summary of a range run (a year of windows would be 2,190 rows).
RANGE_SUMMARY_ROWS = 200
# Metadata entries worth showing a reviewer next to a check outcome (counts, never values).
EVIDENCE_KEYS = (
    "rows_in",
    "rows_rejected",
    "reject_rate",
    "top_reasons",
    "rejects_by_reason",
    "files_quarantined",
    "mismatches",
    "rows_outside_org_unit",
    "exports_in_window",
    "orphan_rows",
    "orphan_rate",
    "records_invalid",
    "errors_by_kind",
    "duplicate_ids",
    "future_timestamps",
    "records_over_limit",
    "quota_used",
    "footprint_bytes",
    "overdue_files",
    # issue 21: the contract's and AEP's profile, identity-graph and ingestion guardrails
    "contract_share",
    "profiles_over_limit",
    "most_events_for_a_profile",
    "graphs_over_limit",
    "largest_graph",
    "batches_today",
    "batches_today_all_datasets",
)
GUARDRAIL_SOURCE = "guardrail/source"  # the metadata key every guardrail check spec carries


def _evidence(metadata: dict[str, Any]) -> str:
    parts = []
    for key in EVIDENCE_KEYS:
        if key in metadata:
            value = getattr(metadata[key], "value", metadata[key])
            if value in (0, [], {}, None):
                continue
            parts.append(f"{key}={json.dumps(value, default=str, sort_keys=True)}")
    return mask_text("; ".join(parts))[:400]


def build_data_quality_report(
    datasets: Sequence[str],
    check_keys: Sequence[AssetCheckKey] | Callable[[], Any],
    personal_columns: Mapping[str, Collection[str]] | None = None,
) -> Any:
    """`check_keys`: the checks to report (on 4-hour windows), or a function giving the asset
    graph whose guardrail checks the report shows (`guardrail_checks`), called when the report
    runs: definitions.py passes its own `Definitions`' graph. `personal_columns`: per dataset,
    the columns of its quarantined rows to mask (ExportFormat.personal_columns); a dataset
    without an entry has every value masked."""
    personal = dict(personal_columns or {})

    @asset(
        name="data_quality_report",
        partitions_def=four_hourly_partitions,
        group_name="data_quality",
        kinds={"html"},
        deps=[AssetKey(d) for d in datasets],
        # Range-aware: a backfill of many windows is one run, not one run per window.
        backfill_policy=BackfillPolicy.single_run(),
        description=(
            "Per 4-hour partition: every check outcome of every Campaign dataset with its "
            "evidence, and masked samples of quarantined rows; Markdown in the UI, an HTML page "
            "in the warehouse for reviewers outside Dagster."
        ),
    )
    def data_quality_report(
        context: AssetExecutionContext, warehouse: Warehouse
    ) -> MaterializeResult:
        # A backfill hands this asset its whole partition range in one run (single_run policy);
        # each partition still gets its own HTML page, built exactly as in a one-partition run.
        if callable(check_keys):
            scopes = guardrail_checks(check_keys())
        else:
            scopes = dict.fromkeys(check_keys, WINDOW)
        reports = [
            _report_partition(context, warehouse, pk, datasets, scopes, personal)
            for pk in context.partition_keys
        ]
        if len(reports) == 1:
            return MaterializeResult(metadata=reports[0].metadata(warehouse))
        return MaterializeResult(metadata=_range_metadata(reports, warehouse))

    return data_quality_report


@dataclass(frozen=True)
class _PartitionReport:
    partition: str
    rows: list[tuple[str, ...]]
    markdown: str
    html_bytes: int

    @property
    def failed(self) -> int:
        return sum(r[2] == "FAILED" for r in self.rows)

    @property
    def not_run(self) -> int:
        return sum(r[2] == "not run" for r in self.rows)

    @property
    def failing_checks(self) -> list[str]:
        """`asset:check (SEVERITY)` of every failed check, in the report's order."""
        return [f"{a}:{c} ({s})" for a, c, o, s, _e in self.rows if o == "FAILED"]

    def metadata(self, warehouse: Warehouse) -> dict[str, Any]:
        return {
            "checks": len(self.rows),
            "checks_failed": self.failed,
            "failing_checks": MetadataValue.json(self.failing_checks),
            "checks_not_run": self.not_run,
            "report": MetadataValue.md(self.markdown),
            "html_report": warehouse.path("data_quality_report", self.partition, "report.html"),
            "html_bytes": self.html_bytes,
        }


# Which result of a check the report shows: its result for the report's 4-hour window, its
# one result (an unpartitioned check), or its latest of any partition (other partitions).
WINDOW, UNPARTITIONED, LATEST = "window", "unpartitioned", "latest"


def guardrail_checks(asset_graph: Any) -> dict[AssetCheckKey, str]:
    """Every check of `asset_graph` whose spec carries guardrail metadata, with the result
    the report shows for it."""
    scopes = {}
    for key in asset_graph.asset_check_keys:
        spec = asset_graph.get_check_spec(key)
        if GUARDRAIL_SOURCE not in (spec.metadata or {}):
            continue
        partitions = spec.partitions_def
        if partitions is None:
            scopes[key] = UNPARTITIONED
        else:
            scopes[key] = WINDOW if partitions == four_hourly_partitions else LATEST
    return scopes


def _latest_results(
    context: AssetExecutionContext, pk: str, scopes: Mapping[AssetCheckKey, str]
) -> dict[AssetCheckKey, Any]:
    storage = context.instance.event_log_storage
    filters = {
        WINDOW: PartitionKeyFilter(key=pk),
        UNPARTITIONED: PartitionKeyFilter(key=None),
        LATEST: None,
    }
    latest: dict[AssetCheckKey, Any] = {}
    for scope, partition_filter in filters.items():
        keys = [k for k, s in scopes.items() if s == scope]
        if keys:
            found = storage.get_latest_asset_check_execution_by_key(
                keys, partition_filter=partition_filter
            )
            latest.update(found)
    return latest


def _report_partition(
    context: AssetExecutionContext,
    warehouse: Warehouse,
    pk: str,
    datasets: Sequence[str],
    scopes: Mapping[AssetCheckKey, str],
    personal: Mapping[str, Collection[str]],
) -> _PartitionReport:
    latest = _latest_results(context, pk, scopes)
    rows = []
    for key in sorted(scopes, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        record = latest.get(key)
        evaluation = record.evaluation if record is not None else None
        if evaluation is None:
            outcome, severity, evidence = "not run", "", ""
        else:
            outcome = "passed" if evaluation.passed else "FAILED"
            severity = evaluation.severity.value if not evaluation.passed else ""
            evidence = "" if evaluation.passed else _evidence(dict(evaluation.metadata))
        rows.append((key.asset_key.to_user_string(), key.name, outcome, severity, evidence))
    samples = {d: _reject_sample(warehouse, d, pk, personal.get(d)) for d in datasets}
    with tempfile.TemporaryDirectory(prefix="rtcdp-dq-") as tmp:
        local = Path(tmp) / "report.html"
        local.write_text(_html(pk, rows, samples), encoding="utf-8")
        entry = warehouse.put_file("data_quality_report", pk, "report.html", local)
    return _PartitionReport(pk, rows, _markdown(pk, rows, samples), entry.size)


def _range_metadata(reports: list[_PartitionReport], warehouse: Warehouse) -> dict[str, Any]:
    """One summary for a range run: Dagster records the same metadata on every partition of
    the range, so it lists each partition's counts and failed checks; the full per-partition
    report is its HTML page."""
    lines = [
        f"### Data quality, {len(reports)} partitions "
        f"{reports[0].partition} … {reports[-1].partition}",
        "",
        "| partition | checks | failed | not run | failed checks |",
        "|---|---|---|---|---|",
    ]
    for r in reports[:RANGE_SUMMARY_ROWS]:
        failed = ", ".join(f"{a}:{c}" for a, c, o, _s, _e in r.rows if o == "FAILED")
        lines.append(f"| {r.partition} | {len(r.rows)} | {r.failed} | {r.not_run} | {failed} |")
    if len(reports) > RANGE_SUMMARY_ROWS:
        lines.append(f"\n_{len(reports) - RANGE_SUMMARY_ROWS} more partitions: see their pages_")
    return {
        "partitions": len(reports),
        "checks": sum(len(r.rows) for r in reports),
        "checks_failed": sum(r.failed for r in reports),
        # Failed checks of the whole range, with the partitions they failed in.
        "failing_checks": MetadataValue.json(
            {r.partition: r.failing_checks for r in reports if r.failing_checks}
        ),
        "checks_not_run": sum(r.not_run for r in reports),
        "report": MetadataValue.md("\n".join(lines)),
        "html_report": warehouse.path("data_quality_report", "<partition>", "report.html"),
        "html_bytes": sum(r.html_bytes for r in reports),
    }


def _reject_sample(
    warehouse: Warehouse, dataset: str, pk: str, personal: Collection[str] | None
) -> list[dict[str, Any]]:
    """The first quarantined rows; values of personal columns masked (all of them when the
    dataset's personal columns are not known)."""
    batch = next(
        iter(warehouse.iter_batches(dataset, pk, "rejects.parquet", batch_size=SAMPLE_REJECTS)),
        None,
    )
    if batch is None:
        return []
    return [
        {
            "source_file": r["source_file"],
            "line": r["line_number"],
            "reason": r["reason"],
            "column": r["column"],
            "values": mask_reject_raw(r["raw"], personal)[:200],
        }
        for r in batch.to_pylist()
    ]


def _markdown(pk: str, rows: list[tuple[str, ...]], samples: dict[str, list[dict]]) -> str:
    lines = [
        f"### Data quality, partition {pk}",
        "",
        "| asset | check | outcome | severity | evidence |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {a} | {c} | {o} | {s} | {e.replace('|', '/')} |" for a, c, o, s, e in rows]
    for dataset, sample in samples.items():
        if not sample:
            continue
        lines += ["", f"**{dataset}: quarantined rows (sample)**", ""]
        lines += ["| file | line | reason | column | values (masked) |", "|---|---|---|---|---|"]
        lines += [
            f"| {r['source_file']} | {r['line']} | {r['reason']} | {r['column']} | "
            f"{r['values'].replace('|', '/')} |"
            for r in sample
        ]
    return "\n".join(lines)


def _html(pk: str, rows: list[tuple[str, ...]], samples: dict[str, list[dict]]) -> str:
    def table(header: Sequence[str], body: list[Sequence[Any]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        cells = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
            for row in body
        )
        return f"<table><tr>{head}</tr>{cells}</table>"

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Data quality {html.escape(pk)}</title>",
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px}"
        "table{border-collapse:collapse;margin-bottom:1em}</style></head><body>",
        f"<h1>Data quality, partition {html.escape(pk)}</h1>",
        table(("asset", "check", "outcome", "severity", "evidence"), rows),
    ]
    for dataset, sample in samples.items():
        if sample:
            parts.append(f"<h2>{html.escape(dataset)}: quarantined rows (sample)</h2>")
            parts.append(
                table(
                    ("file", "line", "reason", "column", "values (masked)"),
                    [list(r.values()) for r in sample],
                )
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def last_closed_window(now: datetime) -> str:
    """The partition key of the most recent 4-hour window that has ended."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)
    start = start.replace(hour=start.hour - start.hour % 4)
    return start.strftime(PARTITION_KEY_FORMAT)


def build_data_quality_schedule(report: AssetsDefinition) -> tuple[Any, ScheduleDefinition]:
    """Every hour, the report of the last closed window: late exports and re-runs of that
    window land within the hour, and the report shows their checks too."""
    job = define_asset_job(
        "data_quality_report_job",
        selection=AssetSelection.assets(report),
        executor_def=in_process_executor,
        description="Refresh the data-quality report of the last closed 4-hour window.",
    )

    @schedule(
        name="data_quality_report_schedule",
        job=job,
        cron_schedule="45 * * * *",
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=(
            "Hourly at :45 UTC: the data-quality report of the last closed 4-hour window."
        ),
    )
    def data_quality_report_schedule(context: ScheduleEvaluationContext) -> RunRequest:
        pk = last_closed_window(context.scheduled_execution_time.astimezone(UTC))
        return RunRequest(
            run_key=f"data_quality_report:{pk}:{context.scheduled_execution_time}", partition_key=pk
        )

    return job, data_quality_report_schedule
