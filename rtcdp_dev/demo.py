"""The newcomer's demo on the embedded default (`scripts/demo.sh`).

Writes sample Campaign exports into the local stand-in for the Campaign SFTP server (and a web
shop's order export and a loyalty programme's member export into the customer_source zone, for
the offline data flow to AEP), then either

- starts the Dagster UI (`dagster dev`) on 127.0.0.1:3000 with the sensors on, so files become
  partitions, check results and published files while you watch; once the sensors have loaded
  Campaign's side (every profiles export processed, the suppression list built), the demo
  writes the same sample AEP audience export as `--headless` (rtcdp_dev/demo_audience.py), and
  the audience sensor takes it from there; or
- with `--headless`, does what the sensor daemon would do once: evaluates every Campaign export
  sensor (push subscriptions last, after the quarantine list they are checked against), runs
  each requested partition and refreshes the suppression list; then writes one
  sample AEP audience export (members drawn from the Campaign recipients just materialized:
  most in Campaign, some unknown to Campaign, a few exited, a few without the join identity,
  plus a manifest) into the `aep_destination` zone, evaluates the audience sensor the same way
  and runs its request, so the AEP → Campaign import file lands in the SFTP import folder;
  then ticks `destination_export_sensor` (the export's dry run → destination files in the
  `aep_landing` zone) and runs `audience_reach_schedule` once (reach of the audience).
  It prints a summary (asset, partition, rows, checks passed, failed and warned) and exits
  non-zero if a run or a check of ERROR severity failed. A check failing with WARN severity
  (the sample's deliberate rejects above `reject_rate`'s 1 %, say) is listed as a warning.

Everything lives under `--data-dir` (default `.rtcdp/demo`): the drop zones, the warehouse,
and `dagster_home/` with the SQLite instance, so the UI afterwards shows the headless runs too.

`--audience-zone s3` puts the AEP destination (where the audience export arrives) in an S3
bucket instead of a local folder: `AEP_DESTINATION_BUCKET` (default `rtcdp-aep-destination`)
through `AWS_ENDPOINT_URL` with the AWS credentials of the environment; without an endpoint the
demo starts moto's S3 server on 127.0.0.1 itself (placeholder keys, an empty bucket, nothing
kept after the demo) and stops it at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckSeverity,
    AssetKey,
    AutomationConditionSensorDefinition,
    DagsterInstance,
    SensorResult,
    build_schedule_context,
    build_sensor_context,
    materialize,
    partition_loading_context,
)

from resources.settings import PARTITIONS_START_VARIABLE
from rtcdp_dev import demo_audience
from rtcdp_dev.demo_audience import write_sample_audience_export
from rtcdp_dev.sample_data import DATASETS, write_dataset_files
from rtcdp_dev.sample_data.loyalty_members import write_sample_members
from rtcdp_dev.sample_data.offline_orders import write_sample_orders
from rtcdp_dev.services import MotoS3Server

ROOT = Path(__file__).resolve().parents[1]
# The summary is the demo's output; Dagster's step-by-step event log stays in the instance
# (and the UI) instead of the terminal.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# SQLite storage under dagster_home (the default). Two cores: at most three runs at once, and
# one run at a time per audience so its exports apply in order. No outside network for
# telemetry to reach. A run that fails (an SFTP connection cut mid-file) is retried by the
# daemon: the sensor requests each file version once, so the retry is what finishes it.
# The `campaign_sftp` pool (the steps that open SFTP sessions to Campaign) is limited as in
# deploy/kubernetes/dagster.yaml, smaller: the UI's Concurrency page shows it with its limit.
DEMO_SFTP_POOL_LIMIT = 2
DEMO_INSTANCE_CONFIG = f"""\
telemetry:
  enabled: false
nux:
  enabled: false
run_retries:
  enabled: true
  max_retries: 2
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
concurrency:
  runs:
    max_concurrent_runs: 3
    tag_concurrency_limits:
      - key: "rtcdp/audience_id"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    default_limit: {DEMO_SFTP_POOL_LIMIT}
    granularity: op
"""


@dataclass
class RunSummary:
    partition: str
    job: str
    success: bool
    rows: dict[str, int] = field(default_factory=dict)
    checks_passed: list[str] = field(default_factory=list)
    checks_failed: list[str] = field(default_factory=list)  # failed with ERROR severity
    checks_warned: list[str] = field(default_factory=list)  # failed with WARN severity
    error: str = ""
    # Records per delivery channel of an asset (`rows_by_channel` metadata: XDM events).
    channels: dict[str, dict[str, int]] = field(default_factory=dict)
    # One line per asset saying what activation did (files per destination, dry run, reach).
    details: dict[str, str] = field(default_factory=dict)

    def add_check(self, name: str, passed: bool, severity: AssetCheckSeverity) -> None:
        if passed:
            self.checks_passed.append(name)
        elif severity == AssetCheckSeverity.WARN:
            self.checks_warned.append(name)
        else:
            self.checks_failed.append(name)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="rtcdp-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--headless", action="store_true", help="process once, print, exit")
    p.add_argument("--data-dir", type=Path, default=ROOT / ".rtcdp" / "demo")
    p.add_argument("--windows", type=int, default=6, help="4-hour windows of sample data")
    p.add_argument("--rows-per-file", type=int, default=2000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--port", type=int, default=3000, help="UI port (not headless)")
    p.add_argument("--fresh", action="store_true", help="wipe --data-dir first")
    p.add_argument(
        "--audience-zone",
        choices=["local", "s3"],
        default="local",
        help="where AEP's audience export arrives (s3: see above)",
    )
    return p.parse_args(argv)


@contextlib.contextmanager
def audience_zone(kind: str, data_dir: Path) -> Iterator[str]:
    """Point the AEP destination role at `kind` for this process (and `dagster dev`); yields
    where it is, for the summary."""
    if kind != "s3":
        yield str(data_dir / "aep_destination")
        return
    os.environ["AEP_DESTINATION_ZONE"] = "s3"
    bucket = os.environ.setdefault("AEP_DESTINATION_BUCKET", "rtcdp-aep-destination")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    if os.environ.get("AWS_ENDPOINT_URL"):
        yield f"s3 bucket {bucket} at {os.environ['AWS_ENDPOINT_URL']}"
        return
    # The same S3 server the integration tests use (rtcdp_dev.services).
    with MotoS3Server(workdir=data_dir / "moto") as server:
        # moto's placeholder keys, so real AWS credentials in the environment are never sent
        # to the local server.
        os.environ.update(server.credentials_env())
        os.environ["AWS_ENDPOINT_URL"] = server.endpoint_url
        server.create_bucket(bucket)
        try:
            yield f"s3 bucket {bucket} at {server.endpoint_url} (moto, stopped at the end)"
        finally:
            del os.environ["AWS_ENDPOINT_URL"]


def _prepare(args: argparse.Namespace) -> Path:
    data_dir: Path = args.data_dir.resolve()
    if args.fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    home = data_dir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    # Rewritten on every start: a demo folder from an older version gets the current config.
    config.write_text(DEMO_INSTANCE_CONFIG)
    os.environ["RTCDP_ENV"] = "embedded"
    os.environ["RTCDP_DATA_DIR"] = str(data_dir)
    os.environ["DAGSTER_HOME"] = str(home)
    # For `dagster dev`: partitions from a few days before the sample data, not a year of
    # empty windows (this process imported the default start, which lies before it).
    os.environ.setdefault(
        PARTITIONS_START_VARIABLE, demo_partitions_start(data_dir, args.windows, datetime.now(UTC))
    )
    return data_dir


DAYS_BEFORE_SAMPLE_DATA = 3


def demo_partitions_start(data_dir: Path, windows: int, now: datetime) -> str:
    """The demo's first partition: `DAYS_BEFORE_SAMPLE_DATA` days before its first sample
    window, kept in `<data-dir>/partitions_start` so a later demo on the same data agrees."""
    saved = data_dir / "partitions_start"
    if saved.exists():
        return saved.read_text().strip()
    first = sample_window_range(now, windows)[0] - timedelta(days=DAYS_BEFORE_SAMPLE_DATA)
    value = first.strftime("%Y-%m-%d-%H:%M")
    saved.write_text(value + "\n")
    return value


def sample_window_range(now: datetime, windows: int) -> tuple[datetime, datetime]:
    """(start, end) of the `windows` closed 4-hour windows before `now`."""
    end = now.replace(minute=0, second=0, microsecond=0, hour=now.hour - now.hour % 4)
    return end - timedelta(hours=4 * windows), end


def write_sample_data(data_dir: Path, windows: int, rows_per_file: int, seed: int) -> list[str]:
    now = datetime.now(UTC)
    start, end = sample_window_range(now, windows)
    written: list[str] = []
    for dataset in DATASETS:
        files = write_dataset_files(
            dataset,
            data_dir / "campaign_sftp",
            start=start,
            end=end,
            rows_per_file=rows_per_file,
            seed=seed,
            now=now,
        )
        written += [f.name for f in files]
    # The web shop's orders and the loyalty programme's members of the last sample day, for the
    # offline data flow to AEP (rtcdp_assets/customer_to_aep, mappings/offline_orders.yaml and
    # mappings/loyalty_members.yaml).
    last_day = (end - timedelta(seconds=1)).date()
    orders = write_sample_orders(data_dir / "customer_source", last_day)
    members = write_sample_members(data_dir / "customer_source", last_day)
    # Files written a moment ago are "still being written" for the sensor's settle window.
    past = now.timestamp() - 60
    for path in [*(data_dir / "campaign_sftp").rglob("*"), orders, members]:
        if path.is_file():
            os.utime(path, (past, past))
    return written


AUDIENCE_SENSOR = "aep_audience_export_sensor"
# After the audience import: its destination files, then reach (what the schedule would run).
DESTINATION_SENSOR = "destination_export_sensor"
REACH_SCHEDULE = "audience_reach_schedule"


def run_headless(data_dir: Path) -> list[RunSummary]:
    """One sensor evaluation per sensor, then each requested run, in this process."""
    # Imported here on purpose: loading the definitions builds the resources from the
    # environment (RTCDP_ENV, RTCDP_DATA_DIR, AEP_DESTINATION_ZONE, ...) that `_prepare` and
    # `audience_zone` set first; `dagster dev` loads them in its own process.
    from rtcdp_assets.definitions import defs

    instance = DagsterInstance.get()
    summaries: list[RunSummary] = []
    for sensor_def in defs.sensors or []:
        # The audience sensor goes last: its export is drawn from the profiles processed here.
        # Automation-condition sensors only run inside the daemon; what they would request
        # (the suppression list) is materialized below instead.
        if sensor_def.name in (AUDIENCE_SENSOR, DESTINATION_SENSOR) or isinstance(
            sensor_def, AutomationConditionSensorDefinition
        ):
            continue
        summaries += _tick_and_run(sensor_def, defs, instance, data_dir)
    if summaries:
        # What the automation would do next: refresh the suppression list from the new
        # partitions (the audience import refuses to run without it).
        summaries.append(_materialize_unpartitioned("suppression_list", defs, instance))
    write_sample_audience_export(data_dir, defs, instance)
    summaries += _tick_and_run(defs.resolve_sensor_def(AUDIENCE_SENSOR), defs, instance, data_dir)
    activation = _tick_and_run(
        defs.resolve_sensor_def(DESTINATION_SENSOR), defs, instance, data_dir
    )
    summaries += activation
    if activation:
        # Reach of the audience just activated; a second demo run with nothing new runs nothing
        # (the schedule itself recounts every 4 hours as sends, opens and clicks come in).
        summaries += _run_schedule(defs.resolve_schedule_def(REACH_SCHEDULE), defs, instance)
    if summaries:
        # What the hourly ledger schedule would do: every file version and its fate, checked.
        ledger_job = defs.resolve_job_def("file_ledger_job")
        outcome = ledger_job.execute_in_process(
            instance=instance, run_config=QUIET, raise_on_error=False
        )
        summaries.append(_summarize(outcome, partition="-", job=ledger_job.name))
    return summaries


def _tick_and_run(sensor_def: Any, defs: Any, instance: Any, data_dir: Path) -> list[RunSummary]:
    """One tick the way the daemon does it: partitions, runless check results, runs, cursor."""
    state_key = f"demo-cursor-{sensor_def.name}"
    cursor_file = data_dir / "dagster_home" / f"{state_key}.json"
    cursor = cursor_file.read_text() if cursor_file.exists() else None
    resources = {k: defs.resources[k] for k in sensor_def.required_resource_keys}
    with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
        result = sensor_def(ctx)
    if not isinstance(result, SensorResult) or not result.run_requests:
        return []
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    summaries = []
    for event in result.asset_events or []:
        instance.report_runless_asset_event(event)
        check = f"{event.asset_key.to_user_string()}:{event.check_name}"
        summary = RunSummary(partition="-", job=sensor_def.name, success=True)
        summary.add_check(check, event.passed, event.severity)
        summaries.append(summary)
    # Dynamic partition keys (audiences) are resolved against the instance, as in the daemon.
    with partition_loading_context(dynamic_partitions_store=instance):
        for request in result.run_requests:
            # A sensor of several jobs (late_suppression_sensor) names the job in the request.
            job = defs.resolve_job_def(request.job_name or sensor_def.job_name)
            summaries.append(_execute(job, request, instance))
    if result.cursor:
        cursor_file.write_text(result.cursor)
    return summaries


def _run_schedule(schedule_def: Any, defs: Any, instance: Any) -> list[RunSummary]:
    """One tick of `schedule_def` now, and the runs it asks for."""
    now = datetime.now(UTC)
    with build_schedule_context(instance=instance, scheduled_execution_time=now) as ctx:
        requests = schedule_def(ctx)
    job = defs.resolve_job_def(schedule_def.job_name)
    with partition_loading_context(dynamic_partitions_store=instance):
        return [_execute(job, request, instance) for request in requests]


def _materialize_unpartitioned(name: str, defs: Any, instance: Any) -> RunSummary:
    asset_def = defs.resolve_assets_def(AssetKey(name))
    # resolved asset definitions already carry the code location's resources
    outcome = materialize([asset_def], instance=instance, raise_on_error=False, run_config=QUIET)
    return _summarize(outcome, partition="-", job=name)


def _execute(job: object, request: object, instance: object) -> RunSummary:
    pk = request.partition_key  # type: ignore[attr-defined]
    outcome = job.execute_in_process(  # type: ignore[attr-defined]
        partition_key=pk,
        instance=instance,
        run_config=QUIET,
        tags=request.tags,
        # A request for part of a job (late_quarantine_sensor: map and publish again only).
        asset_selection=request.asset_selection,  # type: ignore[attr-defined]
        raise_on_error=False,  # type: ignore[attr-defined]
    )
    # A check-only run (orphan_recheck_job) carries its partition as a tag.
    pk = pk or request.tags.get("dagster/partition", "-")  # type: ignore[attr-defined]
    return _summarize(outcome, partition=pk, job=job.name)  # type: ignore[attr-defined]


def _summarize(outcome: Any, partition: str, job: str) -> RunSummary:
    summary = RunSummary(partition=partition, job=job, success=outcome.success)
    for mat in outcome.get_asset_materialization_events():
        meta = mat.materialization.metadata
        rows = meta.get("dagster/row_count")
        summary.rows[mat.asset_key.to_user_string()] = int(rows.value) if rows else 0
        by_channel = meta.get("rows_by_channel")
        if by_channel is not None:
            summary.channels[mat.asset_key.to_user_string()] = dict(by_channel.value)
        detail = activation_detail(mat.asset_key.to_user_string(), meta)
        if detail:
            summary.details[mat.asset_key.to_user_string()] = detail
    for ev in outcome.get_asset_check_evaluations():
        name = f"{ev.asset_key.to_user_string()}:{ev.check_name}"
        summary.add_check(name, ev.passed, ev.severity)
        summary.rows.setdefault(ev.asset_key.to_user_string(), 0)
    if not outcome.success:
        failure = next(
            (e for e in outcome.all_events if e.event_type_value == "STEP_FAILURE"), None
        )
        summary.error = str(failure.event_specific_data.error.message) if failure else "failed"
    return summary


def activation_detail(asset_name: str, meta: Any) -> str:
    """Counts of what an activation asset did, for the summary (no member data)."""
    if asset_name == "destination_exports_published" and "files" in meta:
        files = [f"{f['path'].split('/')[1]} {f['rows']}" for f in meta["files"].value]
        return "files: " + ", ".join(files)
    if asset_name == "activation_dry_run" and "counts" in meta:
        return "dry run: " + "; ".join(
            f"{d} " + " ".join(f"{o} {sum(r.values())}" for o, r in by.items())
            for d, by in meta["counts"].value.items()
        )
    if asset_name == "audience_reach" and "latest_exported" in meta:
        stages = ("exported", "matched", "targeted", "sent", "delivered", "opened", "clicked")
        return "reach: " + ", ".join(f"{s} {meta[f'latest_{s}'].value}" for s in stages)
    return ""


def print_summary(summaries: list[RunSummary]) -> None:
    print(f"{'asset':<36} {'partition':<36} {'rows':>8}  checks")
    for s in sorted(summaries, key=lambda s: (s.job, s.partition)):
        for asset_name, rows in s.rows.items():  # in materialization order
            passed = sum(c.startswith(f"{asset_name}:") for c in s.checks_passed)
            failed = sum(c.startswith(f"{asset_name}:") for c in s.checks_failed)
            warned = sum(c.startswith(f"{asset_name}:") for c in s.checks_warned)
            checks = f"{passed} passed, {failed} failed" if passed or failed or warned else "-"
            checks += f", {warned} warned" if warned else ""
            print(f"{asset_name:<36} {s.partition:<36} {rows:>8}  {checks}")
            if s.channels.get(asset_name):
                split = ", ".join(f"{c} {n}" for c, n in sorted(s.channels[asset_name].items()))
                print(f"  by channel: {split}")
            if s.details.get(asset_name):
                print(f"  {s.details[asset_name]}")
        for failed in s.checks_failed:
            print(f"  FAILED CHECK {failed} ({s.partition})")
        for warned in s.checks_warned:
            print(f"  WARNING {warned} ({s.partition}): failed with WARN severity, not blocking")
        if not s.success:
            print(f"  RUN FAILED {s.job} {s.partition}: {s.error}")
    runs = len(summaries)
    failed_runs = sum(not s.success for s in summaries)
    failed_checks = sum(len(s.checks_failed) for s in summaries)
    passed_checks = sum(len(s.checks_passed) for s in summaries)
    warned_checks = sum(len(s.checks_warned) for s in summaries)
    print(
        f"\n{runs} runs, {failed_runs} failed; "
        f"{passed_checks} checks passed, {failed_checks} failed"
        + (f", {warned_checks} warned (WARN severity)" if warned_checks else "")
    )


def exit_code(summaries: list[RunSummary]) -> int:
    """1 if a run or an ERROR check failed; WARN failures are reported, not fatal."""
    return 1 if any(not s.success or s.checks_failed for s in summaries) else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    data_dir = _prepare(args)
    if (data_dir / "campaign_sftp").exists():
        print(f"sample data already in {data_dir / 'campaign_sftp'} (use --fresh to start over)")
    else:
        written = write_sample_data(data_dir, args.windows, args.rows_per_file, args.seed)
        print(f"sample data: {len(written)} files in {data_dir / 'campaign_sftp'}")
    with audience_zone(args.audience_zone, data_dir) as where:
        print(f"AEP audience exports arrive in {where}")
        return _run(args, data_dir)


def _run(args: argparse.Namespace, data_dir: Path) -> int:
    if args.headless:
        summaries = run_headless(data_dir)
        print_summary(summaries)
        if not summaries:
            print("no runs were requested: nothing new in the drop zones")
        return exit_code(summaries)
    print(f"Dagster UI: http://127.0.0.1:{args.port} (Ctrl-C to stop)")
    cmd = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(ROOT / "workspace.yaml"),
        "-h",
        "127.0.0.1",
        "-p",
        str(args.port),
    ]
    ui = subprocess.Popen(cmd, cwd=ROOT)  # noqa: S603 - fixed argv, no shell
    # Once the sensors have loaded Campaign's side, the same audience export as headless, so
    # the aep_to_campaign group has data in the UI too.
    demo_audience.write_when_ready(data_dir, stopped=lambda: ui.poll() is not None)
    try:
        return ui.wait()
    except KeyboardInterrupt:  # Ctrl-C reaches dagster dev too (same process group)
        return ui.wait()


if __name__ == "__main__":
    sys.exit(main())
