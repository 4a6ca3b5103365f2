"""The alarm evaluator: a background thread that evaluates alarms on the server clock.

Metric alarms are evaluated every minute (every Period below a minute), on clock
boundaries, the way CloudWatch does; a new or changed alarm at once. The thread looks at
``platform.clock`` every quarter second, so a test that moves the clock sees the next
evaluation within that. Composite alarms are evaluated when created or changed and
whenever one of the alarms their rule names changes state.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import alarm_rule, alarm_store, alarm_suppression
from .alarm_actions import deliveries_for
from .alarm_evaluation import (
    ALARM, OK, REASON_DATA_LIMIT, REASON_LIMIT, Decision, decide, format_time, low_sample_limit,
    next_evaluation, reason_data, slots_from_series, window,
)

if TYPE_CHECKING:
    from ..platform import Platform

log = logging.getLogger("modelyard.cloudwatch.alarms")

POLL_SECONDS = 0.25
RESYNC_SECONDS = 30.0  # re-read the alarm list now and then (another server may add some)
MAX_COMPOSITE_DEPTH = 20

_EVALUATORS: dict[int, "AlarmEvaluator"] = {}


def evaluator_for(platform: "Platform") -> "AlarmEvaluator | None":
    return _EVALUATORS.get(id(platform))


def notify(platform: "Platform", name: str) -> None:
    """An alarm was created or changed: evaluate it soon."""
    evaluator = evaluator_for(platform)
    if evaluator is not None:
        evaluator.schedule(name, 0.0)


def state_changed(platform: "Platform", name: str) -> None:
    """An alarm changed state outside the evaluator (SetAlarmState): re-evaluate the
    composite alarms that name it in their rule or as their ActionsSuppressor."""
    evaluator = evaluator_for(platform)
    if evaluator is not None:
        for parent in evaluator.watchers(name):
            evaluator.schedule(parent, 0.0)


def parents_of(platform: "Platform", name: str) -> list[str]:
    parents = []
    for composite in alarm_store.list_alarms(platform, "CompositeAlarm"):
        try:
            names = alarm_rule.referenced_alarms(alarm_rule.parse(composite["AlarmRule"]))
        except alarm_rule.RuleError:
            continue
        if name in names:
            parents.append(composite["AlarmName"])
    return parents


class AlarmEvaluator:
    def __init__(self, platform: "Platform") -> None:
        self.platform = platform
        self._due: dict[str, float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures: dict[str, str] = {}
        # Composite alarm -> the alarms its rule names and its ActionsSuppressor; None: read
        # again when needed.
        self._composites: dict[str, set[str]] | None = None
        # Composite alarm -> when its actions' wait or extension period ends.
        self._releases: dict[str, float] = {}

    def start(self) -> None:
        _EVALUATORS[id(self.platform)] = self
        self._thread = threading.Thread(target=self._run, name="modelyard-alarms", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        _EVALUATORS.pop(id(self.platform), None)

    def schedule(self, name: str, due: float) -> None:
        with self._lock:
            self._due[name] = min(due, self._due.get(name, math.inf))
            self._composites = None  # a put may have changed a composite alarm's rule
        self._wake.set()

    def release_at(self, name: str, moment: float) -> None:
        with self._lock:
            self._releases[name] = moment
        self._wake.set()

    def watchers(self, name: str) -> list[str]:
        """The composite alarms whose state or suppression follows ``name``'s state."""
        with self._lock:
            composites = self._composites
        if composites is None:
            composites = {}
            for composite in alarm_store.list_alarms(self.platform, "CompositeAlarm"):
                try:
                    composites[composite["AlarmName"]] = set(alarm_rule.referenced_alarms(
                        alarm_rule.parse(composite["AlarmRule"])))
                except alarm_rule.RuleError:
                    continue
                suppressor = alarm_suppression.suppressor_name(composite)
                if suppressor:
                    composites[composite["AlarmName"]].add(suppressor)
            with self._lock:
                self._composites = composites
        return sorted(parent for parent, children in composites.items() if name in children)

    def _run(self) -> None:
        last_sync = -math.inf
        last_purge = -math.inf
        while not self._stopping.is_set():
            try:
                if time.monotonic() - last_sync > RESYNC_SECONDS:
                    last_sync = time.monotonic()
                    self._resync()
                now = self.platform.clock.now()
                for name in self._due_names(now):
                    if self._stopping.is_set():
                        break
                    self._evaluate(name, now)
                for name in self._due_releases(now):
                    alarm_suppression.release(self.platform, name, now)
                if now - last_purge > 3600:
                    last_purge = now
                    alarm_store.purge_history(self.platform, now)
            except Exception:  # noqa: BLE001 - a broken database must not end the loop
                log.exception("the alarm evaluator hit an error; retrying")
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    def _resync(self) -> None:
        """Schedule metric alarms this evaluator has not seen (deleted ones drop out when
        they are next due)."""
        alarms = alarm_store.list_alarms(self.platform)
        pending = alarm_suppression.pending(alarms)
        with self._lock:
            self._composites = None
            for alarm in alarms:
                if alarm["AlarmType"] == "MetricAlarm":
                    self._due.setdefault(alarm["AlarmName"], 0.0)
            for name, moment in pending.items():
                self._releases.setdefault(name, moment)

    def _due_releases(self, now: float) -> list[str]:
        with self._lock:
            due = sorted(name for name, moment in self._releases.items() if moment <= now)
            for name in due:
                del self._releases[name]
        return due

    def _due_names(self, now: float) -> list[str]:
        # A due time more than a cadence ahead means the clock was moved back: due now.
        with self._lock:
            return sorted(name for name, due in self._due.items()
                          if due <= now or math.isfinite(due) and due - now > 61)

    def _evaluate(self, name: str, now: float) -> None:
        alarm = alarm_store.get(self.platform, name)
        if alarm is None:
            with self._lock:
                self._due.pop(name, None)
            return
        if alarm["AlarmType"] == "CompositeAlarm":
            with self._lock:
                self._due.pop(name, None)
            self.evaluate_composite(alarm, now, depth=0)
            return
        period = alarm_period(alarm)
        with self._lock:
            self._due[name] = next_evaluation(now, period)
        try:
            decision, recent = self._decide(alarm, period, now)
        except Exception as error:  # noqa: BLE001 - one alarm's failure must not stop others
            message = f"{type(error).__name__}: {error}"
            if self._failures.get(name) != message:
                self._failures[name] = message
                log.warning("alarm %s could not be evaluated: %s", name, message)
            return
        self._failures.pop(name, None)
        if decision is None or decision.state is None or decision.state == alarm["StateValue"]:
            return
        data = reason_data(query_time=now, decision=decision, period=period,
                           threshold=alarm.get("Threshold"), statistic=alarm.get("Statistic"),
                           extended_statistic=alarm.get("ExtendedStatistic"),
                           unit=alarm.get("Unit"), recent=recent)
        self._transition(name, decision.state, decision.reason, data, now, depth=0)

    def _decide(self, alarm: dict[str, Any], period: int,
                now: float) -> tuple[Decision | None, list]:
        n = alarm["EvaluationPeriods"]
        start, end = window(now, period, n)
        samples: Callable[[], list[tuple[float, float]]] | None = None
        if alarm.get("Metrics"):
            series = _math_series(self.platform, alarm, start, end)
        else:
            from .statistics import statistic_series

            dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
            statistic = alarm.get("Statistic") or alarm["ExtendedStatistic"]
            unit = {"unit": alarm["Unit"]} if alarm.get("Unit") else {}
            series = statistic_series(self.platform, alarm["Namespace"], alarm["MetricName"],
                                      dimensions, start, end, period, statistic, **unit)

            def sample_counts() -> list[tuple[float, float]]:
                return series if statistic == "SampleCount" else statistic_series(
                    self.platform, alarm["Namespace"], alarm["MetricName"], dimensions,
                    start, end, period, "SampleCount", **unit)

            samples = sample_counts

        slots = slots_from_series(start, end, period, series)
        extended = alarm.get("ExtendedStatistic")
        if samples and extended and alarm.get("EvaluateLowSampleCountPercentile") == "ignore":
            slots = slots_from_series(start, end, period, series, samples())
            samples = None
            limit = low_sample_limit(extended)
            counted = sum(slot.samples or 0.0 for slot in slots[-n:])
            if limit is not None and counted < limit:
                return None, slots  # too few samples for this percentile: keep the state
        decision = decide(slots, evaluation_periods=n,
                          datapoints_to_alarm=alarm.get("DatapointsToAlarm", n),
                          comparison=alarm["ComparisonOperator"],
                          threshold=alarm["Threshold"],
                          treat_missing=alarm.get("TreatMissingData", "missing"),
                          current_state=alarm["StateValue"])
        if samples and decision.state not in (None, alarm["StateValue"]):
            # Sample counts only matter for the StateReasonData of a transition.
            for slot, counted in zip(slots, slots_from_series(start, end, period, series,
                                                              samples())):
                slot.samples = counted.samples
        return decision, slots

    def _transition(self, name: str, state: str, reason: str, data: str, now: float,
                    depth: int) -> None:
        platform = self.platform
        done = alarm_store.transition(
            platform, name, state, reason, data, now=now,
            deliveries=lambda before, after, history_id: deliveries_for(
                platform, before, after, history_id),
            prepare=lambda after: alarm_suppression.on_transition(platform, after, now))
        if done is None:
            return
        if alarm_suppression.ENDS in done.after:
            self.release_at(name, done.after[alarm_suppression.ENDS])
        log.info("alarm %s: %s -> %s", name, done.before["StateValue"], state)
        if depth < MAX_COMPOSITE_DEPTH:
            for parent in self.watchers(name):
                composite = alarm_store.get(platform, parent)
                if composite is not None:
                    self.evaluate_composite(composite, now, depth + 1)

    def evaluate_composite(self, alarm: dict[str, Any], now: float, depth: int) -> None:
        """ALARM while the rule holds, OK otherwise."""
        try:
            node = alarm_rule.parse(alarm["AlarmRule"])
        except alarm_rule.RuleError as error:
            log.warning("composite alarm %s has a bad rule: %s", alarm["AlarmName"], error)
            return
        children = {name: alarm_store.get(self.platform, name)
                    for name in alarm_rule.referenced_alarms(node)}

        def state_of(name: str) -> str | None:
            child = children.get(name)
            return child["StateValue"] if child else None

        state = ALARM if alarm_rule.evaluate(node, state_of) else OK
        if state == alarm["StateValue"]:
            ends = alarm_suppression.reconcile(self.platform, alarm, now)
            if ends is not None:
                self.release_at(alarm["AlarmName"], ends)
            return
        present = [child for child in children.values() if child is not None]
        if state == ALARM:
            triggering = [child for child in present if child["StateValue"] == ALARM]
        else:
            triggering = sorted(present, key=lambda child: child.get(
                "StateUpdatedTimestamp") or 0.0, reverse=True)[:1]
        if triggering:
            reason = "; ".join(
                f"{child['AlarmArn']} transitioned to {child['StateValue']} at "
                f"{_long_date(child.get('StateUpdatedTimestamp') or now)}"
                for child in triggering)
        else:
            reason = f"The alarm rule {alarm['AlarmRule']!r} evaluated to " \
                     f"{'TRUE' if state == ALARM else 'FALSE'}."
        if len(reason) > REASON_LIMIT:
            reason = reason[:REASON_LIMIT - 3] + "..."
        triggering_data = [
            {"arn": child["AlarmArn"],
             "state": {"value": child["StateValue"],
                       "timestamp": format_time(child.get("StateUpdatedTimestamp") or now)}}
            for child in triggering]
        data = json.dumps({"triggeringAlarms": triggering_data})
        while len(data) > REASON_DATA_LIMIT and triggering_data:
            triggering_data.pop()
            data = json.dumps({"triggeringAlarms": triggering_data})
        self._transition(alarm["AlarmName"], state, reason, data, now, depth)


def alarm_period(alarm: dict[str, Any]) -> int:
    """The alarm's period: Period, or that of its metric math queries."""
    if alarm.get("Period"):
        return int(alarm["Period"])
    for query in alarm.get("Metrics", []):
        if query.get("MetricStat"):
            return int(query["MetricStat"]["Period"])
        if query.get("Period"):
            return int(query["Period"])
    return 60


def _math_series(platform: "Platform", alarm: dict[str, Any], start: float,
                 end: float) -> list[tuple[float, float]]:
    from .metric_math import run_queries

    queries = [dict(query) for query in alarm["Metrics"]]
    returned = next(query["Id"] for query in queries if query.get("ReturnData", True))
    results = run_queries(platform, queries, start, end)
    for result in results:
        if result["Id"] == returned:
            stamps = [_epoch(stamp) for stamp in result.get("Timestamps", [])]
            return list(zip(stamps, result.get("Values", [])))
    return []


def _epoch(stamp: Any) -> float:
    return stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp)


def _long_date(epoch: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime(
        "%A %d %B, %Y %H:%M:%S UTC")
