"""Processing jobs really run: the SDK's processors, sandboxes, limits, stops, restarts."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from jobs_helpers import SKLEARN_IMAGE, sdk_session, wait_for_status
from server_process import ServerProcess

SCRIPT = """
import argparse, os, sys
parser = argparse.ArgumentParser()
parser.add_argument("--min-tokens", type=int)
parser.add_argument("--tag")
args = parser.parse_args()
rows = [line.split() for line in open("/opt/ml/processing/input/data/tickets.txt")]
kept = [row for row in rows if len(row) >= args.min_tokens]
with open("/opt/ml/processing/output/result.txt", "w") as handle:
    handle.write(f"{args.tag}:{len(kept)}")
print(f"kept {len(kept)} of {len(rows)} tickets for {args.tag}")
"""


@pytest.fixture()
def tickets(server, tmp_path, unique_name):
    session = sdk_session()
    bucket = session.default_bucket()
    s3 = server.client("s3")
    lines = "router not responding\nprinter\nscreen flickers after driver update today\n"
    s3.put_object(Bucket=bucket, Key=f"{unique_name}/input/tickets.txt", Body=lines.encode())
    script = tmp_path / "preprocessing.py"
    script.write_text(SCRIPT)
    return session, bucket, script


def run_processor(session, bucket, prefix, script, tag, *, wait=True, logs=False, **extra):
    import sagemaker
    from sagemaker.processing import ProcessingInput, ProcessingOutput
    from sagemaker.sklearn.processing import SKLearnProcessor

    processor = SKLearnProcessor(
        framework_version="1.2-1", role=sagemaker.get_execution_role(session),
        instance_type="ml.m5.xlarge", instance_count=1, sagemaker_session=session, **extra)
    processor.run(
        code=str(script),
        inputs=[ProcessingInput(source=f"s3://{bucket}/{prefix}/input/",
                                destination="/opt/ml/processing/input/data")],
        outputs=[ProcessingOutput(source="/opt/ml/processing/output",
                                  destination=f"s3://{bucket}/{prefix}/output/{tag}")],
        arguments=["--min-tokens", "2", "--tag", tag],
        wait=wait, logs=logs,
    )
    return processor


def test_sklearn_processor_runs_the_script_and_uploads_outputs(server, tickets, unique_name):
    session, bucket, script = tickets
    processor = run_processor(session, bucket, unique_name, script, "only", logs=True)
    description = processor.latest_job.describe()
    assert description["ProcessingJobStatus"] == "Completed"
    assert description["ProcessingEndTime"] >= description["ProcessingStartTime"]
    body = server.client("s3").get_object(
        Bucket=bucket, Key=f"{unique_name}/output/only/result.txt")["Body"].read()
    assert body == b"only:2"
    logs = server.client("logs")
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/ProcessingJobs",
        logStreamNamePrefix=description["ProcessingJobName"] + "/")["logStreams"]
    events = logs.get_log_events(logGroupName="/aws/sagemaker/ProcessingJobs",
                                 logStreamName=streams[0]["logStreamName"], startFromHead=True)
    assert "kept 2 of 3 tickets for only" in [event["message"] for event in events["events"]]


def test_concurrent_jobs_write_the_same_path_without_clashing(server, tickets, unique_name):
    session, bucket, script = tickets
    errors = []

    def run(tag: str) -> None:
        try:
            run_processor(session, bucket, unique_name, script, tag)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(tag,)) for tag in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    s3 = server.client("s3")
    for tag in ("first", "second"):
        body = s3.get_object(Bucket=bucket, Key=f"{unique_name}/output/{tag}/result.txt")["Body"]
        assert body.read() == f"{tag}:2".encode()


def create_job(client, name, bucket, command, *, max_runtime=None, image=SKLEARN_IMAGE):
    request = {
        "ProcessingJobName": name,
        "RoleArn": "arn:aws:iam::123456789012:role/ModelyardExecutionRole",
        "AppSpecification": {"ImageUri": image,
                             "ContainerEntrypoint": ["python3", "-c", command]},
        "ProcessingResources": {"ClusterConfig": {
            "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "out", "S3Output": {
            "S3Uri": f"s3://{bucket}/{name}/out", "LocalPath": "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob"}}]},
    }
    if max_runtime:
        request["StoppingCondition"] = {"MaxRuntimeInSeconds": max_runtime}
    return client.create_processing_job(**request)


def describe(client, name):
    return lambda: client.describe_processing_job(ProcessingJobName=name)


def test_failing_script_fails_with_its_error(server, sagemaker_client, unique_name):
    bucket = sdk_session().default_bucket()
    create_job(sagemaker_client, unique_name, bucket,
               "raise ValueError('column content is missing from tickets.jsonl')")
    job = wait_for_status(describe(sagemaker_client, unique_name), "ProcessingJobStatus",
                          {"Completed", "Failed", "Stopped"})
    assert job["ProcessingJobStatus"] == "Failed"
    assert "ValueError: column content is missing from tickets.jsonl" in job["FailureReason"]


def test_runtime_limit_ends_the_job(server, sagemaker_client, unique_name):
    bucket = sdk_session().default_bucket()
    started = time.monotonic()
    create_job(sagemaker_client, unique_name, bucket, "import time; time.sleep(120)", max_runtime=1)
    job = wait_for_status(describe(sagemaker_client, unique_name), "ProcessingJobStatus",
                          {"Completed", "Failed", "Stopped"}, timeout=110)
    assert job["ProcessingJobStatus"] == "Failed"
    assert "MaxRuntimeInSeconds" in job["FailureReason"]
    assert time.monotonic() - started < 90  # well before the script's 120 s (a loaded machine)


def test_stop_request_stops_the_process_tree(server, sagemaker_client, unique_name):
    bucket = sdk_session().default_bucket()
    command = ("import subprocess, time; subprocess.Popen(['sleep', '300']); "
               "open('/opt/ml/processing/output/partial.txt', 'w').write('so far'); "
               "print('working', flush=True); time.sleep(300)")
    create_job(sagemaker_client, unique_name, bucket, command)
    logs = server.client("logs")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # wait until the script runs
        found = logs.filter_log_events(logGroupName="/aws/sagemaker/ProcessingJobs",
                                       logStreamNamePrefix=unique_name + "/", filterPattern="working")
        if found["events"]:
            break
        time.sleep(0.2)
    sagemaker_client.stop_processing_job(ProcessingJobName=unique_name)
    job = wait_for_status(describe(sagemaker_client, unique_name), "ProcessingJobStatus",
                          {"Stopped", "Failed", "Completed"}, timeout=180)
    assert job["ProcessingJobStatus"] == "Stopped"
    # Outputs written before the stop are uploaded, as SageMaker does.
    s3 = server.client("s3")
    assert s3.get_object(Bucket=bucket, Key=f"{unique_name}/out/partial.txt")["Body"].read() == b"so far"
    again = pytest.raises(ClientError, sagemaker_client.stop_processing_job,
                          ProcessingJobName=unique_name)
    assert again.value.response["Error"]["Code"] == "ValidationException"


def test_jobs_cannot_see_the_server_data_or_each_other(server, sagemaker_client, unique_name):
    bucket = sdk_session().default_bucket()
    host_file = Path("/tmp") / f"mh-{unique_name[-8:]}"
    host_file.write_text("host only")
    # Container arguments are at most 256 characters: keep the probe terse.
    command = (
        f"import os,json;e=os.path.exists;json.dump({{'d':e({str(server.data_dir)!r}),"
        f"'o':sorted(os.listdir('/opt/ml')),'h':e({str(host_file)!r})}},"
        "open('/opt/ml/processing/output/seen.json','w'))"
    )
    create_job(sagemaker_client, unique_name, bucket, command)
    job = wait_for_status(describe(sagemaker_client, unique_name), "ProcessingJobStatus",
                          {"Completed", "Failed", "Stopped"})
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    import json

    seen = json.loads(server.client("s3").get_object(
        Bucket=bucket, Key=f"{unique_name}/out/seen.json")["Body"].read())
    host_file.unlink()
    assert seen == {"d": False, "o": ["config", "output", "processing"], "h": False}


@pytest.mark.parametrize("change,member", [
    ({"AppSpecification": {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own:1",
                           "ContainerEntrypoint": ["python3"]}}, "my-own"),
    ({"ProcessingResources": {"ClusterConfig": {
        "InstanceCount": 2, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}}}, "InstanceCount"),
    ({"ProcessingOutputConfig": {"Outputs": [{"OutputName": "out", "S3Output": {
        "S3Uri": "s3://b/x", "LocalPath": "/etc", "S3UploadMode": "EndOfJob"}}]}}, "/opt/ml/processing"),
])
def test_jobs_modelyard_cannot_run_are_refused_clearly(sagemaker_client, unique_name, change, member):
    request = {
        "ProcessingJobName": unique_name,
        "RoleArn": "arn:aws:iam::123456789012:role/ModelyardExecutionRole",
        "AppSpecification": {"ImageUri": SKLEARN_IMAGE, "ContainerEntrypoint": ["python3"]},
        "ProcessingResources": {"ClusterConfig": {
            "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        **change,
    }
    with pytest.raises(ClientError) as raised:
        sagemaker_client.create_processing_job(**request)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert member in raised.value.response["Error"]["Message"]
    with pytest.raises(ClientError):
        sagemaker_client.describe_processing_job(ProcessingJobName=unique_name)


def test_a_job_interrupted_by_a_server_kill_runs_again_after_restart(tmp_path):
    server = ServerProcess.start(tmp_path / "data")
    client = server.client("sagemaker")
    server.client("s3").create_bucket(Bucket="restart-bucket")
    command = ("import time, os; time.sleep(3); "
               "open('/opt/ml/processing/output/done.txt', 'w').write('finished')")
    create_job(client, "survivor", "restart-bucket", command)
    wait_for_status(describe(client, "survivor"), "ProcessingJobStatus", {"InProgress"})
    time.sleep(1.0)
    server.kill()
    restarted = ServerProcess.start(tmp_path / "data", port=server.port)
    try:
        client = restarted.client("sagemaker")
        job = wait_for_status(describe(client, "survivor"), "ProcessingJobStatus",
                              {"Completed", "Failed", "Stopped"}, timeout=180)
        assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
        body = restarted.client("s3").get_object(Bucket="restart-bucket", Key="survivor/out/done.txt")
        assert body["Body"].read() == b"finished"
    finally:
        restarted.stop()
