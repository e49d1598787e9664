"""Each exchange role picks its backend from the environment (resources.zone_for_role)."""

from __future__ import annotations

import pytest
from dagster import EnvVar, build_resources

from resources import (
    AzureBlobDropZone,
    LocalDropZone,
    S3DropZone,
    embedded_resources,
    production_resources,
)

PRODUCTION = {
    "CAMPAIGN_SFTP_HOST": "sftp.example.com",
    "CAMPAIGN_SFTP_PORT": "22",
    "CAMPAIGN_SFTP_USER": "rtcdp",
    "CAMPAIGN_SFTP_KEY_PATH": "/keys/id",
    "CAMPAIGN_SFTP_KNOWN_HOSTS": "/keys/known_hosts",
    "AZURE_STORAGE_ACCOUNT_URL": "https://acct.blob.core.windows.net",
    "AEP_LANDING_CONTAINER": "aep-landing",
    "AEP_DESTINATION_CONTAINER": "aep-destinations",
    "WAREHOUSE_CONTAINER": "warehouse",
    "CUSTOMER_SOURCE_CONTAINER": "customer-source",
}


@pytest.fixture
def env(monkeypatch):
    for name in ("AEP_LANDING", "AEP_DESTINATION", "WAREHOUSE", "CUSTOMER_SOURCE"):
        monkeypatch.delenv(f"{name}_ZONE", raising=False)
    for name in ("AWS_ENDPOINT_URL", "AWS_REGION", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_production_defaults_to_azure_blob_for_every_role(env):
    resources = production_resources()
    for role in ("aep_landing", "aep_destination", "customer_source"):
        assert isinstance(resources[role], AzureBlobDropZone)
    assert isinstance(resources["warehouse"].zone, AzureBlobDropZone)


def test_the_sftp_transfer_child_process_is_off_unless_the_environment_turns_it_on(env):
    env.delenv("CAMPAIGN_SFTP_READ_IN_CHILD_PROCESS", raising=False)
    assert production_resources()["campaign_sftp"].read_in_child_process is False
    env.setenv("CAMPAIGN_SFTP_READ_IN_CHILD_PROCESS", "true")
    assert production_resources()["campaign_sftp"].read_in_child_process is True


def test_the_aep_destination_can_be_an_s3_bucket(env):
    env.setenv("AEP_DESTINATION_ZONE", "s3")
    env.setenv("AEP_DESTINATION_BUCKET", "acme-aep-exports")
    env.setenv("AEP_DESTINATION_PREFIX", "audiences")
    env.setenv("AWS_REGION", "eu-west-1")
    env.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    resources = production_resources()
    zone = resources["aep_destination"]
    assert isinstance(zone, S3DropZone)
    assert zone.bucket == EnvVar("AEP_DESTINATION_BUCKET")  # resolved in the run, not here
    assert isinstance(resources["aep_landing"], AzureBlobDropZone)  # the others stay on Blob
    with build_resources({"aep_destination": zone}) as built:
        resolved = built.aep_destination
    assert (resolved.bucket, resolved.prefix, resolved.region_name, resolved.endpoint_url) == (
        "acme-aep-exports",
        "audiences",
        "eu-west-1",
        "http://127.0.0.1:9000",
    )
    # No field of the zone can hold a credential.
    assert not {f for f in S3DropZone.model_fields if "secret" in f or "key" in f.lower()}


def test_embedded_roles_can_move_to_s3_too_and_typos_are_refused(env, tmp_path):
    env.setenv("WAREHOUSE_ZONE", "S3")
    env.setenv("WAREHOUSE_BUCKET", "acme-warehouse")
    resources = embedded_resources(tmp_path)
    assert isinstance(resources["warehouse"].zone, S3DropZone)
    assert isinstance(resources["aep_destination"], LocalDropZone)
    env.setenv("AEP_LANDING_ZONE", "s4")
    with pytest.raises(ValueError, match="AEP_LANDING_ZONE must be 'azure' or 's3'"):
        embedded_resources(tmp_path)
