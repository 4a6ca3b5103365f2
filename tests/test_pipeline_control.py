"""Controlling executions: callbacks, stop, retry and selective execution."""

from __future__ import annotations

import json
import time
import uuid

from jobs_helpers import SKLEARN_IMAGE, wait_for_status

ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"


def processing_step(name: str, command: str, **extra) -> dict:
    return {
        "Name": name, "Type": "Processing",
        "Arguments": {
            "AppSpecification": {"ImageUri": SKLEARN_IMAGE,
                                 "ContainerEntrypoint": ["python3", "-c", command]},
            "ProcessingResources": {"ClusterConfig": {
                "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
            "RoleArn": ROLE,
        },
        **extra,
    }


def create(client, name: str, steps: list[dict]) -> None:
    client.create_pipeline(PipelineName=name, RoleArn=ROLE, PipelineDefinition=json.dumps(
        {"Version": "2020-12-01", "Parameters": [], "Steps": steps}))


def start(client, name: str, **extra) -> str:
    return client.start_pipeline_execution(
        PipelineName=name, ClientRequestToken=uuid.uuid4().hex, **extra)["PipelineExecutionArn"]


def steps_of(client, arn: str) -> dict[str, dict]:
    return {step["StepName"]: step for step in client.list_pipeline_execution_steps(
        PipelineExecutionArn=arn)["PipelineExecutionSteps"]}


def finished(client, arn: str, timeout: float = 300) -> dict:
    return wait_for_status(lambda: client.describe_pipeline_execution(PipelineExecutionArn=arn),
                           "PipelineExecutionStatus", {"Succeeded", "Failed", "Stopped"}, timeout)


def waiting_callback(client, arn: str, step: str) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        record = steps_of(client, arn).get(step)
        if record and record["StepStatus"] == "Executing":
            return record["Metadata"]["Callback"]["CallbackToken"]
        time.sleep(0.1)
    raise AssertionError(f"{step} never started")


CALLBACK_PIPELINE = [
    {"Name": "Approve", "Type": "Callback", "Arguments": {"ticket": "T-1"},
     "SqsQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/approvals",
     "OutputParameters": [{"OutputName": "decision", "OutputType": "String"}]},
    {"Name": "Report", "Type": "Fail", "DependsOn": ["Approve"], "Arguments": {
        "ErrorMessage": {"Std:Join": {"On": " ", "Values": [
            "decision:", {"Get": "Steps.Approve.OutputParameters['decision']"}]}}}},
]


def test_callback_step_waits_for_its_token_and_passes_outputs_on(sagemaker_client, unique_name):
    create(sagemaker_client, unique_name, CALLBACK_PIPELINE)
    arn = start(sagemaker_client, unique_name)
    token = waiting_callback(sagemaker_client, arn, "Approve")
    assert sagemaker_client.describe_pipeline_execution(
        PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Executing"
    sagemaker_client.send_pipeline_execution_step_success(
        CallbackToken=token, OutputParameters=[{"Name": "decision", "Value": "ship it"}])
    final = finished(sagemaker_client, arn)
    assert final["PipelineExecutionStatus"] == "Failed"  # the Fail step reports the decision
    assert steps_of(sagemaker_client, arn)["Report"]["Metadata"]["Fail"]["ErrorMessage"] == \
        "decision: ship it"


def test_failed_execution_can_be_retried(sagemaker_client, unique_name):
    create(sagemaker_client, unique_name, CALLBACK_PIPELINE[:1])
    arn = start(sagemaker_client, unique_name)
    token = waiting_callback(sagemaker_client, arn, "Approve")
    sagemaker_client.send_pipeline_execution_step_failure(CallbackToken=token,
                                                          FailureReason="reviewer away")
    assert finished(sagemaker_client, arn)["PipelineExecutionStatus"] == "Failed"
    assert steps_of(sagemaker_client, arn)["Approve"]["FailureReason"] == "reviewer away"

    sagemaker_client.retry_pipeline_execution(PipelineExecutionArn=arn,
                                              ClientRequestToken=uuid.uuid4().hex)
    second_token = waiting_callback(sagemaker_client, arn, "Approve")
    assert second_token != token
    sagemaker_client.send_pipeline_execution_step_success(CallbackToken=second_token)
    assert finished(sagemaker_client, arn)["PipelineExecutionStatus"] == "Succeeded"


def test_stop_ends_running_jobs_and_the_execution(sagemaker_client, unique_name):
    create(sagemaker_client, unique_name, [
        processing_step("Slow", "import time; time.sleep(300)"),
        processing_step("After", "pass", DependsOn=["Slow"]),
    ])
    arn = start(sagemaker_client, unique_name)
    deadline = time.monotonic() + 120
    while steps_of(sagemaker_client, arn).get("Slow", {}).get("StepStatus") != "Executing":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    sagemaker_client.stop_pipeline_execution(PipelineExecutionArn=arn,
                                             ClientRequestToken=uuid.uuid4().hex)
    assert finished(sagemaker_client, arn)["PipelineExecutionStatus"] == "Stopped"
    steps = steps_of(sagemaker_client, arn)
    assert set(steps) == {"Slow"}
    job = steps["Slow"]["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[1]
    assert sagemaker_client.describe_processing_job(
        ProcessingJobName=job)["ProcessingJobStatus"] == "Stopped"


def test_selective_execution_reruns_only_the_chosen_steps(sagemaker_client, unique_name):
    create(sagemaker_client, unique_name, [
        processing_step("Prepare", "print('prepared')"),
        processing_step("Train", "print('trained')", DependsOn=["Prepare"]),
    ])
    first = start(sagemaker_client, unique_name)
    assert finished(sagemaker_client, first)["PipelineExecutionStatus"] == "Succeeded"
    second = start(sagemaker_client, unique_name, SelectiveExecutionConfig={
        "SourcePipelineExecutionArn": first, "SelectedSteps": [{"StepName": "Train"}]})
    assert finished(sagemaker_client, second)["PipelineExecutionStatus"] == "Succeeded"
    before, after = steps_of(sagemaker_client, first), steps_of(sagemaker_client, second)
    assert after["Prepare"]["SelectiveExecutionResult"]["SourcePipelineExecutionArn"] == first
    assert after["Prepare"]["Metadata"] == before["Prepare"]["Metadata"]
    assert after["Train"]["Metadata"] != before["Train"]["Metadata"]  # a new job ran
    assert "SelectiveExecutionResult" not in after["Train"]
