"""The default event bus: an event in, one durable delivery per matched target out.

``put_event`` is how everything in the server emits an event (PutEvents, SageMaker's
state changes, CloudWatch alarms): the event gets AWS's envelope, is matched against the
enabled rules of the default bus (from the in-memory ``RuleCache``), and each matched
target gets one outbox entry, all written in one transaction. The target's input is
computed here, when the rule matches, as EventBridge does.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .patterns import matches
from .rules import CachedRule, rule_cache
from .targets import pipeline_parameters, target_input, target_kind

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from ..platform import Platform


def iso_time(epoch: float) -> str:
    """EventBridge's event time: UTC, whole seconds, a Z suffix."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_event(platform: "Platform", source: str, detail_type: str, detail: dict[str, Any],
               resources: list[str] | tuple = (), *, time: float | None = None) -> dict[str, Any]:
    """An event in AWS's envelope (version, id, detail-type, source, account, time, ...)."""
    settings = platform.settings
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": settings.account_id,
        "time": iso_time(platform.clock.now() if time is None else time),
        "region": settings.region,
        "resources": list(resources),
        "detail": detail,
    }


def put_event(platform: "Platform", source: str, detail_type: str, detail: dict[str, Any],
              resources: list[str] | tuple = (), *, time: float | None = None) -> str:
    """Put one event on the default bus; returns its id.

    Matches the enabled rules of the default bus and enqueues one durable delivery per
    matched target.
    """
    event = make_event(platform, source, detail_type, detail, resources, time=time)
    publish_event(platform, event)
    return event["id"]


def publish_event(platform: "Platform", event: dict[str, Any]) -> int:
    """Match an enveloped event and enqueue its deliveries; how many were enqueued."""
    cache = rule_cache(platform)
    if not cache.has_pattern_rules:
        return 0
    matched = [rule for rule in cache.pattern_rules() if matches(rule.pattern, event)]
    if not matched:
        return 0
    with platform.db.write() as connection:
        count = sum(enqueue_targets(platform, rule, event, connection) for rule in matched)
    platform.deliveries.wake()
    return count


def enqueue_targets(platform: "Platform", rule: CachedRule, event: dict[str, Any],
                    connection: "Connection") -> int:
    """One outbox entry per target of ``rule`` for ``event``, in the caller's transaction."""
    count = 0
    for target in rule.targets:
        kind = target_kind(target["Arn"])
        if kind is None:
            continue
        payload = {
            "rule": rule.name,
            "rule_arn": rule.arn,
            "target_id": target["Id"],
            "arn": target["Arn"],
            "event_id": event["id"],
            "input": target_input(target, event, rule.name, rule.arn),
            "parameters": pipeline_parameters(target),
        }
        key = f"events/{event['id']}/{rule.name}/{target['Id']}"
        if platform.deliveries.outbox.add(kind, key, payload, now=platform.clock.now(),
                                          connection=connection):
            count += 1
    return count
