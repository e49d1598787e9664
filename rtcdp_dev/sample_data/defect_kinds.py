"""Defect kinds per dataset, derived from the pipeline's field specs."""

from __future__ import annotations

from collections.abc import Sequence

from resources.settings import PipelineSettings
from rtcdp_dev.sample_data.defects import (
    BROADLOG_DEFECTS,
    DefectKind,
    _bad_boolean,
    _bad_date,
    _bad_email,
    _bad_integer,
    _bad_timestamp,
    _bad_token,
    _missing,
    _rejected,
    _unknown_code,
)
from rtcdp_dev.sample_data.pipeline import DATASET_LAYOUTS, FLOWS


def _fields(dataset: str, kind: str | None = None, *, required: bool = False) -> tuple[str, ...]:
    """Canonical fields of `dataset` of that kind (and required, if asked) that carry no
    allowed-code list: a bad value there fails the kind's own rule, not `unknown_code`."""
    flow = FLOWS[dataset]
    coded = set(flow.allowed_codes(PipelineSettings())) | {
        f.name for f in flow.fmt.fields if f.allowed is not None
    }
    return tuple(
        f.name
        for f in flow.fmt.fields
        if (kind is None or f.kind == kind)
        and (f.required or not required)
        and (required or f.name not in coded)
    )


def _standard_defects(dataset: str) -> list[DefectKind]:
    """Missing required values, bad values of each kind and a dropped column: the faults
    every dataset shares. Each targets fields whose generated values are never empty."""
    out = [DefectKind("missing_required_value", _fields(dataset, required=True), _missing)]
    for kind, reason, corrupt in (
        ("int", "invalid_integer", _bad_integer),
        ("timestamp", "invalid_timestamp", _bad_timestamp),
        ("email", "invalid_email", _bad_email),
        ("bool", "invalid_boolean", _bad_boolean),
        ("date", "invalid_date", _bad_date),
    ):
        if fields := _fields(dataset, kind):
            out.append(DefectKind(reason, fields, corrupt))
    return out


def _code_defect(dataset: str, field_name: str, candidates: Sequence[str]) -> DefectKind:
    return DefectKind(
        f"unknown_code:{field_name}",
        (field_name,),
        _unknown_code(_rejected(dataset, field_name, candidates)),
    )


def _all_columns(dataset: str) -> DefectKind:
    return DefectKind(
        "wrong_column_count", tuple(DATASET_LAYOUTS[dataset]["classic"].columns.values()), None
    )


TRACKING_LOG_DEFECTS: tuple[DefectKind, ...] = (
    *_standard_defects("tracking_log"),
    _code_defect("tracking_log", "url_type", ("0", "7", "9", "99")),
    _all_columns("tracking_log"),
)
NON_DELIVERABLES_DEFECTS: tuple[DefectKind, ...] = (
    *_standard_defects("non_deliverables"),
    # 3 (direct mail) is a real channel the pipeline has no XDM field for.
    _code_defect("non_deliverables", "channel", ("3", "5", "6", "99")),
    _code_defect("non_deliverables", "status", ("0", "5", "6", "9")),
    _all_columns("non_deliverables"),
)
PREFERENCES_DEFECTS: tuple[DefectKind, ...] = (
    *_standard_defects("preferences"),
    _all_columns("preferences"),
)
PUSH_SUBSCRIPTIONS_DEFECTS: tuple[DefectKind, ...] = (
    *_standard_defects("push_subscriptions"),
    DefectKind("invalid_push_token", ("token",), _bad_token),
    _code_defect("push_subscriptions", "platform", ("Windows", "ios", "web", "HarmonyOS")),
    _all_columns("push_subscriptions"),
)
PROFILES_DEFECTS: tuple[DefectKind, ...] = (
    *_standard_defects("profiles"),
    _code_defect("profiles", "gender", ("M", "F", "3", "9")),  # a CRM's own codes
    _code_defect("profiles", "email_format", ("3", "html", "-1")),
    _all_columns("profiles"),
)
DEFECT_KINDS: dict[str, tuple[DefectKind, ...]] = {
    "broadlog": BROADLOG_DEFECTS,
    "tracking_log": TRACKING_LOG_DEFECTS,
    "non_deliverables": NON_DELIVERABLES_DEFECTS,
    "preferences": PREFERENCES_DEFECTS,
    "profiles": PROFILES_DEFECTS,
    "push_subscriptions": PUSH_SUBSCRIPTIONS_DEFECTS,
}
