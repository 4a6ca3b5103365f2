"""Alarm latency benchmark: ``python bench/alarm_latency.py [--rounds 20]``.

Starts a modelyard server (temporary data directory) whose clock the benchmark moves
(``MODELYARD_CLOCK_OFFSET_FILE``), with an SNS topic confirmed to a local HTTP subscriber,
and an EventBridge rule (the retraining loop's pattern: alarm name prefix, state ALARM)
whose target is that topic. Each round puts a breaching datapoint, creates an alarm with
the topic as its AlarmAction, moves the clock past the period boundary, and measures:

- pickup: the clock move -> the transition committed (the StateUpdate history item's
  timestamp; the evaluator looks at the clock every 0.25 s, so this is uniform in
  0-250 ms; a random pause before each move samples the phase);
- event enqueued: the transition -> the "CloudWatch Alarm State Change" delivery done,
  i.e. ``put_event`` has matched the rule and enqueued the target (outbox rows of the
  server's database, read-only);
- action at subscriber: the transition -> the alarm's SNS notification POSTed to the HTTP
  subscriber (alarm action -> outbox -> SNS publish -> SNS http delivery);
- event at subscriber: the transition -> the event, through the rule's SNS target, POSTed
  to the subscriber (event -> EventBridge target -> SNS publish -> SNS http delivery).

Server-clock timestamps are turned into real time with the offset the benchmark wrote.
Then ``--alarms`` alarms on one metric cross together: the time until all are in ALARM
gives the evaluator's throughput (each evaluation reads two statistic series; each
transition writes state, history and two outbox rows).

The issue's figure is "alarm transition -> its Lambda target starting <= 1 s"; the Lambda
leg (EventBridge -> Lambda invoke) is measured by the lead's end-to-end benchmark.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from server_process import ServerProcess  # noqa: E402
from sns_subscriber import Subscriber  # noqa: E402

NAMESPACE = "Modelyard/Bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--alarms", type=int, default=200,
                        help="alarms on one metric that cross together (evaluator throughput)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelyard-alarm-bench-") as directory:
        data_dir = Path(directory)
        offset_file = data_dir / "clock-offset"
        offset_file.write_text("0")
        server = ServerProcess.start(data_dir, MODELYARD_CLOCK_OFFSET_FILE=str(offset_file))
        try:
            with Subscriber() as endpoint:
                rows = run(server, endpoint, offset_file, args.rounds)
            sweep = many_alarms(server, offset_file, args.alarms)
        finally:
            server.stop()
    report(rows)
    print(f"{args.alarms} alarms crossing together: all in ALARM {sweep * 1000:.0f} ms after the "
          f"clock move ({args.alarms / sweep:.0f} evaluations+transitions/s)")


def set_offset(path: Path, offset: float) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(repr(offset))
    os.replace(temporary, path)


def run(server: ServerProcess, endpoint: Subscriber, offset_file: Path,
        rounds: int) -> list[dict[str, float]]:
    from modelyard.store.db import Database

    cw, sns, events = server.client("cloudwatch"), server.client("sns"), server.client("events")
    topic = sns.create_topic(Name="bench-alarms")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=endpoint.url)
    (confirmation,) = endpoint.wait_for("SubscriptionConfirmation")
    sns.confirm_subscription(TopicArn=topic, Token=confirmation.json["Token"])
    events.put_rule(Name="bench-drift", EventPattern=json.dumps({
        "source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": [{"prefix": "bench-drift"}], "state": {"value": ["ALARM"]}}}))
    events.put_targets(Rule="bench-drift", Targets=[{"Id": "topic", "Arn": topic}])
    database = Database(f"sqlite:///{server.data_dir / 'metadata.sqlite3'}")

    offset = 0.0
    rows = []
    for round_number in range(rounds):
        boundary = (math.floor(time.time() + offset) // 60 + 2) * 60.0
        offset = boundary + 2 - time.time()
        set_offset(offset_file, offset)
        name = f"bench-drift-{round_number}-{uuid.uuid4().hex[:6]}"
        cw.put_metric_data(Namespace=NAMESPACE, MetricData=[
            {"MetricName": name, "Timestamp": boundary + 10, "Value": 1.0}])
        cw.put_metric_alarm(AlarmName=name, Namespace=NAMESPACE, MetricName=name,
                            Statistic="Maximum", Period=60, EvaluationPeriods=1,
                            Threshold=0.5, ComparisonOperator="GreaterThanThreshold",
                            AlarmActions=[topic])
        before = len(endpoint.received)
        time.sleep(random.uniform(0.0, 0.3))  # sample the evaluator's 0.25 s poll phase
        offset = boundary + 62 - time.time()
        moved = time.time()
        set_offset(offset_file, offset)
        received = wait_notifications(endpoint, before, 2)
        history = cw.describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate")
        transition = history["AlarmHistoryItems"][0]["Timestamp"].timestamp() - offset
        action = next(at for at, body in received if body.get("Subject", "").startswith("ALARM"))
        event = next(at for at, body in received if not body.get("Subject"))
        enqueued = event_delivered_at(database, name)
        rows.append({
            "pickup": transition - moved,
            "event enqueued": (enqueued - offset - transition) if enqueued else float("nan"),
            "action at subscriber": action - transition,
            "event at subscriber": event - transition,
        })
        cw.delete_alarms(AlarmNames=[name])
    return rows


def many_alarms(server: ServerProcess, offset_file: Path, count: int) -> float:
    """Seconds from a clock move until ``count`` alarms that all cross are in ALARM."""
    cw = server.client("cloudwatch")
    offset = float(offset_file.read_text())
    boundary = (math.floor(time.time() + offset) // 60 + 2) * 60.0
    offset = boundary + 2 - time.time()
    set_offset(offset_file, offset)
    cw.put_metric_data(Namespace=NAMESPACE, MetricData=[
        {"MetricName": "sweep", "Timestamp": boundary + 10, "Value": 1.0}])
    for index in range(count):
        cw.put_metric_alarm(AlarmName=f"sweep-{index:04d}", Namespace=NAMESPACE,
                            MetricName="sweep", Statistic="Maximum", Period=60,
                            EvaluationPeriods=1, Threshold=0.5,
                            ComparisonOperator="GreaterThanThreshold")
    time.sleep(2.0)  # let the creations' own evaluations finish
    moved = time.time()
    set_offset(offset_file, boundary + 62 - time.time())
    while True:
        in_alarm, token = 0, None
        while True:
            page = cw.describe_alarms(AlarmNamePrefix="sweep-", StateValue="ALARM",
                                      MaxRecords=100, **({"NextToken": token} if token else {}))
            in_alarm += len(page["MetricAlarms"])
            token = page.get("NextToken")
            if not token:
                break
        if in_alarm >= count:
            return time.time() - moved
        time.sleep(0.05)


def event_delivered_at(database, name: str) -> float | None:
    """Server-clock time the alarm's event delivery finished (put_event returned)."""
    from sqlalchemy import select

    from modelyard.store.outbox import outbox_table as table

    with database.read() as connection:
        rows = connection.execute(select(table.c.payload, table.c.updated_time).where(
            table.c.kind == "cloudwatch-alarm-event", table.c.state == "done")).all()
    for row in rows:
        if json.loads(row.payload)["detail"]["alarmName"] == name:
            return row.updated_time
    return None


def wait_notifications(endpoint: Subscriber, before: int, count: int,
                       timeout: float = 30.0) -> list[tuple[float, dict]]:
    """(real arrival time, envelope) of the next ``count`` POSTs after ``before``."""
    deadline = time.monotonic() + timeout
    arrivals: dict[int, float] = {}
    while time.monotonic() < deadline:
        now = time.time()
        for index in range(before, len(endpoint.received)):
            arrivals.setdefault(index, now)
        if len(arrivals) >= count:
            break
        time.sleep(0.002)
    else:
        raise SystemExit(f"only {len(arrivals)} of {count} notifications arrived in {timeout}s")
    return [(arrivals[index], endpoint.received[index].json) for index in sorted(arrivals)]


def report(rows: list[dict[str, float]]) -> None:
    print(f"{'what':28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}   ({len(rows)} rounds)")
    for key in rows[0]:
        values = sorted(row[key] * 1000 for row in rows if not math.isnan(row[key]))
        if not values:
            print(f"{key:28} {'n/a':>8}")
            continue
        p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
        print(f"{key:28} {statistics.median(values):8.1f} {p95:8.1f} {values[-1]:8.1f}")


if __name__ == "__main__":
    main()
