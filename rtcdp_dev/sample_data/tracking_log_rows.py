"""trackingLog rows: reactions to the sends of this window and the ones before it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from resources.settings import PipelineSettings
from rtcdp_dev.sample_data.batches import _first_id, _Plan, _References, _Source
from rtcdp_dev.sample_data.broadlog_rows import _broadlog_facts, _broadlog_reference, _Sends
from rtcdp_dev.sample_data.common import (
    _ID_ORIGIN,
    WINDOW,
    WINDOW_SECONDS,
    Column,
    _epoch_seconds,
    increasing_ids,
    int_strings,
    rng_for,
    ts_strings,
    weighted_choice,
    window_index,
    window_starts,
)

# Reaction delays are log-normal: median one hour, a long tail over the following days.
_REACTION_MEDIAN_S = 3600
_REACTION_SIGMA = 1.2
_CLICK_SHARE = 0.31
# Tracked links of a delivery: (URL before the delivery id, category, share of the clicks).
_CLICK_LINKS = (
    ("https://www.example.com/?utm_medium=email&utm_campaign=", "email", 0.28),
    ("https://www.example.com/offers?utm_medium=email&utm_campaign=", "email", 0.26),
    ("https://www.example.com/products/new-arrivals?utm_medium=email&utm_campaign=", "email", 0.14),
    ("https://shop.example.com/cart?utm_medium=email&utm_campaign=", "email", 0.1),
    ("https://www.example.com/account/preferences?utm_medium=email&utm_campaign=", "email", 0.04),
    ("https://www.example.com/stores?utm_medium=email&utm_campaign=", "email", 0.08),
    ("https://facebook.example/examplebrand?utm_campaign=", "facebook", 0.05),
    ("https://instagram.example/examplebrand?utm_campaign=", "instagram", 0.05),
)


@dataclass(frozen=True)
class _Reaction:
    url_type: str  # §b4: 1 click, 2 open, 3 opt-out, 6 mirror page
    url_slot: int  # iUrlId = delivery id * 100 + slot; 0: the built-in open URL, id 1
    url: str  # the delivery id is appended; "" for opens, which have no URL
    category: str
    weight: float


_REACTIONS: tuple[_Reaction, ...] = (
    _Reaction("2", 0, "", "", 0.63),
    *(
        _Reaction("1", 10 + k, url, category, _CLICK_SHARE * share)
        for k, (url, category, share) in enumerate(_CLICK_LINKS)
    ),
    _Reaction("6", 2, "https://campaign.example.com/nms/jsp/mirror.jsp?d=", "mirror", 0.04),
    _Reaction("3", 3, "https://www.example.com/unsubscribe?d=", "subscription", 0.02),
)
_DEVICES = (("mobile", 0.54), ("pc", 0.36), ("tablet", 0.08), ("", 0.02))


assert WINDOW_SECONDS < 1 << 16
_REACTION_CHUNK = 1 << 20


def _reactions(
    rng: np.random.Generator, sends: _Sends, rows: int, t_lo: int, t_hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """`rows` reactions in [t_lo, t_hi), sorted by time: send indices and tsLog - t_lo.

    Every engaged send is a priori equally likely to react, after a log-normal delay of at
    least a second; conditioned on the reaction falling in the window, a send is picked with
    the probability that its delay lands there, and the delay from the density truncated to
    that range. Exact, via a per-second table of the delay distribution: no rejection loop,
    and no bias towards sends followed by a quiet spell."""
    longest = t_hi - int(sends.event[0])
    seconds = np.arange(1, longest + 1, dtype=np.float64)
    log_s = np.log(seconds)
    density = np.exp(-((log_s - np.log(_REACTION_MEDIAN_S)) ** 2) / (2 * _REACTION_SIGMA**2))
    # cdf[k]: probability (up to a constant) that the delay is under k seconds (delays are
    # whole seconds, at least one).
    cdf = np.concatenate([[0.0, 0.0], np.cumsum(density / seconds)])[: longest + 1]
    lo = np.maximum(t_lo - sends.event, 1)  # shortest delay that lands in the window
    hi = np.maximum(t_hi - sends.event, lo)  # delays < hi: before t_hi (empty when hi == lo)
    cumulative = np.cumsum(cdf[hi] - cdf[lo])
    total = float(cumulative[-1])
    if total <= 0:
        raise ValueError(
            "no sent broadLog message early enough for a trackingLog reaction inside the window"
        )
    # Sorted keys: the search walks the table once instead of missing the cache millions of
    # times (the order is lost in the final sort anyway). 'right' skips zero-weight sends.
    keys = rng.random(rows)
    keys.sort()
    keys *= total
    pick = np.searchsorted(cumulative, keys, side="right").astype(np.int32)
    del keys
    # Seconds into the window fit 16 bits, and chunks keep the int64 temporaries small: the
    # sample keeps 6 bytes a row (peaking near 20 while sorting) instead of ~60.
    offset = np.empty(rows, dtype=np.uint16)
    for start in range(0, rows, _REACTION_CHUNK):
        p = pick[start : start + _REACTION_CHUNK]
        lo_p, hi_p = lo[p], hi[p]
        u = rng.uniform(cdf[lo_p], cdf[hi_p])
        delay = np.clip(np.searchsorted(cdf, u, side="right") - 1, lo_p, hi_p - 1)
        offset[start : start + _REACTION_CHUNK] = sends.event[p] + delay - t_lo
    order = np.argsort(offset, kind="stable")  # a radix sort for 16-bit keys
    return pick[order], offset[order]


def _tracking_source(
    plan: _Plan, rows: int, defect_rate: float, batch_rows: int, refs: _References
) -> _Source:
    if refs.history_windows < 0:
        raise ValueError("history_windows must be >= 0")
    b_rows, b_rate = _broadlog_reference(rows, defect_rate, refs)
    first = max(plan.window - WINDOW * refs.history_windows, _ID_ORIGIN)
    sends = _Sends.concat(
        [
            _broadlog_facts(
                plan.seed, ws, b_rows, b_rate, min(_epoch_seconds(ws) + WINDOW_SECONDS, plan.t_hi)
            ).sends
            for ws in window_starts(first, plan.window + WINDOW)
        ]
    )
    picks, offsets = np.empty(0, dtype=np.int32), np.empty(0, dtype=np.uint16)
    if rows:
        if not sends.size:
            raise ValueError(
                f"no sent broadLog message (of {b_rows} rows per file) for trackingLog rows "
                "to react to"
            )
        reactions_rng = rng_for(plan.seed, "tracking_log-reactions", window_index(plan.window))
        picks, offsets = _reactions(reactions_rng, sends, rows, plan.t_lo, plan.t_hi)
    url_types = pa.array([r.url_type for r in _REACTIONS])
    slots = np.array([r.url_slot for r in _REACTIONS], dtype=np.int64)
    urls = pa.array([r.url for r in _REACTIONS])
    categories = pa.array([r.category for r in _REACTIONS])
    weights = [r.weight for r in _REACTIONS]
    devices = pa.array([d for d, _ in _DEVICES])
    device_weights = [w for _, w in _DEVICES]
    pool = plan.pool
    last_id = _first_id(plan.window)

    is_click = np.array([r.url_type == "1" for r in _REACTIONS])
    is_open_kind = np.array([r.url_slot == 0 for r in _REACTIONS])
    first_click = int(np.flatnonzero(is_click)[0])
    channel_label = PipelineSettings().address_channel_codes

    def columns(rng: np.random.Generator, r0: int, n: int, _lo: int, _hi: int) -> dict[str, Column]:
        # Dates come from the file-wide sample above, already sorted: batches take slices.
        nonlocal last_id
        ids = increasing_ids(rng, last_id, n)
        last_id = int(ids[-1])
        pick = picks[r0 : r0 + n]
        log = plan.t_lo + offsets[r0 : r0 + n].astype(np.int64)
        kind = weighted_choice(rng, n, weights)
        device = weighted_choice(rng, n, device_weights)
        # An SMS is only tracked through its links; a push is opened or tapped, it has no
        # mirror page or unsubscription link: those reactions become a click.
        codes = sends.channel_codes[pick]
        labels = np.array([channel_label.get(str(c), "email") for c in np.unique(codes)])
        label = labels[np.searchsorted(np.unique(codes), codes)] if n else codes.astype(str)
        sms = label == "sms"
        push = np.char.startswith(label.astype(str), "push")
        to_click = (sms & ~is_click[kind]) | (push & ~is_click[kind] & ~is_open_kind[kind])
        kind = np.where(to_click, first_click, kind)

        delivery = sends.delivery_ids[pick]
        who = pa.array(sends.who[pick])
        is_open = slots[kind] == 0
        kind_arr = pa.array(kind)
        delivery_text = int_strings(delivery)
        return {
            "tracking_log_id": int_strings(ids),
            "broadlog_id": int_strings(sends.broadlog_ids[pick]),
            "delivery_id": delivery_text,
            "recipient_id": pool.recipient_ids.take(who),
            "external_id": pool.external_ids.take(who),
            "url_type": url_types.take(kind_arr),
            "url_id": int_strings(np.where(is_open, 1, delivery * 100 + slots[kind])),
            "url": pc.binary_join_element_wise(
                urls.take(kind_arr), pc.if_else(pa.array(is_open), "", delivery_text), ""
            ),
            "url_category": categories.take(kind_arr),
            "log_date": ts_strings(log),
            "device": devices.take(pa.array(device)),
            "org_unit": pa.scalar(plan.org_unit),
            "channel": int_strings(codes),
        }

    return _Source(columns, plan.t_lo, plan.t_hi)
