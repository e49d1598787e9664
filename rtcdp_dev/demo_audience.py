"""The demo's AEP audience export: one export (+ manifest) of a fixed demo audience, drawn from
the Campaign recipients the demo has loaded, written into the `aep_destination` zone where the
audience sensor finds it.

The headless demo writes it once its Campaign exports are processed. The UI demo writes the
same export while `dagster dev` runs, as soon as Campaign's side is loaded (`ready`): every
sample profiles export processed and the suppression list materialized, as AEP exports
audiences of profiles it already has, and the audience import refuses to run without the
suppression list. So the `aep_to_campaign` group and its checks have data in the UI too.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from dagster import AssetKey, DagsterInstance, build_resources

from resources import LocalDropZone
from resources.drop_zones import join
from rtcdp_dev import sample_audiences

# A fixed audience and destination name: a second demo run recognises its own export and does
# not write another one, so "nothing new" stays true.
DEMO_AUDIENCE_ID = "5e1f0c2a-7d4b-4c3e-9f8a-0b1c2d3e4f50"
DEMO_DESTINATION = "Demo_Blob"


def write_sample_audience_export(data_dir: Path, defs: Any, instance: Any) -> list[str]:
    """One AEP audience export (+ manifest) drawn from the Campaign recipients in the warehouse.

    Returns the names written; nothing when the demo audience was exported already or no
    profiles partition is materialized yet.
    """
    zone = _zone(defs)
    folder = defs.resources["audience_settings"].destination_folder
    if _exported(defs):
        return []
    recipients = _campaign_recipients(
        defs.resources["warehouse"], instance.get_materialized_partitions(AssetKey("profiles"))
    )
    if not recipients:
        return []
    in_campaign = min(200, max(2, len(recipients) // 2))
    members = sample_audiences.audience_members(
        recipients,
        in_campaign=in_campaign,
        not_in_campaign=max(1, in_campaign // 10),
        exited=max(1, in_campaign // 40),
        without_identity=max(1, in_campaign // 50),
    )
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    files = sample_audiences.export_files(
        members, destination=DEMO_DESTINATION, audience_id=DEMO_AUDIENCE_ID, when=when
    )
    manifest_name, manifest_data = sample_audiences.manifest(files, scheduled=when)
    files[manifest_name] = manifest_data
    for name, data in files.items():
        zone.write_bytes(join(folder, name), data)
    if isinstance(zone, LocalDropZone):
        # Written "a minute ago" so the sensor does not take them for files still being written.
        past = datetime.now(UTC).timestamp() - 60
        for name in files:
            os.utime(Path(zone.root) / join(folder, name), (past, past))
    else:
        # An object store sets the modification time itself: wait out the settle window (and a
        # second more, as the store's clock is not ours).
        time.sleep(defs.resources["settings"].file_settle_seconds + 1)
    return sorted(files)


def _campaign_recipients(warehouse: Any, partitions: set[str]) -> list[dict[str, str]]:
    """Latest version of each materialized recipient that has the join identity and an email."""
    columns = ["recipient_id", "external_id", "email", "first_name", "last_name", "last_modified"]
    frames = []
    for pk in sorted(partitions):
        with warehouse.local_copy("profiles", pk, "data.parquet") as local:
            if local is not None:
                frames.append(pq.read_table(local, columns=columns).to_pandas())
    if not frames:
        return []
    df = pd.concat(frames, ignore_index=True)
    df = df.sort_values(["last_modified", "recipient_id"], kind="stable")
    df = df.drop_duplicates("recipient_id", keep="last").sort_values("recipient_id")
    # Campaign external IDs must be unique to be a join identity (ambiguous ones are refused).
    df = df[df["external_id"].notna() & (df["external_id"] != "") & df["email"].notna()]
    df = df.drop_duplicates("external_id", keep=False)
    return [
        {k: "" if pd.isna(v) else str(v) for k, v in row.items()}
        for row in df[columns[:5]].to_dict("records")
    ]


def ready(data_dir: Path, instance: Any) -> bool:
    """Campaign's side is loaded: no sample profiles export waits in the SFTP export folder
    (each was archived or quarantined by its run) and the suppression list is materialized."""
    waiting = list((data_dir / "campaign_sftp" / "export").glob("profiles_*"))
    suppression = instance.get_latest_materialization_event(AssetKey("suppression_list"))
    return not waiting and suppression is not None


def audience_export_when_ready(data_dir: Path, defs: Any, instance: Any) -> list[str]:
    """The demo's audience export once Campaign's side is loaded (`ready`); the names
    written, nothing before (or when it was written already)."""
    if not ready(data_dir, instance):
        return []
    return write_sample_audience_export(data_dir, defs, instance)


def write_when_ready(
    data_dir: Path,
    stopped: Callable[[], bool],
    poll_seconds: float = 10.0,
    report: Callable[[str], None] = print,
) -> threading.Thread:
    """For the UI demo: a daemon thread that polls (`poll_seconds`) until the audience export
    is written or `stopped()` (the UI has exited)."""

    def watch() -> None:
        # Imported here on purpose, like the headless run: loading the definitions builds the
        # resources from the environment the demo has just set.
        from rtcdp_assets.definitions import defs

        instance = DagsterInstance.get()
        while not stopped():
            written = audience_export_when_ready(data_dir, defs, instance)
            if written or _exported(defs):
                if written:
                    report(f"AEP audience export written: {', '.join(written)}")
                return
            time.sleep(poll_seconds)

    thread = threading.Thread(target=watch, name="demo-audience-export", daemon=True)
    thread.start()
    return thread


def _zone(defs: Any) -> Any:
    """The configured AEP destination zone (a local folder or a bucket), EnvVars resolved."""
    with build_resources({"zone": defs.resources["aep_destination"]}) as built:
        return built.zone


def _exported(defs: Any) -> bool:
    """The demo audience's export is in the zone already (an earlier demo wrote it)."""
    folder = defs.resources["audience_settings"].destination_folder
    prefix = f"{DEMO_DESTINATION}_{DEMO_AUDIENCE_ID}_"
    return any(e.name.startswith(prefix) for e in _zone(defs).list(folder))
