"""Scheduled actions: ``at(...)``, ``rate(...)`` and ``cron(...)`` schedules that set a
target's Min/MaxCapacity when ``platform.clock`` reaches them.

Running one changes the target's bounds and, when the variant's capacity is outside them,
scales it to the nearest bound (an activity caused by the scheduled action). The next run
time is kept in the action's document (``_next``), written before the change, so a
restarted server neither repeats nor loses a run; missed runs are not made up.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from ..events.schedule import parse_schedule
from . import scaling, store
from .store import validation

if TYPE_CHECKING:
    from ..platform import Platform
    from ..store.resources import Resource

log = logging.getLogger("modelyard.autoscaling")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")


def _zone(name: str | None) -> Any:
    if not name or name.upper() in ("UTC", "ETC/UTC"):
        return timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise validation(f"Timezone {name!r} is not a valid IANA time zone name "
                         "(e.g. Etc/GMT+9 or Pacific/Tahiti).") from None


def check(request: dict[str, Any]) -> None:
    """A schedule AWS accepts, or ValidationException."""
    schedule = request.get("Schedule")
    if not schedule:
        raise validation("Schedule is required for a new scheduled action: at(yyyy-mm-ddThh:"
                         "mm:ss), rate(value unit) or cron(fields).")
    zone = _zone(request.get("Timezone"))
    if schedule.startswith("at("):
        match = _AT.match(schedule)
        try:
            datetime.strptime(match.group(1) if match else "", "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            raise validation(f"Invalid schedule {schedule!r}: write at(yyyy-mm-ddThh:mm:ss)."
                             ) from None
    else:
        if schedule.startswith("cron(") and zone is not timezone.utc:
            raise validation("modelyard runs cron schedules in UTC only; remove Timezone or "
                             "use an at(...) schedule.")
        try:
            parse_schedule(schedule)
        except AwsError:
            raise validation(f"Invalid schedule {schedule!r}: use at(yyyy-mm-ddThh:mm:ss), "
                             "rate(value unit) with minute(s), hour(s) or day(s), or a six-"
                             "field cron(minutes hours day-of-month month day-of-week year)."
                             ) from None
    action = request.get("ScalableTargetAction") or {}
    low, high = action.get("MinCapacity"), action.get("MaxCapacity")
    if low is not None and high is not None and low > high:
        raise validation(f"ScalableTargetAction MinCapacity ({low}) must not be greater than "
                         f"MaxCapacity ({high}).")
    if low is not None and low < 1:
        raise validation("MinCapacity of a SageMaker endpoint variant must be at least 1.")


def next_run(document: dict[str, Any], after: float) -> float | None:
    """The first run strictly after ``after`` within Start/EndTime; None when none is left."""
    try:
        return _next_run(document, after)
    except (OverflowError, ValueError, OSError):
        raise validation("The schedule's times are out of range; use dates between 1970 and "
                         "2199.") from None


def _next_run(document: dict[str, Any], after: float) -> float | None:
    schedule = document["Schedule"]
    start, end = document.get("StartTime"), document.get("EndTime")
    match = _AT.match(schedule)
    if match:
        moment = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=_zone(document.get("Timezone"))).timestamp()
        due = moment if moment > after else None
    else:
        anchor = start if start is not None else document["CreationTime"]
        since = after if start is None or start <= after else start - 1e-6
        due = parse_schedule(schedule).next_after(since, anchor)
    if due is not None and start is not None and due < start:
        due = None
    if due is not None and end is not None and due > end:
        return None
    return due


def run_due(platform: "Platform", now: float) -> None:
    for action in store.all_of(platform, store.SCHEDULED):
        due = action.document.get("_next")
        if due is not None and due <= now:
            try:
                _run(platform, action, now)
            except Exception:  # noqa: BLE001 - one action never stops the others
                log.exception("scheduled action %s failed", action.name)


def _run(platform: "Platform", action: "Resource", now: float) -> None:
    with scaling.lock(platform):
        def advance(document: dict[str, Any]) -> dict[str, Any]:
            document["_next"] = next_run(document, now)
            return document

        current = platform.resources.get(store.SCHEDULED, action.name)
        if current is None or current.document.get("_next") is None or \
                current.document["_next"] > now:
            return
        store.update(platform, current, advance)
        target = platform.resources.get(store.TARGET, current.parent or "")
        if target is None:
            return
        if (target.document.get("SuspendedState") or {}).get("ScheduledScalingSuspended"):
            return
        wanted = current.document.get("ScalableTargetAction") or {}
        apply_bounds(platform, target, wanted.get("MinCapacity"), wanted.get("MaxCapacity"),
                     cause=f"scheduled action name {current.document['ScheduledActionName']} "
                           "was triggered")


def apply_bounds(platform: "Platform", target: "Resource", low: int | None, high: int | None,
                 *, cause: str) -> "Resource":
    """New Min/MaxCapacity for a target; scale into them when the variant is outside."""
    def change(document: dict[str, Any]) -> dict[str, Any]:
        if low is not None:
            document["MinCapacity"] = low
        if high is not None:
            document["MaxCapacity"] = high
        if document["MinCapacity"] > document["MaxCapacity"]:
            # A scheduled action moving one bound past the other moves both (as AWS does).
            if low is not None and high is None:
                document["MaxCapacity"] = document["MinCapacity"]
            else:
                document["MinCapacity"] = document["MaxCapacity"]
        return document

    target = store.update(platform, target, change)
    _, current, _ = scaling.variant_counts(platform, target.document["ResourceId"])
    if current is None:
        return target
    bounded = max(target.document["MinCapacity"], min(target.document["MaxCapacity"], current))
    if bounded != current:
        scaling.set_capacity(platform, target, bounded, cause=cause)
    else:
        parts = []
        if low is not None:
            parts.append(f"min capacity to {target.document['MinCapacity']}")
        if high is not None:
            parts.append(f"max capacity to {target.document['MaxCapacity']}")
        if parts and cause.startswith("scheduled"):
            text = " and ".join(parts)
            scaling.record_activity(platform, target, description=f"Setting {text}",
                                    cause=cause, status="Successful",
                                    message=f"Successfully set {text}")
    return target
