"""CloudWatch Logs' tables and records: log groups, streams, events, and query pieces.

``logs.LogStore`` holds the operations on them. Times are epoch milliseconds; an event's
(timestamp, id) is its total, stable order (``Key``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import (BigInteger, Boolean, Column, ColumnElement, Connection, ForeignKey,
                        Index, Integer, String, Table, Text, and_, cast, func, insert, or_, select)
from sqlalchemy.exc import IntegrityError

from ..api.errors import AwsError
from .db import metadata

# An autoincrement key that is a 64-bit integer on PostgreSQL and the rowid on SQLite.
_Id = BigInteger().with_variant(Integer, "sqlite")

log_groups_table = Table(
    "log_groups", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", String(512), nullable=False, unique=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("retention_in_days", Integer, nullable=True),
    Column("kms_key_id", String(256), nullable=True),
    Column("log_group_class", String(32), nullable=False, default="STANDARD"),
    Column("deletion_protection", Boolean, nullable=False, default=False),
    Column("tags", Text, nullable=False, default="{}"),
    sqlite_autoincrement=True,
)

log_streams_table = Table(
    "log_streams", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("group_id", _Id, ForeignKey("log_groups.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(512), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("first_event_timestamp", BigInteger, nullable=True),
    Column("last_event_timestamp", BigInteger, nullable=True),
    Column("last_ingestion_time", BigInteger, nullable=True),
    Column("stored_bytes", BigInteger, nullable=False, default=0),
    Index("ix_log_streams_group_name", "group_id", "name", unique=True),
    Index("ix_log_streams_group_last_event", "group_id", "last_event_timestamp"),
    sqlite_autoincrement=True,
)

log_events_table = Table(
    "log_events", metadata,
    # AUTOINCREMENT on SQLite: ids are never reused, so insertion order stays monotonic
    # even after the newest events of a stream were deleted.
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("group_id", _Id, ForeignKey("log_groups.id", ondelete="CASCADE"), nullable=False),
    Column("stream_id", _Id, ForeignKey("log_streams.id", ondelete="CASCADE"), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("ingestion_time", BigInteger, nullable=False),
    Column("message", Text, nullable=False),
    # GetLogEvents reads one stream by (timestamp, id); FilterLogEvents a whole group.
    Index("ix_log_events_stream_time", "stream_id", "timestamp", "id"),
    Index("ix_log_events_group_time", "group_id", "timestamp", "id"),
    sqlite_autoincrement=True,
)

# AWS counts each event as its UTF-8 message plus 26 bytes, for batches and responses.
EVENT_OVERHEAD_BYTES = 26
MAX_EVENT_BYTES = 1_048_576
MAX_RESPONSE_BYTES = 1_048_576

# A position between two events: everything with (timestamp, id) < key lies before it.
Key = tuple[int, int]


@dataclass(frozen=True)
class LogGroup:
    id: int
    name: str
    creation_time: int
    retention_in_days: int | None
    kms_key_id: str | None
    log_group_class: str
    deletion_protection: bool
    stored_bytes: int = 0


@dataclass(frozen=True)
class LogStream:
    id: int
    name: str
    creation_time: int
    first_event_timestamp: int | None
    last_event_timestamp: int | None
    last_ingestion_time: int | None
    stored_bytes: int


@dataclass(frozen=True)
class LogEvent:
    id: int
    stream_name: str
    timestamp: int
    ingestion_time: int
    message: str

    @property
    def key(self) -> Key:
        return (self.timestamp, self.id)

    @property
    def size(self) -> int:
        return len(self.message.encode("utf-8")) + EVENT_OVERHEAD_BYTES


@dataclass(frozen=True)
class FilterResult:
    events: list[LogEvent]
    resume_at: Key | None  # where the next page starts; None when the search is complete
    searched_streams: list[str]


def group_not_found(name: str) -> AwsError:
    return AwsError(
        "ResourceNotFoundException",
        f"The specified log group does not exist: {name}. Create it with CreateLogGroup, "
        "or check the name with DescribeLogGroups.",
    )


def stream_not_found(group: str, stream: str) -> AwsError:
    return AwsError(
        "ResourceNotFoundException",
        f"The specified log stream does not exist: {stream} in log group {group}. Create it "
        "with CreateLogStream, or check the name with DescribeLogStreams.",
    )


def _groups_query():  # noqa: ANN202 - a Select
    streams = log_streams_table
    stored = (
        # cast: PostgreSQL's SUM of a bigint is a numeric (Decimal in Python).
        select(cast(func.coalesce(func.sum(streams.c.stored_bytes), 0), BigInteger))
        .where(streams.c.group_id == log_groups_table.c.id)
        .scalar_subquery()
        .label("stored_bytes")
    )
    return select(log_groups_table, stored)


def _record(kind: type, row: Any) -> Any:
    """A LogGroup or LogStream from a row holding (at least) its fields."""
    values = row._mapping
    return kind(**{f.name: values[f.name] for f in fields(kind) if f.name in values})


def _get_or_create(
    connection: Connection, table: Table, key: dict[str, Any], values: dict[str, Any]
) -> int:
    """The id of the row matching ``key``, inserting it (with ``values``) when absent."""
    select_id = select(table.c.id).where(and_(*(table.c[k] == v for k, v in key.items())))
    found = connection.execute(select_id).scalar()
    if found is not None:
        return found
    try:
        # A savepoint, so losing a creation race (PostgreSQL) keeps the transaction.
        with connection.begin_nested():
            return connection.execute(insert(table).values(**key, **values)).inserted_primary_key[0]
    except IntegrityError:
        return connection.execute(select_id).scalar_one()


def _fit(message: str) -> str:
    """Truncate a message to CloudWatch's largest event, at a character boundary."""
    limit = MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES
    if len(message) * 4 <= limit:
        return message
    data = message.encode("utf-8")
    return message if len(data) <= limit else data[:limit].decode("utf-8", errors="ignore")


def _within_bytes(events: list[LogEvent], max_bytes: int) -> list[LogEvent]:
    """The leading events that fit in a response of ``max_bytes`` (always at least one)."""
    total = 0
    for index, event in enumerate(events):
        total += event.size
        if total > max_bytes and index > 0:
            return events[:index]
    return events


def _time_range(column: Any, start: int | None, end: int | None) -> list[ColumnElement[bool]]:
    conditions = []
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column < end)
    return conditions


def _at_or_after(ts: Any, event_id: Any, key: Key) -> ColumnElement[bool]:
    # The redundant ``ts >= key[0]`` lets the (…, timestamp, id) index bound the scan.
    return and_(ts >= key[0], or_(ts > key[0], event_id >= key[1]))


def _before(ts: Any, event_id: Any, key: Key) -> ColumnElement[bool]:
    return and_(ts <= key[0], or_(ts < key[0], event_id < key[1]))


def _beyond(columns: list[Any], values: list[Any], descending: bool) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the (possibly descending) order of ``columns``."""
    column, value = columns[0], values[0]
    strictly = column < value if descending else column > value
    if len(columns) == 1:
        return strictly
    return or_(strictly, and_(column == value, _beyond(columns[1:], values[1:], descending)))


def _exists(
    connection: Connection, conditions: list[Any], ts: Any, event_id: Any, key: Key
) -> bool:
    statement = (
        select(log_events_table.c.id)
        .where(and_(*conditions, _at_or_after(ts, event_id, key)))
        .limit(1)
    )
    return connection.execute(statement).first() is not None


def _starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
    # substr compares exactly on SQLite and PostgreSQL alike; LIKE ignores case on SQLite.
    return func.substr(column, 1, len(prefix)) == prefix


def _contains(column: Any, text: str) -> ColumnElement[bool]:
    # replace() is case-sensitive everywhere and, unlike instr/strpos, portable.
    return func.replace(column, text, "") != column


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
