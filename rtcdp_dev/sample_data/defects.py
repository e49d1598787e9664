"""Defects: each one is caught by the validator under exactly one reason code."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from resources.settings import PipelineSettings
from rtcdp_assets.shared.ingest import Layout
from rtcdp_dev.sample_data.common import Column
from rtcdp_dev.sample_data.pipeline import CLASSIC, FLOWS, STATUS_LABELS

# (valid value, a random non-negative int to pick a variant with) -> bad value. The ints are
# drawn in one vectorised call per batch: per-value Generator calls cost more than the rest.
Corruptor = Callable[[str, int], str]


@dataclass(frozen=True)
class DefectKind:
    """One realistic fault. `corrupt` maps a valid value to a bad one; None drops the value
    (and its delimiter), which gives a row with one column too few."""

    reason: str  # ingest.py reason code the validator must give
    fields: tuple[str, ...]  # canonical fields that may carry it
    corrupt: Corruptor | None
    # The reason when it depends on the valid value (an address: email, number or token).
    reason_for: Callable[[str], str] | None = None


def _bad_email(value: str, pick: int) -> str:
    local, domain = value.split("@", 1)
    # Each variant fails ingest._EMAIL_RE (a trailing dot would not: "a@b.com." passes).
    variants = (
        f"{local}{domain}",  # the @ got lost
        f"{local}@@{domain}",
        f"{local}@{domain.split('.', 1)[0]}",  # no dot in the domain
        f"{local} @{domain}",  # a blank inside the address survives trimming
    )
    return variants[pick % len(variants)]


def _bad_phone(value: str, pick: int) -> str:
    # Each variant fails E.164 with the default settings (no default country code).
    variants = (
        value[1:],  # the + got lost: a national-looking number
        value[:5],  # cut off
        f"{value[:6]}xx{value[8:]}",  # letters inside
        "n/a",
    )
    return variants[pick % len(variants)]


def _bad_token(value: str, pick: int) -> str:
    # Each variant fails both the APNs and the FCM pattern, whatever the row's platform.
    variants = (
        f"<{value[:8]} {value[8:16]} {value[16:24]}>",  # NSData's description, not the token
        value[: len(value) // 2],  # cut off by a column that was too short
        "(null)",
        f"{value[:20]} {value[20:]}",  # a blank inside survives trimming
    )
    return variants[pick % len(variants)]


def _address_kind(value: str) -> str:
    """email, phone (E.164, as generated) or push token, from a valid generated address."""
    return "email" if "@" in value else "phone" if value.startswith("+") else "token"


_ADDRESS_DEFECTS: dict[str, tuple[str, Corruptor]] = {
    "email": ("invalid_email", _bad_email),
    "phone": ("invalid_phone_number", _bad_phone),
    "token": ("invalid_push_token", _bad_token),
}


def _bad_address(value: str, pick: int) -> str:
    return _ADDRESS_DEFECTS[_address_kind(value)][1](value, pick)


def _address_reason(value: str) -> str:
    return _ADDRESS_DEFECTS[_address_kind(value)][0]


def _missing(_value: str, pick: int) -> str:
    return "  " if pick % 5 == 0 else ""  # blanks are trimmed before the required check


def _bad_integer(value: str, pick: int) -> str:
    variants = (
        f"{value}.0",  # a spreadsheet round trip
        f"{int(value):.4E}",  # ... or scientific notation
        "NULL",
        # thousands separator; short numbers would have a leading blank, which trimming removes
        f"{value[:-3]} {value[-3:]}" if len(value) > 3 else f"{value}.00",
    )
    return variants[pick % len(variants)]


def _bad_timestamp(value: str, pick: int) -> str:
    # Sliced rather than parsed: the input is always `YYYY-MM-DD HH:MM:SS`.
    y, mo, d = value[0:4], value[5:7], value[8:10]
    h, mi, sec = value[11:13], value[14:16], value[17:19]
    h12 = f"{(int(h) + 11) % 12 + 1}"
    variants = (
        f"{d}/{mo}/{y} {h}:{mi}:{sec}",
        f"{mo}/{d}/{y} {h12}:{mi}:{sec} {'AM' if int(h) < 12 else 'PM'}",
        f"{y}-{mo}-{d} {h}:{mi}",  # seconds cut off
        f"{y}-{mo}-{d}",
        f"{y}{mo}{d}{h}{mi}{sec}",
    )
    return variants[pick % len(variants)]


# Plausible codes of statuses without a public number (Ignored, Prepared, ...): none of them is
# in STATUS_LABELS, which is what the pipeline allows (broadlog._allowed_codes).
_UNKNOWN_STATUSES = tuple(c for c in ("0", "3", "4", "5", "8", "9", "99") if c not in STATUS_LABELS)


def _unknown_status(_value: str, pick: int) -> str:
    return _UNKNOWN_STATUSES[pick % len(_UNKNOWN_STATUSES)]


BROADLOG_DEFECTS: tuple[DefectKind, ...] = (
    # An address bad for its channel: the reason is the channel's (email, number, token).
    DefectKind("invalid_address", ("address",), _bad_address, reason_for=_address_reason),
    DefectKind(
        "missing_required_value",
        ("broadlog_id", "delivery_id", "recipient_id", "address", "status", "event_date"),
        _missing,
    ),
    DefectKind("invalid_integer", ("broadlog_id", "delivery_id", "recipient_id"), _bad_integer),
    DefectKind(
        "invalid_timestamp", ("event_date", "contact_date", "last_modified"), _bad_timestamp
    ),
    DefectKind("unknown_code:status", ("status",), _unknown_status),
    DefectKind("wrong_column_count", tuple(CLASSIC.columns.values()), None),
)


def _bad_boolean(_value: str, pick: int) -> str:
    # What other tools write for booleans; none is in ingest's true/false lists.
    variants = ("2", "-1", "t", "f", "NULL", "on", "x")
    return variants[pick % len(variants)]


def _bad_date(value: str, pick: int) -> str:
    # Birth dates are optional: an empty one gets a made-up date to spoil.
    value = value or "1980-06-15"
    y, mo, d = value[0:4], value[5:7], value[8:10]
    variants = (
        f"{d}/{mo}/{y}",
        f"{y}-{mo}-{d} 00:00:00",  # a timestamp where a date belongs
        f"{y}{mo}{d}",
        f"{y}-02-30",  # well-formed but impossible: caught by ingest's round trip
        f"{y[2:]}-{mo}-{d}",
    )
    return variants[pick % len(variants)]


def _unknown_code(codes: Sequence[str]) -> Corruptor:
    """A corruptor writing one of `codes` (codes the pipeline does not accept)."""
    if not codes:
        raise ValueError("no unknown code left to write: the pipeline accepts them all")
    choices = tuple(codes)

    def corrupt(_value: str, pick: int) -> str:
        return choices[pick % len(choices)]

    return corrupt


def _rejected(dataset: str, field_name: str, candidates: Sequence[str]) -> tuple[str, ...]:
    """The candidates the pipeline rejects for `field_name`: its flow's allowed codes (with
    default settings) override the FieldSpec's, exactly as ingest_file applies them."""
    flow = FLOWS[dataset]
    allowed = flow.allowed_codes(PipelineSettings()).get(
        field_name, flow.fmt.field(field_name).allowed
    )
    if allowed is None:
        raise ValueError(f"{dataset}.{field_name} accepts every value")
    return tuple(c for c in candidates if c not in allowed)


@dataclass(frozen=True)
class Defect:
    row: int  # 0-based row within the batch
    reason: str
    line: bytes  # the whole defective CSV line, `\n` included


def _defect_rows(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """The rows of a batch that get a defect: the first draws of `inject_defects`, so that
    other datasets can tell which broadLog rows the pipeline rejects without building them."""
    k = int(rng.binomial(n, rate)) if rate > 0 and n else 0
    if k == 0:
        return np.empty(0, dtype=np.int64)
    return np.sort(rng.choice(n, size=k, replace=False))


def inject_defects(
    columns: Mapping[str, Column],
    n: int,
    layout: Layout,
    kinds: Sequence[DefectKind],
    rate: float,
    rng: np.random.Generator,
) -> list[Defect]:
    """Pick a binomial share `rate` of n rows and give each exactly one defect.

    `columns` maps canonical field -> the n valid values. Only the picked rows are touched
    (in Python; there are few of them), so the valid rows stay in Arrow.
    """
    rows = _defect_rows(rng, n, rate)
    k = rows.size
    if k == 0:
        return []
    kind_of = rng.integers(0, len(kinds), size=k).tolist()
    target_pick = rng.integers(0, 1 << 30, size=k).tolist()
    variant_pick = rng.integers(0, 1 << 30, size=k).tolist()
    order = list(layout.columns.values())  # canonical names in file order
    picked = pa.array(rows)
    values = [
        [col.as_py()] * k if isinstance(col, pa.Scalar) else col.take(picked).to_pylist()
        for col in (columns[name] for name in order)
    ]
    # Positions in the file of the fields each kind may hit (a layout may lack some).
    where = [[order.index(f) for f in kind.fields if f in order] for kind in kinds]
    out: list[Defect] = []
    for j, row in enumerate(zip(*values, strict=True)):
        kind, places = kinds[kind_of[j]], where[kind_of[j]]
        at = places[target_pick[j] % len(places)]
        fields = list(row)
        reason = kind.reason if kind.reason_for is None else kind.reason_for(fields[at])
        if kind.corrupt is None:
            del fields[at]
        else:
            fields[at] = kind.corrupt(fields[at], variant_pick[j])
        out.append(Defect(int(rows[j]), reason, (",".join(fields) + "\n").encode()))
    return out
