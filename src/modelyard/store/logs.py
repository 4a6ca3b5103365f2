"""Durable CloudWatch Logs data: log groups, log streams and their events.

Times are epoch milliseconds, as on the Logs wire. Events keep an autoincrement id, so
(timestamp, id) orders a stream (and a group) totally and stably: reads page by that key,
which keeps every query an index range scan with a LIMIT however large a stream grows.

``LogStore.append`` is the one write path for events, used by PutLogEvents and by
server-side writers (job runners) from their own threads; each call is one transaction,
so an acknowledged batch survives a killed server.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import (ColumnElement, Connection, and_, case, delete, func,
                        insert, select, update)
from sqlalchemy.exc import IntegrityError

from ..api.errors import AwsError
from .db import Database
from .log_tables import (
    log_groups_table,
    log_streams_table,
    log_events_table,
    MAX_RESPONSE_BYTES,
    Key,
    LogGroup,
    LogStream,
    LogEvent,
    FilterResult,
    group_not_found,
    stream_not_found,
    _groups_query,
    _record,
    _get_or_create,
    _fit,
    _within_bytes,
    _time_range,
    _at_or_after,
    _before,
    _beyond,
    _exists,
    _starts_with,
    _contains,
    _escape_like,
)

_stores_lock = threading.Lock()
_stores: "weakref.WeakKeyDictionary[Database, LogStore]" = weakref.WeakKeyDictionary()


class LogStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def for_database(cls, db: Database) -> "LogStore":
        """The one store of a database, shared by request handlers and server threads."""
        with _stores_lock:
            store = _stores.get(db)
            if store is None:
                store = _stores[db] = cls(db)
            return store

    # --- log groups ---------------------------------------------------------------------

    def create_group(
        self, name: str, *, now_ms: int, kms_key_id: str | None = None,
        tags: dict[str, str] | None = None, log_group_class: str = "STANDARD",
        deletion_protection: bool = False,
    ) -> None:
        try:
            with self.db.write() as connection:
                connection.execute(insert(log_groups_table).values(
                    name=name, creation_time=now_ms, kms_key_id=kms_key_id,
                    log_group_class=log_group_class, deletion_protection=deletion_protection,
                    tags=json.dumps(tags or {}),
                ))
        except IntegrityError:
            raise AwsError(
                "ResourceAlreadyExistsException",
                f"The specified log group already exists: {name}. Choose another name, or "
                "write to the existing group.",
            ) from None

    def delete_group(self, name: str) -> None:
        """Delete a group with all its streams and events, in one transaction."""
        with self.db.write() as connection:
            row = connection.execute(
                select(log_groups_table.c.id, log_groups_table.c.deletion_protection)
                .where(log_groups_table.c.name == name)
            ).first()
            if row is None:
                raise group_not_found(name)
            if row.deletion_protection:
                raise AwsError(
                    "ValidationException",
                    f"Cannot delete log group {name} with deletion protection enabled. "
                    "Disable deletion protection first.",
                )
            # Explicit deletes rather than ON DELETE CASCADE: the order is portable and does
            # not depend on SQLite's foreign_keys pragma.
            events, streams, groups = log_events_table, log_streams_table, log_groups_table
            connection.execute(delete(events).where(events.c.group_id == row.id))
            connection.execute(delete(streams).where(streams.c.group_id == row.id))
            connection.execute(delete(groups).where(groups.c.id == row.id))

    def list_groups(
        self, *, prefix: str | None = None, contains: str | None = None,
        names: Sequence[str] | None = None, after_name: str | None = None, limit: int = 50,
    ) -> tuple[list[LogGroup], bool]:
        """Groups ordered by name, at most ``limit``; the flag says whether more follow."""
        table = log_groups_table
        conditions: list[ColumnElement[bool]] = []
        if prefix:
            conditions.append(_starts_with(table.c.name, prefix))
        if contains:
            conditions.append(_contains(table.c.name, contains))
        if names is not None:
            conditions.append(table.c.name.in_(list(names)))
        if after_name is not None:
            conditions.append(table.c.name > after_name)
        statement = _groups_query().where(*conditions).order_by(table.c.name)
        with self.db.read() as connection:
            rows = connection.execute(statement.limit(limit + 1)).all()
        return [_record(LogGroup, row) for row in rows[:limit]], len(rows) > limit

    # --- log streams --------------------------------------------------------------------

    def create_stream(self, group: str, name: str, *, now_ms: int) -> None:
        try:
            with self.db.write() as connection:
                connection.execute(insert(log_streams_table).values(
                    group_id=self._group_id(connection, group), name=name,
                    creation_time=now_ms, stored_bytes=0,
                ))
        except IntegrityError:
            raise AwsError(
                "ResourceAlreadyExistsException",
                f"The specified log stream already exists: {name} in log group {group}. "
                "Choose another name, or write to the existing stream.",
            ) from None

    def delete_stream(self, group: str, name: str) -> None:
        with self.db.write() as connection:
            _, stream_id = self._stream_ids(connection, group, name)
            events, streams = log_events_table, log_streams_table
            connection.execute(delete(events).where(events.c.stream_id == stream_id))
            connection.execute(delete(streams).where(streams.c.id == stream_id))

    def list_streams(
        self, group: str, *, prefix: str | None = None, order_by_last_event: bool = False,
        descending: bool = False, after: tuple[Any, str] | None = None, limit: int = 50,
    ) -> tuple[list[LogStream], bool]:
        """Streams of a group by name, or by last event time then name.

        ``after`` is the sort key of the last stream of the previous page.
        """
        table = log_streams_table
        # Streams without events sort as if their last event were at time 0.
        last_event = func.coalesce(table.c.last_event_timestamp, 0)
        sort_columns: list[ColumnElement[Any]] = (
            [last_event, table.c.name] if order_by_last_event else [table.c.name]
        )
        with self.db.read() as connection:
            group_id = self._group_id(connection, group)
            conditions: list[ColumnElement[bool]] = [table.c.group_id == group_id]
            if prefix:
                conditions.append(_starts_with(table.c.name, prefix))
            if after is not None:
                values = list(after) if order_by_last_event else [after[1]]
                conditions.append(_beyond(sort_columns, values, descending))
            ordering = [c.desc() for c in sort_columns] if descending else sort_columns
            rows = connection.execute(
                select(table).where(and_(*conditions)).order_by(*ordering).limit(limit + 1)
            ).all()
        return [_record(LogStream, row) for row in rows[:limit]], len(rows) > limit

    # --- events -------------------------------------------------------------------------

    def append(
        self, group: str, stream: str, events: Iterable[tuple[int, str]], *,
        now_ms: int | None = None, create_missing: bool = False,
    ) -> int:
        """Store ``(timestamp_ms, message)`` events in one transaction; return how many.

        Safe to call from any thread. With ``create_missing`` the group and stream are
        created when absent (server-side writers); otherwise a missing one raises
        ResourceNotFoundException. Empty messages are skipped (CloudWatch rejects them)
        and oversized ones truncated to the 1 MB event limit, so what a job prints can
        always be stored and read back.
        """
        ingestion = now_ms if now_ms is not None else int(time.time() * 1000)
        prepared = [(int(ts), _fit(message)) for ts, message in events if message]
        with self.db.write() as connection:
            if create_missing:
                groups, streams = log_groups_table, log_streams_table
                group_id = _get_or_create(connection, groups, {"name": group}, {
                    "creation_time": ingestion, "log_group_class": "STANDARD",
                    "deletion_protection": False, "tags": "{}",
                })
                stream_id = _get_or_create(
                    connection, streams, {"group_id": group_id, "name": stream},
                    {"creation_time": ingestion, "stored_bytes": 0},
                )
            else:
                group_id, stream_id = self._stream_ids(connection, group, stream)
            if not prepared:
                return 0
            connection.execute(insert(log_events_table), [
                {"group_id": group_id, "stream_id": stream_id, "timestamp": ts,
                 "ingestion_time": ingestion, "message": message}
                for ts, message in prepared
            ])
            self._update_stream_stats(connection, stream_id, prepared, ingestion)
        return len(prepared)

    def read_stream(
        self, group: str, stream: str, *, start_time: int | None = None,
        end_time: int | None = None, boundary: Key | None = None, forward: bool = True,
        limit: int = 10_000, max_bytes: int = MAX_RESPONSE_BYTES,
    ) -> list[LogEvent]:
        """Events of one stream in ascending (timestamp, id) order.

        Forward: the first ``limit`` events at or after ``boundary`` (or from the head).
        Backward: the last ``limit`` events before ``boundary`` (or up to the tail).
        ``start_time`` is inclusive and ``end_time`` exclusive, as in GetLogEvents.
        """
        table = log_events_table
        ts, event_id = table.c.timestamp, table.c.id
        with self.db.read() as connection:
            _, stream_id = self._stream_ids(connection, group, stream)
            conditions = [table.c.stream_id == stream_id, *_time_range(ts, start_time, end_time)]
            if boundary is not None:
                conditions.append(_at_or_after(ts, event_id, boundary) if forward
                                  else _before(ts, event_id, boundary))
            ordering = [ts, event_id] if forward else [ts.desc(), event_id.desc()]
            rows = connection.execute(
                select(table.c.id, table.c.timestamp, table.c.ingestion_time, table.c.message)
                .where(and_(*conditions))
                .order_by(*ordering)
                .limit(limit)
            ).all()
        events = _within_bytes(
            [LogEvent(r.id, stream, r.timestamp, r.ingestion_time, r.message) for r in rows],
            max_bytes,
        )
        return events if forward else events[::-1]

    def filter_events(
        self, group: str, *, matches: Callable[[str], bool], required_terms: Sequence[str] = (),
        stream_names: Sequence[str] | None = None, stream_prefix: str | None = None,
        start_time: int | None = None, end_time: int | None = None,
        boundary: Key | None = None, limit: int = 10_000, max_bytes: int = MAX_RESPONSE_BYTES,
        max_scanned: int = 200_000, chunk: int = 2_000,
    ) -> FilterResult:
        """Matching events of a group's streams, interleaved in (timestamp, id) order.

        ``required_terms`` must all occur in a match; they narrow the scan in SQL (LIKE
        may be case-insensitive there), and ``matches`` decides exactly. A page stops at
        ``limit`` events, ``max_bytes``, or after ``max_scanned`` rows, so a rare pattern
        over a large group answers promptly with a place to resume, as AWS does.
        """
        events_t, streams_t = log_events_table, log_streams_table
        ts, event_id = events_t.c.timestamp, events_t.c.id
        found: list[LogEvent] = []
        size = scanned = 0
        with self.db.read() as connection:
            group_id = self._group_id(connection, group)
            stream_conditions = [streams_t.c.group_id == group_id]
            if stream_names is not None:
                stream_conditions.append(streams_t.c.name.in_(list(stream_names)))
            if stream_prefix:
                stream_conditions.append(_starts_with(streams_t.c.name, stream_prefix))
            searched = connection.execute(
                select(streams_t.c.name).where(and_(*stream_conditions))
                .order_by(streams_t.c.name).limit(100)
            ).scalars().all()
            conditions = [events_t.c.group_id == group_id, *_time_range(ts, start_time, end_time)]
            if stream_names is not None or stream_prefix:
                conditions.append(
                    events_t.c.stream_id.in_(select(streams_t.c.id).where(and_(*stream_conditions)))
                )
            for term in required_terms:
                conditions.append(events_t.c.message.like(f"%{_escape_like(term)}%", escape="\\"))
            position = boundary
            while True:
                page_conditions = list(conditions)
                if position is not None:
                    page_conditions.append(_at_or_after(ts, event_id, position))
                rows = connection.execute(
                    select(events_t.c.id, ts, events_t.c.ingestion_time, events_t.c.message,
                           streams_t.c.name.label("stream_name"))
                    .join(streams_t, streams_t.c.id == events_t.c.stream_id)
                    .where(and_(*page_conditions))
                    .order_by(ts, event_id)
                    .limit(chunk)
                ).all()
                for row in rows:
                    scanned += 1
                    position = (row.timestamp, row.id + 1)
                    if not matches(row.message):
                        continue
                    event = LogEvent(row.id, row.stream_name, row.timestamp,
                                     row.ingestion_time, row.message)
                    if found and size + event.size > max_bytes:
                        return FilterResult(found, event.key, searched)
                    found.append(event)
                    size += event.size
                    if len(found) >= limit:
                        more = _exists(connection, conditions, ts, event_id, position)
                        return FilterResult(found, position if more else None, searched)
                if len(rows) < chunk:
                    return FilterResult(found, None, searched)
                if scanned >= max_scanned:
                    return FilterResult(found, position, searched)

    # --- helpers (inside a transaction) -------------------------------------------------

    def _group_id(self, connection: Connection, group: str) -> int:
        group_id = connection.execute(
            select(log_groups_table.c.id).where(log_groups_table.c.name == group)
        ).scalar()
        if group_id is None:
            raise group_not_found(group)
        return group_id

    def _stream_ids(self, connection: Connection, group: str, stream: str) -> tuple[int, int]:
        group_id = self._group_id(connection, group)
        stream_id = connection.execute(
            select(log_streams_table.c.id).where(
                and_(log_streams_table.c.group_id == group_id, log_streams_table.c.name == stream)
            )
        ).scalar()
        if stream_id is None:
            raise stream_not_found(group, stream)
        return group_id, stream_id

    def _update_stream_stats(
        self, connection: Connection, stream_id: int, events: list[tuple[int, str]], now_ms: int
    ) -> None:
        # One UPDATE with CASE expressions: atomic without reading the row first, so
        # concurrent appenders on PostgreSQL cannot lose each other's statistics.
        table = log_streams_table
        earliest = min(ts for ts, _ in events)
        latest = max(ts for ts, _ in events)
        added = sum(len(message.encode("utf-8")) for _, message in events)
        first, last = table.c.first_event_timestamp, table.c.last_event_timestamp
        connection.execute(
            update(table)
            .where(table.c.id == stream_id)
            .values(
                first_event_timestamp=case(
                    (first.is_(None), earliest), (first > earliest, earliest), else_=first
                ),
                last_event_timestamp=case(
                    (last.is_(None), latest), (last < latest, latest), else_=last
                ),
                last_ingestion_time=now_ms,
                stored_bytes=table.c.stored_bytes + added,
            )
        )
