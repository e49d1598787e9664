"""The pipeline's layouts, flows and codes the files are generated for."""

from __future__ import annotations

import warnings

import dagster

from rtcdp_assets.shared.ingest import Layout

with warnings.catch_warnings():
    # Building the datasets' Dagster definitions warns about preview features; that noise is
    # the pipeline's business, not something a user of this CLI can act on.
    warnings.simplefilter("ignore", dagster.PreviewWarning)
    warnings.simplefilter("ignore", dagster.BetaWarning)
    from rtcdp_assets.campaign_to_aep import (
        non_deliverables,
        preferences,
        profiles,
        push_subscriptions,
        tracking_log,
    )
    from rtcdp_assets.campaign_to_aep.broadlog import (
        CLASSIC,
        FAILURE_REASONS,
        STANDARD,
        STATUS_LABELS,
        broadlog_flow,
    )
    from rtcdp_assets.campaign_to_aep.export_flow import CampaignExportFlow

LAYOUTS: dict[str, Layout] = {"classic": CLASSIC, "standard": STANDARD}  # broadLog's
# The pipeline's own Layout objects: a renamed column there renames it here too.
DATASET_LAYOUTS: dict[str, dict[str, Layout]] = {
    "broadlog": LAYOUTS,
    "tracking_log": {"classic": tracking_log.CLASSIC, "standard": tracking_log.STANDARD},
    "non_deliverables": {
        "classic": non_deliverables.CLASSIC,
        "standard": non_deliverables.STANDARD,
    },
    "preferences": {"classic": preferences.CLASSIC, "standard": preferences.STANDARD},
    "profiles": {"classic": profiles.CLASSIC, "standard": profiles.STANDARD},
    "push_subscriptions": {
        "classic": push_subscriptions.CLASSIC,
        "standard": push_subscriptions.STANDARD,
    },
}
# The pipeline flows the files are generated for: their file prefixes, formats and allowed codes.
FLOWS: dict[str, CampaignExportFlow] = {
    "broadlog": broadlog_flow,
    "tracking_log": tracking_log.tracking_log_flow,
    "non_deliverables": non_deliverables.non_deliverables_flow,
    "preferences": preferences.preferences_flow,
    "profiles": profiles.profiles_flow,
    "push_subscriptions": push_subscriptions.push_subscriptions_flow,
}

__all__ = [
    "CLASSIC",
    "DATASET_LAYOUTS",
    "FAILURE_REASONS",
    "FLOWS",
    "LAYOUTS",
    "STANDARD",
    "STATUS_LABELS",
    "CampaignExportFlow",
    "broadlog_flow",
    "non_deliverables",
    "preferences",
    "profiles",
    "push_subscriptions",
    "tracking_log",
]
