"""Model Monitor: the analyzer container (data and model quality) and monitoring schedules."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..platform import Platform


def start(platform: "Platform") -> None:
    """Start the monitoring scheduler: schedules' executions on ``platform.clock``."""
    from .scheduler import MonitorScheduler

    platform.monitor_scheduler = MonitorScheduler(platform)  # type: ignore[attr-defined]
    platform.monitor_scheduler.start()  # type: ignore[attr-defined]


def stop(platform: "Platform") -> None:
    """Stop the monitoring scheduler."""
    scheduler = getattr(platform, "monitor_scheduler", None)
    if scheduler is not None:
        scheduler.stop()
        platform.monitor_scheduler = None  # type: ignore[attr-defined]
