"""Files dropped into local zones the way an exporter leaves them: written, then settled."""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportFlow


def write_settled(path: Path, content: bytes | str, age_seconds: float = 3600) -> Path:
    """Write `content` (str as UTF-8) to `path` with a modification time `age_seconds` ago, so
    a sensor's settle window does not take it for a file still being written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    past = time.time() - age_seconds
    os.utime(path, (past, past))
    return path


def drop_campaign_export(
    root: Path, name: str, content: bytes | str, age_seconds: float = 3600, marker: bool = True
) -> Path:
    """A Campaign export file in the embedded SFTP stand-in (`<root>/campaign_sftp/export`),
    followed by its empty `<name>.done` completion marker (the default completion rule) unless
    `marker` is False."""
    path = write_settled(root / "campaign_sftp" / "export" / name, content, age_seconds)
    if marker:
        write_settled(path.with_name(f"{name}.done"), b"", age_seconds)
    return path


def drop_flow_export(
    root: Path,
    flow: CampaignExportFlow,
    content: bytes | str,
    stamp: str,
    age_seconds: float = 3600,
) -> Path:
    """The flow's export file for `stamp` (`<file_prefix>_<stamp>.csv`, e.g. stamp
    `20261123_0800`) in the embedded SFTP stand-in."""
    return drop_campaign_export(root, f"{flow.file_prefix}_{stamp}.csv", content, age_seconds)


def flow_csv(
    flow: CampaignExportFlow, rows: Iterable[Mapping[str, str]], layout_index: int = 0
) -> str:
    """`rows` (canonical field -> value) as the flow's CSV in one of its layouts."""
    layout = flow.fmt.layouts[layout_index]
    by_canonical = {v: k for k, v in layout.columns.items()}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([by_canonical[f.name] for f in flow.fmt.fields])
    for row in rows:
        writer.writerow([row.get(f.name, "") for f in flow.fmt.fields])
    return out.getvalue()


def with_completion_markers(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """`files` (name -> content) plus an empty `<name>.done` marker for each: Campaign exports
    as the default completion rule expects them."""
    return {**files, **{f"{name}.done": b"" for name in files}}
