"""Scheduled rules: a thread that fires each enabled rule when the clock says so.

Every ``POLL_SECONDS`` of real time the thread asks ``platform.clock`` for the time and
fires each enabled scheduled rule whose next firing time has come: one "Scheduled Event"
(source ``aws.events``, the rule's ARN as its resource) to each of the rule's targets.
Missed firings are not made up, as in EventBridge: after downtime or a clock jump a rule
fires once, then its next firing time is the first one after now. The next firing time
lives in the rule's document and is written in the same transaction as the deliveries, so
a restarted server neither repeats nor loses a firing.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select, update

from ..engine.polling import PollingLoop
from ..store.resources import resources_table
from .bus import enqueue_targets, make_event
from .rules import KIND, CachedRule, cached, rule_cache
from .schedule import Schedule

if TYPE_CHECKING:
    from ..store.resources import Resource

log = logging.getLogger("modelyard.events")
POLL_SECONDS = 0.25


def first_fire(schedule: Schedule, now: float) -> tuple[float | None, float]:
    """(next firing time, anchor) for a rule created or enabled at ``now``."""
    return schedule.next_after(now, now), now


class Scheduler(PollingLoop):
    thread_name = "modelyard-event-schedules"
    poll_seconds = POLL_SECONDS
    log = log

    def check(self, now: float) -> int:
        """Fire every due rule once; how many fired."""
        fired = 0
        for rule in rule_cache(self.platform).scheduled_rules():
            if rule.next_fire is not None and rule.next_fire <= now:
                fired += self._fire(rule.name, now)
        return fired

    def _fire(self, name: str, now: float) -> int:
        platform = self.platform
        table = resources_table
        with platform.db.write() as connection:
            row = connection.execute(
                select(table).where(and_(table.c.kind == KIND, table.c.name_key == name.lower()))
                .with_for_update()).first()
            if row is None:
                rule_cache(platform).remove(name)
                return 0
            document: dict[str, Any] = json.loads(row.document)
            due = document.get("_next_fire")
            rule = _rule_of(row, document)
            if not rule.enabled or rule.schedule is None or due is None or due > now:
                # Changed meanwhile (by another server on the same database): catch up.
                rule_cache(platform).put(_resource(row, document, row.last_modified_time))
                return 0
            event = make_event(platform, "aws.events", "Scheduled Event", {}, [row.arn],
                               time=due)
            enqueue_targets(platform, rule, event, connection)
            document["_next_fire"] = rule.schedule.next_after(now, document.get("_anchor", now))
            connection.execute(update(table).where(table.c.id == row.id).values(
                document=json.dumps(document), last_modified_time=now))
        rule_cache(platform).put(_resource(row, document, now))
        platform.deliveries.wake()
        log.info("rule %s fired for %s", name, event["time"])
        return 1


def _rule_of(row: Any, document: dict[str, Any]) -> CachedRule:
    return cached(_resource(row, document, row.last_modified_time))


def _resource(row: Any, document: dict[str, Any], modified: float) -> "Resource":
    from ..store.resources import Resource

    return Resource(KIND, row.name, row.arn, row.status, row.parent, row.creation_time,
                    modified, document)
