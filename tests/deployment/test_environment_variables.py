"""Every environment variable is listed once, with its meaning: the table "Every environment
variable" of docs/deployment.md and the two env templates (.env.example and
deploy/one-host/rtcdp.env.example) hold exactly what the code and the instances read, so the
list cannot drift from the code.

What the code reads is found in the source, not listed here: names passed to `EnvVar(...)`,
`EnvVar.int(...)`, `os.environ[...]`, `os.environ.get(...)`, `os.getenv(...)` or a mapping's
`env.get(...)`; every string constant shaped like one of the project's variables (names kept in
constants and tuples, e.g. `CREDENTIAL_VARIABLES`, `{{env:NAME}}` placeholders); and the per-role
forms `f"{ROLE}_ZONE"` etc. expanded over the roles `resources/__init__.py` builds zones for."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("rtcdp_assets", "resources", "asset_checks", "scripts")
GUIDE = REPO / "docs" / "deployment.md"
TEMPLATES = (REPO / ".env.example", REPO / "deploy" / "one-host" / "rtcdp.env.example")
INSTANCES = sorted((REPO / "deploy").glob("*/dagster.yaml"))
TABLE_HEADING = "## Every environment variable"
# The project's variable families: a string constant of this shape names a variable.
PROJECT_NAME = re.compile(
    r"(RTCDP|AEP|AZURE|CAMPAIGN_SFTP|AWS|DAGSTER|WAREHOUSE|CUSTOMER_SOURCE)_[A-Z0-9_]*[A-Z0-9]"
)
ENV_READERS = {"EnvVar", "int", "getenv"}
# `.get` reads a variable only on the environment: os.environ, or a mapping standing in for it.
ENVIRONMENT_MAPPINGS = {"environ", "env"}
# Functions of resources/__init__.py whose first argument is an exchange role.
ROLE_FUNCTIONS = {"blob", "local", "zone_for_role", "_blob_zone"}
# Set by the Helm chart for the K8s run launcher; nothing of the project reads or sets them.
LAUNCHER_ONLY = {
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP",
    "DAGSTER_K8S_PG_PASSWORD_SECRET",
    "DAGSTER_K8S_PIPELINE_RUN_NAMESPACE",
}


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _reads_environment(node: ast.Call) -> bool:
    func = node.func
    if _call_name(node) in ENV_READERS:
        return True
    if not (isinstance(func, ast.Attribute) and func.attr == "get"):
        return False
    owner = func.value
    name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
    return name in ENVIRONMENT_MAPPINGS


def _is_environ_subscript(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "environ"
    )


def scan(tree: ast.AST) -> tuple[set[str], set[str], set[str]]:
    """(variable names, per-role suffixes such as `_ZONE`, role names) found in one module."""
    names: set[str] = set()
    suffixes: set[str] = set()
    roles: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if PROJECT_NAME.fullmatch(node.value):
                names.add(node.value)
        elif isinstance(node, ast.Call) and node.args:
            first = node.args[0]
            if _reads_environment(node):
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    if re.fullmatch(r"[A-Z][A-Z0-9_]+", first.value):
                        names.add(first.value)
                elif isinstance(first, ast.JoinedStr) and isinstance(
                    first.values[-1], ast.Constant
                ):
                    suffixes.add(str(first.values[-1].value))
            if _call_name(node) in ROLE_FUNCTIONS and isinstance(first, ast.Constant):
                roles.add(str(first.value))
        elif _is_environ_subscript(node):
            key = node.slice  # type: ignore[attr-defined]
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                names.add(key.value)
    return names, suffixes, roles


def code_variables() -> set[str]:
    names: set[str] = set()
    suffixes: set[str] = set()
    roles: set[str] = set()
    for root in SOURCES:
        for path in sorted((REPO / root).rglob("*.py")):
            found = scan(ast.parse(path.read_text(), filename=str(path)))
            names |= found[0]
            suffixes |= found[1]
            roles |= found[2]
    assert suffixes and roles, "the per-role variables are no longer built as f-strings"
    return names | {f"{role.upper()}{suffix}" for role in roles for suffix in suffixes}


def instance_variables() -> set[str]:
    """The `{env: NAME}` references of the shipped instances."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if set(node) == {"env"}:
                found.add(node["env"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in INSTANCES:
        walk(yaml.safe_load(path.read_text()))
    return found


def table_rows() -> list[str]:
    """The first cell of every row of the guide's one table of variables."""
    text = GUIDE.read_text()
    section = text[text.index(TABLE_HEADING) :]
    section = section[: section.index("\n## ", len(TABLE_HEADING))]
    return re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", section, flags=re.MULTILINE)


def template_names(path: Path) -> list[str]:
    """Variables a template sets or offers (commented `# NAME=` lines count)."""
    return re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", path.read_text(), flags=re.MULTILINE)


def duplicates(names: list[str]) -> list[str]:
    return sorted(name for name, count in Counter(names).items() if count > 1)


def test_the_scan_finds_every_way_the_code_reads_a_variable():
    tree = ast.parse(
        "import os\n"
        "A = EnvVar('RTCDP_A')\n"
        "B = EnvVar.int('CAMPAIGN_SFTP_B')\n"
        "C = os.environ['RTCDP_C']\n"
        "D = os.environ.get('OTHER_D', '')\n"
        "E = os.getenv('OTHER_E')\n"
        "F = env.get('AEP_F')\n"
        "NAMES = ('AEP_G', 'AEP_H')\n"
        "I = {'ECID': 1}.get('ECID')\n"
        "def z(name):\n"
        "    return os.environ.get(f'{name}_ZONE'), zone_for_role('warehouse', None)\n"
        "NOT_A_VARIABLE = 'rtcdp_lower_case'\n"
    )
    names, suffixes, roles = scan(tree)
    assert names == {
        "RTCDP_A",
        "CAMPAIGN_SFTP_B",
        "RTCDP_C",
        "OTHER_D",
        "OTHER_E",
        "AEP_F",
        "AEP_G",
        "AEP_H",
    }
    assert suffixes == {"_ZONE"} and roles == {"warehouse"}


def test_the_code_reads_the_variables_this_test_knows_of():
    """A floor for the scan: a few variables read in each of its ways must be found."""
    found = code_variables()
    assert {
        "RTCDP_ENV",  # os.environ.get
        "CAMPAIGN_SFTP_PORT",  # EnvVar.int
        "RTCDP_PARTITIONS_START",  # a module constant
        "AEP_CLIENT_SECRET",  # a tuple of required names
        "AEP_SOURCE_S3_SECRET_KEY",  # an {{env:NAME}} placeholder
        "AEP_DATASET_EXPORT_CONTAINER",  # f"{role.upper()}_CONTAINER"
        "CUSTOMER_SOURCE_BUCKET",  # f"{name}_BUCKET"
    } <= found


def test_every_variable_is_in_the_guide_table_exactly_once():
    rows = table_rows()
    assert duplicates(rows) == []
    missing = (code_variables() | instance_variables()) - set(rows)
    assert missing == set(), f"add to docs/deployment.md, {TABLE_HEADING!r}: {sorted(missing)}"


def test_the_table_lists_nothing_that_is_not_read():
    """Every row is read by the code, an instance, or a library the table names (SDK)."""
    rows = set(table_rows())
    sdk = {"PGSSLMODE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "DAGSTER_HOME"}
    assert rows - code_variables() - instance_variables() - sdk == set()


def test_every_template_offers_every_variable_exactly_once():
    expected = set(table_rows()) - LAUNCHER_ONLY
    for template in TEMPLATES:
        names = template_names(template)
        assert duplicates(names) == [], template.name
        assert set(names) == expected, (
            template.name,
            sorted(expected - set(names)),
            sorted(set(names) - expected),
        )


def test_the_launcher_variables_are_only_the_launchers():
    """Listed in the table, never in an env template or needed by the code."""
    assert set(table_rows()) >= LAUNCHER_ONLY
    assert not LAUNCHER_ONLY & code_variables()
