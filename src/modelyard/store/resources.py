"""A generic, indexed home for SageMaker resources.

Every resource family (training jobs, models, pipelines, ...) stores its resources here as
(kind, name, arn, status, times, document). The document is the resource's Describe
response as a JSON object, so Describe is one lookup and List is one indexed query.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from ..api.errors import AwsError, validation_error
from .db import Database, metadata

resources_table = Table(
    "resources",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("name", String(256), nullable=False),
    # SageMaker names are case-insensitive (ARNs carry them lower-cased): look up by this.
    Column("name_key", String(256), nullable=False),
    Column("arn", String(512), nullable=False),
    Column("status", String(64), nullable=True),
    Column("parent", String(256), nullable=True),  # e.g. a package's group, a step's pipeline
    Column("creation_time", Float, nullable=False),
    Column("last_modified_time", Float, nullable=False),
    Column("document", Text, nullable=False),
    Index("ix_resources_kind_name", "kind", "name_key", unique=True),
    Index("ix_resources_arn", "arn", unique=True),
    Index("ix_resources_kind_created", "kind", "creation_time"),
    Index("ix_resources_kind_status", "kind", "status"),
    Index("ix_resources_kind_parent", "kind", "parent", "creation_time"),
)


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str
    arn: str
    status: str | None
    parent: str | None
    creation_time: float
    last_modified_time: float
    document: dict[str, Any]


@dataclass(frozen=True)
class ListQuery:
    """What a List operation asks for, already read from the request."""

    name_contains: str | None = None
    name_prefix: str | None = None
    status_equals: str | None = None
    parent: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    modified_after: float | None = None
    modified_before: float | None = None
    sort_by: str = "creation_time"  # a column of resources_table
    descending: bool = True
    max_results: int = 100
    next_token: str | None = None


@dataclass(frozen=True)
class Page:
    items: list[Resource]
    next_token: str | None


_SORTABLE = {"creation_time", "name", "status", "last_modified_time"}


# Called after a committed change of a resource's indexed status (and after a create with
# a status): (kind, old status or None, the resource as written). EventBridge's SageMaker
# state-change events hang here; a listener must be cheap when it has nothing to do.
StatusListener = Callable[[str, "str | None", "Resource"], None]


# How long ``none_of`` trusts a count it made (another server on the same database creates
# resources this one does not hear of; its own creates and deletes are heard at once).
NONE_OF_SECONDS = 5.0


class ResourceStore:
    def __init__(self, database: Database) -> None:
        self.db = database
        self.status_listeners: list[StatusListener] = []
        self._writes: dict[str, int] = {}  # kind -> creates and deletes through this store
        self._none_of: dict[str, tuple[float, int, bool]] = {}  # kind -> (when, writes, none)

    def none_of(self, kind: str) -> bool:
        """Whether no resource of ``kind`` exists: a background loop's cheap "nothing to do".

        Answered from memory for up to ``NONE_OF_SECONDS`` after a count, forgotten as soon
        as this store creates or deletes one of the kind (each poll of an idle server's
        loops was a query of a few milliseconds, holding the GIL the event loop needs).
        """
        writes = self._writes.get(kind, 0)
        cached = self._none_of.get(kind)
        moment = time.monotonic()
        if cached is not None and cached[1] == writes and moment - cached[0] < NONE_OF_SECONDS:
            return cached[2]
        none = self.count(kind) == 0
        self._none_of[kind] = (moment, writes, none)
        return none

    def _wrote(self, kind: str) -> None:
        self._writes[kind] = self._writes.get(kind, 0) + 1

    def _notify(self, kind: str, old_status: str | None, resource: "Resource") -> None:
        for listener in self.status_listeners:
            try:
                listener(kind, old_status, resource)
            except Exception:  # noqa: BLE001 - a listener never fails the write it follows
                logging.getLogger("modelyard.resources").exception(
                    "a status listener failed for %s %s", kind, resource.name)

    def create(
        self,
        kind: str,
        name: str,
        arn: str,
        document: dict[str, Any],
        *,
        now: float,
        status: str | None = None,
        parent: str | None = None,
        already_exists: Callable[[], AwsError] | None = None,
    ) -> Resource:
        """Insert a resource; a duplicate name raises ``already_exists()`` (ResourceInUse)."""
        row = {
            "kind": kind,
            "name": name,
            "name_key": name.lower(),
            "arn": arn,
            "status": status,
            "parent": parent,
            "creation_time": now,
            "last_modified_time": now,
            "document": json.dumps(document, default=_json_default),
        }
        self._wrote(kind)  # before and after: a count racing the insert is not trusted
        try:
            with self.db.write() as connection:
                connection.execute(insert(resources_table).values(**row))
        except IntegrityError:
            if already_exists is not None:
                raise already_exists() from None
            raise AwsError(
                "ResourceInUse", f"{kind} {name} already exists. Choose another name."
            ) from None
        self._wrote(kind)
        created = Resource(kind, name, arn, status, parent, now, now, document)
        if self.status_listeners and status is not None:
            self._notify(kind, None, created)
        return created

    def get(self, kind: str, name: str) -> Resource | None:
        with self.db.read() as connection:
            row = connection.execute(
                select(resources_table).where(
                    and_(resources_table.c.kind == kind, resources_table.c.name_key == name.lower())
                )
            ).first()
        return _to_resource(row) if row else None

    def get_by_arn(self, arn: str) -> Resource | None:
        with self.db.read() as connection:
            row = connection.execute(
                select(resources_table).where(resources_table.c.arn == arn)
            ).first()
        return _to_resource(row) if row else None

    def update(
        self,
        kind: str,
        name: str,
        change: Callable[[Resource], dict[str, Any]],
        *,
        now: float,
        missing: Callable[[], AwsError],
    ) -> Resource:
        """Read, change and write one resource in a single transaction.

        ``change`` receives the current resource and returns the new document; it may set
        ``"__status__"`` in that dict to change the indexed status too.
        """
        with self.db.write() as connection:
            # FOR UPDATE: concurrent changes to one resource queue up on PostgreSQL
            # (SQLite's BEGIN IMMEDIATE already serializes writers).
            row = connection.execute(
                select(resources_table).where(
                    and_(resources_table.c.kind == kind, resources_table.c.name_key == name.lower())
                ).with_for_update()
            ).first()
            if row is None:
                raise missing()
            current = _to_resource(row)
            document = dict(change(current))
            status = document.pop("__status__", current.status)
            connection.execute(
                update(resources_table)
                .where(resources_table.c.id == row.id)
                .values(
                    document=json.dumps(document, default=_json_default),
                    status=status,
                    last_modified_time=now,
                )
            )
        updated = Resource(
            kind, name, current.arn, status, current.parent, current.creation_time, now, document
        )
        if self.status_listeners and status != current.status:
            self._notify(kind, current.status, updated)
        return updated

    def delete(self, kind: str, name: str) -> bool:
        self._wrote(kind)
        with self.db.write() as connection:
            result = connection.execute(
                delete(resources_table).where(
                    and_(resources_table.c.kind == kind, resources_table.c.name_key == name.lower())
                )
            )
        return result.rowcount > 0

    def count(self, kind: str, parent: str | None = None) -> int:
        conditions = [resources_table.c.kind == kind]
        if parent is not None:
            conditions.append(resources_table.c.parent == parent)
        with self.db.read() as connection:
            return connection.execute(
                select(func.count()).select_from(resources_table).where(and_(*conditions))
            ).scalar_one()

    def list(self, kind: str, query: ListQuery) -> Page:
        table = resources_table
        conditions = [table.c.kind == kind]
        if query.name_contains:
            pattern = "%" + _escape_like(query.name_contains.lower()) + "%"
            conditions.append(table.c.name_key.like(pattern, escape="\\"))
        if query.name_prefix:
            conditions.append(
                table.c.name_key.like(_escape_like(query.name_prefix.lower()) + "%", escape="\\"))
        if query.status_equals:
            conditions.append(table.c.status == query.status_equals)
        if query.parent is not None:
            conditions.append(table.c.parent == query.parent)
        if query.created_after is not None:
            conditions.append(table.c.creation_time > query.created_after)
        if query.created_before is not None:
            conditions.append(table.c.creation_time < query.created_before)
        if query.modified_after is not None:
            conditions.append(table.c.last_modified_time > query.modified_after)
        if query.modified_before is not None:
            conditions.append(table.c.last_modified_time < query.modified_before)
        if query.sort_by not in _SORTABLE:
            raise ValueError(f"cannot sort resources by {query.sort_by}")
        column = table.c[query.sort_by]
        ordering = [column.desc(), table.c.id.desc()] if query.descending else [column, table.c.id]
        offset = _decode_token(query.next_token, kind)
        statement = (
            select(table)
            .where(and_(*conditions))
            .order_by(*ordering)
            .offset(offset)
            .limit(query.max_results + 1)
        )
        with self.db.read() as connection:
            rows = connection.execute(statement).all()
        items = [_to_resource(row) for row in rows[: query.max_results]]
        token = None
        if len(rows) > query.max_results:
            token = _encode_token(offset + query.max_results, kind)
        return Page(items, token)

    def create_many(self, rows: Iterable[dict[str, Any]]) -> None:
        """Bulk insert, for benchmarks and imports; rows hold resources_table's columns."""
        prepared = [
            {**row, "name_key": row["name"].lower(),
             "document": json.dumps(row["document"], default=_json_default)}
            for row in rows
        ]
        for kind in {row["kind"] for row in prepared}:
            self._wrote(kind)
        with self.db.write() as connection:
            connection.execute(insert(resources_table), prepared)
        for kind in {row["kind"] for row in prepared}:
            self._wrote(kind)


def _to_resource(row: Any) -> Resource:
    return Resource(
        kind=row.kind,
        name=row.name,
        arn=row.arn,
        status=row.status,
        parent=row.parent,
        creation_time=row.creation_time,
        last_modified_time=row.last_modified_time,
        document=json.loads(row.document),
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _encode_token(offset: int, kind: str) -> str:
    raw = json.dumps({"k": kind, "o": offset}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: str | None, kind: str) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["k"] != kind or int(data["o"]) < 0:
            raise ValueError
        return int(data["o"])
    except Exception:
        raise validation_error(
            "The NextToken is not valid for this request. Pass the NextToken exactly as "
            "the previous response returned it, with the same filters."
        ) from None


def _json_default(value: Any) -> Any:
    if hasattr(value, "timestamp"):
        return value.timestamp()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot store {type(value).__name__} in a resource document")
