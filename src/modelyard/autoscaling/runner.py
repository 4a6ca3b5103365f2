"""The background side of Application Auto Scaling.

- Alarm actions: an alarm whose action is a scaling-policy ARN enqueues a
  ``cloudwatch-alarm-scaling`` delivery on its transition to ALARM (cloudwatch/
  alarm_actions.py); ``deliver`` runs the policy. As CloudWatch does for Auto Scaling
  actions, an alarm that stays in ALARM invokes its policies again once a minute
  (``_repeat``).
- Activities: Pending ones (the endpoint was busy) are applied again, InProgress ones are
  finished once the endpoint serves the new count (scaling.advance).
- Scheduled actions run when ``platform.clock`` reaches them (``_scheduled``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..cloudwatch import alarm_store
from ..cloudwatch.alarm_actions import SCALING_KIND, action_kind
from ..engine.polling import PollingLoop
from . import policies, scaling, scheduled, store

if TYPE_CHECKING:
    from ..platform import Platform
    from ..store.outbox import Delivery

log = logging.getLogger("modelyard.autoscaling")

REPEAT_SECONDS = 60.0  # an alarm in ALARM invokes its scaling actions once a minute
REPEAT_SCAN_SECONDS = 5.0

_RUNNERS: dict[int, "Runner"] = {}


def runner_for(platform: "Platform") -> "Runner | None":
    return _RUNNERS.get(id(platform))


def deliver(platform: "Platform", delivery: "Delivery") -> None:
    """An alarm went to ALARM with a scaling-policy action: run the policy."""
    payload = delivery.payload
    if payload.get("state") != "ALARM":
        return
    alarm = alarm_store.get(platform, payload["alarm_name"])
    if alarm is None:
        return
    runner = runner_for(platform)
    if runner is not None:
        runner.invoked[(alarm["AlarmName"], payload["arn"])] = platform.clock.now()
    policies.run(platform, payload["arn"], alarm)
    from ..cloudwatch.alarm_actions import record_action_history

    record_action_history(platform, payload, True, payload["arn"])


class Runner(PollingLoop):
    thread_name = "modelyard-autoscaling"
    poll_seconds = 0.25
    log = log

    def __init__(self, platform: "Platform") -> None:
        super().__init__(platform)
        self.invoked: dict[tuple[str, str], float] = {}
        self._next_scan = 0.0

    def check(self, now: float) -> None:
        resources = self.platform.resources
        if not resources.none_of(store.SCHEDULED):
            scheduled.run_due(self.platform, now)
        if not resources.none_of(store.ACTIVITY):
            scaling.advance(self.platform)
        if now >= self._next_scan:
            self._next_scan = now + REPEAT_SCAN_SECONDS
            self._repeat(now)

    def _repeat(self, now: float) -> None:
        if self.platform.resources.count(store.POLICY) == 0:
            return
        for alarm in alarm_store.list_alarms(self.platform, "MetricAlarm"):
            if alarm.get("StateValue") != "ALARM" or not alarm.get("ActionsEnabled", True):
                continue
            for arn in alarm.get("AlarmActions", []):
                if action_kind(arn) != SCALING_KIND:
                    continue
                key = (alarm["AlarmName"], arn)
                last = self.invoked.get(key)
                if last is None:
                    # First sight (e.g. after a restart): the transition's delivery ran it.
                    self.invoked[key] = now
                    continue
                if now - last >= REPEAT_SECONDS:
                    self.invoked[key] = now
                    try:
                        policies.run(self.platform, arn, alarm)
                    except Exception:  # noqa: BLE001 - one policy never stops the others
                        log.exception("running policy %s for alarm %s failed", arn,
                                      alarm["AlarmName"])


def start(platform: "Platform") -> None:
    platform.deliveries.register(SCALING_KIND, deliver, attempts=3, backoff=(1.0, 10.0))
    runner = Runner(platform)
    _RUNNERS[id(platform)] = runner
    runner.start()


def stop(platform: "Platform") -> None:
    runner = _RUNNERS.pop(id(platform), None)
    if runner is not None:
        runner.stop()

