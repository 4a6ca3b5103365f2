"""CloudWatch: metrics (put, statistics, metric math) and alarms evaluated on the server clock."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..platform import Platform


def start(platform: "Platform") -> None:
    """Register delivery kinds and start background loops (before deliveries start)."""
    from .alarm_actions import register
    from .alarm_loop import AlarmEvaluator
    from .metrics import start_retention

    register(platform)
    AlarmEvaluator(platform).start()
    start_retention(platform)


def stop(platform: "Platform") -> None:
    """Stop background loops."""
    from .alarm_loop import evaluator_for
    from .metrics import stop_retention

    stop_retention(platform)
    evaluator = evaluator_for(platform)
    if evaluator is not None:
        evaluator.stop()
