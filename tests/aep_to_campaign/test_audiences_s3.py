"""AEP audience exports arriving in an S3 bucket instead of Azure Blob, end to end, no mocks.

Campaign's exchange location can be an S3 bucket: here moto's S3 server (real HTTP on
127.0.0.1) holds the AEP destination bucket and the warehouse, and the real OpenSSH sshd is the
Campaign SFTP server. The scenarios and their assertions are the Blob ones, run unchanged over
S3 — the audience flow only knows the drop-zone contract.
"""

from __future__ import annotations

import pytest

from resources import FileLedger, PipelineSettings, Warehouse
from resources.audience_settings import AepDestinationOptions, AudienceSettings
from tests.aep_to_campaign import test_audiences_services as over_blob
from tests.zones import s3_zone, sftp_zone

pytestmark = pytest.mark.integration


@pytest.fixture
def services(sshd, moto_s3, tmp_path):
    sftp = sftp_zone(sshd)
    resources = {
        "campaign_sftp": sftp,
        "file_ledger": FileLedger(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}"),
        # AEP's S3 destination writes under a folder of a bucket the customer owns.
        "aep_destination": s3_zone(moto_s3, prefix="adobe"),
        "warehouse": Warehouse(zone=s3_zone(moto_s3, prefix="warehouse")),
        "settings": PipelineSettings(file_settle_seconds=0, campaign_export_completion="rename"),
        "audience_settings": AudienceSettings(
            destination_folder=over_blob.FOLDER,
            destinations={
                over_blob.DEST: AepDestinationOptions(
                    export_mode="incremental", manifest_required=True, rows_per_file=1500
                )
            },
            audience_names={over_blob.AUD: "Loyal buyers"},
        ),
    }
    yield resources
    sftp.close()


def test_s3_export_becomes_the_campaign_import_on_sftp_and_reruns_identically(services):
    over_blob.test_blob_export_becomes_the_campaign_import_on_sftp_and_reruns_identically(services)
    # AEP's files stay where AEP wrote them: the flow never deletes in the destination bucket.
    names = [e.name for e in services["aep_destination"].list(over_blob.FOLDER)]
    assert len(names) == 5  # two parts + manifest, then one part + manifest twelve hours later


def test_incomplete_split_export_in_s3_waits_until_every_part_matches(services):
    over_blob.test_incomplete_split_export_waits_until_every_part_matches(services)
