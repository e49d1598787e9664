"""The file ledger's table and row types (resources/file_ledger.py has the statuses and the
`FileLedger` resource): one SQL table, `rtcdp_file_versions`, one engine per URL and process, and
the key, presence and row types the sensors, runs and checks read.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa

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


def ledger_engine(url: str) -> sa.Engine:
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


def insert_ignoring_known(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(file_versions).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(file_versions).on_conflict_do_nothing()
    raise ValueError(f"the file ledger supports SQLite and PostgreSQL, not {dialect}")


def now_stamp() -> str:
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
    # The file's modification time as the zone listed it when the version was first seen.
    modified: datetime | None = None


def to_row(r: Any) -> LedgerRow:
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
        modified=datetime.fromisoformat(r.modified),
    )


def key_clause(v: FileVersion) -> Any:
    c = file_versions.c
    return sa.and_(
        c.zone == v.zone, c.folder == v.folder, c.name == v.name, c.identity == v.identity
    )


def fetch_row(engine: sa.Engine, version: FileVersion) -> LedgerRow | None:
    with engine.connect() as conn:
        r = conn.execute(sa.select(file_versions).where(key_clause(version))).first()
    return to_row(r) if r is not None else None
