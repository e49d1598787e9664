"""Names shared by the audience assets: datasets, group, the audience partitions, run tags and
the run queue the instance needs.
"""

from dagster import DynamicPartitionsDefinition

AUDIENCES_PARTITION_NAME = "audiences"
audience_partitions = DynamicPartitionsDefinition(name=AUDIENCES_PARTITION_NAME)

SEGMENT_EXPORTS = "segment_exports"
AUDIENCE_MEMBERSHIP = "audience_membership"
GROUP = "aep_to_campaign"

TAG_DESTINATION = "rtcdp/aep_destination"
TAG_AUDIENCE = "rtcdp/audience_id"
TAG_EXPORT_TIME = "rtcdp/export_time"
TAG_EXPORT_FILES = "rtcdp/export_files"
TAG_EXPORT_MANIFEST = "rtcdp/export_manifest"

STATUSES = ("realized", "existing", "exited")
MEMBER_STATUSES = frozenset({"realized", "existing"})

# dagster.yaml for the instance: one run at a time per audience, in submission (export) order.
AUDIENCE_RUN_QUEUE_CONFIG = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    tag_concurrency_limits:
      - key: "rtcdp/audience_id"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
"""
