"""A sample web-shop order export for the offline data demo (rtcdp_assets/customer_to_aep).

One file a day, ``orders_<YYYYMMDD>.csv``, shaped like a shop platform's order export and
matching the shipped mapping (rtcdp_assets/customer_to_aep/mappings/offline_orders.yaml):
UTF-8 with a byte-order mark, CRLF line ends, one line per order item, the order's own values
on its first line only, times with the shop's offset. Buyers are people of the seed's
recipient pool (so their orders join the Campaign profiles on email and external ID), and a
few rows carry one deliberate fault each, which the pipeline quarantines with a reason:
``bad_number:Total`` (a decimal comma) and ``missing_identity`` (a guest checkout without an
address). Deterministic: the same (day, seed, orders) give the same bytes.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from rtcdp_dev.sample_data.common import rng_for
from rtcdp_dev.sample_data.recipients import recipient_pool

HEADER = (
    "Name",
    "Email",
    "Financial Status",
    "Created at",
    "Currency",
    "Total",
    "Taxes",
    "Discount Amount",
    "Lineitem quantity",
    "Lineitem name",
    "Lineitem sku",
    "Lineitem total",
    "Billing Name",
    "Customer ID",
)
PRODUCTS = (
    ("MUG-BL", "Mug, blue", 12.50),
    ("TEA-EG", 'Tea "Earl Grey" 100g', 6.90),
    ("NB-A5", "Notebook A5", 4.20),
    ("PEN-GEL", "Gel pen", 1.80),
    ("BAG-TOTE", "Tote bag", 15.00),
)
SHOP_OFFSET = timezone(timedelta(hours=1))
# Order numbers of the faulty orders, by fault (positions in the day's orders).
DECIMAL_COMMA_ORDER = 3
GUEST_ORDER = 7


def orders_csv(day: date, seed: int = 7, orders: int = 24) -> bytes:
    rng = rng_for(seed, f"offline-orders-{day:%Y%m%d}")
    pool = recipient_pool(seed)
    emails, external_ids = pool.emails.to_pylist(), pool.external_ids.to_pylist()
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for number in range(orders):
        who = int(rng.integers(0, len(emails)))
        lines = [
            PRODUCTS[int(i)] for i in rng.choice(len(PRODUCTS), int(rng.integers(1, 4)), False)
        ]
        quantities = [int(q) for q in rng.integers(1, 4, len(lines))]
        totals = [round(price * q, 2) for (_, _, price), q in zip(lines, quantities, strict=True)]
        total = f"{sum(totals):.2f}"
        when = datetime(day.year, day.month, day.day, 8, tzinfo=SHOP_OFFSET) + timedelta(
            minutes=int(rng.integers(0, 12 * 60))
        )
        email, external = emails[who], external_ids[who] or ""
        if number == DECIMAL_COMMA_ORDER:
            total = total.replace(".", ",")
        if number == GUEST_ORDER:
            email = external = ""
        for index, ((sku, name, _), quantity, line_total) in enumerate(
            zip(lines, quantities, totals, strict=True)
        ):
            first = index == 0
            writer.writerow(
                [
                    f"#{day:%y%m%d}{number:03d}",
                    email if first else "",
                    "paid" if first else "",
                    when.strftime("%Y-%m-%d %H:%M:%S %z") if first else "",
                    "EUR" if first else "",
                    total if first else "",
                    f"{float(sum(totals)) / 6:.2f}" if first else "",
                    "0.00" if first else "",
                    quantity,
                    name,
                    sku,
                    f"{line_total:.2f}",
                    "",  # the billing name is not sent to AEP (the mapping ignores it)
                    external if first else "",
                ]
            )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def write_sample_orders(customer_source: Path, day: date, seed: int = 7) -> Path:
    """``<customer_source>/offline/orders/orders_<YYYYMMDD>.csv``; returns its path."""
    folder = customer_source / "offline" / "orders"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"orders_{day:%Y%m%d}.csv"
    path.write_bytes(orders_csv(day, seed))
    return path
