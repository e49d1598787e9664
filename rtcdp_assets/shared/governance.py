"""Data-usage labels and policies as code, enforced on destination-bound assets.

`governance.yaml` beside this module assigns Adobe data-usage labels to datasets and fields,
declares each destination-bound asset with the marketing actions its use performs, and declares
policies as deny expressions over labels (`{label: C2}` or `{operator: AND|OR, operands: [...]}`),
as in AEP's policy model. `evaluate` applies every policy whose marketing actions meet the
destination's to the labels of the fields actually exported, and explains each violation:
field(s), label(s), policy, marketing action. A blocking check built from it stops the upload
(`asset_checks.governance_checks.usage_policy_result`).

The file is read once per process; `RTCDP_GOVERNANCE_FILE` points at a customer's own copy.
"""

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DEFAULT_FILE = Path(__file__).with_name("governance.yaml")
ANY_ACTION = "*"


class GovernanceConfigError(ValueError):
    """The governance file is inconsistent (unknown action, malformed expression, ...)."""


@dataclass(frozen=True)
class Violation:
    policy: str
    marketing_action: str
    labels: tuple[str, ...]
    fields: tuple[str, ...]

    def explain(self) -> str:
        return (
            f"policy '{self.policy}' denies marketing action '{self.marketing_action}' for "
            f"label(s) {', '.join(self.labels)} carried by field(s) {', '.join(self.fields)}"
        )


@dataclass(frozen=True)
class Governance:
    labels: Mapping[str, Mapping[str, tuple[str, ...]]]
    marketing_actions: frozenset[str]
    destinations: Mapping[str, tuple[str, ...]]
    policies: tuple[Mapping[str, Any], ...]

    def field_labels(self, dataset: str, fields: Iterable[str]) -> dict[str, set[str]]:
        declared = self.labels.get(dataset, {})
        everywhere = set(declared.get("_dataset", ()))
        return {f: everywhere | set(declared.get(f, ())) for f in fields}

    def evaluate(self, dataset: str, fields: Sequence[str]) -> list[Violation]:
        """Every policy violation of exporting `fields` of `dataset` to its destination."""
        if dataset not in self.destinations:
            raise GovernanceConfigError(f"{dataset} is not a declared destination")
        by_field = self.field_labels(dataset, fields)
        present = set().union(*by_field.values()) if by_field else set()
        violations = []
        for policy in self.policies:
            actions = policy["marketing_actions"]
            for action in self.destinations[dataset]:
                if ANY_ACTION not in actions and action not in actions:
                    continue
                matched = _matching_labels(policy["deny"], present)
                if matched is None:
                    continue
                culprits = tuple(sorted(f for f, ls in by_field.items() if ls & matched))
                violations.append(
                    Violation(policy["name"], action, tuple(sorted(matched)), culprits)
                )
        return violations


def _matching_labels(expr: Mapping[str, Any], present: set[str]) -> set[str] | None:
    """The labels that make the deny expression true, or None when it is false."""
    if "label" in expr:
        return {expr["label"]} if expr["label"] in present else None
    results = [_matching_labels(o, present) for o in expr["operands"]]
    if expr["operator"] == "AND":
        return set().union(*results) if all(r is not None for r in results) else None
    hits = [r for r in results if r is not None]
    return set().union(*hits) if hits else None


def _check_expr(expr: Any, where: str) -> None:
    if not isinstance(expr, Mapping):
        raise GovernanceConfigError(f"{where}: an expression must be a mapping")
    if "label" in expr:
        return
    if expr.get("operator") not in ("AND", "OR") or not expr.get("operands"):
        raise GovernanceConfigError(f"{where}: needs label, or operator AND/OR with operands")
    for i, operand in enumerate(expr["operands"]):
        _check_expr(operand, f"{where}.operands[{i}]")


def parse(doc: Mapping[str, Any]) -> Governance:
    actions = frozenset(doc.get("marketing_actions", ()))
    destinations = {}
    for name, spec in (doc.get("destinations") or {}).items():
        unknown = set(spec["marketing_actions"]) - actions
        if unknown:
            raise GovernanceConfigError(f"destination {name}: unknown actions {sorted(unknown)}")
        destinations[name] = tuple(spec["marketing_actions"])
    policies = []
    for policy in doc.get("policies") or ():
        unknown = set(policy["marketing_actions"]) - actions - {ANY_ACTION}
        if unknown:
            raise GovernanceConfigError(f"policy {policy['name']}: unknown {sorted(unknown)}")
        _check_expr(policy["deny"], f"policy {policy['name']}.deny")
        policies.append(policy)
    labels = {
        ds: {f: tuple(ls) for f, ls in fields.items()}
        for ds, fields in (doc.get("labels") or {}).items()
    }
    return Governance(labels, actions, destinations, tuple(policies))


@lru_cache(maxsize=4)
def load(path: str | None = None) -> Governance:
    file = Path(path or os.environ.get("RTCDP_GOVERNANCE_FILE") or DEFAULT_FILE)
    return parse(yaml.safe_load(file.read_text()))
