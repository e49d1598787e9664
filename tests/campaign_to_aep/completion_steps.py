"""Steps shared by the completion-rule tests: a sensor tick at a chosen moment, the run it
requests, a real-shaped broadLog export and ways to cut it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dagster import DagsterInstance, RunRequest, SensorResult, materialize

from rtcdp_assets.campaign_to_aep.broadlog import broadlog_defs
from rtcdp_assets.campaign_to_aep.export_flow import tick_planning
from rtcdp_dev.sample_data import generate_dataset
from tests.runs import campaign_assets_and_checks, evaluate_sensor

SENSOR = broadlog_defs.sensor
WINDOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
PK = "2026-11-23-08:00"
NAME = "broadLog_20261123_0800.csv"


def broadlog_export(rows: int = 3000) -> bytes:
    """A broadLog export as Campaign's export workflow writes it (Classic layout, no defects)."""
    return generate_dataset(
        "broadlog", WINDOW, rows, seed=18, defect_rate=0.0, now=datetime(2026, 11, 24, tzinfo=UTC)
    ).content


def thirds_on_row_boundaries(content: bytes) -> list[bytes]:
    """Three pieces, each ending with a line end (the worst case for the stability rule)."""
    lines = content.splitlines(keepends=True)
    a, b = len(lines) // 3, 2 * len(lines) // 3
    return [b"".join(lines[:a]), b"".join(lines[a:b]), b"".join(lines[b:])]


def thirds_mid_row(content: bytes) -> list[bytes]:
    """Three pieces cut inside a row, before its last fields (as a stalled upload leaves it)."""
    pieces, start = [], 0
    for fraction in (1, 2):
        end = content.index(b"\n", len(content) * fraction // 3) + 1
        cut = content.index(b",", end) + 1  # one field into the next row
        pieces.append(content[start:cut])
        start = cut
    pieces.append(content[start:])
    return pieces


def tick_at(
    monkeypatch: Any,
    resources: dict[str, Any],
    instance: DagsterInstance,
    cursor: str | None,
    now: datetime,
) -> tuple[list[RunRequest], str | None, str]:
    """One evaluation of the broadLog sensor with its clock at `now`: (requests, cursor,
    skip message)."""
    monkeypatch.setattr(tick_planning, "sensor_now", lambda: now)
    result = evaluate_sensor(SENSOR, resources, instance, cursor)
    if isinstance(result, SensorResult):
        skip = result.skip_reason.skip_message if result.skip_reason else ""
        return list(result.run_requests or []), result.cursor, skip
    return [], cursor, result.skip_message or ""


def run_request(resources: dict[str, Any], instance: DagsterInstance, request: RunRequest) -> Any:
    """The run a request asks for (its partition and tags), in process."""
    return materialize(
        campaign_assets_and_checks(broadlog_defs),
        partition_key=request.partition_key,
        resources=resources,
        instance=instance,
        tags=request.tags,
        raise_on_error=False,
    )


def step_errors(result: Any) -> str:
    return "\n".join(
        str(e.event_specific_data.error)
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    )
