"""Rules of the default event bus and their targets, kept in the resource store.

A rule is a resource of kind ``EventRule`` named after the rule, with its state (ENABLED /
DISABLED) as the indexed status. Its document holds what DescribeRule shows, its targets
(``Targets``, as ListTargetsByRule shows them), its tags and, for a scheduled rule, the
next time it fires (``_next_fire``) and the time its rate counts from (``_anchor``), so a
restarted server keeps the schedule.

Matching an event must not read the database: every server keeps the rules in a
``RuleCache``, loaded once and updated by every write made through this module.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from ..store.resources import ListQuery, Resource
from .patterns import compile_pattern
from .schedule import Schedule, parse_schedule

if TYPE_CHECKING:
    from ..platform import Platform

KIND = "EventRule"
ENABLED, DISABLED = "ENABLED", "DISABLED"
DEFAULT_BUS = "default"


@dataclass(frozen=True)
class CachedRule:
    name: str
    arn: str
    enabled: bool
    pattern: dict[str, Any] | None
    schedule: Schedule | None
    targets: tuple[dict[str, Any], ...]
    next_fire: float | None = None
    document: dict[str, Any] = field(default_factory=dict, compare=False)


class RuleCache:
    """Every rule of one server, in memory, for matching events and running schedules."""

    def __init__(self) -> None:
        self._rules: dict[str, CachedRule] = {}
        self._lock = threading.Lock()
        self.has_pattern_rules = False  # read without the lock on every status change

    def load(self, platform: "Platform") -> None:
        rules = {resource.name: cached(resource) for resource in all_rules(platform)}
        with self._lock:
            self._rules = rules
            self._refresh_flags()

    def put(self, resource: Resource) -> None:
        with self._lock:
            self._rules[resource.name] = cached(resource)
            self._refresh_flags()

    def remove(self, name: str) -> None:
        with self._lock:
            self._rules.pop(name, None)
            self._refresh_flags()

    def _refresh_flags(self) -> None:
        self.has_pattern_rules = any(rule.enabled and rule.pattern is not None
                                     for rule in self._rules.values())

    def pattern_rules(self) -> list[CachedRule]:
        with self._lock:
            return [rule for rule in self._rules.values()
                    if rule.enabled and rule.pattern is not None and rule.targets]

    def scheduled_rules(self) -> list[CachedRule]:
        with self._lock:
            return [rule for rule in self._rules.values()
                    if rule.enabled and rule.schedule is not None]


def cached(resource: Resource) -> CachedRule:
    document = resource.document
    pattern = document.get("EventPattern")
    schedule = document.get("ScheduleExpression")
    return CachedRule(
        name=resource.name,
        arn=resource.arn,
        enabled=document.get("State", ENABLED) != DISABLED,
        pattern=compile_pattern(pattern) if pattern else None,
        schedule=parse_schedule(schedule) if schedule else None,
        targets=tuple(document.get("Targets", [])),
        next_fire=document.get("_next_fire"),
        document=document,
    )


_caches: dict[int, RuleCache] = {}
_caches_lock = threading.Lock()


def rule_cache(platform: "Platform") -> RuleCache:
    """The platform's rule cache, loaded on first use."""
    key = id(platform.resources)
    cache = _caches.get(key)
    if cache is not None:
        return cache
    with _caches_lock:
        cache = _caches.get(key)
        if cache is None:
            cache = RuleCache()
            cache.load(platform)
            _caches[key] = cache
    return cache


def forget_cache(platform: "Platform") -> None:
    with _caches_lock:
        _caches.pop(id(platform.resources), None)


# --- reading and writing rules -------------------------------------------------------------


def rule_not_found(name: str) -> AwsError:
    return AwsError("ResourceNotFoundException",
                    f"Rule {name} does not exist on EventBus {DEFAULT_BUS}.")


def get_rule(platform: "Platform", name: str) -> Resource:
    """The rule named exactly ``name``; ResourceNotFoundException otherwise."""
    resource = platform.resources.get(KIND, name)
    if resource is None or resource.name != name:
        raise rule_not_found(name)
    return resource


def find_rule(platform: "Platform", name: str) -> Resource | None:
    resource = platform.resources.get(KIND, name)
    return resource if resource is not None and resource.name == name else None


def create_rule(platform: "Platform", name: str, arn: str, document: dict[str, Any]) -> Resource:
    now = platform.clock.now()
    resource = platform.resources.create(
        KIND, name, arn, document, now=now, status=document["State"],
        already_exists=lambda: AwsError(
            "ConcurrentModificationException",
            f"Rule {name} was created at the same time by another request, or a rule whose "
            "name differs only in case exists (modelyard keeps rule names unique regardless "
            "of case); retry, or choose another name."))
    rule_cache(platform).put(resource)
    return resource


def update_rule(platform: "Platform", name: str,
                change: Callable[[dict[str, Any]], None]) -> Resource:
    """Change a rule's document in one transaction and keep the cache in step."""
    def apply(current: Resource) -> dict[str, Any]:
        document = dict(current.document)
        change(document)
        document["__status__"] = document["State"]
        return document

    resource = platform.resources.update(
        KIND, name, apply, now=platform.clock.now(), missing=lambda: rule_not_found(name))
    rule_cache(platform).put(resource)
    return resource


def delete_rule(platform: "Platform", name: str) -> None:
    platform.resources.delete(KIND, name)
    rule_cache(platform).remove(name)


def all_rules(platform: "Platform") -> list[Resource]:
    """Every rule, by name (ListRules and ListRuleNamesByTarget page over this)."""
    rules, token = [], None
    while True:
        page = platform.resources.list(KIND, ListQuery(
            sort_by="name", descending=False, max_results=100, next_token=token))
        rules.extend(page.items)
        token = page.next_token
        if not token:
            return rules
