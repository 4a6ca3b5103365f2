"""Where CloudWatch metrics come from and go: the AWS CLI, every protocol botocore may speak
(RPC v2 CBOR, JSON 1.0, query; gzip bodies), retention on a moved clock, and the metrics
SageMaker publishes itself (training MetricDefinitions read by the SDK's
TrainingJobAnalytics, endpoint invocations)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from cloudwatch_helpers import DIMS, minute_ago
from server_process import ServerProcess


def test_aws_cli_puts_and_reads_metrics(server, unique_name):
    namespace = f"Test/{unique_name}"
    aws = [str(Path(sys.executable).with_name("aws")), "--endpoint-url", server.endpoint_url,
           "--output", "json", "cloudwatch"]
    env = {**os.environ, **server.client_env()}
    stamp = datetime.fromtimestamp(minute_ago(1) + 5, tz=timezone.utc).isoformat()

    def run(*args):
        done = subprocess.run([*aws, *args], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    run("put-metric-data", "--namespace", namespace, "--metric-name", "Jobs", "--value", "3",
        "--unit", "Count", "--dimensions", "Queue=high", "--timestamp", stamp)
    run("put-metric-data", "--namespace", namespace, "--metric-name", "Jobs", "--unit", "Count",
        "--dimensions", "Queue=high", "--timestamp", stamp,
        "--statistic-values", "SampleCount=2,Sum=11,Minimum=4,Maximum=7")
    run("put-metric-data", "--namespace", namespace, "--metric-data", json.dumps([
        {"MetricName": "Jobs", "Dimensions": [{"Name": "Queue", "Value": "high"}],
         "Timestamp": stamp, "Unit": "Count", "Values": [1, 9], "Counts": [2, 1]}]))
    answer = run("get-metric-statistics", "--namespace", namespace, "--metric-name", "Jobs",
                 "--dimensions", "Name=Queue,Value=high", "--start-time",
                 str(int(minute_ago(3))), "--end-time", str(int(minute_ago(-1))),
                 "--period", "60", "--statistics", "Sum", "SampleCount", "Maximum")
    assert [(p["Sum"], p["SampleCount"], p["Maximum"], p["Unit"])
            for p in answer["Datapoints"]] == [(25.0, 6.0, 9.0, "Count")]
    listed = run("list-metrics", "--namespace", namespace)
    assert [m["MetricName"] for m in listed["Metrics"]] == ["Jobs"]
    done = subprocess.run([*aws, "put-metric-data", "--namespace", namespace, "--metric-name",
                           "Jobs", "--value", "1", "--storage-resolution", "7"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "InvalidParameterValue" in done.stderr


def test_old_data_is_swept_after_retention(tmp_path):
    offset = tmp_path / "clock-offset"
    server = ServerProcess.start(tmp_path / "data", MODELYARD_CLOCK_OFFSET_FILE=str(offset))
    try:
        cw = server.client("cloudwatch")
        cw.put_metric_data(Namespace="Test/retention", MetricData=[
            {"MetricName": "old", "Value": 1.0}])
        assert len(cw.list_metrics(Namespace="Test/retention")["Metrics"]) == 1
        moved = tmp_path / "clock-offset.tmp"
        moved.write_text(str(16 * 86400))
        os.replace(moved, offset)  # the server's clock is now 16 days ahead

        def listed() -> list[str]:
            metrics = cw.list_metrics(Namespace="Test/retention")["Metrics"]
            return [metric["MetricName"] for metric in metrics]

        deadline = time.monotonic() + 30  # the background sweep looks every 0.5 s
        while listed() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert listed() == []
        cw.put_metric_data(Namespace="Test/retention", MetricData=[
            {"MetricName": "new", "Value": 1.0, "Timestamp": time.time() + 16 * 86400}])
        assert listed() == ["new"]
    finally:
        server.stop()


def client_speaking(server, protocol: str, data_path: Path):
    """A CloudWatch client that speaks ``protocol`` (botocore picks one of the model's
    protocols; a copy of the model listing only this one makes it pick that)."""
    import botocore.session

    from server_process import ACCESS_KEY, REGION, SECRET_KEY

    loader = botocore.session.get_session().get_component("data_loader")
    model = loader.load_service_model("cloudwatch", "service-2")
    model["metadata"].update(protocol=protocol, protocols=[protocol])
    folder = data_path / "cloudwatch" / model["metadata"]["apiVersion"]
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(model))
    session = botocore.session.get_session()
    session.set_config_variable("data_path", str(data_path))
    return session.create_client("cloudwatch", endpoint_url=server.endpoint_url,
                                 region_name=REGION, aws_access_key_id=ACCESS_KEY,
                                 aws_secret_access_key=SECRET_KEY)


@pytest.mark.parametrize("protocol", ["smithy-rpc-v2-cbor", "json", "query"])
def test_every_cloudwatch_protocol_puts_and_reads(server, unique_name, tmp_path, protocol):
    client = client_speaking(server, protocol, tmp_path)
    assert client.meta.service_model.resolved_protocol == protocol
    namespace, stamp = f"Test/{unique_name}", minute_ago(1) + 3
    # 300 datums: over botocore's 10 KB threshold, so the body arrives gzip-compressed.
    client.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": "Depth", "Dimensions": DIMS, "Timestamp": stamp, "Values": [1.0, 3.0],
         "Counts": [1.0, 2.0]}] * 300)
    points = client.get_metric_statistics(
        Namespace=namespace, MetricName="Depth", Dimensions=DIMS, StartTime=stamp - 3,
        EndTime=stamp + 57, Period=60, Statistics=["Sum", "SampleCount"])["Datapoints"]
    assert [(p["Timestamp"].timestamp(), p["Sum"], p["SampleCount"]) for p in points] == [
        (stamp - 3, 2100.0, 900.0)]
    data = client.get_metric_data(MetricDataQueries=[
        {"Id": "d", "MetricStat": {"Metric": {"Namespace": namespace, "MetricName": "Depth",
                                              "Dimensions": DIMS},
                                   "Period": 60, "Stat": "p50"}},
        {"Id": "e", "Expression": "d * 10"}], StartTime=stamp - 3, EndTime=stamp + 57)
    assert [(r["Id"], r["Values"]) for r in data["MetricDataResults"]] == [
        ("d", [3.0]), ("e", [30.0])]
    with pytest.raises(ClientError) as caught:
        client.put_metric_data(Namespace=namespace, MetricData=[{"MetricName": "Depth"}])
    assert caught.value.response["Error"]["Code"] == "MissingParameter"


LOSS_SCRIPT = """
import time
for step, loss in enumerate([0.9, 0.5, 0.25, 0.125]):
    print(f"epoch {step} train_loss={loss} acc={1 - loss}", flush=True)
    time.sleep(0.6)
"""


def script_training_request(server, bucket: str, name: str, script: str) -> dict:
    """A scikit-learn script-mode training job running ``script``, with its source uploaded."""
    import io
    import tarfile

    from jobs_helpers import SKLEARN_IMAGE

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("train.py")
        info.size = len(script.encode())
        tar.addfile(info, io.BytesIO(script.encode()))
    key = f"{name}/source/sourcedir.tar.gz"
    server.client("s3").put_object(Bucket=bucket, Key=key, Body=archive.getvalue())
    return {
        "TrainingJobName": name,
        "RoleArn": "arn:aws:iam::123456789012:role/ModelyardExecutionRole",
        "AlgorithmSpecification": {
            "TrainingImage": SKLEARN_IMAGE, "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "train:loss", "Regex": r"train_loss=([0-9.]+)"},
                                  {"Name": "train:acc", "Regex": r"acc=([0-9.]+)"}]},
        "HyperParameters": {"sagemaker_program": '"train.py"',
                            "sagemaker_submit_directory": f'"s3://{bucket}/{key}"'},
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/{name}/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                           "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }


def test_training_metrics_reach_cloudwatch_and_training_job_analytics(server, unique_name):
    from jobs_helpers import sdk_session, wait_for_status
    from sagemaker.analytics import TrainingJobAnalytics

    session = sdk_session()
    sagemaker_client = server.client("sagemaker")
    sagemaker_client.create_training_job(**script_training_request(
        server, session.default_bucket(), unique_name, LOSS_SCRIPT))
    job = wait_for_status(lambda: sagemaker_client.describe_training_job(
        TrainingJobName=unique_name), "TrainingJobStatus", {"Completed", "Failed", "Stopped"},
        timeout=300)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")

    cw = server.client("cloudwatch")
    window = {"StartTime": job["TrainingStartTime"] - timedelta_minutes(1),
              "EndTime": job["TrainingEndTime"] + timedelta_minutes(1)}
    for dimension in ({"Name": "Host", "Value": f"{unique_name}/algo-1"},
                      {"Name": "TrainingJobName", "Value": unique_name}):
        points = cw.get_metric_statistics(
            Namespace="/aws/sagemaker/TrainingJobs", MetricName="train:loss",
            Dimensions=[dimension], Period=60,
            Statistics=["SampleCount", "Sum", "Minimum", "Maximum"], **window)["Datapoints"]
        assert sum(p["SampleCount"] for p in points) == 4
        assert sum(p["Sum"] for p in points) == pytest.approx(1.775)
        assert (min(p["Minimum"] for p in points), max(p["Maximum"] for p in points)) == \
            (0.125, 0.9)
    # One-second periods show the curve point by point (the metric is high resolution).
    curve = cw.get_metric_statistics(
        Namespace="/aws/sagemaker/TrainingJobs", MetricName="train:acc", Period=1,
        Dimensions=[{"Name": "Host", "Value": f"{unique_name}/algo-1"}],
        Statistics=["SampleCount", "Sum"], **window)["Datapoints"]
    assert sum(p["SampleCount"] for p in curve) == 4
    assert sum(p["Sum"] for p in curve) == pytest.approx(0.1 + 0.5 + 0.75 + 0.875)
    assert len(curve) >= 2  # the lines span 1.8 s: at least two distinct seconds

    frame = TrainingJobAnalytics(unique_name, sagemaker_session=session).dataframe()
    assert set(frame["metric_name"]) == {"train:loss", "train:acc"}
    losses = frame[frame["metric_name"] == "train:loss"]["value"]
    assert 0.125 <= losses.min() <= losses.max() <= 0.9
    assert list(frame.columns) == ["timestamp", "metric_name", "value"]


def timedelta_minutes(minutes: int):
    from datetime import timedelta

    return timedelta(minutes=minutes)


def test_endpoint_invocation_metrics_read_through_cloudwatch(server, unique_name):
    from endpoint_helpers import create_endpoint, create_model, delete_endpoint, variant

    sagemaker, s3 = server.client("sagemaker"), server.client("s3")
    runtime, cw = server.client("sagemaker-runtime"), server.client("cloudwatch")
    s3.create_bucket(Bucket=unique_name)
    create_model(sagemaker, s3, unique_name, unique_name, 2)
    started = minute_ago(1)
    create_endpoint(sagemaker, unique_name, [variant("Main", unique_name, 1.0)])
    try:
        for _ in range(25):
            runtime.invoke_endpoint(EndpointName=unique_name, Body=json.dumps([[1.0, 2.0]]),
                                    ContentType="application/json")
        dims = [{"Name": "EndpointName", "Value": unique_name},
                {"Name": "VariantName", "Value": "Main"}]
        window = {"StartTime": started, "EndTime": minute_ago(-2), "Period": 60}

        def total(metric: str) -> float:
            points = cw.get_metric_statistics(Namespace="AWS/SageMaker", MetricName=metric,
                                              Dimensions=dims, Statistics=["Sum"],
                                              **window)["Datapoints"]
            return sum(point["Sum"] for point in points)

        deadline = time.monotonic() + 90  # the runtime flushes every 10 s
        while total("Invocations") < 25 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert total("Invocations") == 25
        assert total("Invocation5XXErrors") == 0
        latency = cw.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName="ModelLatency", Dimensions=dims,
            Statistics=["SampleCount", "Minimum", "Maximum"], **window)["Datapoints"]
        assert sum(p["SampleCount"] for p in latency) == 25
        assert all(p["Unit"] == "Microseconds" for p in latency)
        tails = cw.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName="ModelLatency", Dimensions=dims,
            ExtendedStatistics=["p50", "p99"], **window)["Datapoints"]
        assert tails
        low = min(p["Minimum"] for p in latency)
        high = max(p["Maximum"] for p in latency)
        for point in tails:
            p50, p99 = point["ExtendedStatistics"]["p50"], point["ExtendedStatistics"]["p99"]
            assert low <= p50 <= p99 <= high
        names = {m["MetricName"] for m in cw.list_metrics(
            Namespace="AWS/SageMaker", Dimensions=[{"Name": "EndpointName",
                                                    "Value": unique_name}])["Metrics"]}
        assert {"Invocations", "ModelLatency", "OverheadLatency"} <= names
    finally:
        delete_endpoint(sagemaker, unique_name)
