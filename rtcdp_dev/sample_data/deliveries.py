"""Deliveries: a small, seasonal set per window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rtcdp_dev.sample_data.common import as_utc, rng_for, window_index


@dataclass(frozen=True)
class Delivery:
    delivery_id: int
    label: str
    operation_id: int  # iOperationId: the campaign the delivery belongs to
    weight: float  # share of the window's messages


_SEASONS = {
    1: "New Year Sale",
    2: "Valentine's Day",
    3: "Spring Sale",
    4: "Easter Offers",
    5: "Mother's Day",
    6: "Summer Sale",
    7: "Summer Sale",
    8: "Back to School",
    9: "Back to School",
    10: "Halloween",
    11: "Black Friday",
    12: "Christmas",
}
_LIFECYCLE = (
    "Welcome Series - Email 1",
    "Welcome Series - Email 2",
    "Cart Abandonment - Reminder",
    "Birthday Offer",
    "Win-back - We Miss You",
)
_SEASONAL_SUFFIXES = ("Newsletter", "Reminder", "Last Chance")


def deliveries_for_window(seed: int, window_start: datetime) -> list[Delivery]:
    """Triggered lifecycle deliveries (always on) plus the month's newsletter and seasonal
    campaign, e.g. "Black Friday 2026 - Newsletter"; the batch deliveries carry most volume."""
    base = rng_for(seed, "deliveries")
    delivery_base = int(base.integers(10, 90)) * 100_000
    operation_base = int(base.integers(1, 9)) * 10_000
    ws = as_utc(window_start)
    month_index = (ws.year - 2000) * 12 + ws.month - 1
    rng = rng_for(seed, "delivery-mix", window_index(ws))
    out = [
        Delivery(delivery_base + 1 + i, label, operation_base + 1, float(rng.uniform(0.01, 0.04)))
        for i, label in enumerate(_LIFECYCLE)
    ]
    out.append(
        Delivery(
            delivery_base + 1_000 + month_index * 4,
            f"Monthly Newsletter {ws.year}-{ws.month:02d}",
            operation_base + 100 + month_index * 2,
            float(rng.uniform(0.1, 0.3)),
        )
    )
    season = _SEASONS[ws.month]
    for slot, suffix in enumerate(_SEASONAL_SUFFIXES, start=1):
        out.append(
            Delivery(
                delivery_base + 1_000 + month_index * 4 + slot,
                f"{season} {ws.year} - {suffix}",
                operation_base + 101 + month_index * 2,
                float(rng.uniform(0.05, 0.4)),
            )
        )
    return out
