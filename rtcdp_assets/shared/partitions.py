"""Partitions shared by the Campaign datasets."""

from __future__ import annotations

from dagster import TimeWindowPartitionsDefinition

from resources.settings import partitions_start

PARTITION_KEY_FORMAT = "%Y-%m-%d-%H:%M"

# Campaign export workflows run at most every 4 hours, so one partition is one export window.
# end_offset=1 makes the window in progress a valid key: an export for it can land any time.
# The first window is a setting (RTCDP_PARTITIONS_START), read when the definitions load.
FIRST_PARTITION_KEY = partitions_start()
four_hourly_partitions = TimeWindowPartitionsDefinition(
    cron_schedule="0 */4 * * *",
    start=FIRST_PARTITION_KEY,
    fmt=PARTITION_KEY_FORMAT,
    timezone="UTC",
    end_offset=1,
)


def before_first_partition(partition_key: str) -> bool:
    """A window earlier than the configured first partition (keys sort as times)."""
    return partition_key < FIRST_PARTITION_KEY


def before_first_partition_note(file_name: str, partition_key: str) -> str:
    """Why a sensor leaves a file of a window before the first partition where it is."""
    return (
        f"{file_name}: window {partition_key} is before the first partition "
        f"{FIRST_PARTITION_KEY} (RTCDP_PARTITIONS_START); left in place, not read"
    )
