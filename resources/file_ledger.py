"""The file ledger: every file version seen in a drop zone, and what became of it.

A version is one file name in one folder of one zone with one content identity (size + mtime
on file systems, ETag on object stores). Its fate is one of:

- `pending`: not processed yet (settling, queued, or `attempts` runs failed; due at `retry_after`);
- `failed`: `failed_run_max_attempts` runs failed (`reason`); only `rtcdp-ledger retry` revives it;
- `processed`: its rows are in a partition (`partition`, `run_id`, `sha256`, `rows`);
- `quarantined`: unreadable as a whole (`reason`), moved to the quarantine folder;
- `duplicate`: the same bytes (SHA-256) were already processed under another name
  (`duplicate_of`); archived, its rows not counted twice;
- `superseded`: a newer version of the same name replaced it;
- `uploaded`: an import file we wrote to Campaign (identity `sha256:<hex>`, its marker beside);
  `pending` with a reason `upload_deferred: ...` while the Campaign SFTP is too full for it.

A version the SFTP housekeeping deleted keeps its row and its status (the rows are still in
their partition) and gets `removed_at` and `removed_reason`: the ledger never forgets a file.

Sensors read the ledger to request each version once and to wait for files to settle; runs
write the outcome; the `file_ledger` asset and its checks show it to people. It is a SQL table
(SQLAlchemy Core) so that the sensor daemon and concurrent run processes can update it
transactionally: a SQLite file in the embedded setup, the deployment's Postgres in production.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from dagster import ConfigurableResource
from pydantic import Field

from resources.drop_zones import Entry

# The table and row types live in file_ledger_schema, the failed-run retries in
# file_ledger_retries; callers import them from here, as before the split.
from resources.file_ledger_retries import FailedRunRetries
from resources.file_ledger_schema import (
    STATUSES,
    UPLOAD_DEFERRED,
    FileVersion,
    LedgerRow,
    Presence,
    fetch_row,
    file_versions,
    insert_ignoring_known,
    key_clause,
    ledger_engine,
    now_stamp,
    to_row,
)

__all__ = [
    "STATUSES",
    "UPLOAD_DEFERRED",
    "FileLedger",
    "FileVersion",
    "LedgerRow",
    "Presence",
    "file_versions",
]


class FileLedger(ConfigurableResource, FailedRunRetries):
    """Where every drop-zone file version stands (see the module docstring)."""

    url: str = Field(
        description=(
            "SQLAlchemy URL of the ledger database: a SQLite file when embedded, the "
            "deployment's Postgres in production (postgresql+psycopg2://...)."
        )
    )

    @property
    def _engine(self) -> sa.Engine:
        return ledger_engine(self.url)

    # -- sensors -----------------------------------------------------------------------------
    def present(self, zone: str, folder: str, dataset: str) -> dict[tuple[str, str], Presence]:
        """The versions recorded as still sitting in `folder`, by (name, identity)."""
        c = file_versions.c
        # Every sensor tick reads these: only the columns a tick needs, as plain tuples.
        columns = (c.name, c.identity, c.status, c.first_seen, c.run_id, c.partition, c.reason)
        query = sa.select(*columns, c.attempts, c.retry_after).where(
            c.zone == zone, c.folder == folder, c.dataset == dataset, c.in_folder.is_(True)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return {(r[0], r[1]): Presence(*r[2:]) for r in rows}

    def observe(
        self,
        zone: str,
        folder: str,
        dataset: str,
        new: Sequence[Entry],
        gone: Iterable[FileVersion] = (),
        seen_at: datetime | None = None,
    ) -> None:
        """Record versions seen for the first time (pending) and ones no longer in `folder`."""
        stamp = (seen_at or datetime.now(UTC)).isoformat(timespec="microseconds")
        rows = [
            {
                "zone": zone,
                "folder": folder,
                "name": e.name,
                "identity": e.identity,
                "dataset": dataset,
                "size": e.size,
                "modified": e.modified.isoformat(),
                "status": "pending",
                "in_folder": True,
                "location": e.path,
                "first_seen": stamp,
                "updated": stamp,
            }
            for e in new
        ]
        with self._engine.begin() as conn:
            if rows:
                # A version another tick recorded meanwhile stays as it is.
                conn.execute(insert_ignoring_known(conn.dialect.name), rows)
            for v in gone:
                conn.execute(
                    sa.update(file_versions)
                    .where(key_clause(v))
                    .values(in_folder=False, updated=stamp)
                )

    # -- runs ------------------------------------------------------------------------------
    def get(self, version: FileVersion) -> LedgerRow | None:
        return fetch_row(self._engine, version)

    def canonical_for(self, sha256: str, other_than: FileVersion) -> LedgerRow | None:
        """The earliest processed version with these bytes under another name, if any."""
        c = file_versions.c
        query = (
            sa.select(file_versions)
            .where(
                c.sha256 == sha256,
                c.status == "processed",
                sa.not_(sa.and_(c.zone == other_than.zone, c.name == other_than.name)),
            )
            .order_by(c.updated, c.name)
            .limit(1)
        )
        with self._engine.connect() as conn:
            r = conn.execute(query).first()
        return to_row(r) if r is not None else None

    def record(
        self,
        version: FileVersion,
        entry: Entry,
        *,
        dataset: str,
        status: str,
        location: str,
        in_folder: bool,
        **fields: Any,
    ) -> None:
        """The outcome of a run for one version (inserted if no sensor saw it, e.g. a
        hand-launched run)."""
        if status not in STATUSES:
            raise ValueError(f"unknown ledger status {status!r}")
        stamp = now_stamp()
        values = {
            "status": status,
            "location": location,
            "in_folder": in_folder,
            "updated": stamp,
            # Recorded again (a re-run wrote it back): its file is there again.
            "removed_at": None,
            "removed_reason": None,
            # A settled version has no retry due (a pending note keeps what it had).
            **({} if status == "pending" else {"retry_after": None}),
            **fields,
        }
        with self._engine.begin() as conn:
            done = conn.execute(
                sa.update(file_versions).where(key_clause(version)).values(**values)
            )
            if done.rowcount == 0:
                conn.execute(
                    sa.insert(file_versions).values(
                        zone=version.zone,
                        folder=version.folder,
                        name=version.name,
                        identity=version.identity,
                        dataset=dataset,
                        size=entry.size,
                        modified=entry.modified.isoformat(),
                        first_seen=stamp,
                        **values,
                    )
                )
            if status in ("processed", "quarantined", "duplicate"):
                # Older versions of the same name no longer feed any partition.
                c = file_versions.c
                conn.execute(
                    sa.update(file_versions)
                    .where(
                        c.zone == version.zone,
                        c.folder == version.folder,
                        c.name == version.name,
                        c.identity != version.identity,
                        c.status.in_(("pending", "processed")),
                    )
                    .values(
                        status="superseded",
                        reason=f"replaced by version {version.identity}",
                        updated=stamp,
                    )
                )

    # -- people and checks -----------------------------------------------------------------
    def rows(self, dataset: str | None = None) -> list[LedgerRow]:
        c = file_versions.c
        query = sa.select(file_versions).order_by(c.dataset, c.folder, c.name, c.first_seen)
        if dataset is not None:
            query = query.where(c.dataset == dataset)
        with self._engine.connect() as conn:
            return [to_row(r) for r in conn.execute(query)]

    # -- Campaign SFTP housekeeping and uploads -------------------------------------------
    def record_removal(self, version: FileVersion, at: datetime, reason: str) -> None:
        """The housekeeping deleted this version's file: when, and why (its row stays)."""
        stamp = at.isoformat(timespec="microseconds")
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(file_versions)
                .where(key_clause(version))
                .values(removed_at=stamp, removed_reason=reason, in_folder=False, updated=stamp)
            )

    def in_zone(self, zone: str, statuses: Sequence[str]) -> list[LedgerRow]:
        """Versions of `zone` with one of `statuses` whose file was not removed."""
        c = file_versions.c
        query = (
            sa.select(file_versions)
            .where(c.zone == zone, c.status.in_(tuple(statuses)), c.removed_at.is_(None))
            .order_by(c.folder, c.name, c.first_seen)
        )
        with self._engine.connect() as conn:
            return [to_row(r) for r in conn.execute(query)]
