"""Closed-loop reach: what became of an AEP audience once Campaign had it.

    campaign_audience_import_published ──┐
    broadlog (typed, all partitions)  ───┼──▶ audience_reach  (one partition per audience)
    tracking_log (typed, all partitions) ┘      Markdown funnel per export, counts only

For each export of the audience that was staged as a Campaign import (newest first, at most
`ReachConfig.max_exports`), the funnel counts people, never rows of logs:

| stage                  | meaning                                                               |
|------------------------|-----------------------------------------------------------------------|
| exported               | rows in the AEP export files (`segment_exports` rows_in)              |
| matched                | members joined to a Campaign recipient: import-file rows (any status) |
|                        | + members excluded for a suppressed address                           |
| excluded: <reason>     | `quarantine` / `denylisted` / `opted_out` (suppression list), and     |
|                        | `exited` (left the audience with the export: in the file, not a target)|
| targeted               | import-file rows that are not exited: whom Campaign is asked to reach |
| sent                   | targeted recipients with a broadLog that went out in the window:      |
|                        | status sent, or failed with failure type hard or soft (a bounce means |
|                        | the message left Campaign)                                            |
| delivered              | targeted recipients with a broadLog whose latest status is sent       |
| opened                 | delivered recipients with any trackingLog reaction to such a broadLog |
|                        | (open, click, opt-out, mirror page: every reaction implies an open,   |
|                        | as in Campaign's reports, since images may be blocked)                |
| clicked                | ... with a click: URL type email click, web page or transaction (the  |
|                        | types this platform's XDM mapping counts as `clicks`)                 |

Decisions where the pattern is silent:

- **Join.** A broadLog or trackingLog row belongs to a targeted recipient when its
  `recipient_id` is the recipient's Campaign key, or else when its `external_id` is the
  recipient's external ID (Campaign Standard exports may lack one of the two).
- **Window.** Logs count from the export time to `lookback_hours` after it (default 72 h):
  broadLog by `event_date`, trackingLog by `log_date`, and a reaction only when its broadLog was
  counted as delivered in the same window. The typed partitions read are the 4-hour windows from
  the one holding the export time to one window past the end (a log is exported in the file of
  the window after it was written at the latest). A window that has not ended yet is reported
  with `window_complete: false`: its counts can still grow.
- **Latest state of a broadLog.** Campaign rewrites a broadLog when an asynchronous bounce comes
  in, so a log exported twice counts with its latest version (by `last_modified`, then partition).
- **Incremental exports.** `matched` and `targeted` cover the whole membership after the export
  (the import file carries members over from earlier exports), so they can exceed `exported`.

The table holds counts only: no IDs, addresses or names. The same numbers, as JSON, are stored in
the warehouse at `audience_reach/<audience id>/reach.json` (what the `reach_funnel` check of
asset_checks/aep_to_campaign/reach_checks.py reads) and in the `reach` metadata entry.

No `from __future__ import annotations` here: Dagster reads the annotations of the decorated
functions at definition time.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from dagster import (
    AllPartitionMapping,
    AssetChecksDefinition,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
    in_process_executor,
)
from pydantic import Field
from tabulate import tabulate

from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.aep_to_campaign.audience_exports.datasets import (
    AUDIENCE_MEMBERSHIP,
    GROUP,
    audience_partitions,
)
from rtcdp_assets.aep_to_campaign.audience_exports.export_records import (
    read_export_record,
    read_index,
)
from rtcdp_assets.aep_to_campaign.campaign_audience_import.import_file import (
    CAMPAIGN_IMPORT,
    PUBLISHED,
    read_staged_rows,
)
from rtcdp_assets.shared.campaign_codes import BROADLOG_STATUS_LABELS, TRACKING_URL_TYPES
from rtcdp_assets.shared.partitions import PARTITION_KEY_FORMAT

AUDIENCE_REACH = "audience_reach"
SUPPRESSION_REASONS = ("quarantine", "denylisted", "opted_out")
CLICK_TYPES = frozenset(
    k for k, v in TRACKING_URL_TYPES.items() if v in {"email_click", "web", "transaction"}
)
STAGES = ("exported", "matched", "targeted", "sent", "delivered", "opened", "clicked")
_BROADLOG_COLUMNS = [
    "broadlog_id",
    "recipient_id",
    "external_id",
    "status",
    "failure_type",
    "event_date",
    "last_modified",
]
_TRACKING_COLUMNS = ["broadlog_id", "recipient_id", "external_id", "url_type", "log_date"]


class ReachConfig(Config):
    lookback_hours: int = Field(
        default=72, ge=1, description="How long after an export its sends and reactions count."
    )
    max_exports: int = Field(
        default=10, ge=1, description="Most recent exports of the audience to report."
    )


# --------------------------------------------------------------------------------------------
# Reading the typed Campaign logs
# --------------------------------------------------------------------------------------------
def window_partitions(start: datetime, end: datetime) -> list[str]:
    """4-hourly keys from the window holding `start` to one window past the one holding `end`."""
    keys = []
    t = _floor_4h(start)
    while t <= _floor_4h(end) + timedelta(hours=4):
        keys.append(t.strftime(PARTITION_KEY_FORMAT))
        t += timedelta(hours=4)
    return keys


def _floor_4h(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    return t.replace(hour=t.hour - t.hour % 4, minute=0, second=0, microsecond=0)


class LogReader:
    """Typed partitions read once per run, whatever number of exports needs them."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self._cache: dict[tuple[str, str], pd.DataFrame | None] = {}

    def read(self, dataset: str, keys: list[str], columns: list[str]) -> pd.DataFrame:
        frames = []
        for order, pk in enumerate(keys):
            if (dataset, pk) not in self._cache:
                with self.warehouse.local_copy(dataset, pk, "data.parquet") as local:
                    self._cache[(dataset, pk)] = (
                        None if local is None else pq.read_table(local, columns=columns).to_pandas()
                    )
            df = self._cache[(dataset, pk)]
            if df is not None and len(df):
                frames.append(df.assign(_partition=order))
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in [*columns, "_partition"]})
        return pd.concat(frames, ignore_index=True)


def _to_recipient(logs: pd.DataFrame, targeted: pd.DataFrame) -> pd.Series:
    """The targeted recipient_id each log row belongs to (NaN if none)."""
    keys = targeted["recipient_id"].drop_duplicates()
    by_key = pd.Series(keys.to_numpy(), index=keys.to_numpy())
    by_external = (
        targeted[targeted["external_id"] != ""]
        .drop_duplicates("external_id")
        .set_index("external_id")["recipient_id"]
    )
    key = logs["recipient_id"].astype("string").map(by_key)
    return key.fillna(logs["external_id"].map(by_external))


# --------------------------------------------------------------------------------------------
# The funnel of one export
# --------------------------------------------------------------------------------------------
@dataclass
class ExportReach:
    export_id: str
    export_time: str
    window_end: str
    window_complete: bool
    counts: dict[str, int]  # STAGES
    excluded: dict[str, int]  # reason -> count

    def as_json(self) -> dict[str, Any]:
        return {
            "export_id": self.export_id,
            "export_time": self.export_time,
            "window_end": self.window_end,
            "window_complete": self.window_complete,
            **self.counts,
            "excluded": self.excluded,
        }


def export_reach(
    warehouse: Warehouse,
    reader: LogReader,
    settings: PipelineSettings,
    audience_id: str,
    stamp: str,
    lookback_hours: int,
    now: datetime,
) -> ExportReach:
    record = read_export_record(warehouse, audience_id, stamp)
    manifest = warehouse.get_json(CAMPAIGN_IMPORT, f"{audience_id}/{stamp}", "manifest.json")
    if manifest is None:
        raise Failure(description=f"Export {stamp} of audience {audience_id} has no staged import.")
    start = datetime.fromisoformat(record["export_time"].replace("Z", "+00:00"))
    end = start + timedelta(hours=lookback_hours)

    staged = read_staged_rows(warehouse, audience_id, stamp)
    rows = (
        pd.concat([t.to_pandas() for t in staged], ignore_index=True)
        if staged
        else pd.DataFrame({c: pd.Series(dtype=object) for c in manifest["columns"]})
    )
    exited = rows["membership_status"] == "exited"
    targeted = rows[~exited][["recipient_id", "external_id"]].fillna("")
    suppressed = {r: int(manifest["excluded"].get(r, 0)) for r in SUPPRESSION_REASONS}
    # Any other exclusion reason a later version may add still shows, rather than vanishing.
    suppressed |= {r: int(n) for r, n in manifest["excluded"].items() if r not in suppressed}
    excluded = {**suppressed, "exited": int(exited.sum())}

    keys = window_partitions(start, end)
    broadlog = reader.read("broadlog", keys, _BROADLOG_COLUMNS)
    broadlog = broadlog.sort_values(
        ["last_modified", "_partition"], kind="stable", na_position="first"
    )
    broadlog = broadlog.drop_duplicates("broadlog_id", keep="last")
    broadlog = broadlog.assign(who=_to_recipient(broadlog, targeted))
    in_window = (broadlog["event_date"] >= start) & (broadlog["event_date"] <= end)
    broadlog = broadlog[in_window & broadlog["who"].notna()]
    status = broadlog["status"].astype("string").map(BROADLOG_STATUS_LABELS)
    failure = (
        broadlog["failure_type"].astype("Int64").astype("string").map(settings.failure_type_codes)
    )
    went_out = (status == "sent") | ((status == "failed") & failure.isin(["hard", "soft"]))
    delivered_logs = broadlog[status == "sent"]

    tracking = reader.read("tracking_log", keys, _TRACKING_COLUMNS)
    tracking = tracking.assign(who=_to_recipient(tracking, targeted))
    reacted = tracking[
        tracking["who"].notna()
        & (tracking["log_date"] >= start)
        & (tracking["log_date"] <= end)
        & tracking["broadlog_id"].isin(delivered_logs["broadlog_id"])
    ]
    clicks = reacted[reacted["url_type"].astype("string").isin(CLICK_TYPES)]

    counts = {
        "exported": int(record["rows_in"]),
        "matched": len(rows) + sum(suppressed.values()),
        "targeted": len(targeted),
        "sent": int(broadlog.loc[went_out, "who"].nunique()),
        "delivered": int(delivered_logs["who"].nunique()),
        "opened": int(reacted["who"].nunique()),
        "clicked": int(clicks["who"].nunique()),
    }
    return ExportReach(
        export_id=record["export_id"],
        export_time=record["export_time"],
        window_end=end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        window_complete=end <= now,
        counts=counts,
        excluded=excluded,
    )


def reach_markdown(audience_id: str, reaches: list[ExportReach], lookback_hours: int) -> str:
    if not reaches:
        return f"Audience `{audience_id}`: no export has been staged as a Campaign import yet."
    parts = [f"## Audience `{audience_id}` (look-back {lookback_hours} h)"]
    for r in reaches:
        exported = r.counts["exported"]

        def pct(n: int, base: int = exported) -> str:
            return f"{100 * n / base:.1f} %" if base else "-"

        rows: list[tuple[str, int, str]] = [
            ("exported", exported, pct(exported)),
            ("matched to a Campaign profile", r.counts["matched"], pct(r.counts["matched"])),
        ]
        rows += [(f"excluded: {k}", v, pct(v)) for k, v in r.excluded.items()]
        rows += [(s, r.counts[s], pct(r.counts[s])) for s in STAGES[2:]]
        state = "complete" if r.window_complete else "still open"
        parts.append(
            f"### Export `{r.export_id}`\n\nExported {r.export_time}; logs counted until "
            f"{r.window_end} (window {state}).\n\n"
            + tabulate(rows, headers=["stage", "people", "% of exported"], tablefmt="github")
        )
    return "\n\n".join(parts)


def staged_stamps(warehouse: Warehouse, audience_id: str, limit: int) -> list[str]:
    """Exports applied to the membership that have a staged import, newest first."""
    applied = read_index(warehouse, AUDIENCE_MEMBERSHIP, audience_id)["exports"]
    stamps = [
        s
        for s in sorted(applied, reverse=True)
        if warehouse.zone.stat(
            warehouse.path(CAMPAIGN_IMPORT, f"{audience_id}/{s}", "manifest.json")
        )
    ]
    return stamps[:limit]


def build_reach(
    warehouse: Warehouse,
    settings: PipelineSettings,
    audience_id: str,
    config: ReachConfig,
    now: datetime | None = None,
) -> list[ExportReach]:
    reader = LogReader(warehouse)
    now = now or datetime.now(UTC)
    reaches = [
        export_reach(warehouse, reader, settings, audience_id, s, config.lookback_hours, now)
        for s in staged_stamps(warehouse, audience_id, config.max_exports)
    ]
    warehouse.put_json(
        AUDIENCE_REACH,
        audience_id,
        "reach.json",
        {
            "audience_id": audience_id,
            "lookback_hours": config.lookback_hours,
            "exports": [r.as_json() for r in reaches],
        },
    )
    return reaches


@asset(
    name=AUDIENCE_REACH,
    partitions_def=audience_partitions,
    group_name=GROUP,
    kinds={"parquet"},
    deps=[
        AssetKey(PUBLISHED),
        # Sends and reactions of one export can land in any 4-hour window after it.
        AssetDep(AssetKey("broadlog"), partition_mapping=AllPartitionMapping()),
        AssetDep(AssetKey("tracking_log"), partition_mapping=AllPartitionMapping()),
    ],
    description=(
        "Closed-loop reach of each audience export: exported → matched to a Campaign profile → "
        "excluded (by reason) → targeted → sent → delivered → opened → clicked, from the typed "
        "broadLog and trackingLog partitions. Counts only."
    ),
)
def audience_reach(
    context: AssetExecutionContext,
    config: ReachConfig,
    warehouse: Warehouse,
    settings: PipelineSettings,
) -> MaterializeResult:
    audience_id = context.partition_key
    reaches = build_reach(warehouse, settings, audience_id, config)
    latest = reaches[0].counts if reaches else dict.fromkeys(STAGES, 0)
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(reaches),
            "reach": MetadataValue.md(reach_markdown(audience_id, reaches, config.lookback_hours)),
            "reach_json": MetadataValue.json([r.as_json() for r in reaches]),
            "lookback_hours": config.lookback_hours,
            **{f"latest_{stage}": latest[stage] for stage in STAGES},
            "warehouse_path": warehouse.path(AUDIENCE_REACH, audience_id, "reach.json"),
        }
    )


audience_reach_job = define_asset_job(
    "audience_reach_job",
    selection=AssetSelection.assets(audience_reach),
    executor_def=in_process_executor,
    description="Count the reach of every staged export of one audience (pick the partition).",
)


@dataclass
class ReachDefinitions:
    assets: list[AssetsDefinition]
    asset_checks: list[AssetChecksDefinition]
    jobs: list[Any]  # unresolved asset jobs


def build_reach_definitions(checks: Sequence[AssetChecksDefinition]) -> ReachDefinitions:
    """`audience_reach`, the checks passed in (asset_checks/aep_to_campaign) and its job."""
    return ReachDefinitions(
        assets=[audience_reach], asset_checks=list(checks), jobs=[audience_reach_job]
    )
