"""Preferences rows: opt-out flags of recipients changed in the window."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rtcdp_dev.sample_data.batches import _distinct_sample, _Plan, _References, _Source, _timestamps
from rtcdp_dev.sample_data.common import Column, rng_for, ts_strings, window_index
from rtcdp_dev.sample_data.pipeline import preferences

# Share of the exported recipients with each flag set (the global blackList is rare).
_OPT_OUTS = (
    ("blacklist", 0.015),
    ("blacklist_email", 0.06),
    ("blacklist_mobile", 0.03),
    ("blacklist_phone", 0.01),
    ("blacklist_fax", 0.004),
    ("blacklist_postal_mail", 0.01),
    ("blacklist_push", 0.02),
)
assert {f for f, _ in _OPT_OUTS} == {"blacklist", *preferences.CHANNELS}


def _preferences_source(
    plan: _Plan, rows: int, defect_rate: float, batch_rows: int, refs: _References
) -> _Source:
    pool = plan.pool
    # One row per recipient and file: an export of the recipients changed in the window.
    chosen = _distinct_sample(
        rng_for(plan.seed, "preferences-recipients", window_index(plan.window)), rows, pool.size
    )
    flag_text = pa.array(["0", "1"])  # Campaign writes its booleans as 0/1

    def columns(rng: np.random.Generator, r0: int, n: int, lo: int, hi: int) -> dict[str, Column]:
        who = chosen[r0 : r0 + n]
        who_arr = pa.array(who)
        modified = _timestamps(rng, n, lo, hi)
        mixed_case = rng.random(n) < 0.03
        out: dict[str, Column] = {
            "recipient_id": pool.recipient_ids.take(who_arr),
            "external_id": pool.external_ids.take(who_arr),
            "email": pool.addresses(who, mixed_case),
            "last_modified": ts_strings(modified),
            "org_unit": pa.scalar(plan.org_unit),
        }
        for flag, share in _OPT_OUTS:
            out[flag] = flag_text.take(pa.array((rng.random(n) < share).astype(np.int64)))
        return out

    return _Source(columns, plan.t_lo, plan.t_hi)
