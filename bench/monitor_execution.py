"""Monitoring execution benchmark: ``python bench/monitor_execution.py [--rate 100]``.

The issue's figure: "one monitoring execution over an hour of 100 req/s captured traffic:
wall time from schedule tick to Completed".

Starts a modelyard server (temporary data directory) whose clock the benchmark moves
(``MODELYARD_CLOCK_OFFSET_FILE``); suggests a baseline from 10,000 rows with the SageMaker
SDK; writes one hour of captured traffic at ``--rate`` requests/s to S3 in SageMaker's
capture layout (one file per 5 s flush, as the endpoint's capture writer makes them: 720
files of 500 records at 100 req/s), numeric and categorical features; creates an hourly
schedule and moves the clock just past the hour. Measured, in real time:

- tick -> recorded: the clock move -> the execution's CreationTime (the scheduler looks at
  the clock every 0.3 s);
- recorded -> Completed: the processing job's creation, sandbox, reading the window,
  profiling, comparing with the baseline, writing the reports and publishing the metrics
  (the job's own start/end times are shown too);
- tick -> Completed: the figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from alarm_helpers import start_server  # noqa: E402
from endpoint_helpers import create_model  # noqa: E402

HOUR = 3600.0
ENDPOINT = "bench-monitored"
SCHEDULE = "bench-hourly"


def features(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    score = np.round(rng.random(n), 4)
    amount = np.round(rng.normal(50.0, 5.0, n), 3)
    channel = rng.choice(np.array(["web", "store", "phone"]), n, p=[0.5, 0.3, 0.2])
    return score, amount, channel


def capture_hour(s3, bucket: str, prefix: str, hour_start: float, rate: int) -> int:
    """One hour of captured records, one object per 5 s flush; how many records."""
    rng = np.random.default_rng(11)
    per_file = rate * 5
    total = 0
    for flush in range(int(HOUR // 5)):
        first = hour_start + flush * 5
        score, amount, channel = features(rng, per_file)
        lines = []
        for i in range(per_file):
            moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first + i / rate))
            lines.append(json.dumps({
                "captureData": {
                    "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                      "data": f"{amount[i]},{channel[i]}", "encoding": "CSV"},
                    "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                                       "data": str(score[i]), "encoding": "CSV"}},
                "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": moment},
                "eventVersion": "0"}, separators=(",", ":")))
        stamp = time.gmtime(first)
        key = "/".join([prefix, ENDPOINT, "AllTraffic", time.strftime("%Y/%m/%d/%H", stamp),
                        f"{time.strftime('%M-%S', stamp)}-000-{uuid.uuid4()}.jsonl"])
        s3.put_object(Bucket=bucket, Key=key, Body=("\n".join(lines) + "\n").encode())
        total += per_file
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=100, help="captured requests per second")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="modelyard-bench-monitor-") as directory:
        server, clock = start_server(Path(directory) / "data")
        os.environ.update(server.client_env())
        try:
            run(server, clock, args.rate, Path(directory))
        finally:
            server.stop()


def run(server, clock, rate: int, workdir: Path) -> None:
    import sagemaker
    from sagemaker.model_monitor import CronExpressionGenerator, DatasetFormat, DefaultModelMonitor

    session = sagemaker.Session()
    bucket = session.default_bucket()
    sm, s3 = server.client("sagemaker"), server.client("s3")
    role = sagemaker.get_execution_role(session)
    create_model(sm, s3, bucket, ENDPOINT, 1.0)  # the endpoint's model is never invoked
    sm.create_endpoint_config(
        EndpointConfigName=ENDPOINT,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": ENDPOINT,
                             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
        DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 100,
                           "DestinationS3Uri": f"s3://{bucket}/capture",
                           "CaptureOptions": [{"CaptureMode": "Input"},
                                              {"CaptureMode": "Output"}]})
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=ENDPOINT)

    score, amount, channel = features(np.random.default_rng(1), 10_000)
    baseline = workdir / "baseline.csv"
    baseline.write_text("score,amount,channel\n" + "".join(
        f"{s},{a},{c}\n" for s, a, c in zip(score, amount, channel)))
    monitor = DefaultModelMonitor(role=role, instance_count=1, instance_type="ml.m5.xlarge",
                                  sagemaker_session=session)
    monitor.suggest_baseline(baseline_dataset=str(baseline),
                             dataset_format=DatasetFormat.csv(header=True), wait=True, logs=False)

    fire = (math.floor(clock.now() / HOUR) + 1) * HOUR
    started = time.monotonic()
    records = capture_hour(s3, bucket, "capture", fire - HOUR, rate)
    print(f"captured {records} records in {int(HOUR // 5)} files "
          f"({time.monotonic() - started:.1f} s to upload)")
    monitor.create_monitoring_schedule(
        monitor_schedule_name=SCHEDULE, endpoint_input=ENDPOINT,
        output_s3_uri=f"s3://{bucket}/reports",
        statistics=monitor.baseline_statistics(), constraints=monitor.suggested_constraints(),
        schedule_cron_expression=CronExpressionGenerator.hourly())
    while sm.describe_monitoring_schedule(
            MonitoringScheduleName=SCHEDULE)["MonitoringScheduleStatus"] != "Scheduled":
        time.sleep(0.1)

    clock.goto(fire + 0.5)
    tick = time.time()  # real time of the clock move
    offset = clock.offset
    while True:
        found = sm.list_monitoring_executions(
            MonitoringScheduleName=SCHEDULE)["MonitoringExecutionSummaries"]
        if found and found[0]["MonitoringExecutionStatus"] not in (
                "Pending", "InProgress", "Stopping"):
            done = time.time()
            break
        time.sleep(0.05)
    execution = found[0]
    job = sm.describe_processing_job(
        ProcessingJobName=execution["ProcessingJobArn"].split("/")[-1])
    recorded = execution["CreationTime"].timestamp() - offset
    print(f"status: {execution['MonitoringExecutionStatus']} "
          f"({job.get('ExitMessage') or job.get('FailureReason')})")
    print(f"tick -> recorded:       {recorded - tick:7.2f} s")
    if job.get("ProcessingStartTime") and job.get("ProcessingEndTime"):
        running = (job["ProcessingEndTime"] - job["ProcessingStartTime"]).total_seconds()
        print(f"job running:            {running:7.2f} s")
    print(f"recorded -> Completed:  {done - recorded:7.2f} s")
    print(f"tick -> Completed:      {done - tick:7.2f} s  ({records} records, "
          f"{records / max(done - tick, 1e-9):,.0f} records/s)")


if __name__ == "__main__":
    main()
