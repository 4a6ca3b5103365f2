"""Pipeline benchmark: ``python bench/pipelines.py``.

A 10-step chain of no-op processing steps. Orchestration overhead per step is the
execution's wall time minus the sum of its jobs' own run times (ProcessingStartTime to
ProcessingEndTime), divided by the number of steps (target: <= 0.2 s per step).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from server_process import ServerProcess  # noqa: E402

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"
STEPS = 10


def chain_definition() -> str:
    steps = []
    for index in range(STEPS):
        step = {
            "Name": f"Step{index}", "Type": "Processing",
            "Arguments": {
                "AppSpecification": {"ImageUri": SKLEARN_IMAGE,
                                     "ContainerEntrypoint": ["python3", "-c", "pass"]},
                "ProcessingResources": {"ClusterConfig": {
                    "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
                "RoleArn": ROLE,
            },
        }
        if index:
            step["DependsOn"] = [f"Step{index - 1}"]
        steps.append(step)
    return json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": steps})


def run_once(client, name: str) -> tuple[float, float]:
    started = time.perf_counter()
    arn = client.start_pipeline_execution(
        PipelineName=name, ClientRequestToken=uuid.uuid4().hex)["PipelineExecutionArn"]
    while client.describe_pipeline_execution(
            PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Executing":
        time.sleep(0.01)
    wall = time.perf_counter() - started
    jobs = 0.0
    for step in client.list_pipeline_execution_steps(
            PipelineExecutionArn=arn, MaxResults=100)["PipelineExecutionSteps"]:
        assert step["StepStatus"] == "Succeeded", step
        job = client.describe_processing_job(
            ProcessingJobName=step["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[1])
        jobs += (job["ProcessingEndTime"] - job["ProcessingStartTime"]).total_seconds()
    return wall, jobs


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-") as scratch:
        server = ServerProcess.start(Path(scratch) / "data")
        try:
            client = server.client("sagemaker")
            client.create_pipeline(PipelineName="chain", PipelineDefinition=chain_definition(),
                                   RoleArn=ROLE)
            run_once(client, "chain")  # warm-up
            runs = [run_once(client, "chain") for _ in range(3)]
        finally:
            server.stop()
    wall = statistics.median(run[0] for run in runs)
    jobs = statistics.median(run[1] for run in runs)
    print(f"pipelines    {STEPS}-step chain: wall {wall:5.2f} s, jobs' own run time {jobs:5.2f} s, "
          f"orchestration {(wall - jobs) / STEPS * 1000:5.0f} ms per step (target <= 200 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
