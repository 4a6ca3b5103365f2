"""Helpers for the monitoring-schedule tests: an endpoint that captures, capture files in
SageMaker's format written straight to S3 for a chosen hour, and polling."""

from __future__ import annotations

import json
import time
import uuid

from endpoint_helpers import create_model, variant

ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"
HOUR = 3600.0
WAIT_SECONDS = 120


def capture_endpoint(sagemaker, s3, bucket: str, name: str, *, wait: bool = False) -> str:
    """An endpoint whose config captures to s3://bucket/capture; its capture prefix."""
    from endpoint_helpers import wait_in_service

    create_model(sagemaker, s3, bucket, name, 1.0)
    destination = f"s3://{bucket}/capture"
    sagemaker.create_endpoint_config(
        EndpointConfigName=name, ProductionVariants=[variant("AllTraffic", name, 1.0)],
        DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 100,
                           "DestinationS3Uri": destination,
                           "CaptureOptions": [{"CaptureMode": "Input"},
                                              {"CaptureMode": "Output"}],
                           "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]}})
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    if wait:
        wait_in_service(sagemaker, name)
    return destination


def capture_line(features: list, prediction: float, moment: float) -> str:
    record = {
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                              "data": ",".join("" if v is None else str(v) for v in features),
                              "encoding": "CSV"},
            "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                               "data": str(prediction), "encoding": "CSV"}},
        "eventMetadata": {"eventId": str(uuid.uuid4()),
                          "inferenceTime": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                         time.gmtime(moment))},
        "eventVersion": "0"}
    return json.dumps(record, separators=(",", ":"))


def write_capture(s3, destination: str, endpoint: str, hour_start: float,
                  rows: list[tuple[list, float]], variant_name: str = "AllTraffic") -> str:
    """One capture file in the hour that starts at ``hour_start``; its key."""
    bucket, _, prefix = destination.removeprefix("s3://").partition("/")
    first = hour_start + 60
    stamp = time.gmtime(first)
    key = "/".join([prefix, endpoint, variant_name, time.strftime("%Y/%m/%d/%H", stamp),
                    f"{time.strftime('%M-%S', stamp)}-000-{uuid.uuid4()}.jsonl"])
    body = "".join(capture_line(features, prediction, first + index * 0.5) + "\n"
                   for index, (features, prediction) in enumerate(rows))
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
    return key


def wait_for(condition, message: str, timeout: float = WAIT_SECONDS):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.25)


def executions(sagemaker, schedule: str) -> list[dict]:
    return sagemaker.list_monitoring_executions(
        MonitoringScheduleName=schedule, SortBy="ScheduledTime",
        SortOrder="Ascending")["MonitoringExecutionSummaries"]


def wait_executions(sagemaker, schedule: str, count: int, *, finished: bool = True,
                    timeout: float = WAIT_SECONDS) -> list[dict]:
    """Wait until the schedule has ``count`` executions (all finished, if asked)."""
    open_states = {"Pending", "InProgress", "Stopping"}

    def ready():
        found = executions(sagemaker, schedule)
        if len(found) < count:
            return None
        if finished and any(e["MonitoringExecutionStatus"] in open_states for e in found):
            return None
        return found

    return wait_for(ready, f"{count} executions of {schedule}", timeout)


def wait_status(sagemaker, schedule: str, status: str) -> dict:
    def ready():
        found = sagemaker.describe_monitoring_schedule(MonitoringScheduleName=schedule)
        return found if found["MonitoringScheduleStatus"] == status else None

    return wait_for(ready, f"schedule {schedule} to be {status}", 60)
