"""Data capture of batch transform jobs and monitoring it: a transform job with a
DataCaptureConfig writes SageMaker's input/output manifests under the hour of its start,
tags its outputs with inference ids, and a BatchTransformInput schedule profiles the data
the manifests name."""

from __future__ import annotations

import datetime
import json
import os
import re

import numpy as np
import pytest

from alarm_helpers import start_server
from endpoint_helpers import create_model
from jobs_helpers import wait_for_status
from monitor_helpers import wait_executions

ROWS = 40
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    server, clock = start_server(tmp_path_factory.mktemp("monitor-batch-capture"))
    saved = dict(os.environ)
    os.environ.update(server.client_env())
    try:
        import sagemaker

        yield server, sagemaker.Session()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def body(s3, uri: str) -> str:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def keys(s3, bucket: str, prefix: str) -> list[str]:
    found = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(item["Key"] for item in found)


@pytest.fixture(scope="module")
def captured(env):
    """A completed transform job (scaling by 2) over two CSV files, capturing with ids."""
    server, session = env
    bucket = session.default_bucket()
    sm, s3 = server.client("sagemaker"), server.client("s3")
    create_model(sm, s3, bucket, "bc-model", 2.0)
    rng = np.random.default_rng(7)
    data = np.round(np.column_stack([rng.normal(50, 5, ROWS), rng.uniform(1, 3, ROWS)]), 3)
    parts = {"part-0.csv": data[:25], "part-1.csv": data[25:]}
    for name, rows in parts.items():
        s3.put_object(Bucket=bucket, Key=f"bc-input/{name}", Body="".join(
            f"{a:g},{b:g}\n" for a, b in rows).encode())
    sm.create_transform_job(
        TransformJobName="bc-job", ModelName="bc-model",
        TransformInput={"DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/bc-input/"}},
            "ContentType": "text/csv", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": f"s3://{bucket}/bc-output", "Accept": "text/csv",
                         "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        DataCaptureConfig={"DestinationS3Uri": f"s3://{bucket}/bc-capture",
                           "GenerateInferenceId": True})
    job = wait_for_status(lambda: sm.describe_transform_job(TransformJobName="bc-job"),
                          "TransformJobStatus", {"Completed", "Failed", "Stopped"}, timeout=600)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    return {"bucket": bucket, "job": job, "parts": parts}


def test_manifests_name_the_inputs_and_outputs_under_the_start_hour(env, captured):
    server, _ = env
    s3, bucket, job = server.client("s3"), captured["bucket"], captured["job"]
    assert job["DataCaptureConfig"] == {"DestinationS3Uri": f"s3://{bucket}/bc-capture",
                                        "GenerateInferenceId": True}
    hour = job["TransformStartTime"].astimezone(datetime.timezone.utc).strftime("%Y/%m/%d/%H")
    [input_key] = keys(s3, bucket, "bc-capture/input/")
    [output_key] = keys(s3, bucket, "bc-capture/output/")
    assert input_key.startswith(f"bc-capture/input/{hour}/")
    assert output_key.startswith(f"bc-capture/output/{hour}/")
    assert input_key.rsplit("/", 1)[1] == output_key.rsplit("/", 1)[1]
    assert json.loads(body(s3, f"s3://{bucket}/{input_key}")) == [
        {"prefix": f"s3://{bucket}/bc-input/"}, "part-0.csv", "part-1.csv"]
    assert json.loads(body(s3, f"s3://{bucket}/{output_key}")) == [
        {"prefix": f"s3://{bucket}/bc-output/"}, "part-0.csv.out", "part-1.csv.out"]


def test_generate_inference_id_appends_an_id_and_the_start_time(env, captured):
    server, _ = env
    s3, bucket, job = server.client("s3"), captured["bucket"], captured["job"]
    stamp = job["TransformStartTime"].astimezone(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    ids = []
    for name, rows in captured["parts"].items():
        lines = body(s3, f"s3://{bucket}/bc-output/{name}.out").splitlines()
        assert len(lines) == len(rows)
        for line, row in zip(lines, rows):
            first, second, inference_id, moment = line.split(",")
            assert [float(first), float(second)] == pytest.approx(list(row * 2.0))
            assert UUID.match(inference_id) and moment == stamp
            ids.append(inference_id)
    assert len(set(ids)) == ROWS


def test_batch_transform_input_schedule_profiles_the_captured_inputs(env, captured, tmp_path):
    import sagemaker
    from sagemaker.model_monitor import (
        BatchTransformInput, CronExpressionGenerator, DatasetFormat, DefaultModelMonitor,
    )
    from sagemaker.model_monitor.dataset_format import MonitoringDatasetFormat

    server, session = env
    sm, bucket = server.client("sagemaker"), captured["bucket"]
    baseline_csv = tmp_path / "baseline.csv"
    baseline_csv.write_text("".join(f"{a:g},{b:g}\n" for rows in captured["parts"].values()
                                    for a, b in rows))
    monitor = DefaultModelMonitor(role=sagemaker.get_execution_role(session), instance_count=1,
                                  instance_type="ml.m5.xlarge", sagemaker_session=session)
    monitor.suggest_baseline(baseline_dataset=str(baseline_csv),
                             dataset_format=DatasetFormat.csv(header=False), wait=True,
                             logs=False)
    monitor.create_monitoring_schedule(
        monitor_schedule_name="bc-schedule",
        batch_transform_input=BatchTransformInput(
            data_captured_destination_s3_uri=f"s3://{bucket}/bc-capture",
            destination="/opt/ml/processing/input",
            dataset_format=MonitoringDatasetFormat.csv(header=False)),
        output_s3_uri=f"s3://{bucket}/bc-reports",
        statistics=monitor.baseline_statistics(), constraints=monitor.suggested_constraints(),
        schedule_cron_expression=CronExpressionGenerator.now(),
        data_analysis_start_time="-PT2H", data_analysis_end_time="-PT0H")
    [execution] = wait_executions(sm, "bc-schedule", 1, timeout=240)
    assert execution["MonitoringExecutionStatus"] == "Completed", execution
    job = sm.describe_processing_job(ProcessingJobName=execution["ProcessingJobArn"].split("/")[-1])
    [data_input] = [i["S3Input"] for i in job["ProcessingInputs"] if i["InputName"] == "input_1"]
    assert data_input["S3DataType"] == "ManifestFile"
    assert data_input["S3Uri"].startswith(f"s3://{bucket}/bc-capture/input/")
    statistics = monitor.latest_monitoring_statistics().body_dict
    assert statistics["dataset"]["item_count"] == ROWS
    means = {f["name"]: f["numerical_statistics"]["mean"] for f in statistics["features"]}
    expected = np.mean([row for rows in captured["parts"].values() for row in rows], axis=0)
    assert means["_c0"] == pytest.approx(expected[0], rel=1e-9)


def test_json_outputs_get_inference_id_members(tmp_path):
    """JSON Lines outputs: objects get SageMakerInferenceId / SageMakerInferenceTime; other
    values are wrapped as SageMakerOutput (the member JoinSource uses for them)."""
    from modelyard.engine.transform_capture import add_inference_ids, output_format

    path = tmp_path / "part.jsonl.out"
    path.write_text('{"score": 0.25}\n[1, 2]\n\n')
    add_inference_ids(path, "json", 1661821755.0)
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert first["score"] == 0.25 and UUID.match(first["SageMakerInferenceId"])
    assert first["SageMakerInferenceTime"] == "2022-08-30T01:09:15Z"
    assert second["SageMakerOutput"] == [1, 2]
    assert second["SageMakerInferenceId"] != first["SageMakerInferenceId"]
    assert output_format({"TransformOutput": {"Accept": "application/jsonlines"},
                          "TransformInput": {"ContentType": "text/csv"}}) == "json"
    assert output_format({"TransformOutput": {}, "TransformInput": {}}) == "csv"
