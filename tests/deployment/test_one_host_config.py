"""deploy/one-host/dagster.yaml without services: a valid Dagster 1.13 instance for its classes
(the default run launcher, the queued coordinator, Postgres storage), with nothing of the
project inside it, and the same run and pool limits as the Kubernetes instance.
tests/deployment/test_one_host.py runs a real daemon on it."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import Shape, process_config
from dagster._core.instance.config import dagster_instance_config, dagster_instance_config_schema
from dagster._serdes import ConfigurableClassData

REPO = Path(__file__).resolve().parents[2]
ONE_HOST = REPO / "deploy" / "one-host"
KUBERNETES_INSTANCE = REPO / "deploy" / "kubernetes" / "dagster.yaml"
HOST_ENV = {
    "DAGSTER_PG_HOST": "127.0.0.1",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "from-the-env-file",
    "DAGSTER_PG_DB": "dagster",
}


@pytest.fixture
def host_env(monkeypatch):
    for name, value in HOST_ENV.items():
        monkeypatch.setenv(name, value)


def raw_instance() -> dict[str, Any]:
    return yaml.safe_load((ONE_HOST / "dagster.yaml").read_text())


def env_references(node: Any) -> set[str]:
    """Every environment variable the file reads (`{env: NAME}`)."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return {name for value in node.values() for name in env_references(value)}
    if isinstance(node, list):
        return {name for item in node for name in env_references(item)}
    return set()


def configured_class(section: dict[str, Any]) -> type:
    data = ConfigurableClassData(section["module"], section["class"], yaml.safe_dump({}))
    return getattr(importlib.import_module(data.module_name), data.class_name)


def test_the_one_host_instance_is_valid_for_dagster_and_its_classes(host_env):
    raw, custom_instance_class = dagster_instance_config(str(ONE_HOST))
    assert custom_instance_class is None
    result = process_config(Shape(dagster_instance_config_schema()), raw)
    assert result.success, result.errors
    config = result.value
    for section in ("run_coordinator", "run_launcher"):
        klass = configured_class(config[section])
        checked = process_config(klass.config_type(), config[section].get("config") or {})
        assert checked.success, (section, checked.errors)
    assert configured_class(config["run_launcher"]).__name__ == "DefaultRunLauncher"
    assert configured_class(config["run_coordinator"]).__name__ == "QueuedRunCoordinator"
    db = config["storage"]["postgres"]["postgres_db"]
    assert db["scheme"] == "postgresql+psycopg2"
    assert db["password"] == HOST_ENV["DAGSTER_PG_PASSWORD"]
    assert config["run_monitoring"]["enabled"] is True
    # the default launcher cannot resume a run
    assert config["run_monitoring"]["max_resume_run_attempts"] == 0


def test_only_dagster_storage_comes_from_the_environment_here():
    """The project's settings (RTCDP_ENV, SFTP keys, containers) live in the env file of the
    services, never in the instance: the file reads only the storage credentials."""
    raw = raw_instance()
    assert env_references(raw) == set(HOST_ENV)
    assert "config" not in raw["run_launcher"]
    assert raw["run_launcher"]["module"].split(".")[0] == "dagster"  # no dagster_k8s


def test_the_limits_are_those_of_the_kubernetes_instance():
    kubernetes = yaml.safe_load(KUBERNETES_INSTANCE.read_text())
    one_host = raw_instance()
    for section in ("concurrency", "run_retries", "run_coordinator"):
        assert one_host[section] == kubernetes[section], section
    for key in (
        "start_timeout_seconds",
        "poll_interval_seconds",
        "free_slots_after_run_end_seconds",
    ):
        assert one_host["run_monitoring"][key] == kubernetes["run_monitoring"][key], key
