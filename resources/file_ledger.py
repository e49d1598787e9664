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

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from dagster import ConfigurableResource
from pydantic import Field

from resources.drop_zones import Entry
from resources.guardrail_settings import GuardrailLimits

STATUSES = ("pending", "processed", "quarantined", "duplicate", "superseded", "uploaded", "failed")
# Reason of a pending upload the Campaign SFTP storage guard refused (a sensor resumes it).
UPLOAD_DEFERRED = "upload_deferred"

_metadata = sa.MetaData()
file_versions = sa.Table(
    "rtcdp_file_versions",
    _metadata,
    sa.Column("zone", sa.String(512), primary_key=True),
    sa.Column("folder", sa.String(1024), primary_key=True),
    sa.Column("name", sa.String(512), primary_key=True),
    sa.Column("identity", sa.String(256), primary_key=True),
    sa.Column("dataset", sa.String(128), nullable=False, index=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("modified", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # Whether the version still sits in the folder it arrived in (sensors read only those).
    sa.Column("in_folder", sa.Boolean, nullable=False, default=True),
    sa.Column("location", sa.String(2048)),
    sa.Column("sha256", sa.String(64), index=True),
    sa.Column("rows", sa.BigInteger),
    sa.Column("partition", sa.String(64)),
    sa.Column("run_id", sa.String(64)),
    sa.Column("reason", sa.Text),
    sa.Column("duplicate_of", sa.Text),
    sa.Column("first_seen", sa.String(40), nullable=False),
    sa.Column("updated", sa.String(40), nullable=False),
    # Added after the first deployments: created by `_add_missing_columns` on older tables.
    sa.Column("removed_at", sa.String(40)),
    sa.Column("removed_reason", sa.Text),
    # Failed runs of this version, the last one, and when a sensor may request it again.
    sa.Column("attempts", sa.Integer),
    sa.Column("failed_run_id", sa.String(64)),
    sa.Column("retry_after", sa.String(40)),
)
# Columns a table created by an older release may lack; each is nullable, so adding it is safe
# on SQLite and Postgres alike while runs read and write the table.
_ADDED_COLUMNS = ("removed_at", "removed_reason", "attempts", "failed_run_id", "retry_after")


def _add_missing_columns(engine: sa.Engine) -> None:
    present = {c["name"] for c in sa.inspect(engine).get_columns(file_versions.name)}
    with engine.begin() as conn:
        for name in _ADDED_COLUMNS:
            if name in present:
                continue
            column = file_versions.c[name]
            kind = column.type.compile(dialect=engine.dialect)
            ddl = f"ALTER TABLE {file_versions.name} ADD COLUMN {name} {kind}"
            # Two processes may race here: the loser's ALTER fails, the column is there.
            try:
                with conn.begin_nested():
                    conn.execute(sa.text(ddl))
            except (sa.exc.OperationalError, sa.exc.ProgrammingError):
                columns = sa.inspect(conn).get_columns(file_versions.name)
                if name not in {c["name"] for c in columns}:
                    raise


_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def _engine(url: str) -> sa.Engine:
    """One engine (and one table creation) per URL and process."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                # The sensor daemon and run processes write concurrently: wait for the lock
                # instead of failing, and let readers proceed during a write (WAL).
                engine = sa.create_engine(url, connect_args={"timeout": 60})

                @sa.event.listens_for(engine, "connect")
                def _wal(dbapi_connection: Any, _record: Any) -> None:
                    cursor = dbapi_connection.cursor()
                    cursor.execute("PRAGMA journal_mode=WAL")
                    cursor.close()

            else:
                engine = sa.create_engine(url, pool_pre_ping=True)
            _metadata.create_all(engine, checkfirst=True)
            _add_missing_columns(engine)
            _engines[url] = engine
        return engine


def _insert_ignoring_known(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(file_versions).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(file_versions).on_conflict_do_nothing()
    raise ValueError(f"the file ledger supports SQLite and PostgreSQL, not {dialect}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class FileVersion:
    """The key of one version: where it arrived, under which name, with which content."""

    zone: str
    folder: str
    name: str
    identity: str

    def __str__(self) -> str:
        return f"{self.folder}/{self.name}@{self.identity}" if self.folder else self.name


class Presence(NamedTuple):
    """What a sensor tick needs to know of a version still in its folder."""

    status: str
    first_seen: str  # ISO 8601, parsed only when a tick needs it
    run_id: str | None
    partition: str | None
    # Why a run left a pending version in place (e.g. "incomplete: ..."), if it did.
    reason: str | None = None
    attempts: int | None = None  # failed runs so far
    retry_after: str | None = None  # ISO 8601: a retry is due from then (None: none due)


@dataclass(frozen=True)
class LedgerRow:
    version: FileVersion
    dataset: str
    status: str
    first_seen: datetime
    in_folder: bool
    sha256: str | None = None
    rows: int | None = None
    partition: str | None = None
    run_id: str | None = None
    reason: str | None = None
    duplicate_of: str | None = None
    location: str | None = None
    removed_at: datetime | None = None
    removed_reason: str | None = None
    size: int | None = None
    attempts: int | None = None
    failed_run_id: str | None = None
    retry_after: datetime | None = None


def _row(r: Any) -> LedgerRow:
    return LedgerRow(
        version=FileVersion(r.zone, r.folder, r.name, r.identity),
        dataset=r.dataset,
        status=r.status,
        first_seen=datetime.fromisoformat(r.first_seen),
        in_folder=bool(r.in_folder),
        sha256=r.sha256,
        rows=r.rows,
        partition=r.partition,
        run_id=r.run_id,
        reason=r.reason,
        duplicate_of=r.duplicate_of,
        location=r.location,
        removed_at=datetime.fromisoformat(r.removed_at) if r.removed_at else None,
        removed_reason=r.removed_reason,
        size=r.size,
        attempts=r.attempts,
        failed_run_id=r.failed_run_id,
        retry_after=datetime.fromisoformat(r.retry_after) if r.retry_after else None,
    )


def _key_clause(v: FileVersion) -> Any:
    c = file_versions.c
    return sa.and_(
        c.zone == v.zone, c.folder == v.folder, c.name == v.name, c.identity == v.identity
    )


class FileLedger(ConfigurableResource):
    """Where every drop-zone file version stands (see the module docstring)."""

    url: str = Field(
        description=(
            "SQLAlchemy URL of the ledger database: a SQLite file when embedded, the "
            "deployment's Postgres in production (postgresql+psycopg2://...)."
        )
    )

    @property
    def _engine(self) -> sa.Engine:
        return _engine(self.url)

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
                conn.execute(_insert_ignoring_known(conn.dialect.name), rows)
            for v in gone:
                conn.execute(
                    sa.update(file_versions)
                    .where(_key_clause(v))
                    .values(in_folder=False, updated=stamp)
                )

    # -- runs ------------------------------------------------------------------------------
    def get(self, version: FileVersion) -> LedgerRow | None:
        with self._engine.connect() as conn:
            r = conn.execute(sa.select(file_versions).where(_key_clause(version))).first()
        return _row(r) if r is not None else None

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
        return _row(r) if r is not None else None

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
        stamp = _now()
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
                sa.update(file_versions).where(_key_clause(version)).values(**values)
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

    # -- failed runs -----------------------------------------------------------------------
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
    ) -> LedgerRow | None:
        """One failed run of `version` (counted once): pending, due again after the back-off
        (doubling per attempt), or `failed` after `failed_run_max_attempts`. None: left alone
        (settled by a later run, failed already, or moved out of its folder by the failed run:
        its rows are in). Marked processed in place by the failed run: pending again."""
        with self._engine.begin() as conn:
            r = conn.execute(sa.select(file_versions).where(_key_clause(version))).first()
            if r is not None and (
                r.failed_run_id == run_id
                or not r.in_folder
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
                conn.execute(sa.update(file_versions).where(_key_clause(version)).values(**values))
        return self.get(version)

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
        with self._engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def retry_requested(self, versions: Iterable[FileVersion]) -> None:
        """A sensor requested these again: no retry due until a run fails again."""
        with self._engine.begin() as conn:
            for v in versions:
                conn.execute(
                    sa.update(file_versions)
                    .where(_key_clause(v), file_versions.c.status == "pending")
                    .values(retry_after=None, updated=_now())
                )

    def request_retry(self, version: FileVersion, at: datetime) -> bool:
        """An operator's retry of a pending or failed version: attempts reset, due at `at`."""
        stamp = at.isoformat(timespec="microseconds")
        why = "retry requested by an operator"
        retry = {"attempts": 0, "retry_after": stamp, "reason": why, "updated": stamp}
        with self._engine.begin() as conn:
            done = conn.execute(
                sa.update(file_versions)
                .where(_key_clause(version), file_versions.c.status.in_(("pending", "failed")))
                .values(status="pending", **retry)
            )
        return done.rowcount > 0

    # -- people and checks -----------------------------------------------------------------
    def rows(self, dataset: str | None = None) -> list[LedgerRow]:
        c = file_versions.c
        query = sa.select(file_versions).order_by(c.dataset, c.folder, c.name, c.first_seen)
        if dataset is not None:
            query = query.where(c.dataset == dataset)
        with self._engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    # -- Campaign SFTP housekeeping and uploads -------------------------------------------
    def record_removal(self, version: FileVersion, at: datetime, reason: str) -> None:
        """The housekeeping deleted this version's file: when, and why (its row stays)."""
        stamp = at.isoformat(timespec="microseconds")
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(file_versions)
                .where(_key_clause(version))
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
            return [_row(r) for r in conn.execute(query)]
