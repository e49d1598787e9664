"""What a run says when it maps or builds data again because a suppression arrived late.

A quarantine, denylist or opt-out can reach the platform after the data it affects was
published (a late `nonDeliverables` export, a new `suppression_list`). The sensors that find
the affected partitions (campaign_to_aep/late_quarantine.py, aep_to_campaign/late_suppression.py)
tag each run they request with the reason, the triggering data and counts; the assets turn
those tags into a `late_suppression` metadata entry. Counts and partition keys only: never an
address or a token.
"""

from collections.abc import Mapping
from typing import Any

from dagster import MetadataValue

REASON = "late_suppression"
TAG_REASON = "rtcdp/reason"
# The data that brought the suppression: `non_deliverables:<partition>[,<partition>]` or
# `suppression_list:<materialization storage id>`.
TAG_TRIGGER = "rtcdp/late_suppression_trigger"
# How many published values the re-run changes (tokens to denylist, members to drop).
TAG_AFFECTED = "rtcdp/late_suppression_affected"
TAG_RELEASED = "rtcdp/late_suppression_released"


def run_tags(trigger: str, affected: int, released: int = 0) -> dict[str, str]:
    return {
        TAG_REASON: REASON,
        TAG_TRIGGER: trigger,
        TAG_AFFECTED: str(affected),
        TAG_RELEASED: str(released),
    }


def note(tags: Mapping[str, str]) -> dict[str, Any] | None:
    """The why of a late-suppression run from its tags, or None for any other run."""
    if tags.get(TAG_REASON) != REASON:
        return None
    return {
        "reason": REASON,
        "trigger": tags.get(TAG_TRIGGER, ""),
        "affected": int(tags.get(TAG_AFFECTED, "0") or 0),
        "released": int(tags.get(TAG_RELEASED, "0") or 0),
    }


def note_metadata(tags: Mapping[str, str]) -> dict[str, Any]:
    """`{"late_suppression": {...}}` for a late-suppression run, else nothing."""
    why = note(tags)
    return {} if why is None else {"late_suppression": MetadataValue.json(why)}


def ledger_reason(tags: Mapping[str, str]) -> str | None:
    """The file ledger's `reason` text for a file written again by such a run."""
    why = note(tags)
    if why is None:
        return None
    return f"{REASON}: {why['trigger']}; {why['affected']} to suppress, {why['released']} released"
