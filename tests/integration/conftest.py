"""Resources for a Campaign → AEP run on the real services: SFTP on sshd, Blob on Azurite."""

import pytest

from resources import FileLedger, PipelineSettings, Warehouse
from tests.zones import blob_zone, sftp_zone


@pytest.fixture
def services(sshd, azurite, tmp_path):
    """Fresh folders and containers per test, so tests never see each other's files."""
    sftp = sftp_zone(sshd)
    resources = {
        "campaign_sftp": sftp,
        "aep_landing": blob_zone(azurite),
        "warehouse": Warehouse(zone=blob_zone(azurite)),
        "file_ledger": FileLedger(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}"),
        # SFTP mtimes have whole seconds; tests sleep past them instead of waiting 30 s
        "settings": PipelineSettings(file_settle_seconds=0),
    }
    yield resources
    sftp.close()
