"""EventBridge: rules on the default bus, event patterns, schedules and targets."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..platform import Platform

# Delivery retries: EventBridge retries a failed target for up to 24 hours; modelyard
# retries a few times over about five minutes, then records the delivery as failed.
ATTEMPTS = 6
BACKOFF = (1.0, 5.0, 15.0, 60.0, 240.0)

_schedulers: dict[int, object] = {}


def start(platform: "Platform") -> None:
    """Register delivery kinds and start background loops (before deliveries start)."""
    from . import rules, sagemaker_events, targets
    from .scheduler import Scheduler

    for kind, handler in targets.HANDLERS.items():
        platform.deliveries.register(kind, handler, attempts=ATTEMPTS, backoff=BACKOFF)
    rules.forget_cache(platform)
    rules.rule_cache(platform)  # load the rules once, before anything matches events
    platform.resources.status_listeners.append(sagemaker_events.listener(platform))
    scheduler = Scheduler(platform)
    scheduler.start()
    _schedulers[id(platform)] = scheduler


def stop(platform: "Platform") -> None:
    """Stop background loops."""
    from . import rules

    scheduler = _schedulers.pop(id(platform), None)
    if scheduler is not None:
        scheduler.stop()  # type: ignore[attr-defined]
    rules.forget_cache(platform)
