"""The two doors as shipped (docs/ui-access.md): the Kubernetes proxy serves the same doors as
the one-host nginx file, the chart runs the read-only webserver beside the full one, only the
proxy is published, and no proxy secret is in the repository."""

from __future__ import annotations

import re
import subprocess

import yaml

from rtcdp_dev.services import REPO_ROOT
from tests.deployment.ui_doors import SHIPPED_PROXY

KUBERNETES = REPO_ROOT / "deploy" / "kubernetes"
OIDC_TEMPLATE = REPO_ROOT / "deploy" / "one-host" / "oauth2-proxy.cfg.example"


def without_comments(text: str) -> list[str]:
    return [
        line.rstrip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def kubernetes_objects() -> dict[str, dict]:
    documents = yaml.safe_load_all((KUBERNETES / "ui-proxy.yaml").read_text())
    return {doc["kind"]: doc for doc in documents if doc}


def test_the_kubernetes_proxy_serves_the_one_host_doors_with_the_charts_webservers():
    one_host = without_comments(SHIPPED_PROXY.read_text())
    in_cluster = without_comments(kubernetes_objects()["ConfigMap"]["data"]["rtcdp-ui.conf"])
    differing = [(a, b) for a, b in zip(one_host, in_cluster, strict=True) if a != b]
    assert differing == [
        ("    server 127.0.0.1:3001;", "    server dagster-webserver-read-only:80;"),
        ("    server 127.0.0.1:3000;", "    server dagster-webserver:80;"),
    ]


def test_the_chart_runs_both_webservers_on_the_cluster_network_only():
    values = yaml.safe_load((KUBERNETES / "values.yaml").read_text())["dagsterWebserver"]
    assert values["enableReadOnly"] is True
    assert values["service"]["type"] == "ClusterIP"
    objects = kubernetes_objects()
    assert objects["Service"]["spec"]["type"] == "ClusterIP"
    policy = objects["NetworkPolicy"]["spec"]
    (selector,) = policy["podSelector"]["matchExpressions"]
    assert set(selector["values"]) == {"dagster-webserver", "dagster-webserver-read-only"}
    (rule,) = policy["ingress"]
    assert rule["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "rtcdp-ui-proxy"}}}
    ]


def test_every_door_authenticates_and_no_webserver_listens_beyond_loopback():
    text = SHIPPED_PROXY.read_text()
    servers = text.split("\nserver {")[1:]
    assert len(servers) == 2
    for server in servers:
        assert re.search(r"auth_basic_user_file /etc/rtcdp/ui/\w+\.htpasswd;", server)
        assert "ssl_certificate_key /etc/rtcdp/ui/tls.key;" in server
    upstreams = re.findall(r"^\s*server (\S+);", text, flags=re.MULTILINE)
    assert upstreams == ["127.0.0.1:3001", "127.0.0.1:3000"]
    for unit in ("dagster-webserver.service", "dagster-webserver-readonly.service"):
        exec_start = re.search(r"^ExecStart=(.*)$", (SHIPPED_PROXY.parent / unit).read_text(), re.M)
        assert exec_start and " -h 127.0.0.1 " in exec_start[1]


def test_no_proxy_secret_is_in_the_repository():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [p for p in tracked if p.endswith((".htpasswd", ".key", ".crt", ".pem"))]
    settings = dict(line.split(" = ", 1) for line in without_comments(OIDC_TEMPLATE.read_text()))
    assert "client_secret" not in settings and "cookie_secret" not in settings
    assert settings["http_address"] == '"127.0.0.1:4180"'
