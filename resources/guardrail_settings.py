"""Guardrail limits: the numbers of Adobe's and the Campaign contract's limits that a check or a
reader enforces. Each default is the documented value (docs/formats.md); a deployment whose
contract differs changes configuration, not code. `PipelineSettings` inherits them, so every
asset, sensor and check reads them as `settings.<limit>`.
"""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field


class GuardrailLimits(ConfigurableResource):
    """Limits of the files we read and of the records we publish."""

    ledger_pending_alert_hours: float = Field(
        default=8.0,
        description="A file version still pending after this long is flagged by the ledger check.",
    )
    failed_run_max_attempts: int = Field(
        default=3,
        ge=1,
        description=(
            "Runs a file version gets: after each failed run its sensor requests it again (a "
            "new run key) once the back-off has passed; after this many failed runs the "
            "version is `failed` in the file ledger, flagged by `no_failed_versions`, and only "
            "`rtcdp-ledger retry` requests it again."
        ),
    )
    failed_run_retry_backoff_seconds: float = Field(
        default=900.0,
        ge=0,
        description=(
            "Wait after a version's first failed run before its sensor requests it again; "
            "doubled after each further failure (15, 30, 60 min ...), so a blocker an operator "
            "fixes meanwhile (a missing dependency, a full disk) is not hammered."
        ),
    )
    max_decompressed_bytes: int = Field(
        default=20 * 1024**3,
        description="A compressed export that inflates beyond this is refused (gzip bomb).",
    )
    max_row_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        description=(
            "Longest row (bytes between line ends) a drop-zone CSV may hold; a file with a "
            "longer one is quarantined as `row_too_large` before it is buffered. The parser's "
            "block grows to fit such a row, and memory follows the block (bench/README.md)."
        ),
    )
    max_decompression_ratio: float = Field(
        default=100.0,
        ge=0,
        description=(
            "A gzip file whose decompressed bytes outgrow its compressed bytes this many times "
            "is quarantined as `decompression_bomb` (CSV exports compress about 2-20:1). "
            "0 turns the guard off; max_decompressed_bytes stays the absolute cap."
        ),
    )
    decompression_ratio_floor_bytes: int = Field(
        default=64 << 20,
        ge=0,
        description=(
            "The decompression-ratio guard applies once this many bytes came out of a file, "
            "so a small, very repetitive file is never refused."
        ),
    )
    reject_rate_warn_above: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description=(
            "Share of a Campaign partition's rows that may be rejected before its `reject_rate` "
            "check fails with WARN (publication goes on)."
        ),
    )
    reject_rate_block_above: float = Field(
        default=0.20,
        ge=0,
        le=1,
        description=(
            "Share of a Campaign partition's rows rejected above which `reject_rate` fails with "
            "ERROR and blocks publication (a systematic rejection: a channel, a layout change)."
        ),
    )
    campaign_sftp_quota_bytes: int = Field(
        default=0,
        ge=0,
        description=(
            "Storage the Campaign contract grants on the Campaign SFTP server, in bytes "
            "(docs/formats.md §f6: the contract's SFTP storage limit; no documented figure). "
            "The platform's own footprint there (export archive, quarantine, import files) is "
            "measured against it. 0: not configured, the footprint is only reported."
        ),
    )
    campaign_sftp_warn_share: float = Field(
        default=0.80,
        gt=0,
        le=1,
        description=(
            "Share of campaign_sftp_quota_bytes from which `sftp_storage_quota` WARNs (Adobe "
            "auto-compresses a hosted SFTP at 80 % full, docs/formats.md §f6)."
        ),
    )
    campaign_sftp_block_share: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description=(
            "Share of campaign_sftp_quota_bytes from which new Campaign import uploads are "
            "refused (recorded in the ledger and resumed once space frees) and "
            "`sftp_storage_quota` fails with ERROR."
        ),
    )
    archive_retention_days: float = Field(
        default=15.0,
        gt=0,
        description=(
            "Days a processed Campaign export stays in the SFTP archive (docs/formats.md §f6: "
            "keep data 15 days at most). Older ones are deleted only once their partition is "
            "stored in the warehouse and the ledger holds their SHA-256."
        ),
    )
    campaign_import_max_age_days: float = Field(
        default=15.0,
        gt=0,
        description=(
            "Days an import file we uploaded may stay in the Campaign import folder; it is "
            "deleted earlier once Campaign has consumed it (its `.done` marker is gone)."
        ),
    )
    max_event_bytes: int = Field(default=10 * 1024, description="AEP ExperienceEvent limit.")
    max_profile_bytes: int = Field(default=100 * 1024, description="AEP profile record limit.")
    # -- the Campaign contract and AEP's profile and ingestion guardrails (issue 21) --------
    contracted_profiles: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Campaign profiles the contract allows (active profiles). `active_profiles` warns "
            "from `active_profiles_warn_share` of it; unset: the check reports the count only."
        ),
    )
    active_profiles_warn_share: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Share of `contracted_profiles` from which `active_profiles` warns.",
    )
    max_identities_per_graph: int = Field(
        default=50,
        ge=2,
        description=(
            "Identities one identity graph may hold (AEP hard limit; a larger profile is "
            "excluded from segmentation, exports and lookups, docs/formats.md §e1, §e2)."
        ),
    )
    max_events_per_profile: int = Field(
        default=5000,
        ge=1,
        description=(
            "ExperienceEvents per profile (AEP soft limit; a profile with more is not "
            "considered for segmentation, docs/formats.md §e1), checked per publication."
        ),
    )
    max_batches_per_dataset_per_day: int = Field(
        default=6,
        ge=1,
        description=(
            "Publications (AEP batches) per AEP dataset per UTC day: the 4-hour cadence makes 6 "
            "(§f1); more are re-publications spending Adobe's daily batch budget (§e1)."
        ),
    )
    max_profile_batches_per_day: int = Field(
        default=90,
        ge=1,
        description=(
            "Profile and ExperienceEvent batches per day, all datasets of the sandbox together "
            "(AEP soft limit, docs/formats.md §e1)."
        ),
    )
