"""The metadata database: SQLite (WAL) in the data directory by default, PostgreSQL by URL.

Every table is declared on ``metadata`` so one ``create_schema`` call builds them all.
Writes go through ``Database.write()``, which on SQLite takes the write lock up front
(BEGIN IMMEDIATE) so two writers never deadlock upgrading a read lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, MetaData, create_engine, event
from sqlalchemy.engine import Engine

metadata = MetaData()

_WRITE_OPTION = "modelyard_write"


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
            cursor.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process; only power loss may drop the
            # last transactions. FULL would fsync on every commit.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def begin_transaction(connection: Connection) -> None:
            if connection.get_execution_options().get(_WRITE_OPTION):
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                connection.exec_driver_sql("BEGIN")

        return engine

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

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
