"""Campaign setup as code: the export and import workflows Campaign must run, generated from
the dataset layouts and the import writers so that they cannot drift from them.

`campaign_setup(settings)` gives the whole setup as plain data; `render` turns it into
docs/campaign-setup.md and docs/campaign-setup.json; `cli.main` is `rtcdp-campaign-setup`.
Modules: query_sources (schemas and Classic expressions), exports, imports, steps, render, cli.
"""

from __future__ import annotations

from typing import Any

from resources.settings import PipelineSettings
from rtcdp_assets.platform_setup.campaign.exports import export_workflows
from rtcdp_assets.platform_setup.campaign.imports import import_workflows
from rtcdp_assets.platform_setup.campaign.steps import PACKAGES_DECISION, export_steps, import_steps


def campaign_setup(settings: PipelineSettings) -> dict[str, Any]:
    """Every Campaign workflow, with its Classic and Standard activities."""
    exports = export_workflows(settings)
    imports = import_workflows(settings)
    for workflow in exports:
        workflow["steps"] = export_steps(workflow)
    for workflow in imports:
        workflow["steps"] = import_steps(workflow)
    return {
        "generated_by": "rtcdp-campaign-setup (rtcdp_assets/platform_setup/campaign)",
        "settings": "PipelineSettings defaults; set RTCDP_* to change folders and the marker",
        "exports": exports,
        "imports": imports,
        "packages": PACKAGES_DECISION,
    }
