"""The retraining loop's reaction time: ``python bench/automation_loop.py [--rounds 20]``.

Starts a modelyard server (temporary data directory) with a Python Lambda function and an
EventBridge rule with the retraining loop's pattern (alarm name prefix, state ALARM) whose
target is the function. Each round creates an alarm and sets it to ALARM; the function
records the real time it started (``time.time()`` on entry, written to S3). Measured:

- alarm -> Lambda: the alarm's transition (its ``StateUpdatedTimestamp``) -> the function
  started, through the "CloudWatch Alarm State Change" event, the rule, the outbox and an
  ``Event`` invocation (the issue's figure: <= 1 s);
- baseline, same run: ``Invoke(InvocationType="Event")`` called directly -> the function
  started (the outbox and the warm worker, without alarm or rule).

The server's clock is the real clock here, so both ends are on one timeline.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from server_process import ServerProcess  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"
BUCKET = "automation-bench"
HANDLER = f'''
import time
import boto3

s3 = boto3.client("s3")


def handler(event, context):
    started = time.time()
    key = event.get("detail", {{}}).get("alarmName") or event["name"]
    s3.put_object(Bucket="{BUCKET}", Key=key, Body=repr(started).encode())
'''


def function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("loop.py", HANDLER)
    return buffer.getvalue()


def started_at(s3, key: str, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return float(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            time.sleep(0.005)
    raise SystemExit(f"the function never started for {key}")


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return (f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   "
            f"max {ordered[-1] * 1000:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelyard-loop-bench-") as directory:
        server = ServerProcess.start(Path(directory))
        try:
            run(server, args.rounds)
        finally:
            server.stop()


def run(server: ServerProcess, rounds: int) -> None:
    s3, lambdas = server.client("s3"), server.client("lambda")
    events, cloudwatch = server.client("events"), server.client("cloudwatch")
    s3.create_bucket(Bucket=BUCKET)
    function = lambdas.create_function(
        FunctionName="start-retraining", Runtime="python3.11", Role=ROLE,
        Handler="loop.handler", Code={"ZipFile": function_zip()}, Timeout=30,
    )["FunctionArn"]
    events.put_rule(Name="retrain-on-drift", EventPattern=json.dumps({
        "source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": [{"prefix": "ticket-classifier-prod-data-drift"}],
                   "state": {"value": ["ALARM"]}}}))
    events.put_targets(Rule="retrain-on-drift", Targets=[{"Id": "fn", "Arn": function}])
    # Warm the function's worker (its first start imports boto3).
    lambdas.invoke(FunctionName=function, Payload=json.dumps({"name": "warm-up"}).encode())

    loop, direct = [], []
    for index in range(rounds):
        name = f"ticket-classifier-prod-data-drift-{index}"
        cloudwatch.put_metric_alarm(
            AlarmName=name, Namespace="Bench", MetricName="FeatureDrift", Statistic="Maximum",
            Period=60, EvaluationPeriods=1, Threshold=0.2,
            ComparisonOperator="GreaterThanThreshold")
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM",
                                   StateReason="bench: drift past the threshold")
        alarm = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
        transition = alarm["StateUpdatedTimestamp"].timestamp()
        loop.append(started_at(s3, name) - transition)

        key = f"direct-{index}"
        called = time.time()
        lambdas.invoke(FunctionName=function, InvocationType="Event",
                       Payload=json.dumps({"name": key}).encode())
        direct.append(started_at(s3, key) - called)
        time.sleep(0.05)

    print(f"{rounds} rounds, one warm function, real clock")
    print(f"alarm transition -> Lambda target started   {summary(loop)}")
    print(f"baseline: Event invoke -> function started  {summary(direct)}")
    print(f"ratio (alarm path / direct Event invoke), p50: "
          f"{statistics.median(loop) / statistics.median(direct):.2f}x")
    print("target: alarm transition -> Lambda target started <= 1 s")


if __name__ == "__main__":
    main()
