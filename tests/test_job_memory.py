"""Job memory limits: each job runs in a memory cgroup sized by MODELYARD_JOB_MEMORY_LIMIT
(here 200 MiB) or its instance type; exceeding it fails the job with "OutOfMemory"."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest

from jobs_helpers import SKLEARN_IMAGE, wait_for_status
from server_process import ServerProcess

ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"
BUCKET = "job-memory"

# Touches every page (b"\x01" * n writes them), so the memory is really used.
GREEDY = """
chunks = []
for _ in range(64):
    chunks.append(b"\\x01" * (16 << 20))
print("allocated 1 GiB")
"""
MODEST = """
data = b"\\x01" * (32 << 20)
print("cgroup:", open("/proc/self/cgroup").read().replace("\\n", " "))
print("allocated", len(data) >> 20, "MiB")
"""


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory):
    server = ServerProcess.start(tmp_path_factory.mktemp("memory-data"),
                                 MODELYARD_JOB_MEMORY_LIMIT="200MiB")
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="code/greedy.py", Body=GREEDY.encode())
    s3.put_object(Bucket=BUCKET, Key="code/modest.py", Body=MODEST.encode())
    yield server
    server.stop()


def run_script(server: ServerProcess, name: str, script: str) -> tuple[dict, list[str]]:
    client = server.client("sagemaker")
    client.create_processing_job(
        ProcessingJobName=name, RoleArn=ROLE,
        AppSpecification={"ImageUri": SKLEARN_IMAGE, "ContainerEntrypoint": [
            "python3", f"/opt/ml/processing/input/code/{script}"]},
        ProcessingInputs=[{"InputName": "code", "S3Input": {
            "S3Uri": f"s3://{BUCKET}/code/{script}", "LocalPath": "/opt/ml/processing/input/code",
            "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
        ProcessingResources={"ClusterConfig": {
            "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        StoppingCondition={"MaxRuntimeInSeconds": 600})
    job = wait_for_status(lambda: client.describe_processing_job(ProcessingJobName=name),
                          "ProcessingJobStatus", {"Completed", "Failed", "Stopped"}, timeout=300)
    logs = server.client("logs")
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/ProcessingJobs",
                                        logStreamNamePrefix=f"{name}/")["logStreams"]
    events = logs.get_log_events(logGroupName="/aws/sagemaker/ProcessingJobs",
                                 logStreamName=streams[0]["logStreamName"], startFromHead=True)
    return job, [event["message"] for event in events["events"]]


def skip_without_limits(lines: list[str]) -> None:
    """The job log says why there is no limit on this machine (e.g. not root)."""
    for line in lines:
        if line.startswith("modelyard: no memory limit for this job"):
            pytest.skip(f"no usable cgroup memory controller here: {line}")


def job_cgroups(server: ServerProcess, name: str) -> list[str]:
    """The job's cgroup directories under the server's own cgroups (v1 and v2)."""
    found = []
    for line in Path(f"/proc/{server.process.pid}/cgroup").read_text().splitlines():
        own = line.split(":", 2)[2].lstrip("/")
        for mount in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
            found += glob.glob(f"{mount}/{own}/modelyard-job-{server.process.pid}-{name}-*")
    return found


def test_a_job_within_its_limit_completes_in_its_own_cgroup_which_is_removed(limited_server):
    job, lines = run_script(limited_server, "memory-modest", "modest.py")
    skip_without_limits(lines)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert any(line.startswith("modelyard: memory limit 200 MiB (MODELYARD_JOB_MEMORY_LIMIT)")
               for line in lines), lines
    cgroup_line = next(line for line in lines if line.startswith("cgroup:"))
    assert "modelyard-job-" in cgroup_line and "memory-modest" in cgroup_line, cgroup_line
    assert "allocated 32 MiB" in lines
    assert job_cgroups(limited_server, "memory-modest") == []


def test_a_job_over_its_limit_fails_with_out_of_memory(limited_server):
    job, lines = run_script(limited_server, "memory-greedy", "greedy.py")
    skip_without_limits(lines)
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("OutOfMemory"), job["FailureReason"]
    assert "200 MiB" in job["FailureReason"]
    assert "allocated 1 GiB" not in lines
    assert job_cgroups(limited_server, "memory-greedy") == []
