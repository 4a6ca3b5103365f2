"""The metadata database: SQLite (WAL) in the data directory by default, PostgreSQL by URL.

Every table is declared on ``metadata``; the schema is versioned and upgraded in place on
start by ``store.migrations`` (Alembic), through ``Database.upgrade_schema``. Writes go
through ``Database.write()``, which on SQLite takes the write lock up front (BEGIN
IMMEDIATE) so two writers never deadlock upgrading a read lock.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, MetaData, create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

metadata = MetaData()

_WRITE_OPTION = "modelyard_write"
# How long a new connection keeps retrying a lock SQLite reports without waiting on it.
_SQLITE_LOCK_PATIENCE = 60.0
# PostgreSQL advisory lock held while the schema is checked and upgraded ("mdyd" in ASCII).
_SCHEMA_LOCK_KEY = 0x6D647964


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = self._create_engine(url)

    def _create_engine(self, url: str) -> Engine:
        if not self.is_sqlite:
            return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 60},
            pool_size=16,
            max_overflow=16,
        )

        @event.listens_for(engine, "connect")
        def configure_sqlite(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            # Let SQLAlchemy's "begin" event, not pysqlite, decide how transactions start.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout=60000")
            _enter_wal_mode(cursor)
            # NORMAL in WAL mode survives a killed process; only power loss may drop the
            # last transactions. FULL would fsync on every commit.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def begin_transaction(connection: Connection) -> None:
            if connection.get_execution_options().get(_WRITE_OPTION):
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                connection.exec_driver_sql("BEGIN")

        return engine

    def upgrade_schema(self) -> None:
        """Bring the tables to this modelyard's schema version; see ``store.migrations``."""
        from .migrations import upgrade

        deadline = time.monotonic() + _SQLITE_LOCK_PATIENCE
        while True:
            try:
                upgrade(self)
                return
            except OperationalError as error:
                # Servers starting together on a new SQLite file: one may find it locked
                # while another turns on WAL mode, which SQLite reports without waiting.
                if not _sqlite_locked(error.orig) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextmanager
    def schema_change(self) -> Iterator[Connection]:
        """One transaction for reading and changing the schema, serialized across servers.

        PostgreSQL: an advisory lock held until commit, so servers starting together on one
        database take turns. SQLite: the write lock (BEGIN IMMEDIATE), with foreign-key
        enforcement off, because SQLite alters a table by copying and dropping it and a drop
        would cascade into the rows that refer to it; the keys are checked before commit.
        """
        with self.engine.connect() as connection:
            raw = connection.connection.driver_connection if self.is_sqlite else None
            if raw is not None:
                # Before BEGIN: SQLite ignores this pragma inside a transaction.
                raw.execute("PRAGMA foreign_keys=OFF")
            try:
                connection = connection.execution_options(**{_WRITE_OPTION: True})
                with connection.begin():
                    if self.engine.dialect.name == "postgresql":
                        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                           {"key": _SCHEMA_LOCK_KEY})
                    yield connection
                    if raw is not None:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                        if broken:
                            raise RuntimeError(f"a schema change broke foreign keys: {broken}")
            finally:
                if raw is not None:
                    raw.execute("PRAGMA foreign_keys=ON")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as connection:
            with connection.begin():
                yield connection

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that commits on success and rolls back on any exception."""
        with self.engine.connect() as connection:
            connection = connection.execution_options(**{_WRITE_OPTION: True})
            with connection.begin():
                yield connection

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_locked(error: BaseException | None) -> bool:
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)


def _enter_wal_mode(cursor: sqlite3.Cursor) -> None:
    """Put the database in WAL mode (it stays so), retrying while another connection holds it.

    Switching a new database file into WAL mode needs it to itself, and SQLite answers
    "database is locked" at once, without its busy handler, when another connection is
    doing the same: servers (or threads) opening one new data directory together.
    """
    deadline = time.monotonic() + _SQLITE_LOCK_PATIENCE
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if not _sqlite_locked(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
