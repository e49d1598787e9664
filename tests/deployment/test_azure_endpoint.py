"""The Azure step of docs/deployment.md: which forms of AZURE_STORAGE_ACCOUNT_URL work with an
account key or a SAS token. The SDK signs with the account name it reads from the URL: from the
host for `<account>.blob.core.<cloud>`, from the path for 127.0.0.1 / localhost (Azurite); any
other host fails before a request is sent, unless AZURE_STORAGE_ACCOUNT_NAME names the account
(which then wins over the URL)."""

from __future__ import annotations

import uuid

import pytest
from dagster import build_resources

from resources import environment_resources
from rtcdp_assets.operations.preflight.zone_checks import azure_checks

AZURITE_KEY_FORM = "a2V5LW5vdC1hLXJlYWwtb25l"  # base64, shaped like a key; never sent here
SUPPORTED = {
    "https://acme.blob.core.windows.net": "acme",
    "https://acme.blob.core.usgovcloudapi.net": "acme",
    "http://127.0.0.1:10000/devstoreaccount1": "devstoreaccount1",
    "http://localhost:10000/devstoreaccount1": "devstoreaccount1",
}
UNSUPPORTED = [
    "http://azurite:10000/devstoreaccount1",  # an emulator under a container name
    "https://acme.blob.local.azurestack.external",  # Azure Stack Hub
]


@pytest.fixture
def production_env(monkeypatch):
    for name in (
        "AZURE_STORAGE_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AEP_LANDING_ZONE",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = {
        "RTCDP_ENV": "production",
        "CAMPAIGN_SFTP_HOST": "sftp.example",
        "CAMPAIGN_SFTP_PORT": "22",
        "CAMPAIGN_SFTP_USER": "rtcdp",
        "CAMPAIGN_SFTP_KEY_PATH": "/etc/rtcdp/campaign-sftp/id_ed25519",
        "CAMPAIGN_SFTP_KNOWN_HOSTS": "/etc/rtcdp/campaign-sftp/known_hosts",
        "RTCDP_LEDGER_URL": "sqlite://",
        "AEP_LANDING_CONTAINER": "aep-landing",
        "AEP_DESTINATION_CONTAINER": "aep-destinations",
        "WAREHOUSE_CONTAINER": "rtcdp-warehouse",
        "CUSTOMER_SOURCE_CONTAINER": "customer-source",
        "AEP_DATASET_EXPORT_CONTAINER": "aep-dataset-exports",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def landing_account() -> str:
    """The account name the SDK signs with, for the landing zone built from the variables."""
    landing = {"aep_landing": environment_resources()["aep_landing"]}
    with build_resources(landing) as built, built.aep_landing.storage.get_client() as client:
        return client.account_name


@pytest.mark.parametrize("credential", ["AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"])
@pytest.mark.parametrize(("url", "account"), SUPPORTED.items())
def test_the_documented_urls_name_the_account(production_env, url, account, credential):
    production_env.setenv("AZURE_STORAGE_ACCOUNT_URL", url)
    production_env.setenv(credential, AZURITE_KEY_FORM)
    assert landing_account() == account


@pytest.mark.parametrize("credential", ["AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"])
@pytest.mark.parametrize("url", UNSUPPORTED)
def test_other_hosts_fail_before_any_request(production_env, url, credential):
    production_env.setenv("AZURE_STORAGE_ACCOUNT_URL", url)
    production_env.setenv(credential, AZURITE_KEY_FORM)
    with pytest.raises(ValueError, match="Unable to determine account name"):
        landing_account()


# The SDK reads a wrong name from a private endpoint's own FQDN: the key is then refused.
PRIVATE_LINK = "https://acme.privatelink.blob.core.windows.net"
CUSTOM_HOSTS = [
    "https://blob.example.internal",  # a custom domain or a private endpoint's DNS alias
    PRIVATE_LINK,
    "http://azurite:10000/devstoreaccount1",  # an emulator under a container name
    *UNSUPPORTED,
]


@pytest.mark.parametrize("url", [*SUPPORTED, *CUSTOM_HOSTS])
def test_the_account_name_variable_wins_over_the_url(production_env, url):
    production_env.setenv("AZURE_STORAGE_ACCOUNT_URL", url)
    production_env.setenv("AZURE_STORAGE_KEY", AZURITE_KEY_FORM)
    production_env.setenv("AZURE_STORAGE_ACCOUNT_NAME", "rtcdpstore")
    assert landing_account() == "rtcdpstore"


def test_a_private_link_url_names_the_wrong_account(production_env):
    production_env.setenv("AZURE_STORAGE_ACCOUNT_URL", PRIVATE_LINK)
    production_env.setenv("AZURE_STORAGE_KEY", AZURITE_KEY_FORM)
    assert landing_account() == "acme.privatelink"


def test_the_doctor_asks_for_the_account_name_when_the_url_names_none(production_env):
    production_env.setenv("AZURE_STORAGE_ACCOUNT_URL", "https://blob.example.internal")
    production_env.setenv("AZURE_STORAGE_KEY", AZURITE_KEY_FORM)
    landing = {"aep_landing": environment_resources()["aep_landing"]}
    with build_resources(landing) as built:
        (result,) = azure_checks("aep_landing", built.aep_landing, writes=True)
    assert result.status == "FAIL" and "names no storage account" in result.detail
    assert "AZURE_STORAGE_ACCOUNT_NAME" in result.fix
    assert AZURITE_KEY_FORM not in result.line()


def test_an_empty_account_name_variable_leaves_the_url_to_name_it(production_env):
    production_env.setenv("AZURE_STORAGE_ACCOUNT_URL", "https://acme.blob.core.windows.net")
    production_env.setenv("AZURE_STORAGE_KEY", AZURITE_KEY_FORM)
    production_env.setenv("AZURE_STORAGE_ACCOUNT_NAME", "")
    assert landing_account() == "acme"


@pytest.mark.integration
def test_azurite_with_its_key_as_the_guide_writes_it(production_env, azurite):
    """The production resources from the variables alone, against Azurite on 127.0.0.1."""
    assert azurite.account_url.startswith("http://127.0.0.1:")
    production_env.setenv("AZURE_STORAGE_ACCOUNT_URL", azurite.account_url)
    production_env.setenv("AZURE_STORAGE_KEY", azurite.account_key)
    production_env.setenv("AEP_LANDING_CONTAINER", f"c{uuid.uuid4().hex[:12]}")
    with build_resources({"aep_landing": environment_resources()["aep_landing"]}) as built:
        assert built.aep_landing.list("") == []  # the container is created on first use
        built.aep_landing.write_bytes("probe.txt", b"x")
    # The account named by the variable, not by the path: Azurite accepts the same signature.
    production_env.setenv("AZURE_STORAGE_ACCOUNT_NAME", azurite.account_name)
    with build_resources({"aep_landing": environment_resources()["aep_landing"]}) as built:
        assert built.aep_landing.storage.account_name == azurite.account_name
        assert [e.path for e in built.aep_landing.list("")] == ["probe.txt"]
