"""Alarms and their history, kept in the generic resources table.

An alarm is kind ``cloudwatch-alarm`` (name = AlarmName, case-sensitive as in CloudWatch;
status = StateValue; parent = AlarmType); its document holds DescribeAlarms' members plus
``AlarmType`` and ``Tags``. A history item is kind ``cloudwatch-alarm-history`` (parent =
alarm name, status = HistoryItemType, creation time = its Timestamp); its name starts with
the alarm type so AlarmTypes filters by prefix. A state transition — new state, its history
item and the deliveries of its actions and event — is one transaction: a restart neither
loses nor repeats it.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, insert, or_, select, update

from ..api.errors import AwsError
from ..store.outbox import Outbox
from ..store.resources import resources_table as table

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from ..platform import Platform

KIND = "cloudwatch-alarm"
HISTORY_KIND = "cloudwatch-alarm-history"
HISTORY_RETENTION_SECONDS = 14 * 24 * 3600  # CloudWatch keeps alarm history two weeks
INTERNAL = ("AlarmType", "Tags", "SuppressionEnds")
# (before, after, history id) -> outbox rows (kind, key, payload) of a state update
Deliveries = Callable[[dict[str, Any], dict[str, Any], str], list[tuple[str, str, dict[str, Any]]]]


@dataclass(frozen=True)
class Transition:
    """A committed state change: the alarm before and after, and its history item id."""

    before: dict[str, Any]
    after: dict[str, Any]
    history_id: str


def alarm_arn(platform: "Platform", name: str) -> str:
    return platform.settings.arn("cloudwatch", f"alarm:{name}")


def public(document: dict[str, Any]) -> dict[str, Any]:
    """The members DescribeAlarms shows."""
    return {key: value for key, value in document.items() if key not in INTERNAL}


def get(platform: "Platform", name: str) -> dict[str, Any] | None:
    with platform.db.read() as connection:
        row = connection.execute(select(table.c.document).where(
            and_(table.c.kind == KIND, table.c.name_key == name))).first()
    return json.loads(row.document) if row else None


def get_by_arn(platform: "Platform", arn: str) -> dict[str, Any] | None:
    with platform.db.read() as connection:
        row = connection.execute(select(table.c.document).where(
            and_(table.c.kind == KIND, table.c.arn == arn))).first()
    return json.loads(row.document) if row else None


def list_alarms(platform: "Platform", alarm_type: str | None = None,
                name_prefix: str | None = None) -> list[dict[str, Any]]:
    """Every alarm (of one type), sorted by name."""
    conditions = [table.c.kind == KIND]
    if alarm_type:
        conditions.append(table.c.parent == alarm_type)
    with platform.db.read() as connection:
        rows = connection.execute(select(table.c.name, table.c.document)
                                  .where(and_(*conditions))).all()
    # Case-sensitive prefix and byte order, as CloudWatch (not the database's collation).
    chosen = sorted((row for row in rows if row.name.startswith(name_prefix or "")),
                    key=lambda row: row.name)
    return [json.loads(row.document) for row in chosen]


def count(platform: "Platform") -> int:
    from sqlalchemy import func

    with platform.db.read() as connection:
        return connection.execute(select(func.count()).select_from(table)
                                  .where(table.c.kind == KIND)).scalar_one()


# What a configuration update keeps from the alarm it replaces (as CloudWatch does).
KEPT_ON_UPDATE = ("StateValue", "StateReason", "StateReasonData", "StateUpdatedTimestamp",
                  "StateTransitionedTimestamp", "Tags")


def save(platform: "Platform", document: dict[str, Any], *, now: float,
         initial: dict[str, Any]) -> bool:
    """Create an alarm (``document`` plus the ``initial`` state members) or replace the
    configuration of an existing one, keeping its state and tags; with a
    ConfigurationUpdate history item, in one transaction. True when the alarm is new."""
    name = document["AlarmName"]
    with platform.db.write() as connection:
        row = connection.execute(select(table.c.id, table.c.parent, table.c.document).where(
            and_(table.c.kind == KIND, table.c.name_key == name)).with_for_update()).first()
        if row is not None and row.parent != document["AlarmType"]:
            kind = "a composite" if row.parent == "CompositeAlarm" else "a metric"
            raise AwsError("ValidationError", f"An alarm named {name!r} already exists and "
                           f"is {kind} alarm. Delete it first or choose another name.")
        if row is None:
            document = {**document, **initial}
            connection.execute(insert(table).values(
                kind=KIND, name=name, name_key=name, arn=document["AlarmArn"],
                status=document["StateValue"], parent=document["AlarmType"],
                creation_time=now, last_modified_time=now, document=json.dumps(document)))
            summary = f'Alarm "{name}" created'
            data = {"version": "1.0", "type": "Create", "createdAlarm": public(document)}
        else:
            existing = json.loads(row.document)
            document = {**document, **{member: existing[member] for member in KEPT_ON_UPDATE
                                       if member in existing}}
            connection.execute(update(table).where(table.c.id == row.id).values(
                status=document["StateValue"], last_modified_time=now,
                document=json.dumps(document)))
            summary = f'Alarm "{name}" updated'
            data = {"version": "1.0", "type": "Update",
                    "originalUpdatedAlarm": public(existing), "updatedAlarm": public(document)}
        add_history(connection, document, "ConfigurationUpdate", summary, data, now)
    return row is None


def change(platform: "Platform", name: str, edit: Callable[[dict[str, Any]], dict[str, Any]],
           *, now: float) -> dict[str, Any] | None:
    """Read, edit and write one alarm's document; None when there is no such alarm."""
    with platform.db.write() as connection:
        row = connection.execute(select(table.c.id, table.c.document).where(
            and_(table.c.kind == KIND, table.c.name_key == name)).with_for_update()).first()
        if row is None:
            return None
        document = edit(json.loads(row.document))
        connection.execute(update(table).where(table.c.id == row.id).values(
            document=json.dumps(document), status=document["StateValue"],
            last_modified_time=now))
    return document


def delete_alarms(platform: "Platform", names: list[str], *, now: float) -> list[str]:
    """Delete what exists of ``names`` (with a history item each); the deleted names."""
    deleted = []
    with platform.db.write() as connection:
        for name in names:
            row = connection.execute(select(table.c.id, table.c.document).where(
                and_(table.c.kind == KIND, table.c.name_key == name))).first()
            if row is None:
                continue
            document = json.loads(row.document)
            connection.execute(delete(table).where(table.c.id == row.id))
            add_history(connection, document, "ConfigurationUpdate",
                        f'Alarm "{name}" deleted', {"type": "Delete", "version": "1.0",
                                                    "deletedAlarm": public(document)}, now)
            deleted.append(name)
    return deleted


def transition(platform: "Platform", name: str, state: str, reason: str, reason_data: str,
               *, now: float,
               deliveries: Deliveries,
               prepare: Callable[[dict[str, Any]], None] | None = None) -> Transition | None:
    """Move an alarm to ``state`` unless it is there already (or gone): the new state
    (``prepare(after)`` may add to it before it is written), its StateUpdate history item
    and ``deliveries(before, after, history_id)`` (outbox rows: kind, key, payload) commit
    together."""

    def make(before: dict[str, Any]) -> dict[str, Any] | None:
        if before["StateValue"] == state:
            return None
        after = dict(before, StateValue=state, StateReason=reason, StateUpdatedTimestamp=now,
                     StateTransitionedTimestamp=now)
        if reason_data:
            after["StateReasonData"] = reason_data
        else:
            after.pop("StateReasonData", None)
        if prepare is not None:
            prepare(after)
        return after

    return _update_state(platform, name, now, make, deliveries)


def restate(platform: "Platform", name: str, *, now: float,
            edit: Callable[[dict[str, Any]], dict[str, Any] | None],
            deliveries: Deliveries) -> Transition | None:
    """A state update to the same state (``edit`` changes the rest, or returns None: no
    update): as ``transition`` records one, with its history item and deliveries. CloudWatch makes one when a
    composite alarm's suppressed actions run at last."""
    return _update_state(platform, name, now,
                         lambda before: edit(dict(before, StateUpdatedTimestamp=now)), deliveries)


def _update_state(platform: "Platform", name: str, now: float,
                  make: Callable[[dict[str, Any]], dict[str, Any] | None],
                  deliveries: Deliveries) -> Transition | None:
    """Write ``make(before)`` (None: nothing to do), its StateUpdate history item and its
    deliveries in one transaction."""
    outbox = Outbox(platform.db)
    with platform.db.write() as connection:
        row = connection.execute(select(table.c.id, table.c.document).where(
            and_(table.c.kind == KIND, table.c.name_key == name)).with_for_update()).first()
        if row is None:
            return None
        before = json.loads(row.document)
        after = make(before)
        if after is None:
            return None
        connection.execute(update(table).where(table.c.id == row.id).values(
            document=json.dumps(after), status=after["StateValue"], last_modified_time=now))
        data = {"version": "1.0", "oldState": _state_of(before), "newState": _state_of(after)}
        history_id = add_history(
            connection, after, "StateUpdate",
            f"Alarm updated from {before['StateValue']} to {after['StateValue']}", data, now)
        for kind, key, payload in deliveries(before, after, history_id):
            outbox.add(kind, key, payload, now=now, connection=connection)
    platform.deliveries.wake()
    return Transition(before, after, history_id)


def _state_of(document: dict[str, Any]) -> dict[str, Any]:
    state = {"stateValue": document["StateValue"],
             "stateReason": document.get("StateReason", "")}
    if document.get("StateReasonData"):
        try:
            state["stateReasonData"] = json.loads(document["StateReasonData"])
        except ValueError:
            state["stateReasonData"] = document["StateReasonData"]
    return state


def add_history(connection: "Connection", alarm: dict[str, Any], item_type: str, summary: str,
                data: dict[str, Any], now: float) -> str:
    """Insert one AlarmHistoryItem in the caller's transaction; returns its id."""
    history_id = uuid.uuid4().hex
    name = f"{alarm['AlarmType']}:{history_id}"
    item = {"AlarmName": alarm["AlarmName"], "AlarmType": alarm["AlarmType"],
            "Timestamp": now, "HistoryItemType": item_type, "HistorySummary": summary,
            "HistoryData": json.dumps(data)}
    connection.execute(insert(table).values(
        kind=HISTORY_KIND, name=name, name_key=name.lower(),
        arn=f"modelyard:{HISTORY_KIND}:{history_id}", status=item_type,
        parent=alarm["AlarmName"], creation_time=now, last_modified_time=now,
        document=json.dumps(item)))
    return history_id


def record_history(platform: "Platform", alarm: dict[str, Any], item_type: str, summary: str,
                   data: dict[str, Any], now: float) -> str:
    with platform.db.write() as connection:
        return add_history(connection, alarm, item_type, summary, data, now)


def history_page(platform: "Platform", *, alarm_name: str | None, alarm_types: list[str],
                 item_type: str | None, start: float | None, end: float | None,
                 descending: bool, max_records: int,
                 next_token: str | None) -> tuple[list[dict[str, Any]], str | None]:
    conditions = [table.c.kind == HISTORY_KIND]
    if alarm_name is not None:
        conditions.append(table.c.parent == alarm_name)
    conditions.append(or_(*[table.c.name_key.like(f"{kind.lower()}:%")
                            for kind in alarm_types]))
    if item_type:
        conditions.append(table.c.status == item_type)
    if start is not None:
        conditions.append(table.c.creation_time >= start)
    if end is not None:
        conditions.append(table.c.creation_time <= end)
    order = ([table.c.creation_time.desc(), table.c.id.desc()] if descending
             else [table.c.creation_time, table.c.id])
    offset = decode_token(next_token, "history")
    with platform.db.read() as connection:
        rows = connection.execute(select(table.c.document).where(and_(*conditions))
                                  .order_by(*order).offset(offset)
                                  .limit(max_records + 1)).all()
    items = [json.loads(row.document) for row in rows[:max_records]]
    token = encode_token(offset + max_records, "history") if len(rows) > max_records else None
    return items, token


def purge_history(platform: "Platform", now: float) -> None:
    with platform.db.write() as connection:
        connection.execute(delete(table).where(and_(
            table.c.kind == HISTORY_KIND,
            table.c.creation_time < now - HISTORY_RETENTION_SECONDS)))


def encode_token(offset: int, scope: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"s": scope, "o": offset}).encode()).decode()


def decode_token(token: str | None, scope: str) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["s"] != scope or int(data["o"]) < 0:
            raise ValueError
        return int(data["o"])
    except Exception:
        raise AwsError("InvalidNextToken", "The NextToken is not valid. Pass the NextToken "
                       "exactly as the previous response returned it, with the same "
                       "filters.") from None
