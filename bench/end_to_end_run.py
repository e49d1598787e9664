"""What `bench_end_to_end.py` measures inside one fresh process: a flow's sensor tick and the
run it requests, on the embedded default; or the plain pyarrow baseline on the same file.

The run is launched the way the demo's headless mode and `dagster dev`'s run worker execute
it: the sensor evaluated once with the code location's resources, then each requested run
executed in this process against the instance (`execute_in_process`, the in-process executor
the definitions set), on a SQLite instance in the data directory. Importing the definitions
happens before the clock starts; what a fresh run worker pays for that import is measured
apart (bench_definitions.py).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from bench.end_to_end_inputs import AUDIENCE_FLOW, instance_home

PUBLICATION_FORMAT_VARIABLE = "RTCDP_AEP_PUBLICATION_FORMAT"
PUBLICATION_FORMAT_FIELD = "aep_publication_format"
AUDIENCE_SENSOR = "aep_audience_export_sensor"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler:
    """Samples the process's resident memory every `interval` seconds in a thread, so a
    step's own peak can be told apart from the process's (VmHWM only gives the latter)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.samples: list[tuple[float, float]] = []
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.samples.append((time.time(), int(line.split()[1]) / 1024))
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_between(self, start: float, end: float) -> float | None:
        inside = [rss for at, rss in self.samples if start <= at <= end]
        return max(inside) if inside else None


def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sensor_name(flow: str) -> str:
    return AUDIENCE_SENSOR if flow == AUDIENCE_FLOW else f"{flow}_export_sensor"


def supports_publication_format() -> bool:
    from resources.settings import PipelineSettings

    return PUBLICATION_FORMAT_FIELD in PipelineSettings.model_fields


def run_flow(flow: str, root: Path, publication_format: str | None = None) -> dict[str, Any]:
    """Sensor tick → every run it requests → the published file, timed; see the module doc."""
    os.environ["RTCDP_ENV"] = "embedded"
    os.environ["RTCDP_DATA_DIR"] = str(root)
    if publication_format:
        os.environ[PUBLICATION_FORMAT_VARIABLE] = publication_format
    load_start = time.perf_counter()
    from dagster import DagsterInstance

    from rtcdp_assets.definitions import defs

    defs.get_repository_def().load_all_definitions()
    load_seconds = time.perf_counter() - load_start
    overrides = _settings_override(defs, publication_format)
    settings = overrides.get("settings", defs.resources["settings"])
    with DagsterInstance.local_temp(tempdir=str(instance_home(root))) as instance:
        sensor_def = defs.resolve_sensor_def(sensor_name(flow))
        rss_before_mib = current_rss_mib()
        with RssSampler() as rss:
            wall_start, start = time.time(), time.perf_counter()
            requests = _tick(sensor_def, defs, instance, overrides)
            tick_seconds = time.perf_counter() - start
            runs = [_execute(defs, sensor_def, r, instance, overrides) for r in requests]
            published = _published_files(flow, root, settings)
            e2e_done = time.perf_counter() - start
        steps = [_run_steps(instance, run["run_id"]) for run in runs]
        for run_steps in steps:
            for step in run_steps["steps"]:
                step["peak_rss_mib"] = rss.peak_between(step.pop("start"), step.pop("end"))
    appeared = max((p["mtime"] for p in published), default=None)
    return {
        "flow": flow,
        "publication_format": _effective_format(flow, settings),
        "load_defs_seconds": load_seconds,
        "tick_seconds": tick_seconds,
        "requests": len(requests),
        "runs": [{**run, **s} for run, s in zip(runs, steps, strict=True)],
        "published": [p["path"] for p in published],
        "published_bytes": sum(p["size"] for p in published),
        # The published file's appearance (its last write), from the tick's start.
        "published_after_seconds": None if appeared is None else appeared - wall_start,
        "e2e_seconds": e2e_done,
        "peak_rss_mib": peak_rss_mib(),
        # What the process held before the tick: the definitions, Dagster, pyarrow.
        "rss_before_tick_mib": rss_before_mib,
    }


def _effective_format(flow: str, settings: Any) -> str:
    if flow == AUDIENCE_FLOW:
        return "Campaign import CSV"
    return str(getattr(settings, PUBLICATION_FORMAT_FIELD, "json-lines (only form)"))


def _settings_override(defs: Any, publication_format: str | None) -> dict[str, Any]:
    """The settings resource with the chosen publication form, when the setting exists and the
    environment did not already set it."""
    settings = defs.resources["settings"]
    if not publication_format or not supports_publication_format():
        return {}
    if getattr(settings, PUBLICATION_FORMAT_FIELD) == publication_format:
        return {}
    from resources.settings import PipelineSettings

    values = {name: getattr(settings, name) for name in PipelineSettings.model_fields}
    values[PUBLICATION_FORMAT_FIELD] = publication_format
    return {"settings": PipelineSettings(**values)}


def _tick(sensor_def: Any, defs: Any, instance: Any, overrides: dict[str, Any]) -> list[Any]:
    """One sensor evaluation as the daemon does it: run requests, dynamic partitions, runless
    check results recorded."""
    from dagster import SensorResult, build_sensor_context

    resources = {k: overrides.get(k, defs.resources[k]) for k in sensor_def.required_resource_keys}
    with build_sensor_context(instance=instance, resources=resources) as context:
        result = sensor_def(context)
    if not isinstance(result, SensorResult):
        return list(result or [])
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    for event in result.asset_events or []:
        instance.report_runless_asset_event(event)
    return list(result.run_requests or [])


def _execute(
    defs: Any, sensor_def: Any, request: Any, instance: Any, overrides: dict[str, Any]
) -> dict[str, Any]:
    from dagster import partition_loading_context

    job = defs.resolve_job_def(sensor_def.job_name)
    with partition_loading_context(dynamic_partitions_store=instance):
        outcome = job.execute_in_process(
            partition_key=request.partition_key,
            instance=instance,
            run_config=QUIET,
            tags=request.tags,
            raise_on_error=False,
            resources=overrides or None,
        )
    checks = outcome.get_asset_check_evaluations()
    return {
        "run_id": outcome.run_id,
        "job": job.name,
        "partition": request.partition_key,
        "success": outcome.success,
        "checks_passed": sorted(c.check_name for c in checks if c.passed),
        "checks_failed": sorted(
            f"{c.check_name} ({c.severity.value})" for c in checks if not c.passed
        ),
    }


def _run_steps(instance: Any, run_id: str) -> dict[str, Any]:
    """Each step's STEP_START → STEP_SUCCESS/STEP_FAILURE and the run's RUN_START → end, from
    the run's event log."""
    from dagster import DagsterEventType

    ends = (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE)
    step_ends = (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE)
    started: dict[str, float] = {}
    steps: list[dict[str, Any]] = []
    run_start = run_end = None
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type
        if kind == DagsterEventType.RUN_START:
            run_start = entry.timestamp
        elif kind in ends:
            run_end = entry.timestamp
        elif kind == DagsterEventType.STEP_START:
            started[entry.step_key] = entry.timestamp
        elif kind in step_ends and entry.step_key in started:
            steps.append(
                {
                    "step": entry.step_key,
                    "seconds": entry.timestamp - started[entry.step_key],
                    "ok": kind == DagsterEventType.STEP_SUCCESS,
                    "start": started[entry.step_key],
                    "end": entry.timestamp,
                }
            )
    total = None if run_start is None or run_end is None else run_end - run_start
    return {"steps": steps, "run_seconds": total}


def _published_files(flow: str, root: Path, settings: Any) -> list[dict[str, Any]]:
    """What the run published: the AEP landing folder (Campaign flows) or the Campaign SFTP
    import folder (the audience flow), every file in it."""
    if flow == AUDIENCE_FLOW:
        folder = root / "campaign_sftp" / settings.campaign_import_folder
    else:
        folder = root / "aep_landing" / settings.aep_landing_folder
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
    return [
        {"path": str(p.relative_to(root)), "mtime": p.stat().st_mtime, "size": p.stat().st_size}
        for p in files
    ]


def plain_pyarrow(flow: str, source: Path, out: Path) -> dict[str, Any]:
    """The baseline: `pyarrow.csv.read_csv` with declared column types (integers int64,
    timestamps timestamp[us], the rest text) + `write_table` (zstd), nothing else."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    types = _baseline_types(flow)
    start, cpu = time.perf_counter(), time.process_time()
    table = pacsv.read_csv(source, convert_options=pacsv.ConvertOptions(column_types=types))
    pq.write_table(table, out / "plain.parquet", compression="zstd")
    return {
        "rows": table.num_rows,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
        "peak_rss_mib": peak_rss_mib(),
        "types": {k: str(v) for k, v in types.items() if v != pa.string()},
    }


def _baseline_types(flow: str) -> dict[str, Any]:
    import pyarrow as pa

    if flow == AUDIENCE_FLOW:
        from bench.bench_audience_match import AUDIENCE
        from rtcdp_dev.sample_audiences import columns_for

        names = columns_for(AUDIENCE)
        types = {name: pa.string() for name in names}
        types[names[-1]] = pa.timestamp("us", tz="UTC")
        return types
    from rtcdp_dev.sample_data import DATASET_LAYOUTS, FLOWS

    kinds = {f.name: f.kind for f in FLOWS[flow].fmt.fields}
    arrow = {"int": pa.int64(), "timestamp": pa.timestamp("us")}
    layout = DATASET_LAYOUTS[flow]["classic"]
    return {src: arrow.get(kinds[dst], pa.string()) for src, dst in layout.columns.items()}
