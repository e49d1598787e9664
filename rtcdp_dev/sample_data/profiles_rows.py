"""Profiles rows: the recipient extract; covers everyone in the window's broadLog."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rtcdp_dev.sample_data.batches import (
    _defects_rng,
    _distinct_sample,
    _Plan,
    _References,
    _slices,
    _Source,
    _timestamps,
)
from rtcdp_dev.sample_data.broadlog_rows import _broadlog_facts, _broadlog_reference
from rtcdp_dev.sample_data.common import Column, rng_for, ts_strings, window_index
from rtcdp_dev.sample_data.defects import _defect_rows
from rtcdp_dev.sample_data.recipients import recipient_details


def _profiles_source(
    plan: _Plan, rows: int, defect_rate: float, batch_rows: int, refs: _References
) -> _Source:
    pool = plan.pool
    details = recipient_details(plan.seed, pool.size)
    b_rows, b_rate = _broadlog_reference(rows, defect_rate, refs)
    sent_to = _broadlog_facts(plan.seed, plan.window, b_rows, b_rate, plan.t_hi).recipients
    rng = rng_for(plan.seed, "profiles-recipients", window_index(plan.window))
    # Everyone the window's broadLog mentions comes first (the audience path joins on them),
    # then other people, once each while there are any left.
    others = np.setdiff1d(np.arange(pool.size), sent_to, assume_unique=True)
    chosen = np.concatenate([rng.permutation(sent_to), rng.permutation(others)])
    if rows > chosen.size:
        chosen = np.concatenate([chosen, _distinct_sample(rng, rows - chosen.size, pool.size)])
    # Rows in random order (the export's order says nothing about who), those that will get
    # a defect last: the broadLog recipients land on rows the pipeline keeps whenever there
    # are enough other rows to take the defects.
    defective = np.zeros(rows, dtype=bool)
    for b, r0, n, _lo, _hi in _slices(rows, batch_rows, plan.t_lo, plan.t_hi):
        defective[r0 + _defect_rows(_defects_rng(plan, b), n, defect_rate)] = True
    order = rng.permutation(rows)
    placed = np.empty(rows, dtype=np.int64)
    placed[np.concatenate([order[~defective[order]], order[defective[order]]])] = chosen[:rows]
    chosen = placed

    def columns(rng: np.random.Generator, r0: int, n: int, lo: int, hi: int) -> dict[str, Column]:
        who = chosen[r0 : r0 + n]
        who_arr = pa.array(who)
        modified = _timestamps(rng, n, lo, hi)
        mixed_case = rng.random(n) < 0.04
        return {
            "recipient_id": pool.recipient_ids.take(who_arr),
            "external_id": pool.external_ids.take(who_arr),
            "email": pool.addresses(who, mixed_case),
            "first_name": details.first_names.take(who_arr),
            "last_name": details.last_names.take(who_arr),
            "middle_name": details.middle_names.take(who_arr),
            "mobile_phone": details.mobile_phones.take(who_arr),
            "gender": details.genders.take(who_arr),
            "birth_date": details.birth_dates.take(who_arr),
            "email_format": details.email_formats.take(who_arr),
            "country_code": details.country_codes.take(who_arr),
            "city": details.cities.take(who_arr),
            "zip_code": details.zip_codes.take(who_arr),
            # A window older than the person's creation date gets a creation inside it.
            "created": ts_strings(np.minimum(details.created[who], modified)),
            "last_modified": ts_strings(modified),
            "org_unit": pa.scalar(plan.org_unit),
        }

    return _Source(columns, plan.t_lo, plan.t_hi)
