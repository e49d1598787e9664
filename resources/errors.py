"""The errors a drop zone raises on purpose.

They live apart from `resources.drop_zones` (which imports dagster) so that the SFTP transfer
process (`resources/sftp_transfer/`) can raise the very same classes without importing
dagster or pydantic, whose import takes longer than a small file's download.
"""

from __future__ import annotations


class DropZoneError(Exception):
    """Base class of the errors a drop zone raises on purpose."""


class DropZoneUnavailable(DropZoneError):
    """A transient failure (network, timeout, server restart): try again on the next tick."""


class DropZoneAccessDenied(DropZoneError):
    """Authentication or host-key failure: a person must act, so this must fail loudly."""
