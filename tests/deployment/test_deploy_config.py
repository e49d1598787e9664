"""The Kubernetes deployment files: deploy/kubernetes/dagster.yaml is a valid Dagster 1.13 instance
for the configured classes (validated against Dagster's own schemas, no cluster needed), the Helm
values describe the same instance, the project's settings reach the code server and the run pods
from a ConfigMap and a Secret (not from the run launcher), and neither these files nor the
Dockerfile hold a secret. One host: test_one_host_units.py (the systemd units),
test_postgres_setup.py (the roles and databases), test_environment_variables.py (the list of
variables)."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import build_resources
from dagster._config import Shape, process_config
from dagster._core.instance.config import dagster_instance_config, dagster_instance_config_schema
from dagster._serdes import ConfigurableClassData

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
INSTANCE_YAML = KUBERNETES / "dagster.yaml"
HELM_VALUES = KUBERNETES / "values.yaml"
SETTINGS_CONFIG_MAP = KUBERNETES / "rtcdp-settings.yaml"
DOCKERFILE = REPO / "Dockerfile"
ENV_TEMPLATE = REPO / "deploy" / "one-host" / "rtcdp.env.example"
SETTINGS_NAME = "rtcdp-settings"  # the ConfigMap of the project's non-secret settings
# Read by the K8s run launcher only (the Helm chart sets them on the daemon and webserver).
LAUNCHER_ONLY = {
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP",
    "DAGSTER_K8S_PG_PASSWORD_SECRET",
    "DAGSTER_K8S_PIPELINE_RUN_NAMESPACE",
}
PROJECT_VARIABLE = re.compile(
    r"\b(RTCDP|CAMPAIGN_SFTP|AZURE|AEP|AWS|WAREHOUSE|CUSTOMER_SOURCE)_\w+"
)

# What the Helm chart and the Kubernetes secrets put into the pods' environment.
POD_ENV = {
    "DAGSTER_PG_HOST": "dagster.postgres.example",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "from-a-kubernetes-secret",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "dagster-instance",
    "DAGSTER_K8S_PG_PASSWORD_SECRET": "dagster-postgresql-secret",
    "DAGSTER_K8S_PIPELINE_RUN_NAMESPACE": "rtcdp",
    "DAGSTER_HOME": "/opt/dagster/dagster_home",
}


@pytest.fixture
def pod_env(monkeypatch):
    for name, value in POD_ENV.items():
        monkeypatch.setenv(name, value)


def configured_class(section: dict[str, Any]) -> type:
    # ConfigurableClassData maps public module paths (dagster.core...) to Dagster's private ones,
    # as the instance does when it loads the file.
    data = ConfigurableClassData(section["module"], section["class"], yaml.safe_dump({}))
    return getattr(importlib.import_module(data.module_name), data.class_name)


def validated_instance() -> dict[str, Any]:
    """The instance config after Dagster's own checks and with the env vars resolved."""
    raw, custom_instance_class = dagster_instance_config(str(KUBERNETES))
    assert custom_instance_class is None
    result = process_config(Shape(dagster_instance_config_schema()), raw)
    assert result.success, result.errors
    return result.value


def test_the_instance_is_valid_for_dagster_and_its_classes(pod_env):
    config = validated_instance()
    for section in ("run_coordinator", "run_launcher", "compute_logs"):
        klass = configured_class(config[section])
        checked = process_config(klass.config_type(), config[section].get("config") or {})
        assert checked.success, (section, checked.errors)

    assert configured_class(config["run_launcher"]).__name__ == "K8sRunLauncher"
    assert configured_class(config["run_coordinator"]).__name__ == "QueuedRunCoordinator"
    db = config["storage"]["postgres"]["postgres_db"]
    assert db["scheme"] == "postgresql+psycopg2"
    assert db["password"] == POD_ENV["DAGSTER_PG_PASSWORD"]  # resolved from the environment
    assert db["port"] == 5432
    pools = config["concurrency"]["pools"]
    assert pools["default_limit"] >= 1 and pools["granularity"] == "op"
    assert config["telemetry"]["enabled"] is False
    launcher = config["run_launcher"]["config"]
    assert launcher["env_config_maps"] == [SETTINGS_NAME] and launcher["env_secrets"]


def test_the_pool_is_the_one_the_sftp_assets_use(monkeypatch, tmp_path):
    """default_limit caps every pool; it caps SFTP sessions because campaign_sftp is the only
    pool in the code location."""
    monkeypatch.setenv("RTCDP_DATA_DIR", str(tmp_path))
    from rtcdp_assets.definitions import defs

    pools = {
        pool
        for asset in defs.resolve_asset_graph().assets_defs
        for pool in asset.node_def.pools
        if pool
    }
    assert pools == {"campaign_sftp"}


def test_credentials_come_only_from_the_environment(pod_env, monkeypatch):
    raw = yaml.safe_load(INSTANCE_YAML.read_text())
    db = raw["storage"]["postgres"]["postgres_db"]
    for field in ("hostname", "port", "username", "password", "db_name"):
        assert set(db[field]) == {"env"}, field
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    result = process_config(
        Shape(dagster_instance_config_schema()), dagster_instance_config(str(KUBERNETES))[0]
    )
    assert not result.success
    assert "DAGSTER_PG_PASSWORD" in str(result.errors)


def test_the_helm_values_describe_the_same_instance():
    values = yaml.safe_load(HELM_VALUES.read_text())
    instance = yaml.safe_load(INSTANCE_YAML.read_text())

    assert values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True and coordinator["type"] == "QueuedRunCoordinator"
    assert values["telemetry"]["enabled"] is False

    pools, runs = values["concurrency"]["pools"], values["concurrency"]["runs"]
    assert values["concurrency"]["enabled"] is True
    assert pools == {
        "defaultLimit": instance["concurrency"]["pools"]["default_limit"],
        "granularity": instance["concurrency"]["pools"]["granularity"],
        "opGranularityRunBuffer": instance["concurrency"]["pools"]["op_granularity_run_buffer"],
    }
    assert runs["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]
    assert runs["tagConcurrencyLimits"] == instance["concurrency"]["runs"]["tag_concurrency_limits"]

    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["codeServerArgs"]
    assert args[args.index("--module-name") + 1] == "rtcdp_assets.definitions"
    secrets = {s["name"] for s in deployment["envSecrets"]}
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert secrets == {s["name"] for s in launcher["envSecrets"]}
    assert secrets == set(instance["run_launcher"]["config"]["env_secrets"])
    config_maps = {c["name"] for c in deployment["envConfigMaps"]}
    assert config_maps == {c["name"] for c in launcher["envConfigMaps"]}
    assert config_maps == set(instance["run_launcher"]["config"]["env_config_maps"])
    # run pods inherit the code location's env, secrets and mounted SFTP key
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert deployment["podSecurityContext"]["runAsNonRoot"] is True


# ---- the project's settings live outside the run launcher ---------------------------------


def settings_config_map() -> dict[str, Any]:
    manifest = yaml.safe_load(SETTINGS_CONFIG_MAP.read_text())
    assert manifest["kind"] == "ConfigMap" and manifest["metadata"]["name"] == SETTINGS_NAME
    return manifest["data"]


def test_the_project_settings_sit_outside_the_run_launcher():
    """The launcher only names the ConfigMap and the Secret; no project variable is set in it,
    in the instance or in the chart's run launcher values."""
    launcher = yaml.safe_load(INSTANCE_YAML.read_text())["run_launcher"]["config"]
    values = yaml.safe_load(HELM_VALUES.read_text())
    chart_launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert "env_vars" not in launcher and "envVars" not in chart_launcher
    for block in (launcher, chart_launcher):
        assert not PROJECT_VARIABLE.search(yaml.safe_dump(block))

    data = settings_config_map()
    assert data["RTCDP_ENV"] == "production"
    # The key paths point into the volume both the instance and the chart mount.
    (mount,) = {m["mountPath"] for m in launcher["volume_mounts"]}
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert {m["mountPath"] for m in deployment["volumeMounts"]} == {mount}
    for name in ("CAMPAIGN_SFTP_KEY_PATH", "CAMPAIGN_SFTP_KNOWN_HOSTS"):
        assert Path(data[name]).parent == Path(mount), name
    # What the values file leaves to the ConfigMap is not set anywhere else in it.
    assert "env" not in deployment
    assert not set(data) & set(re.findall(r"\b[A-Z][A-Z0-9_]+\b", yaml.safe_dump(values)))


def test_the_values_give_the_settings_to_the_code_server_and_every_run():
    values = yaml.safe_load(HELM_VALUES.read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    chart_launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    for holder in (deployment, chart_launcher):
        assert holder["envConfigMaps"] == [{"name": SETTINGS_NAME}]
        assert holder["envSecrets"] == [{"name": "rtcdp-env"}]


def template_values() -> dict[str, str]:
    """The variables set in the env file template (the Secret rtcdp-env is made from it)."""
    pairs = re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_TEMPLATE.read_text(), flags=re.MULTILINE)
    return dict(pairs)


def test_the_settings_resolve_without_the_launcher_variables(monkeypatch):
    """A code server or run pod with the ConfigMap and the Secret but none of the launcher's
    variables builds every production resource; the instance in turn needs no project
    variable, and only the launcher's own ones when they are missing."""
    for name in [*os.environ]:
        if PROJECT_VARIABLE.match(name) or name.startswith("DAGSTER_"):
            monkeypatch.delenv(name)
    secret = {
        name: value
        for name, value in template_values().items()
        if not name.startswith("DAGSTER_") and name not in settings_config_map()
    }
    for name, value in {**secret, **settings_config_map()}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RTCDP_LEDGER_URL", "sqlite://")  # nothing to connect to here

    from resources import environment_resources

    with build_resources(environment_resources()) as built:
        sftp = built.campaign_sftp
        assert (sftp.host, sftp.port) == (secret["CAMPAIGN_SFTP_HOST"], 22)
        assert sftp.known_hosts_path == settings_config_map()["CAMPAIGN_SFTP_KNOWN_HOSTS"]
        assert built.aep_landing.container == secret["AEP_LANDING_CONTAINER"]
        assert built.warehouse.zone.container == secret["WAREHOUSE_CONTAINER"]
    assert not LAUNCHER_ONLY & set(os.environ)

    for name, value in POD_ENV.items():
        if name not in LAUNCHER_ONLY:
            monkeypatch.setenv(name, value)
    for name in [*os.environ]:
        if PROJECT_VARIABLE.match(name):
            monkeypatch.delenv(name)
    config = validated_instance()  # storage, queue, pools: no project variable needed
    launcher = config["run_launcher"]
    missing = process_config(configured_class(launcher).config_type(), launcher["config"])
    assert not missing.success
    assert set(re.findall(r"DAGSTER_\w+", str(missing.errors))) == LAUNCHER_ONLY


def test_the_image_runs_the_code_location_as_a_non_root_user():
    text = DOCKERFILE.read_text()
    assert text.startswith("#") and "\nFROM python:3.11-slim\n" in text
    assert "pip install -c requirements.lock '.[postgres,k8s]'" in text
    users = re.findall(r"^USER (\S+)$", text, flags=re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    uid = re.search(r"useradd .*--uid (\d+)", text)
    values = yaml.safe_load(HELM_VALUES.read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert uid and int(uid[1]) == deployment["podSecurityContext"]["runAsUser"]
    assert '"--module-name", "rtcdp_assets.definitions"' in text
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert ignored[1] == "**"  # the context is an allow-list: no .env, keys or .rtcdp data


# ---- no literal secrets ---------------------------------------------------------------------

SECRET_WORDS = re.compile(
    r"passw|secret|token|credential|account_?key|private_?key|_key$|\bsas\b", re.I
)
# Keys that name a secret (a Kubernetes object or an env var), never hold one.
REFERENCE_KEYS = {"secretName", "postgresqlSecretName", "env_secrets", "envSecrets"}
SECRET_SHAPES = [
    re.compile(r"AccountKey=", re.I),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"[?&]sig=", re.I),
    re.compile(r"\b[A-Za-z0-9+/]{40,}={0,2}"),  # a long base64 blob, e.g. a storage key
    re.compile(r"postgres(ql)?(\+\w+)?://[^:\s]+:[^@\s]+@"),  # a password inside a URL
]


def _is_env_reference(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"env"}


def _literal_secrets(node: Any, path: str = "") -> list[str]:
    found = []
    if isinstance(node, dict):
        # {name: X, value: Y} env entries: the name says what the value is
        if (
            set(node) >= {"name", "value"}
            and isinstance(node["value"], str)
            and SECRET_WORDS.search(node["name"])
            and node["value"]
        ):
            found.append(f"{path}.{node['name']}")
        for key, value in node.items():
            if key in REFERENCE_KEYS or _is_env_reference(value):
                continue
            if isinstance(value, str) and SECRET_WORDS.search(str(key)) and value:
                found.append(f"{path}.{key}")
            found += _literal_secrets(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found += _literal_secrets(item, f"{path}[{i}]")
    elif isinstance(node, str) and "=" in node:
        name, _, value = node.partition("=")  # env_vars entries: NAME=value
        if SECRET_WORDS.search(name) and value:
            found.append(f"{path}:{name}")
    return found


@pytest.mark.parametrize(
    "path", [INSTANCE_YAML, HELM_VALUES, SETTINGS_CONFIG_MAP], ids=lambda p: p.name
)
def test_no_literal_secret_in_the_deployment_yaml(path):
    text = path.read_text()
    assert _literal_secrets(yaml.safe_load(text)) == []
    for shape in SECRET_SHAPES:
        assert not shape.search(text), shape.pattern


def test_the_secret_scan_finds_literal_secrets():
    planted = {
        "postgresql": {"postgresqlPassword": "hunter2"},
        "env": [{"name": "AZURE_STORAGE_KEY", "value": "abc"}],
        "run_launcher": {"config": {"env_vars": ["CAMPAIGN_SFTP_PASSWORD=abc"]}},
        "ok": {"password": {"env": "DAGSTER_PG_PASSWORD"}, "secretName": "rtcdp-env"},
    }
    assert sorted(_literal_secrets(planted)) == [
        ".env[0].AZURE_STORAGE_KEY",
        ".postgresql.postgresqlPassword",
        ".run_launcher.config.env_vars[0]:CAMPAIGN_SFTP_PASSWORD",
    ]
    assert SECRET_SHAPES[0].search("DefaultEndpointsProtocol=https;AccountKey=abc")
