"""A durable outbox: work promised to someone else, kept until it is delivered.

EventBridge targets, SNS deliveries and asynchronous Lambda invocations are written here
before anything runs them, so a server killed between the promise and the delivery
delivers after restart. A row is (kind, key, payload, state, attempts, due time): ``key``
makes enqueueing idempotent (a second row with the same key is ignored), and the worker
in ``engine.deliveries`` claims due rows, runs the kind's handler, and marks them done,
due again later (a retry) or failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column, Connection, Float, Index, Integer, String, Table, Text, and_, insert, or_, select,
    update,
)
from sqlalchemy.exc import IntegrityError

from .db import Database, metadata

outbox_table = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("key", String(512), nullable=False),
    Column("payload", Text, nullable=False),
    # pending -> (running) -> done | failed; "running" rows of a dead server are due again.
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("due_time", Float, nullable=False),
    Column("created_time", Float, nullable=False),
    Column("updated_time", Float, nullable=False),
    Column("last_error", Text, nullable=True),
    Index("ix_outbox_key", "key", unique=True),
    Index("ix_outbox_state_due", "state", "due_time"),
)

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


@dataclass(frozen=True)
class Delivery:
    id: int
    kind: str
    key: str
    payload: dict[str, Any]
    state: str
    attempts: int
    due_time: float
    created_time: float
    last_error: str | None


class Outbox:
    def __init__(self, database: Database) -> None:
        self.db = database

    def add(self, kind: str, key: str, payload: dict[str, Any], *, now: float,
            due_time: float | None = None, connection: Connection | None = None) -> bool:
        """Promise a delivery; False when a delivery with this key was already promised.

        Pass ``connection`` to make the promise part of the caller's own transaction.
        """
        row = {"kind": kind, "key": key, "payload": json.dumps(payload), "state": PENDING,
               "attempts": 0, "due_time": now if due_time is None else due_time,
               "created_time": now, "updated_time": now, "last_error": None}
        if connection is not None:
            return self._insert(connection, row)
        with self.db.write() as own:
            return self._insert(own, row)

    def _insert(self, connection: Connection, row: dict[str, Any]) -> bool:
        exists = connection.execute(
            select(outbox_table.c.id).where(outbox_table.c.key == row["key"])).first()
        if exists is not None:
            return False
        try:
            with connection.begin_nested():
                connection.execute(insert(outbox_table), [row])
        except IntegrityError:
            return False
        return True

    def claim_due(self, now: float, kinds: set[str], limit: int = 32) -> list[Delivery]:
        """Mark up to ``limit`` due deliveries of ``kinds`` running and return them."""
        table = outbox_table
        with self.db.write() as connection:
            rows = connection.execute(
                select(table)
                .where(table.c.state == PENDING, table.c.due_time <= now,
                       table.c.kind.in_(sorted(kinds)))
                .order_by(table.c.due_time, table.c.id).limit(limit)
            ).all()
            if rows:
                connection.execute(
                    update(table).where(table.c.id.in_([row.id for row in rows]))
                    .values(state=RUNNING, attempts=table.c.attempts + 1, updated_time=now))
        return [_delivery(row, state=RUNNING, attempts=row.attempts + 1) for row in rows]

    def finish(self, delivery_id: int, now: float) -> None:
        self._set(delivery_id, now, state=DONE)

    def retry(self, delivery_id: int, now: float, due_time: float, error: str) -> None:
        self._set(delivery_id, now, state=PENDING, due_time=due_time, last_error=error[:2000])

    def fail(self, delivery_id: int, now: float, error: str) -> None:
        self._set(delivery_id, now, state=FAILED, last_error=error[:2000])

    def _set(self, delivery_id: int, now: float, **values: Any) -> None:
        with self.db.write() as connection:
            connection.execute(update(outbox_table).where(outbox_table.c.id == delivery_id)
                               .values(updated_time=now, **values))

    def release_running(self, now: float) -> int:
        """On start: deliveries a dead server was running are due again (at-least-once)."""
        with self.db.write() as connection:
            result = connection.execute(
                update(outbox_table).where(outbox_table.c.state == RUNNING)
                .values(state=PENDING, due_time=now, updated_time=now))
        return result.rowcount or 0

    def next_due_time(self, kinds: set[str]) -> float | None:
        table = outbox_table
        with self.db.read() as connection:
            return connection.execute(
                select(table.c.due_time)
                .where(table.c.state == PENDING, table.c.kind.in_(sorted(kinds)))
                .order_by(table.c.due_time).limit(1)).scalar()

    def list(self, kind: str | None = None, state: str | None = None,
             limit: int = 100) -> list[Delivery]:
        """Newest first: what the CLI and tests look at."""
        table = outbox_table
        conditions = [condition for condition in (
            table.c.kind == kind if kind else None,
            table.c.state == state if state else None) if condition is not None]
        statement = select(table).order_by(table.c.id.desc()).limit(limit)
        if conditions:
            statement = statement.where(and_(*conditions))
        with self.db.read() as connection:
            return [_delivery(row) for row in connection.execute(statement).all()]

    def get(self, key: str) -> Delivery | None:
        with self.db.read() as connection:
            row = connection.execute(
                select(outbox_table).where(outbox_table.c.key == key)).first()
        return _delivery(row) if row is not None else None

    def purge_finished(self, before: float) -> int:
        """Forget done and failed deliveries last touched before ``before``."""
        from sqlalchemy import delete

        table = outbox_table
        with self.db.write() as connection:
            result = connection.execute(delete(table).where(
                or_(table.c.state == DONE, table.c.state == FAILED),
                table.c.updated_time < before))
        return result.rowcount or 0


def _delivery(row: Any, **override: Any) -> Delivery:
    values = {"id": row.id, "kind": row.kind, "key": row.key,
              "payload": json.loads(row.payload), "state": row.state,
              "attempts": row.attempts, "due_time": row.due_time,
              "created_time": row.created_time, "last_error": row.last_error}
    values.update(override)
    return Delivery(**values)
