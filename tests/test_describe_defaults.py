"""Describe calls show the members SageMaker fills in when a Create request leaves them out.

Code written for AWS reads these members without ``.get`` (the SDK's ``attach`` and
``describe`` helpers, user scripts that log a job's runtime limit), so each default is
checked on a job created through boto3 with the member left out, once the job has ended:
the defaults are part of the stored job, not something only the first Describe adds.
Each default is one test; two small jobs are shared by the module.
"""

from __future__ import annotations

import uuid

import pytest

from jobs_helpers import SKLEARN_IMAGE, sdk_session, wait_for_status

ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"
ENDED = {"Completed", "Failed", "Stopped"}
TICKETS = [("network", "router dhcp lease lost after reboot"),
           ("printer", "toner cartridge jammed in tray two")]


@pytest.fixture(scope="module")
def bucket(server) -> str:
    name = f"describe-defaults-{uuid.uuid4().hex[:8]}"
    s3 = server.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="input/tickets.txt", Body=b"router not responding\n")
    lines = "".join(f"__label__{label} {text}\n" for label, text in TICKETS) * 10
    s3.put_object(Bucket=name, Key="train/train.txt", Body=lines.encode())
    return name


@pytest.fixture(scope="module")
def processing_job(server, bucket) -> dict:
    """A minimal processing job: no StoppingCondition, no AppManaged on its input or output."""
    client = server.client("sagemaker")
    name = f"defaults-processing-{uuid.uuid4().hex[:8]}"
    client.create_processing_job(
        ProcessingJobName=name,
        RoleArn=ROLE,
        AppSpecification={"ImageUri": SKLEARN_IMAGE,
                          "ContainerEntrypoint": ["python3", "-c", "pass"]},
        ProcessingResources={"ClusterConfig": {
            "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        ProcessingInputs=[{"InputName": "tickets", "S3Input": {
            "S3Uri": f"s3://{bucket}/input", "S3DataType": "S3Prefix",
            "LocalPath": "/opt/ml/processing/input"}}],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "out", "S3Output": {
            "S3Uri": f"s3://{bucket}/{name}/out", "LocalPath": "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob"}}]},
    )
    return wait_for_status(lambda: client.describe_processing_job(ProcessingJobName=name),
                           "ProcessingJobStatus", ENDED, timeout=180)


@pytest.fixture(scope="module")
def training_job(server, bucket) -> dict:
    """A minimal training job: its channel and output config name only what they must."""
    client = server.client("sagemaker")
    name = f"defaults-training-{uuid.uuid4().hex[:8]}"
    client.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification={
            "TrainingImage": "811284229777.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1",
            "TrainingInputMode": "File"},
        HyperParameters={"mode": "supervised"},
        InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train"}}}],
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/{name}/models"},
        ResourceConfig={"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    described = wait_for_status(lambda: client.describe_training_job(TrainingJobName=name),
                                "TrainingJobStatus", ENDED, timeout=180)
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    return described


# --- DescribeProcessingJob -------------------------------------------------------------------


def test_processing_job_runtime_limit_defaults_to_one_day(processing_job):
    assert processing_job["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}


def test_processing_inputs_are_managed_by_sagemaker_by_default(processing_job):
    (item,) = processing_job["ProcessingInputs"]
    assert item["AppManaged"] is False
    assert item["S3Input"]["LocalPath"] == "/opt/ml/processing/input"  # the rest as given


def test_processing_outputs_are_managed_by_sagemaker_by_default(processing_job):
    (item,) = processing_job["ProcessingOutputConfig"]["Outputs"]
    assert item["AppManaged"] is False
    assert item["S3Output"]["S3UploadMode"] == "EndOfJob"


def test_processing_defaults_do_not_override_what_the_request_gave(server, bucket, unique_name):
    client = server.client("sagemaker")
    client.create_processing_job(
        ProcessingJobName=unique_name,
        RoleArn=ROLE,
        AppSpecification={"ImageUri": SKLEARN_IMAGE,
                          "ContainerEntrypoint": ["python3", "-c", "pass"]},
        ProcessingResources={"ClusterConfig": {
            "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    described = wait_for_status(
        lambda: client.describe_processing_job(ProcessingJobName=unique_name),
        "ProcessingJobStatus", ENDED, timeout=180)
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 600}
    assert "ProcessingInputs" not in described  # no inputs given: none invented


# --- DescribeTrainingJob ---------------------------------------------------------------------


def test_training_channel_compression_defaults_to_none(training_job):
    (channel,) = training_job["InputDataConfig"]
    assert channel["CompressionType"] == "None"


def test_training_channel_record_wrapper_defaults_to_none(training_job):
    (channel,) = training_job["InputDataConfig"]
    assert channel["RecordWrapperType"] == "None"
    assert channel["DataSource"]["S3DataSource"]["S3DataType"] == "S3Prefix"  # as given


def test_training_output_kms_key_defaults_to_empty(training_job):
    # SageMaker reports the absent key as "" (S3's default encryption is used).
    assert training_job["OutputDataConfig"]["KmsKeyId"] == ""
    assert training_job["OutputDataConfig"]["S3OutputPath"].endswith("/models")


def test_sdk_attaches_to_a_job_created_without_a_kms_key(server, training_job):
    # Estimator.attach reads OutputDataConfig["KmsKeyId"] unconditionally.
    from sagemaker.estimator import Estimator

    estimator = Estimator.attach(training_job["TrainingJobName"], sagemaker_session=sdk_session())
    assert estimator.output_kms_key == ""
    assert estimator.max_run == 600
    assert estimator.model_data == training_job["ModelArtifacts"]["S3ModelArtifacts"]


def test_training_flags_that_were_already_filled_in(training_job):
    # Filled before this change; kept here so the whole set of defaults is in one place.
    assert training_job["EnableNetworkIsolation"] is False
    assert training_job["EnableInterContainerTrafficEncryption"] is False
    assert training_job["EnableManagedSpotTraining"] is False
    assert training_job["StoppingCondition"] == {"MaxRuntimeInSeconds": 600}
