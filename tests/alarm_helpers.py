"""Helpers for the alarm tests: a server whose clock the tests move, and polling."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from server_process import ServerProcess

WAIT_SECONDS = 30


class ServerClock:
    """Moves a running server's clock by rewriting its offset file (atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0.0
        self._write(0.0)

    def _write(self, offset: float) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(repr(offset))
        os.replace(temporary, self.path)
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset

    def goto(self, moment: float) -> None:
        assert moment >= self.now() - 1, "tests only move the server clock forward"
        self._write(moment - time.time())

    def fresh_boundary(self) -> float:
        """A minute boundary ahead of the server's time; the clock is set just past it."""
        boundary = (math.floor(self.now() / 60) + 2) * 60.0
        self.goto(boundary + 2)
        return boundary


def start_server(data_dir: Path) -> tuple[ServerProcess, ServerClock]:
    data_dir.mkdir(parents=True, exist_ok=True)
    clock = ServerClock(data_dir / "clock-offset")
    return ServerProcess.start(data_dir, MODELYARD_CLOCK_OFFSET_FILE=str(clock.path)), clock


NAMESPACE = "Modelyard/AlarmTests"


def put(cw, metric: str, stamp: float, value: float | None = None, *,
        values: list[float] | None = None, dimensions=None) -> None:
    datum = {"MetricName": metric, "Timestamp": stamp, "Dimensions": dimensions or []}
    if values is not None:
        datum["Values"] = values
    else:
        datum["Value"] = value
    cw.put_metric_data(Namespace=NAMESPACE, MetricData=[datum])


def alarm(cw, name: str, alarm_type: str = "MetricAlarm") -> dict:
    found = cw.describe_alarms(AlarmNames=[name], AlarmTypes=[alarm_type])
    items = found["MetricAlarms"] + found["CompositeAlarms"]
    assert len(items) == 1, found
    return items[0]


def wait_state(cw, name: str, state: str, alarm_type: str = "MetricAlarm") -> dict:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        current = alarm(cw, name, alarm_type)
        if current["StateValue"] == state:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} stayed {current['StateValue']} "
                                 f"({current['StateReason']}), expected {state}")
        time.sleep(0.1)


def state_updates(cw, name: str) -> list[dict]:
    items = cw.describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate",
                                      ScanBy="TimestampAscending")["AlarmHistoryItems"]
    return [json.loads(item["HistoryData"]) for item in items]


def simple_alarm(cw, name: str, metric: str, **overrides) -> None:
    request = dict(AlarmName=name, Namespace=NAMESPACE, MetricName=metric, Statistic="Maximum",
                   Period=60, EvaluationPeriods=1, Threshold=10.0,
                   ComparisonOperator="GreaterThanThreshold")
    request.update(overrides)
    cw.put_metric_alarm(**request)
