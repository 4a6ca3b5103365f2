"""Model quality monitoring of a live endpoint: captured predictions + uploaded ground truth.

An endpoint with data capture serves probabilities (with InferenceIds); a baseline from
validation predictions suggests constraints; ground truth with degraded labels is uploaded in
SageMaker's format (plus malformed lines); a one-time (NOW) ModelQualityMonitor schedule's
execution merges and scores them in one processing job. The execution ends
CompletedWithViolations with the accuracy constraint violated, statistics equal scikit-learn's
on the merged records, the malformed lines are skipped and counted in the job's log, and the
metrics are in CloudWatch under aws/sagemaker/Endpoints/model-metrics.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk

from endpoint_helpers import create_endpoint, create_model, delete_endpoint, variant
from jobs_helpers import sdk_session
from monitor_helpers import wait_for

N = 240
UNLABELLED = 10  # the last predictions get no ground truth
TIMEOUT = 240


def _capture_lines(s3, bucket: str, prefix: str) -> int:
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            total += len(body.splitlines())
    return total


def _log_messages(server, job_name: str) -> list[str]:
    logs = server.client("logs")
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/ProcessingJobs",
                                        logStreamNamePrefix=job_name + "/")["logStreams"]
    messages = []
    for stream in streams:
        events = logs.get_log_events(logGroupName="/aws/sagemaker/ProcessingJobs",
                                     logStreamName=stream["logStreamName"], startFromHead=True)
        messages += [event["message"] for event in events["events"]]
    return messages


def test_captured_predictions_with_degraded_ground_truth_violate_the_baseline(server,
                                                                              tmp_path):
    import sagemaker as sm
    from sagemaker.model_monitor import (
        CronExpressionGenerator, DatasetFormat, EndpointInput, ModelQualityMonitor,
    )

    session = sdk_session()
    bucket = session.default_bucket()
    sagemaker, s3 = server.client("sagemaker"), server.client("s3")
    runtime = server.client("sagemaker-runtime")
    name = f"mq-{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(5)
    probability = np.round(rng.random(N), 6)
    prediction = (probability >= 0.5).astype(int)
    good = np.where(rng.random(N) < 0.08, 1 - prediction, prediction)
    degraded = np.where(rng.random(N) < 0.45, 1 - prediction, prediction)

    monitor = ModelQualityMonitor(role=sm.get_execution_role(session),
                                  instance_type="ml.m5.xlarge", sagemaker_session=session)
    baseline_csv = tmp_path / "validation_predictions.csv"
    pd.DataFrame({"probability": probability, "prediction": prediction, "label": good}) \
        .to_csv(baseline_csv, index=False)
    monitor.suggest_baseline(baseline_dataset=str(baseline_csv),
                             dataset_format=DatasetFormat.csv(header=True),
                             problem_type="BinaryClassification",
                             inference_attribute="prediction",
                             probability_attribute="probability",
                             ground_truth_attribute="label", wait=True, logs=False)
    constraints = monitor.suggested_constraints().body_dict
    baseline_accuracy = constraints["binary_classification_constraints"]["accuracy"]["threshold"]
    assert baseline_accuracy == pytest.approx(sk.accuracy_score(good, prediction), rel=1e-12)

    model = create_model(sagemaker, s3, bucket, name, 1.0)
    create_endpoint(sagemaker, name, [variant("AllTraffic", model, 1.0)], {
        "EnableCapture": True, "InitialSamplingPercentage": 100,
        "DestinationS3Uri": f"s3://{bucket}/{name}/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"],
                                     "JsonContentTypes": ["application/json"]}})
    try:
        for index, value in enumerate(probability):
            runtime.invoke_endpoint(EndpointName=name, Body=f"{value}\n", ContentType="text/csv",
                                    Accept="application/json", InferenceId=f"req-{index}")
        capture_prefix = f"{name}/capture/{name}/"
        wait_for(lambda: _capture_lines(s3, bucket, capture_prefix) >= N, "captured records",
                 TIMEOUT)

        hour = datetime.now(timezone.utc).strftime("%Y/%m/%d/%H")
        lines = [json.dumps({"groundTruthData": {"data": str(int(label)), "encoding": "CSV"},
                             "eventMetadata": {"eventId": f"req-{index}"},
                             "eventVersion": "0"})
                 for index, label in enumerate(degraded[:N - UNLABELLED])]
        lines.insert(7, "{this line is not json")
        lines.insert(20, json.dumps({"groundTruthData": {"data": "1", "encoding": "CSV"},
                                     "eventVersion": "0"}))  # no id to merge on
        s3.put_object(Bucket=bucket, Key=f"{name}/ground-truth/{hour}/labels.jsonl",
                      Body=("\n".join(lines) + "\n").encode())

        monitor.create_monitoring_schedule(
            endpoint_input=EndpointInput(
                endpoint_name=name, destination="/opt/ml/processing/input/endpoint",
                probability_attribute="$[0][0]", probability_threshold_attribute=0.5,
                start_time_offset="-PT1H", end_time_offset="-PT0H"),
            ground_truth_input=f"s3://{bucket}/{name}/ground-truth",
            problem_type="BinaryClassification",
            output_s3_uri=f"s3://{bucket}/{name}/reports",
            constraints=monitor.suggested_constraints(),
            monitor_schedule_name=name,
            schedule_cron_expression=CronExpressionGenerator.now(),
            data_analysis_start_time="-PT1H", data_analysis_end_time="-PT0H",
            enable_cloudwatch_metrics=True)

        def finished():
            found = sagemaker.list_monitoring_executions(
                MonitoringScheduleName=name)["MonitoringExecutionSummaries"]
            done = [e for e in found if e["MonitoringExecutionStatus"] not in
                    ("Pending", "InProgress", "Stopping")]
            return done[0] if done else None

        execution = wait_for(finished, "the model quality execution", TIMEOUT)
        assert execution["MonitoringExecutionStatus"] == "CompletedWithViolations", execution
        assert execution["MonitoringType"] == "ModelQuality"
        job_name = execution["ProcessingJobArn"].split("/")[-1]
        job = sagemaker.describe_processing_job(ProcessingJobName=job_name)
        assert job["ExitMessage"].startswith("CompletedWithViolations")

        labelled = slice(0, N - UNLABELLED)
        y, p, score = degraded[labelled], prediction[labelled], probability[labelled]
        statistics = monitor.latest_monitoring_statistics().body_dict
        metrics = statistics["binary_classification_metrics"]
        assert statistics["dataset"]["item_count"] == N - UNLABELLED
        assert metrics["accuracy"]["value"] == pytest.approx(sk.accuracy_score(y, p), rel=1e-12)
        assert metrics["f1"]["value"] == pytest.approx(sk.f1_score(y, p), rel=1e-12)
        assert metrics["auc"]["value"] == pytest.approx(sk.roc_auc_score(y, score), rel=1e-12)

        violations = monitor.latest_monitoring_constraint_violations().body_dict["violations"]
        by_metric = {v["metric_name"]: v for v in violations}
        assert by_metric["accuracy"]["constraint_check_type"] == "LessThanThreshold"
        assert "Metric accuracy with" in by_metric["accuracy"]["description"]
        assert str(baseline_accuracy) in by_metric["accuracy"]["description"]

        messages = "\n".join(_log_messages(server, job_name))
        assert "2 malformed ground-truth lines" in messages
        assert f"{UNLABELLED} captured records without a label" in messages

        cloudwatch = server.client("cloudwatch")
        now = datetime.now(timezone.utc)

        def datapoints():
            return cloudwatch.get_metric_statistics(
                Namespace="aws/sagemaker/Endpoints/model-metrics", MetricName="accuracy",
                Dimensions=[{"Name": "Endpoint", "Value": name},
                            {"Name": "MonitoringSchedule", "Value": name}],
                StartTime=now - timedelta(hours=3), EndTime=now + timedelta(hours=1),
                Period=60, Statistics=["Average"])["Datapoints"]

        [point] = wait_for(datapoints, "the accuracy metric in CloudWatch", 30)
        assert point["Average"] == pytest.approx(sk.accuracy_score(y, p), rel=1e-9)
    finally:
        try:
            sagemaker.delete_monitoring_schedule(MonitoringScheduleName=name)
        except Exception:  # noqa: BLE001 - cleanup
            pass
        delete_endpoint(sagemaker, name)
