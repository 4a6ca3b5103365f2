"""The monitoring scheduler: a thread that starts each schedule's due execution.

Every ``POLL_SECONDS`` of real time it asks ``platform.clock`` for the time and

1. activates ``Pending`` schedules (created, updated or started): they become
   ``Scheduled`` with their next firing time; a ``NOW`` schedule fires at once;
2. for each ``Scheduled`` schedule whose ``_next_fire`` has come, records one execution
   for the most recent due firing time only (missed hours after downtime or a clock jump
   are not made up) and moves ``_next_fire`` past now;
3. starts ``Pending`` executions (their processing job) and follows running ones.

Everything lives in the resources table: the execution is recorded (under a name made of
the schedule and its scheduled time, so recording twice is harmless) before the schedule's
``_next_fire`` moves, and a Pending execution is started on the next pass, so a restarted
server neither loses nor repeats an execution.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from ..engine.polling import PollingLoop
from ..store.resources import ListQuery
from . import executions
from .schedules import (
    EXECUTION_KIND, HOUR, SCHEDULE_KIND, JobSpec, check_window, parse_expression, spec_of_schedule,
)

if TYPE_CHECKING:
    from ..platform import Platform
    from ..store.resources import Resource

log = logging.getLogger("modelyard.monitor")
POLL_SECONDS = 0.3


class MonitorScheduler(PollingLoop):
    thread_name = "modelyard-monitor-schedules"
    poll_seconds = POLL_SECONDS
    stop_timeout = 10.0
    log = log

    def check(self, now: float) -> None:
        """One pass: activate, fire and follow."""
        resources = self.platform.resources
        if resources.none_of(SCHEDULE_KIND) and resources.none_of(EXECUTION_KIND):
            return
        for schedule in _schedules(self.platform, "Pending"):
            self._activate(schedule, now)
        for schedule in _schedules(self.platform, "Scheduled"):
            due = schedule.document.get("_next_fire")
            if due is not None and due <= now:
                self._fire(schedule, now)
        for execution in executions.open_executions(self.platform):
            try:
                self._advance(execution)
            except Exception as error:  # noqa: BLE001 - one broken execution must not stop others
                log.exception("monitoring execution %s could not advance", execution.name)
                if execution.document["MonitoringExecutionStatus"] == "Pending":
                    executions.update(self.platform, execution.name,
                                      MonitoringExecutionStatus="Failed",
                                      FailureReason=f"The execution could not start: {error}")

    def _activate(self, schedule: "Resource", now: float) -> None:
        config = schedule.document["MonitoringScheduleConfig"].get("ScheduleConfig") or {}
        cron = parse_expression(config.get("ScheduleExpression", "cron(0 0 ? * * *)"))
        first = now if cron is None else cron.next_after(now)
        _update_schedule(self.platform, schedule.name, now, MonitoringScheduleStatus="Scheduled",
                         _next_fire=first)

    def _fire(self, schedule: "Resource", now: float) -> None:
        config = schedule.document["MonitoringScheduleConfig"].get("ScheduleConfig") or {}
        cron = parse_expression(config.get("ScheduleExpression", "cron(0 0 ? * * *)"))
        # A NOW schedule fires once, at its activation; a cron one for its latest due time.
        scheduled = (float(schedule.document["_next_fire"]) if cron is None
                     else cron.latest_at_or_before(now))
        try:
            spec = spec_of_schedule(self.platform, schedule.document)
        except AwsError as error:
            _update_schedule(self.platform, schedule.name, now,
                             MonitoringScheduleStatus="Failed", FailureReason=error.message,
                             _next_fire=None)
            return
        execution = executions.record(self.platform, schedule, spec, scheduled,
                                      window_of(spec, config, scheduled))
        _update_schedule(self.platform, schedule.name, now,
                         _next_fire=None if cron is None else cron.next_after(now))
        if execution is not None:
            log.info("monitoring schedule %s: execution for %s recorded", schedule.name,
                     executions.iso(scheduled))

    def _advance(self, execution: "Resource") -> None:
        if execution.document["MonitoringExecutionStatus"] != "Pending":
            executions.sync(self.platform, execution)
            return
        schedule = self.platform.resources.get(SCHEDULE_KIND,
                                               execution.document["MonitoringScheduleName"])
        if schedule is None:
            executions.update(self.platform, execution.name, MonitoringExecutionStatus="Failed",
                            FailureReason="The monitoring schedule was deleted before the "
                                          "execution started.")
            return
        try:
            spec = spec_of_schedule(self.platform, schedule.document)
        except AwsError as error:
            executions.update(self.platform, execution.name, MonitoringExecutionStatus="Failed",
                            FailureReason=error.message)
            return
        executions.start(self.platform, execution, spec)


def window_of(spec: JobSpec, config: dict[str, Any], scheduled: float) -> tuple[float, float]:
    """The data window of an execution scheduled at ``scheduled``.

    The schedule's DataAnalysisStartTime/EndTime, else the input's StartTimeOffset/
    EndTimeOffset, else the hour before the scheduled time.
    """
    source = spec.endpoint_input or spec.batch_input or {}
    offsets = (check_window(config.get("DataAnalysisStartTime"),
                            config.get("DataAnalysisEndTime"), "DataAnalysisStartTime",
                            "DataAnalysisEndTime")
               or check_window(source.get("StartTimeOffset"), source.get("EndTimeOffset"),
                               "StartTimeOffset", "EndTimeOffset")
               or (-HOUR, 0.0))
    return scheduled + offsets[0], scheduled + offsets[1]


def _schedules(platform: "Platform", status: str) -> list["Resource"]:
    return platform.resources.list(SCHEDULE_KIND, ListQuery(
        status_equals=status, descending=False, max_results=10_000)).items


def _update_schedule(platform: "Platform", name: str, now: float, **changes: Any) -> None:
    def change(current: "Resource") -> dict[str, Any]:
        document = {**current.document, **changes}
        if "MonitoringScheduleStatus" in changes:
            document["__status__"] = changes["MonitoringScheduleStatus"]
        return document

    try:
        platform.resources.update(SCHEDULE_KIND, name, change, now=now,
                                  missing=lambda: AwsError("ResourceNotFound", name))
    except AwsError:
        pass  # deleted meanwhile
