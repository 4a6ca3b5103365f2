"""Warm-started model servers (engine/warm_start.py): a built-in XGBoost transform job's
server is forked by the server's XGBoost zygote; a killed zygote is replaced for the next
job, one that dies while a job waits on it leaves that job to start cold, and no zygote
outlives the server."""

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
COLD_LINE = "starting the model server cold"


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
