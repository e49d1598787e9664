"""The datasets registry, and writing the files of a range of windows to disk."""

from __future__ import annotations

import gzip as gzip_module
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol, cast

from rtcdp_dev.sample_data.common import GeneratedFile, window_starts
from rtcdp_dev.sample_data.generation import (
    broadlog_file_name,
    dataset_file_name,
    generate_broadlog,
    generate_non_deliverables,
    generate_preferences,
    generate_profiles,
    generate_push_subscriptions,
    generate_tracking_log,
)
from rtcdp_dev.sample_data.pipeline import FLOWS, CampaignExportFlow


class WindowGenerator(Protocol):
    def __call__(
        self,
        window_start: datetime,
        rows: int,
        *,
        seed: int,
        layout: str = ...,
        defect_rate: float = ...,
        org_unit: str = ...,
        now: datetime | None = ...,
    ) -> GeneratedFile: ...


class ReferringGenerator(WindowGenerator, Protocol):
    """A generator whose files refer to earlier windows' files (`Dataset.reaches_back`)."""

    def __call__(
        self,
        window_start: datetime,
        rows: int,
        *,
        seed: int,
        layout: str = ...,
        defect_rate: float = ...,
        org_unit: str = ...,
        now: datetime | None = ...,
        history_windows: int = ...,
    ) -> GeneratedFile: ...


@dataclass(frozen=True)
class Dataset:
    """A generated Campaign export: how one window's file is made and named."""

    name: str
    generate: WindowGenerator
    file_name: Callable[..., str]  # (window_start, *, gzip) -> file name
    description: str
    flow: CampaignExportFlow  # the pipeline flow that ingests the files
    # Earlier windows a file may refer to. write_dataset_files never lets a file refer to a
    # window before the first one it writes: those files would be missing downstream.
    reaches_back: int = 0


def _file_namer(dataset: str) -> Callable[..., str]:
    def file_name(window_start: datetime, *, gzip: bool = False) -> str:
        return dataset_file_name(dataset, window_start, gzip=gzip)

    return file_name


TRACKING_HISTORY_WINDOWS = 5  # reactions up to a day after the send, within one CLI run

DATASETS: dict[str, Dataset] = {
    "broadlog": Dataset(
        name="broadlog",
        generate=generate_broadlog,
        file_name=broadlog_file_name,
        description="Campaign delivery logs (nms:broadLogRcp), broadLog_YYYYMMDD_HHMM.csv",
        flow=FLOWS["broadlog"],
    ),
    "tracking_log": Dataset(
        name="tracking_log",
        generate=generate_tracking_log,
        file_name=_file_namer("tracking_log"),
        description="opens, clicks, opt-outs and mirror pages (nms:trackingLogRcp) of the "
        "broadLog messages sent in the window and the day before it, "
        "trackingLog_YYYYMMDD_HHMM.csv",
        flow=FLOWS["tracking_log"],
        reaches_back=TRACKING_HISTORY_WINDOWS,
    ),
    "non_deliverables": Dataset(
        name="non_deliverables",
        generate=generate_non_deliverables,
        file_name=_file_namer("non_deliverables"),
        description="quarantined emails and mobile numbers (nms:address), "
        "nonDeliverables_YYYYMMDD_HHMM.csv",
        flow=FLOWS["non_deliverables"],
    ),
    "preferences": Dataset(
        name="preferences",
        generate=generate_preferences,
        file_name=_file_namer("preferences"),
        description="recipients' opt-out flags (nms:recipient blackList*), "
        "preferences_YYYYMMDD_HHMM.csv",
        flow=FLOWS["preferences"],
    ),
    "profiles": Dataset(
        name="profiles",
        generate=generate_profiles,
        file_name=_file_namer("profiles"),
        description="recipient extract (nms:recipient) covering the window's broadLog "
        "recipients, profiles_YYYYMMDD_HHMM.csv",
        flow=FLOWS["profiles"],
    ),
    "push_subscriptions": Dataset(
        name="push_subscriptions",
        generate=generate_push_subscriptions,
        file_name=_file_namer("push_subscriptions"),
        description="mobile-app push subscriptions (nms:appSubscriptionRcp) of pool "
        "recipients, appSubscriptions_YYYYMMDD_HHMM.csv",
        flow=FLOWS["push_subscriptions"],
    ),
}


def _write_atomically(path: Path, data: bytes) -> None:
    # The export sensor must never see half a file: write beside it under a name that does
    # not match the export pattern, then rename.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def gzip_bytes(content: bytes, compresslevel: int = 6) -> bytes:
    """Deterministic gzip: mtime 0 and no embedded file name."""
    return gzip_module.compress(content, compresslevel=compresslevel, mtime=0)


def write_dataset_files(
    dataset: str,
    out_dir: Path,
    start: datetime,
    end: datetime,
    rows_per_file: int,
    *,
    seed: int,
    layout: str = "classic",
    gzip: bool = False,
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    export_folder: str = "export",
) -> list[GeneratedFile]:
    """One file per 4-hour window starting in [floor(start), end), in <out_dir>/<export_folder>.

    Files of different datasets written with the same arguments fit together: trackingLog
    reacts to the broadLog messages of its window and of up to `Dataset.reaches_back`
    earlier windows of the range (so a trackingLog file depends on where its window sits in
    the range), and profiles cover every recipient of the window's broadLog.
    """
    spec = DATASETS[dataset]
    folder = Path(out_dir) / export_folder
    folder.mkdir(parents=True, exist_ok=True)
    written: list[GeneratedFile] = []
    for i, ws in enumerate(window_starts(start, end)):
        if spec.reaches_back:
            generated = cast(ReferringGenerator, spec.generate)(
                ws,
                rows_per_file,
                seed=seed,
                layout=layout,
                defect_rate=defect_rate,
                org_unit=org_unit,
                now=now,
                history_windows=min(spec.reaches_back, i),
            )
        else:
            generated = spec.generate(
                ws,
                rows_per_file,
                seed=seed,
                layout=layout,
                defect_rate=defect_rate,
                org_unit=org_unit,
                now=now,
            )
        name = spec.file_name(ws, gzip=gzip)
        path = folder / name
        _write_atomically(path, gzip_bytes(generated.content) if gzip else generated.content)
        # Then the completion marker, as a Campaign workflow's second File transfer writes it
        # (the default completion rule, docs/deployment.md "Completion").
        path.with_name(f"{name}.done").write_bytes(b"")
        written.append(replace(generated, name=name, path=path))
    return written


def write_broadlog_files(
    out_dir: Path,
    start: datetime,
    end: datetime,
    rows_per_file: int,
    *,
    seed: int,
    layout: str = "classic",
    gzip: bool = False,
    defect_rate: float = 0.005,
    org_unit: str = "default",
    now: datetime | None = None,
    export_folder: str = "export",
) -> list[GeneratedFile]:
    """broadLog files for every 4-hour window starting in [floor(start), end)."""
    return write_dataset_files(
        "broadlog",
        out_dir,
        start,
        end,
        rows_per_file,
        seed=seed,
        layout=layout,
        gzip=gzip,
        defect_rate=defect_rate,
        org_unit=org_unit,
        now=now,
        export_folder=export_folder,
    )
