"""Warm starts (engine/warm_start.py): a built-in XGBoost transform job's
server is forked by the server's XGBoost zygote; a killed zygote is replaced for the next
job, one that dies while a job waits on it leaves that job to start cold, and no zygote
outlives the server; built-in training jobs run forked from the zygote too."""

from __future__ import annotations

import io
import os
import signal
import tarfile
import time
from pathlib import Path

import numpy

from server_process import ServerProcess

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
BUCKET = "warm-start"
COLD_LINE = "modelyard: no warm start"


def processes() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, command line) of every live (not zombie) process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            found[int(entry.name)] = (int(fields[1]), cmdline)
    return found


def zygotes(server: ServerProcess) -> set[int]:
    return {pid for pid, (parent, cmdline) in processes().items()
            if parent == server.process.pid and b"modelyard.runtimes.zygote" in cmdline
            and b"--framework\x00xgboost" in cmdline}


def wait_until(condition, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run_job(server: ServerProcess, name: str, rows: numpy.ndarray) -> tuple[numpy.ndarray, str]:
    """Transform ``rows``; the predictions and the job's log."""
    client, s3 = server.client("sagemaker"), server.client("s3")
    client.create_transform_job(
        TransformJobName=name, ModelName="warm", BatchStrategy="MultiRecord",
        MaxConcurrentTransforms=2, MaxPayloadInMB=1,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                        "S3Uri": f"s3://{BUCKET}/in/"}},
                        "ContentType": "text/csv", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": f"s3://{BUCKET}/{name}", "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1})
    status = wait_until(lambda: client.describe_transform_job(TransformJobName=name)
                        ["TransformJobStatus"] in ("Completed", "Failed", "Stopped")
                        and client.describe_transform_job(TransformJobName=name), what=name)
    logs = server.client("logs")
    group = "/aws/sagemaker/TransformJobs"
    [stream] = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{name}/")["logStreams"]
    text = "\n".join(event["message"] for event in logs.get_log_events(
        logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True)["events"])
    assert status["TransformJobStatus"] == "Completed", (status.get("FailureReason"), text)
    body = s3.get_object(Bucket=BUCKET, Key=f"{name}/data.csv.out")["Body"].read().decode()
    return numpy.array([float(line) for line in body.splitlines()]), text


def test_zygote_dies_and_jobs_still_complete_and_nothing_outlives_the_server(tmp_path):
    import xgboost

    rng = numpy.random.default_rng(3)
    rows = rng.normal(size=(300, 5)).astype(numpy.float32)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3},
                            xgboost.DMatrix(rows, label=rows[:, 0] + rows[:, 1] > 0), num_boost_round=10)
    model_file = tmp_path / "xgboost-model"
    booster.save_model(str(model_file))
    expected = booster.predict(xgboost.DMatrix(rows))
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tarball:
        tarball.add(model_file, arcname="xgboost-model")

    server = ServerProcess.start(tmp_path / "data")
    seen: set[int] = set()
    try:
        s3 = server.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="model.tar.gz", Body=archive.getvalue())
        s3.put_object(Bucket=BUCKET, Key="in/data.csv",
                      Body="".join(",".join(map(str, row)) + "\n" for row in rows).encode())
        server.client("sagemaker").create_model(ModelName="warm", PrimaryContainer={
            "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"})

        # The first job starts the zygote; its server is forked from it.
        predictions, text = run_job(server, "warm-1", rows)
        numpy.testing.assert_allclose(predictions, expected, rtol=1e-4)
        assert COLD_LINE not in text
        [first] = zygotes(server)
        seen.add(first)

        # kill -9 of the zygote: the next job starts a new one and still runs warm.
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: first not in processes(), what="the killed zygote to go")
        predictions, text = run_job(server, "warm-2", rows)
        numpy.testing.assert_allclose(predictions, expected, rtol=1e-4)
        assert COLD_LINE not in text
        [second] = zygotes(server)
        assert second != first
        seen.add(second)

        # A zygote that dies after it was handed a launch: that server starts cold.
        os.kill(second, signal.SIGSTOP)
        try:
            server.client("sagemaker").create_transform_job(
                TransformJobName="warm-3", ModelName="warm", BatchStrategy="MultiRecord",
                TransformInput={"DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/in/"}},
                    "ContentType": "text/csv", "SplitType": "Line"},
                TransformOutput={"S3OutputPath": f"s3://{BUCKET}/warm-3", "AssembleWith": "Line"},
                TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1})
            marker = f"{server.data_dir}/jobs/transform/warm-3".encode()
            wait_until(lambda: any(b"--stub" in cmdline and marker in processes().get(parent, (0, b""))[1]
                                   for parent, cmdline in processes().values()),
                       what="the job's stub to wait on the zygote")
        finally:
            os.kill(second, signal.SIGKILL)
        client = server.client("sagemaker")
        done = wait_until(lambda: client.describe_transform_job(TransformJobName="warm-3")
                          ["TransformJobStatus"] in ("Completed", "Failed"), what="warm-3")
        assert done
        assert client.describe_transform_job(TransformJobName="warm-3")["TransformJobStatus"] == "Completed"
        body = server.client("s3").get_object(Bucket=BUCKET, Key="warm-3/data.csv.out")["Body"].read()
        numpy.testing.assert_allclose([float(v) for v in body.split()], expected, rtol=1e-4)
        logs = server.client("logs")
        [stream] = logs.describe_log_streams(logGroupName="/aws/sagemaker/TransformJobs",
                                             logStreamNamePrefix="warm-3/")["logStreams"]
        assert any(COLD_LINE in event["message"] for event in logs.get_log_events(
            logGroupName="/aws/sagemaker/TransformJobs", logStreamName=stream["logStreamName"],
            startFromHead=True)["events"])
        seen |= zygotes(server)
    finally:
        server.stop()
    # Server shutdown ends every zygote (and no launcher is left behind).
    wait_until(lambda: not seen & set(processes()), timeout=30, what="the zygotes to exit")


def test_builtin_training_runs_warm_reports_metrics_stops_and_fails_with_its_reason(tmp_path):
    """Built-in XGBoost training jobs run forked from the zygote: a finished one has its
    metrics and model, a long one is forked from it while it runs and stops on request, and
    a bad hyperparameter fails it with the algorithm's ClientError, as a cold start would."""
    rng = numpy.random.default_rng(5)
    rows = rng.normal(size=(400, 4))
    labels = (rows[:, 0] - rows[:, 2] > 0).astype(int)
    server = ServerProcess.start(tmp_path / "data")
    try:
        client, s3 = server.client("sagemaker"), server.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        for channel, part in (("train", slice(0, 300)), ("validation", slice(300, 400))):
            body = "".join(f"{label}," + ",".join(f"{v:.5f}" for v in row) + "\n"
                           for label, row in zip(labels[part], rows[part]))
            s3.put_object(Bucket=BUCKET, Key=f"train/{channel}/data.csv", Body=body.encode())

        def train(name: str, **hyperparameters: str) -> None:
            client.create_training_job(
                TrainingJobName=name, RoleArn="arn:aws:iam::123456789012:role/Warm",
                AlgorithmSpecification={"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
                HyperParameters={"objective": "binary:logistic", "num_round": "20", **hyperparameters},
                InputDataConfig=[{"ChannelName": channel, "ContentType": "text/csv", "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/train/{channel}/"}}}
                    for channel in ("train", "validation")],
                OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/models"},
                ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
                StoppingCondition={"MaxRuntimeInSeconds": 600})

        def finished(name: str) -> dict:
            return wait_until(lambda: (job := client.describe_training_job(TrainingJobName=name))
                              ["TrainingJobStatus"] in ("Completed", "Failed", "Stopped") and job,
                              timeout=300, what=name)

        train("warm-train")
        job = finished("warm-train")
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        [metric] = [m for m in job["FinalMetricDataList"] if m["MetricName"] == "validation:logloss"]
        assert 0 < metric["Value"] < 0.5
        s3.head_object(Bucket=BUCKET, Key="models/warm-train/output/model.tar.gz")
        [zygote] = zygotes(server)

        # A long run: its process is the zygote's grandchild (zygote -> launcher -> run).
        train("warm-long", num_round="1000000", max_depth="8", eta="0.001")
        wait_until(lambda: any(processes().get(parent, (0, b""))[0] == zygote
                               for parent, _ in processes().values()),
                   timeout=120, what="a training run forked from the zygote")
        client.stop_training_job(TrainingJobName="warm-long")
        job = finished("warm-long")
        assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "Stopped")

        train("warm-bad", max_depth="-3")
        job = finished("warm-bad")
        assert job["TrainingJobStatus"] == "Failed"
        assert job["FailureReason"].startswith("ClientError") and "max_depth" in job["FailureReason"], job
        assert zygotes(server) == {zygote}
        logs = server.client("logs")
        for name in ("warm-train", "warm-long", "warm-bad"):
            [stream] = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                                 logStreamNamePrefix=f"{name}/")["logStreams"]
            assert not any(COLD_LINE in event["message"] for event in logs.get_log_events(
                logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream["logStreamName"],
                startFromHead=True)["events"])
    finally:
        server.stop()
