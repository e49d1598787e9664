"""What a Campaign → AEP dataset module describes: its export format, file names, folders and
XDM mapping. Every step of the flow reads this description; none of them is defined here."""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import pyarrow as pa
from dagster import AssetExecutionContext, AssetKey

from resources.drop_zones import Entry, join
from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from rtcdp_assets.shared.ingest import ExportFormat, RowRules, RowValues
from rtcdp_assets.shared.partitions import PARTITION_KEY_FORMAT
from rtcdp_assets.shared.xdm_conformance import XdmSchema

# Publication form (`aep_publication_format`) -> the published file's extension, by which an
# AEP dataflow selects the files of its data format (docs/formats.md §h3).
PUBLICATION_EXTENSIONS = {"parquet": ".parquet", "json-lines": ".json"}

XdmMapper = Callable[[pa.RecordBatch, PipelineSettings], pa.RecordBatch]
RecordKind = Literal["event", "profile"]

# The window-spanning check on every typed asset (asset_checks/campaign_to_aep/freshness.py):
# it runs on its own schedule, never in a partition's run.
EXPORT_FRESHNESS_CHECK = "export_freshness"


@dataclass(frozen=True)
class SourceFile:
    """The version of one export file a partition is built from, and where it sits now."""

    name: str
    entry: Entry
    location: Literal["incoming", "archive", "quarantine"]

    @property
    def identity(self) -> str:
        """The content identity the version arrived with (kept in the archived name, since a
        move can change an object store's ETag)."""
        if self.location == "incoming":
            return self.entry.identity
        return self.entry.name.rsplit("@", 1)[1]


@dataclass(frozen=True)
class CampaignExportDescription:
    """Everything that differs between the Campaign → AEP datasets."""

    fmt: ExportFormat
    file_prefix: str  # e.g. "broadLog" for broadLog_20261123_0800.csv.gz
    to_xdm: XdmMapper
    xdm_class: str
    xdm_field_groups: tuple[str, ...]
    record_kind: RecordKind = "event"
    description: str = ""
    upstream: tuple[AssetKey, ...] = ()
    # XDM leaf path -> source columns (canonical names) for `dagster/column_lineage`;
    # identityMap namespaces as placeholders (`identityMap.{campaign}`, see xdm_columns.py).
    column_lineage: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # XDM leaf path -> the constant it holds: leaves that no typed column feeds.
    constant_columns: Mapping[str, str] = field(default_factory=dict)
    allowed_codes: Callable[[PipelineSettings], Mapping[str, frozenset[str]]] = lambda _settings: {}
    # -- optional hooks (push_subscriptions) -----------------------------------------------
    # Row rules over several typed fields (ingest.RowRules), built from the settings.
    row_rules: Callable[[PipelineSettings], RowRules | None] = lambda _settings: None
    # Normalised values of some typed fields (ingest.RowValues), built from the settings.
    row_values: Callable[[PipelineSettings], RowValues | None] = lambda _settings: None
    # A mapper bound to state outside the partition (e.g. Campaign's quarantined push tokens),
    # built once per XDM materialization (before the files are read when both assets run);
    # `to_xdm` is used when this is None.
    bind_xdm: Callable[[AssetExecutionContext, Warehouse, PipelineSettings], XdmMapper] | None = (
        None
    )

    # -- names ---------------------------------------------------------------------------
    @property
    def dataset(self) -> str:
        return self.fmt.dataset

    @property
    def xdm_dataset(self) -> str:
        return f"{self.dataset}_xdm"

    @property
    def typed_key(self) -> AssetKey:
        return AssetKey(self.dataset)

    @property
    def xdm_key(self) -> AssetKey:
        return AssetKey(self.xdm_dataset)

    @property
    def published_name(self) -> str:
        return f"{self.dataset}_published"

    @property
    def file_pattern(self) -> re.Pattern[str]:
        return re.compile(
            rf"^{re.escape(self.file_prefix)}_(?P<date>\d{{8}})_(?P<time>\d{{4}}(?:\d{{2}})?)"
            r"(?:_[A-Za-z0-9-]+)?\.csv(?:\.gz)?$",
            re.IGNORECASE,
        )

    def export_stamp(self, file_name: str) -> str | None:
        """The export time in a file name (`20261123_0930`); split parts share it."""
        m = self.file_pattern.match(file_name)
        return f"{m['date']}_{m['time']}" if m else None

    def partition_for(self, file_name: str) -> str | None:
        """`broadLog_20261123_0930.csv` → `2026-11-23-08:00` (the 4-hour window of its time)."""
        m = self.file_pattern.match(file_name)
        if not m:
            return None
        d, t = m["date"], m["time"]
        try:  # datetime() validates the calendar; strptime is ten times slower
            when = datetime(int(d[:4]), int(d[4:6]), int(d[6:8]), int(t[:2]), int(t[2:4]))
        except ValueError:
            return None
        return f"{when:%Y-%m-%d}-{when.hour - when.hour % 4:02d}:00"

    # -- folders ---------------------------------------------------------------------------
    def archive_folder(self, settings: PipelineSettings) -> str:
        return join(settings.campaign_export_folder, "archive", self.dataset)

    def quarantine_folder(self, settings: PipelineSettings) -> str:
        return join(settings.campaign_export_folder, "quarantine", self.dataset)

    def landing_paths(
        self, settings: PipelineSettings, pk: str, form: str | None = None
    ) -> tuple[str, str]:
        """The data file (of `form`, by default the configured one) and the manifest of a
        partition in the AEP landing zone; the extension says the form (docs/formats.md §h3)."""
        compact = _compact(pk)
        folder = join(settings.aep_landing_folder, self.dataset, compact)
        extension = PUBLICATION_EXTENSIONS[form or settings.aep_publication_format]
        return (
            join(folder, f"{self.dataset}_{compact}{extension}"),
            join(folder, "_manifest.json"),
        )

    def superseded_folder(self, settings: PipelineSettings, pk: str) -> str:
        """Where a partition's file of the form no longer published goes: outside the
        dataset's landing folder, so no dataflow of the dataset reads it again."""
        return join(settings.aep_landing_folder, "_superseded", self.dataset, _compact(pk))

    def xdm_schema(self) -> XdmSchema:
        return XdmSchema.compose(self.xdm_class, list(self.xdm_field_groups))


def _compact(pk: str) -> str:
    """`2026-11-23-08:00` -> `20261123_0800`, as in the landing folder and file names."""
    return datetime.strptime(pk, PARTITION_KEY_FORMAT).strftime("%Y%m%d_%H%M")
