"""Partitions shared by the Campaign datasets."""

from __future__ import annotations

from dagster import TimeWindowPartitionsDefinition

PARTITION_KEY_FORMAT = "%Y-%m-%d-%H:%M"

# Campaign export workflows run at most every 4 hours, so one partition is one export window.
# end_offset=1 makes the window in progress a valid key: an export for it can land any time.
four_hourly_partitions = TimeWindowPartitionsDefinition(
    cron_schedule="0 */4 * * *",
    start="2024-01-01-00:00",
    fmt=PARTITION_KEY_FORMAT,
    timezone="UTC",
    end_offset=1,
)
