"""Action suppression of composite alarms (``ActionsSuppressor``), as CloudWatch does it.

A composite alarm with a suppressor alarm takes no actions while the suppressor is in
ALARM. When the composite changes state:

- the suppressor is in ALARM: the new state's actions are suppressed (``ActionsSuppressedBy``
  ``Alarm``);
- otherwise, with a ``ActionsSuppressorWaitPeriod``, they wait that long for the suppressor
  to go into ALARM (``WaitPeriod``); if it does not, they run when the period ends.

When the suppressor goes into ALARM during a wait, the actions are suppressed (``Alarm``).
When it leaves ALARM while the composite's actions are suppressed by it, they wait
``ActionsSuppressorExtensionPeriod`` more (``ExtensionPeriod``; at once without one), then
run unless it went back into ALARM. Actions that run at the end of a period are recorded as
AWS records them: a state update to the same state (its history item and "CloudWatch Alarm
State Change" event, whose previous state shows the suppression), with the state's actions.

The end of a pending period is ``SuppressionEnds`` in the alarm's document (not shown by
DescribeAlarms); the evaluator keeps a timer for it, rebuilt from the documents at start-up,
so a restarted server still runs the actions.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from . import alarm_store
from .alarm_actions import deliveries_for
from .alarm_evaluation import ALARM

if TYPE_CHECKING:
    from ..platform import Platform

BY_ALARM, WAIT, EXTENSION = "Alarm", "WaitPeriod", "ExtensionPeriod"
ENDS = "SuppressionEnds"
FIELDS = ("ActionsSuppressedBy", "ActionsSuppressedReason", ENDS)


def suppressor_name(alarm: dict[str, Any]) -> str | None:
    """The suppressor alarm's name (``ActionsSuppressor`` is a name or an alarm ARN)."""
    reference = alarm.get("ActionsSuppressor")
    if not reference:
        return None
    if reference.startswith("arn:"):
        return reference.split(":alarm:", 1)[-1]
    return reference


def suppressor_state(platform: "Platform", alarm: dict[str, Any]) -> str | None:
    name = suppressor_name(alarm)
    suppressor = alarm_store.get(platform, name) if name else None
    return suppressor["StateValue"] if suppressor else None


def _mark(document: dict[str, Any], by: str | None, ends: float | None = None) -> dict[str, Any]:
    for field in FIELDS:
        document.pop(field, None)
    if by is not None:
        document["ActionsSuppressedBy"] = by
        document["ActionsSuppressedReason"] = f"Actions suppressed by {by}"
        if ends is not None:
            document[ENDS] = ends
    return document


def on_transition(platform: "Platform", after: dict[str, Any], now: float) -> None:
    """Set the suppression of a composite alarm's new state (in ``after``, before it is
    written)."""
    _mark(after, None)
    if not after.get("ActionsSuppressor") or not after.get("ActionsEnabled", True):
        return
    if suppressor_state(platform, after) == ALARM:
        _mark(after, BY_ALARM)
    elif (after.get("ActionsSuppressorWaitPeriod") or 0) > 0:
        _mark(after, WAIT, now + after["ActionsSuppressorWaitPeriod"])


def reconcile(platform: "Platform", alarm: dict[str, Any], now: float) -> float | None:
    """The suppressor may have changed state: move the composite alarm's suppression on.
    Returns when a period now pending ends (for the evaluator's timer)."""
    by = alarm.get("ActionsSuppressedBy")
    if by is None:
        return None
    in_alarm = suppressor_state(platform, alarm) == ALARM
    name = alarm["AlarmName"]
    if in_alarm and by in (WAIT, EXTENSION):
        alarm_store.change(platform, name, lambda document: _mark(document, BY_ALARM), now=now)
        return None
    if not in_alarm and by == BY_ALARM:
        extension = alarm.get("ActionsSuppressorExtensionPeriod") or 0
        if extension > 0:
            alarm_store.change(platform, name,
                               lambda document: _mark(document, EXTENSION, now + extension),
                               now=now)
            return now + extension
        _run_actions(platform, name, now)
        return None
    return alarm.get(ENDS) if by in (WAIT, EXTENSION) else None


def release(platform: "Platform", name: str, now: float) -> bool:
    """A wait or extension period is over: run the actions of the alarm's state (unless
    the suppressor is in ALARM again). True if they ran."""
    alarm = alarm_store.get(platform, name)
    if alarm is None or alarm.get("ActionsSuppressedBy") not in (WAIT, EXTENSION):
        return False
    if alarm.get(ENDS, math.inf) > now:
        return False
    if suppressor_state(platform, alarm) == ALARM:
        alarm_store.change(platform, name, lambda document: _mark(document, BY_ALARM), now=now)
        return False
    return _run_actions(platform, name, now)


def _run_actions(platform: "Platform", name: str, now: float) -> bool:
    def unsuppress(document: dict[str, Any]) -> dict[str, Any] | None:
        # Checked in the write's transaction: a transition since may have run the actions.
        return _mark(document, None) if document.get("ActionsSuppressedBy") else None

    done = alarm_store.restate(
        platform, name, now=now, edit=unsuppress,
        deliveries=lambda before, after, history_id: deliveries_for(
            platform, before, after, history_id))
    return done is not None


def pending(alarms: list[dict[str, Any]]) -> dict[str, float]:
    """Of ``alarms``, those with a period pending -> when it ends (for a starting
    evaluator)."""
    return {alarm["AlarmName"]: alarm[ENDS] for alarm in alarms
            if alarm.get("ActionsSuppressedBy") in (WAIT, EXTENSION) and ENDS in alarm}
