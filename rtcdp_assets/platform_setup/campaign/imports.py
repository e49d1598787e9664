"""The Campaign import workflows for the files this platform writes, derived from the writers.

Columns come from the writers' own constants (`IMPORT_COLUMNS` of the audience import, each
`CustomerDataset`'s fields), names from their name functions, the marker suffix from
`shared/campaign_import_files.py`, the folder from the settings. What the code cannot say is
the decision each workflow takes for a key Campaign does not know; it is stated here with its
reason (docs/campaign-setup.md repeats it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from resources.settings import PipelineSettings
from rtcdp_assets.aep_to_campaign.campaign_audience_import import import_file as audience_file
from rtcdp_assets.customer_to_campaign.customer_datasets import (
    PERSONALIZATION,
    PROFILES,
    CustomerDataset,
)
from rtcdp_assets.platform_setup.campaign.query_sources import QUERY_SOURCES, UNCONFIRMED
from rtcdp_assets.shared.campaign_import_files import IMPORT_MARKER_SUFFIX

UnknownKeys = Literal["reject", "insert"]


@dataclass(frozen=True)
class ImportContract:
    """What one import file asks of the Campaign workflow that loads it."""

    asset: str
    columns: tuple[str, ...]
    name_pattern: str
    examples: tuple[str, ...]
    key: str
    unknown_keys: UnknownKeys
    why: str
    target: str


def _audience_contract() -> ImportContract:
    names = audience_file.import_file_names("<audience id>", "<YYYYMMDD_HHMMSS>", 3)
    examples = audience_file.import_file_names(
        "5e1f0c2a-7d4b-4c3e-9f8a-0b1c2d3e4f50", "20261204_200512", 2
    )
    return ImportContract(
        asset=audience_file.PUBLISHED,
        columns=audience_file.IMPORT_COLUMNS,
        name_pattern=" / ".join(names),
        examples=tuple(examples),
        key="recipient_id",
        unknown_keys="reject",
        why="Campaign is the source of truth for profiles (docs/formats.md §f1): an audience "
        "never creates a recipient. The file only holds matched recipients, so an unknown key "
        "means the recipient was deleted since: reject it.",
        target="nms:recipient, then the audience's list (List update), by membership_status",
    )


def _customer_contract(dataset: CustomerDataset, unknown: UnknownKeys, why: str) -> ImportContract:
    return ImportContract(
        asset=dataset.asset_name,
        columns=dataset.columns,
        name_pattern=dataset.file_name("<snapshot id>"),
        examples=(dataset.file_name("3f9a0c1d2e4b5a69"),),
        key="external_id",
        unknown_keys=unknown,
        why=why,
        target="nms:recipient",
    )


def import_contracts() -> tuple[ImportContract, ...]:
    return (
        _audience_contract(),
        _customer_contract(
            PROFILES,
            "insert",
            "The customer's simplified profiles are how recipients enter Campaign (blueprint: "
            "simplified profile data via the Campaign SFTP, docs/formats.md §f1): a new key "
            "creates the recipient, a known one updates it.",
        ),
        _customer_contract(
            PERSONALIZATION,
            "reject",
            "Personalization attributes belong to an existing recipient; a row for a key "
            "Campaign does not know would create a recipient without an address: reject it.",
        ),
    )


def _target_field(column: str) -> dict[str, Any]:
    """The nms:recipient field an import column updates: the profiles export's expression
    for the same canonical name, else a schema extension of the instance."""
    expression = QUERY_SOURCES["profiles"].expressions.get(column)
    if expression is None:
        return {"classic": None, "source": "instance-specific (schema extension)"}
    return {"classic": expression.xpath, "source": expression.source}


def import_workflow(contract: ImportContract, settings: PipelineSettings) -> dict[str, Any]:
    key = QUERY_SOURCES["profiles"].expressions[contract.key]
    standard_key = {"recipient_id": "PKey", "external_id": "externalId"}[contract.key]
    return {
        "asset": contract.asset,
        "file": {
            "folder": settings.campaign_import_folder,
            "folder_setting": "campaign_import_folder",
            "name_pattern": contract.name_pattern,
            "examples": list(contract.examples),
            "format": "CSV, UTF-8 without BOM, comma, header line, RFC 4180 quoting, \\n",
        },
        "columns": [{"column": c, "recipient_field": _target_field(c)} for c in contract.columns],
        "reconciliation": {
            "key_column": contract.key,
            "classic_field": key.xpath,
            "classic_source": key.source if key.source != UNCONFIRMED else UNCONFIRMED,
            "standard_field": standard_key,
            "unknown_keys": contract.unknown_keys,
            "why": contract.why,
            "target": contract.target,
        },
        "marker": {
            "suffix": IMPORT_MARKER_SUFFIX,
            "name": f"<file name>{IMPORT_MARKER_SUFFIX}",
            "example": f"{contract.examples[0]}{IMPORT_MARKER_SUFFIX}",
            "content": "JSON object naming the file with its rows, bytes and SHA-256",
            "wait": "load a file only once its marker exists; the CSV is uploaded first "
            "(atomically, under a temporary name then renamed), the marker after it",
        },
    }


def import_workflows(settings: PipelineSettings) -> list[dict[str, Any]]:
    return [import_workflow(c, settings) for c in import_contracts()]
