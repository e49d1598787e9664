"""How an `activation_dry_run` is approved: what both publications (the Campaign import and the
destination files) read before writing for a `review_first` destination.

Its own module beside the subpackages: campaign_audience_import and destinations both read it,
and destinations already imports campaign_audience_import (its CSV writer).

The dry-run id is `<audience>@<stamp>`; a run tagged `rtcdp/approved_dry_run=<that id>`, or the
warehouse file `activation_dry_run/<audience>/<stamp>/approved` (any content, e.g. who
approved), approves it.
"""

from collections.abc import Mapping

from resources.warehouse import Warehouse

ACTIVATION_DRY_RUN = "activation_dry_run"
CAMPAIGN_DESTINATION = "campaign"  # the Campaign import, beside the activation destinations
TAG_APPROVED_DRY_RUN = "rtcdp/approved_dry_run"
APPROVAL_FILE = "approved"


def dry_run_id(audience_id: str, stamp: str) -> str:
    return f"{audience_id}@{stamp}"


def approval(
    warehouse: Warehouse, tags: Mapping[str, str], audience_id: str, stamp: str
) -> str | None:
    """How the dry run of this export was approved ('run_tag', 'approval_file'), or None."""
    if tags.get(TAG_APPROVED_DRY_RUN) == dry_run_id(audience_id, stamp):
        return "run_tag"
    with warehouse.local_copy(ACTIVATION_DRY_RUN, f"{audience_id}/{stamp}", APPROVAL_FILE) as f:
        return "approval_file" if f is not None else None
