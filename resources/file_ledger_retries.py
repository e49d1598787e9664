"""Failed runs in the file ledger: a version whose run failed is pending again with a retry due
after the back-off (doubling per attempt), `failed` after `failed_run_max_attempts` runs, and
an operator's `rtcdp-ledger retry` makes it due now. `FileLedger` (resources/file_ledger.py)
has these methods through `FailedRunRetries`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from resources.drop_zones import Entry
from resources.file_ledger_schema import (
    FileVersion,
    LedgerRow,
    fetch_row,
    file_versions,
    key_clause,
    ledger_engine,
    now_stamp,
    to_row,
)
from resources.guardrail_settings import GuardrailLimits


class FailedRunRetries:
    """The retry methods of `FileLedger` (a mixin: the resource holds the `url`)."""

    if TYPE_CHECKING:
        url: str

    @property
    def _retry_engine(self) -> sa.Engine:
        return ledger_engine(self.url)

    def record_failed_run(
        self,
        version: FileVersion,
        entry: Entry,
        *,
        dataset: str,
        run_id: str,
        reason: str,
        at: datetime,
        limits: GuardrailLimits,
        moved_is_retried: bool = False,
    ) -> LedgerRow | None:
        """One failed run of `version` (counted once): pending, due again after the back-off
        (doubling per attempt), or `failed` after `failed_run_max_attempts`. None: left alone
        (settled by a later run, failed already, or moved out of its folder by the failed run:
        its rows are in). Marked processed in place by the failed run: pending again.

        `moved_is_retried`: the wing's next run reads a moved version from where the failed run
        put it (the offline data wing re-reads a day's archive), so a version the failed run
        moved, or marked processed there, is pending again too."""
        with self._retry_engine.begin() as conn:
            r = conn.execute(sa.select(file_versions).where(key_clause(version))).first()
            if r is not None and (
                r.failed_run_id == run_id
                or (not r.in_folder and not moved_is_retried)
                or (r.status != "pending" and not (r.status == "processed" and r.run_id == run_id))
            ):
                return None
            attempts = (r.attempts or 0) + 1 if r is not None else 1
            stamp = at.isoformat(timespec="microseconds")
            max_attempts = limits.failed_run_max_attempts
            if attempts >= max_attempts:
                status, retry_after = "failed", None
                why = f"run_failed: {attempts} of {max_attempts} attempts failed, last: {reason}"
            else:
                step = timedelta(seconds=limits.failed_run_retry_backoff_seconds)
                due = (at + step * 2 ** (attempts - 1)).isoformat(timespec="microseconds")
                status, retry_after = "pending", due
                why = f"run_failed: attempt {attempts} of {max_attempts} failed: {reason}"
            values = {
                "status": status,
                "attempts": attempts,
                "failed_run_id": run_id,
                "run_id": run_id,
                "retry_after": retry_after,
                "reason": why,
                "updated": stamp,
            }
            if r is None:
                key = {"zone": version.zone, "folder": version.folder, "name": version.name}
                first = {"size": entry.size, "modified": entry.modified.isoformat()}
                conn.execute(
                    sa.insert(file_versions).values(
                        **key, identity=version.identity, dataset=dataset, **first,
                        in_folder=True, location=entry.path, first_seen=stamp, **values,
                    )
                )  # fmt: skip
            else:
                conn.execute(sa.update(file_versions).where(key_clause(version)).values(**values))
        return fetch_row(self._retry_engine, version)

    def due_retries(self, zone: str, dataset: str, now: datetime) -> list[LedgerRow]:
        """Pending versions still in their folder whose retry is due at `now`."""
        c = file_versions.c
        query = sa.select(file_versions).where(
            c.zone == zone,
            c.dataset == dataset,
            c.status == "pending",
            c.in_folder.is_(True),
            # One format (UTC, microseconds) for every stamp: text order is time order.
            c.retry_after <= now.astimezone(UTC).isoformat(timespec="microseconds"),
        )
        with self._retry_engine.connect() as conn:
            return [to_row(r) for r in conn.execute(query)]

    def awaiting_retry(self, zone: str, dataset: str) -> list[LedgerRow]:
        """Pending versions with a retry due (now or later), in their folder or moved: for a
        sensor that requests a whole day again (`due_retries` reads only those in place)."""
        c = file_versions.c
        query = sa.select(file_versions).where(
            c.zone == zone,
            c.dataset == dataset,
            c.status == "pending",
            c.retry_after.is_not(None),
        )
        with self._retry_engine.connect() as conn:
            return [to_row(r) for r in conn.execute(query)]

    def retry_requested(self, versions: Iterable[FileVersion]) -> None:
        """A sensor requested these again: no retry due until a run fails again."""
        with self._retry_engine.begin() as conn:
            for v in versions:
                conn.execute(
                    sa.update(file_versions)
                    .where(key_clause(v), file_versions.c.status == "pending")
                    .values(retry_after=None, updated=now_stamp())
                )

    def request_retry(self, version: FileVersion, at: datetime) -> bool:
        """An operator's retry of a pending or failed version: attempts reset, due at `at`."""
        stamp = at.isoformat(timespec="microseconds")
        why = "retry requested by an operator"
        retry = {"attempts": 0, "retry_after": stamp, "reason": why, "updated": stamp}
        with self._retry_engine.begin() as conn:
            done = conn.execute(
                sa.update(file_versions)
                .where(key_clause(version), file_versions.c.status.in_(("pending", "failed")))
                .values(status="pending", **retry)
            )
        return done.rowcount > 0
