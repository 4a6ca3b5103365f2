"""The ticket-classifier pipeline runs end to end through the SageMaker SDK."""

from __future__ import annotations

import json
import random
import time

import pytest
from botocore.exceptions import ClientError

from jobs_helpers import sdk_session, wait_for_status
from server_process import ServerProcess

CATEGORIES = {
    "network": "router dhcp wifi ethernet lease gateway dns vpn packet switch modem",
    "printer": "toner paper jam tray cartridge spooler duplex scan fuser ink queue",
    "screen": "monitor flicker resolution hdmi brightness pixel display refresh cable panel",
}


def tickets_jsonl(count: int = 240, seed: int = 5) -> str:
    rng = random.Random(seed)
    lines = []
    for index in range(count):
        category = list(CATEGORIES)[index % 3]
        words = CATEGORIES[category].split() + "my the is after please help today".split()
        lines.append(json.dumps({
            "ticket_id": f"T{index}", "category": category, "priority": "low",
            "content": " ".join(rng.choice(words) for _ in range(rng.randint(12, 30)))}))
    return "\n".join(lines) + "\n"


def build(name: str, bucket: str, prefix: str, group: str, **options):
    import sagemaker

    from modelyard.examples.ticket_classifier.pipeline import build_pipeline

    return build_pipeline(name, sagemaker.get_execution_role(), bucket, prefix, group=group, **options)


@pytest.fixture()
def ticket_pipeline(server, unique_name):
    session = sdk_session()
    bucket = session.default_bucket()
    server.client("s3").put_object(Bucket=bucket, Key=f"{unique_name}/raw/tickets.jsonl",
                                   Body=tickets_jsonl().encode())
    pipeline = build(unique_name, bucket, unique_name, group=f"{unique_name}-group")
    pipeline.upsert(role_arn=session.get_caller_identity_arn())
    return pipeline, bucket


def steps_by_name(execution) -> dict[str, dict]:
    return {step["StepName"]: step for step in execution.list_steps()}


def test_pipeline_runs_end_to_end_and_registers_the_model(server, ticket_pipeline, unique_name):
    pipeline, bucket = ticket_pipeline
    execution = pipeline.start(parameters={"AccuracyThreshold": 0.6, "LearningRate": 0.5})
    execution.wait(delay=1, max_attempts=180)
    description = execution.describe()
    assert description["PipelineExecutionStatus"] == "Succeeded", description.get("FailureReason")

    steps = steps_by_name(execution)
    assert set(steps) == {"Preprocess", "Train", "Evaluate", "CheckAccuracy", "Register-RegisterModel"}
    assert all(step["StepStatus"] == "Succeeded" for step in steps.values())
    assert steps["Train"]["Metadata"]["TrainingJob"]["Arn"].startswith("arn:aws:sagemaker:")
    assert steps["Preprocess"]["Metadata"]["ProcessingJob"]["Arn"]
    assert steps["CheckAccuracy"]["Metadata"]["Condition"]["Outcome"] == "True"

    client = server.client("sagemaker")
    training_job = steps["Train"]["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[1]
    hyperparameters = client.describe_training_job(TrainingJobName=training_job)["HyperParameters"]
    assert hyperparameters["learning_rate"] == "0.5"  # the override reached the job

    package_arn = steps["Register-RegisterModel"]["Metadata"]["RegisterModel"]["Arn"]
    package = client.describe_model_package(ModelPackageName=package_arn)
    assert package["ModelPackageGroupName"] == f"{unique_name}-group"
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    metrics_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    metrics_bucket, _, key = metrics_uri[len("s3://"):].partition("/")
    report = json.loads(server.client("s3").get_object(Bucket=metrics_bucket, Key=key)["Body"].read())
    assert report["metrics"]["accuracy"] >= 0.6
    parameters = {item["Name"]: item["Value"] for item in
                  client.list_pipeline_parameters_for_execution(
                      PipelineExecutionArn=execution.arn)["PipelineParameters"]}
    assert parameters["AccuracyThreshold"] == "0.6" and parameters["Epochs"] == "10"


def test_false_condition_fails_with_the_resolved_message(server, ticket_pipeline, unique_name):
    pipeline, _ = ticket_pipeline
    execution = pipeline.start(parameters={"AccuracyThreshold": 1.5})
    with pytest.raises(Exception):
        execution.wait(delay=1, max_attempts=180)
    description = execution.describe()
    assert description["PipelineExecutionStatus"] == "Failed"
    assert description["FailureReason"] == "Step failure: One or multiple steps failed."
    steps = steps_by_name(execution)
    message = steps["AccuracyTooLow"]["Metadata"]["Fail"]["ErrorMessage"]
    assert message.startswith("Accuracy ") and message.endswith("is below the threshold 1.5")
    assert steps["AccuracyTooLow"]["FailureReason"] == message
    assert steps["CheckAccuracy"]["Metadata"]["Condition"]["Outcome"] == "False"
    assert "Register-RegisterModel" not in steps
    packages = server.client("sagemaker").list_model_packages(
        ModelPackageGroupName=f"{unique_name}-group")["ModelPackageSummaryList"] \
        if _group_exists(server, f"{unique_name}-group") else []
    assert packages == []


def _group_exists(server, name: str) -> bool:
    try:
        server.client("sagemaker").describe_model_package_group(ModelPackageGroupName=name)
        return True
    except ClientError:
        return False


def test_unchanged_rerun_hits_the_cache_and_a_new_parameter_reruns(server, ticket_pipeline):
    pipeline, _ = ticket_pipeline
    client = server.client("sagemaker")
    first = pipeline.start(parameters={"AccuracyThreshold": 0.0})
    first.wait(delay=1, max_attempts=180)
    jobs_before = len(client.list_training_jobs(MaxResults=100)["TrainingJobSummaries"])

    pipeline.upsert(role_arn=pipeline.sagemaker_session.get_caller_identity_arn())  # unchanged
    second = pipeline.start(parameters={"AccuracyThreshold": 0.0})
    second.wait(delay=1, max_attempts=180)
    steps = steps_by_name(second)
    for name in ("Preprocess", "Train"):
        assert steps[name]["CacheHitResult"]["SourcePipelineExecutionArn"] == first.arn
    assert len(client.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]) == jobs_before

    third = pipeline.start(parameters={"AccuracyThreshold": 0.0, "Epochs": 3})
    third.wait(delay=1, max_attempts=180)
    steps = steps_by_name(third)
    assert "CacheHitResult" in steps["Preprocess"]  # its inputs did not change
    assert "CacheHitResult" not in steps["Train"]
    assert len(client.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]) == jobs_before + 1


FLAKY = """
import boto3, os
s3 = boto3.client("s3")
bucket, key = os.environ["MARKER_BUCKET"], os.environ["MARKER_KEY"]
try:
    s3.head_object(Bucket=bucket, Key=key)
except Exception:
    s3.put_object(Bucket=bucket, Key=key, Body=b"first attempt")
    raise SystemExit("simulated crash on the first attempt")
print("second attempt succeeds")
"""


def test_retry_policy_retries_a_failing_step(server, unique_name, tmp_path):
    import sagemaker
    from sagemaker.sklearn.processing import SKLearnProcessor
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.pipeline_context import PipelineSession
    from sagemaker.workflow.retry import SageMakerJobExceptionTypeEnum, SageMakerJobStepRetryPolicy
    from sagemaker.workflow.steps import ProcessingStep

    bucket = sdk_session().default_bucket()
    session = PipelineSession(default_bucket=bucket)
    script = tmp_path / "flaky.py"
    script.write_text(FLAKY)
    processor = SKLearnProcessor(
        framework_version="1.2-1", role=sagemaker.get_execution_role(), instance_count=1,
        instance_type="ml.m5.large", sagemaker_session=session,
        env={"MARKER_BUCKET": bucket, "MARKER_KEY": f"{unique_name}/marker"})
    step = ProcessingStep("Flaky", step_args=processor.run(code=str(script)), retry_policies=[
        SageMakerJobStepRetryPolicy(exception_types=[SageMakerJobExceptionTypeEnum.INTERNAL_ERROR],
                                    max_attempts=3, interval_seconds=1)])
    pipeline = Pipeline(unique_name, steps=[step], sagemaker_session=session)
    pipeline.upsert(role_arn=sagemaker.get_execution_role())
    execution = pipeline.start()
    execution.wait(delay=1, max_attempts=120)
    assert execution.describe()["PipelineExecutionStatus"] == "Succeeded"
    assert steps_by_name(execution)["Flaky"]["AttemptCount"] == 2


def definition(steps: list[dict], parameters: list[dict] | None = None) -> str:
    return json.dumps({"Version": "2020-12-01", "Metadata": {},
                       "Parameters": parameters or [], "Steps": steps})


FAIL_STEP = {"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "stopped"}}


@pytest.mark.parametrize("steps,parameters,expected", [
    ([{**FAIL_STEP, "Arguments": {"ErrorMessage": {"Get": "Steps.Missing.ProcessingJobName"}}}],
     None, "Missing"),
    ([{**FAIL_STEP, "Name": "A", "DependsOn": ["B"]}, {**FAIL_STEP, "Name": "B", "DependsOn": ["A"]}],
     None, "cycle"),
    ([{**FAIL_STEP, "Arguments": {"ErrorMessage": {"Get": "Parameters.Nope"}}}], None, "Nope"),
    ([FAIL_STEP], [{"Name": "Count", "Type": "Integer", "DefaultValue": "many"}], "Count"),
    ([{"Name": "Notify", "Type": "Lambda", "Arguments": {}, "FunctionArn": "arn:aws:lambda:x"}],
     None, "Lambda"),
])
def test_invalid_definitions_are_refused_naming_the_problem(sagemaker_client, unique_name,
                                                             steps, parameters, expected):
    with pytest.raises(ClientError) as raised:
        sagemaker_client.create_pipeline(
            PipelineName=unique_name, PipelineDefinition=definition(steps, parameters),
            RoleArn="arn:aws:iam::123456789012:role/ModelyardExecutionRole")
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert expected.lower() in raised.value.response["Error"]["Message"].lower()


def test_start_refuses_unknown_parameters_and_type_mismatches(sagemaker_client, unique_name):
    sagemaker_client.create_pipeline(
        PipelineName=unique_name, RoleArn="arn:aws:iam::123456789012:role/ModelyardExecutionRole",
        PipelineDefinition=definition(
            [FAIL_STEP], [{"Name": "Epochs", "Type": "Integer", "DefaultValue": 5}]))
    for parameters, expected in (([{"Name": "Epoch", "Value": "3"}], "Epoch"),
                                 ([{"Name": "Epochs", "Value": "three"}], "Epochs")):
        with pytest.raises(ClientError) as raised:
            sagemaker_client.start_pipeline_execution(
                PipelineName=unique_name, PipelineParameters=parameters, ClientRequestToken="t" * 36)
        assert raised.value.response["Error"]["Code"] == "ValidationException"
        assert expected in raised.value.response["Error"]["Message"]
    executions = sagemaker_client.list_pipeline_executions(PipelineName=unique_name)
    assert executions["PipelineExecutionSummaries"] == []


def test_execution_survives_a_server_kill_during_training(tmp_path):
    import os

    server = ServerProcess.start(tmp_path / "data")
    # Its own server for the SDK (the session server's settings may not be exported yet:
    # under xdist this can be a worker's first test).
    saved = dict(os.environ)
    os.environ.update(server.client_env())
    try:
        session = sdk_session()
        bucket = session.default_bucket()
        server.client("s3").put_object(Bucket=bucket, Key="survive/raw/tickets.jsonl",
                                       Body=tickets_jsonl().encode())
        pipeline = build("Survivor", bucket, "survive", group="survivor-group")
        pipeline.upsert(role_arn=session.get_caller_identity_arn())
        execution = pipeline.start(parameters={"AccuracyThreshold": 0.0, "Epochs": 40})
        client = server.client("sagemaker")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            steps = {step["StepName"]: step for step in client.list_pipeline_execution_steps(
                PipelineExecutionArn=execution.arn)["PipelineExecutionSteps"]}
            if steps.get("Train", {}).get("StepStatus") == "Executing":
                break
            time.sleep(0.2)
        preprocess_job = steps["Preprocess"]["Metadata"]["ProcessingJob"]["Arn"]
        server.kill()
        restarted = ServerProcess.start(tmp_path / "data", port=server.port)
        try:
            client = restarted.client("sagemaker")
            wait_for_status(lambda: client.describe_pipeline_execution(
                PipelineExecutionArn=execution.arn), "PipelineExecutionStatus",
                {"Succeeded", "Failed", "Stopped"}, timeout=600)
            final = client.describe_pipeline_execution(PipelineExecutionArn=execution.arn)
            assert final["PipelineExecutionStatus"] == "Succeeded", final.get("FailureReason")
            steps = {step["StepName"]: step for step in client.list_pipeline_execution_steps(
                PipelineExecutionArn=execution.arn)["PipelineExecutionSteps"]}
            assert steps["Preprocess"]["Metadata"]["ProcessingJob"]["Arn"] == preprocess_job
            assert len(client.list_processing_jobs(
                NameContains="Preprocess")["ProcessingJobSummaries"]) == 1
        finally:
            restarted.stop()
    finally:
        server.stop()  # (killed above, unless the test failed before)
        os.environ.clear()
        os.environ.update(saved)
