"""Training jobs: CreateTrainingJob, DescribeTrainingJob, ListTrainingJobs, StopTrainingJob."""

from __future__ import annotations

import copy
from typing import Any

from ..api.context import RequestContext
from ..api.errors import validation_error
from ..engine.images import require_image, training_runtime
from ..engine.job_records import add_transition, update_job
from ..engine.training_job import KIND
from .common import resource_arn
from .jobs_common import (
    DEFAULT_MAX_RUNTIME_SECONDS, check_metric_definitions, find_job, job_exists, list_jobs,
    not_stoppable, require_file_mode, require_s3_uri, require_single_instance,
)

LABEL = "Training job"


def create_training_job(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["TrainingJobName"]
    algorithm = request["AlgorithmSpecification"]
    if "TrainingImage" not in algorithm:
        raise validation_error(
            "AlgorithmSpecification.TrainingImage is required by modelyard: algorithms by "
            "AlgorithmName (AWS Marketplace) are not available. Pass an image URI from "
            "sagemaker.image_uris.retrieve."
        )
    image = require_image(algorithm["TrainingImage"], "AlgorithmSpecification.TrainingImage")
    training_runtime(image, request.get("HyperParameters", {}))
    require_single_instance(request["ResourceConfig"].get("InstanceCount", 1),
                            "ResourceConfig.InstanceCount")
    require_file_mode(algorithm.get("TrainingInputMode"), "AlgorithmSpecification.TrainingInputMode")
    for channel in request.get("InputDataConfig", []):
        require_file_mode(channel.get("InputMode"), f"InputDataConfig {channel['ChannelName']} InputMode")
        source = channel["DataSource"].get("S3DataSource")
        if source is None:
            raise validation_error(
                f"Channel {channel['ChannelName']}: only S3DataSource inputs are supported.")
        require_s3_uri(source["S3Uri"], f"Channel {channel['ChannelName']} S3Uri")
    require_s3_uri(request["OutputDataConfig"]["S3OutputPath"], "OutputDataConfig.S3OutputPath")
    if "CheckpointConfig" in request:
        require_s3_uri(request["CheckpointConfig"]["S3Uri"], "CheckpointConfig.S3Uri")
    check_metric_definitions(algorithm.get("MetricDefinitions", []))

    arn = resource_arn(ctx, "training-job", name)
    now = ctx.now
    document = {
        **_with_defaults(request),
        "TrainingJobArn": arn,
        "TrainingJobStatus": "InProgress",
        "SecondaryStatus": "Starting",
        "SecondaryStatusTransitions": [
            {"Status": "Starting", "StartTime": now,
             "StatusMessage": "Preparing the instances for training"},
        ],
        "CreationTime": now,
        "LastModifiedTime": now,
        "ModelArtifacts": {"S3ModelArtifacts": ""},
    }
    if ctx.internal.get("TuningJobArn"):  # a tuning job's trial (tuning/loop.py)
        document["TuningJobArn"] = ctx.internal["TuningJobArn"]
    ctx.platform.resources.create(KIND, name, arn, document, now=now, status="InProgress",
                                  already_exists=lambda: job_exists(LABEL, arn))
    ctx.platform.executor.submit(KIND, name)
    return {"TrainingJobArn": arn}


def _with_defaults(request: dict[str, Any]) -> dict[str, Any]:
    """The request with the members SageMaker fills in when they are left out.

    DescribeTrainingJob shows them; the runtime limit is enforced like a given one.
    """
    filled = copy.deepcopy(request)
    for flag in ("EnableNetworkIsolation", "EnableInterContainerTrafficEncryption",
                 "EnableManagedSpotTraining"):
        filled.setdefault(flag, False)
    filled["StoppingCondition"] = {"MaxRuntimeInSeconds": DEFAULT_MAX_RUNTIME_SECONDS,
                                   **filled.get("StoppingCondition", {})}
    for channel in filled.get("InputDataConfig", []):
        channel.setdefault("CompressionType", "None")
        channel.setdefault("RecordWrapperType", "None")
    filled["OutputDataConfig"].setdefault("KmsKeyId", "")  # "": S3's default encryption
    return filled


def describe_training_job(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["TrainingJobName"]
    found = find_job(ctx, KIND, LABEL, name)
    document = dict(found.document)
    if document.get("ModelArtifacts", {}).get("S3ModelArtifacts") == "":
        document.pop("ModelArtifacts")  # not known until the job uploads them
    return document


def list_training_jobs(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return list_jobs(ctx, KIND, request, "TrainingJobSummaries")


def stop_training_job(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["TrainingJobName"]
    found = find_job(ctx, KIND, LABEL, name)
    status = found.document["TrainingJobStatus"]
    if status != "InProgress":
        raise not_stoppable(LABEL, name, status)
    now = ctx.now

    def change(document: dict) -> None:
        document["TrainingJobStatus"] = "Stopping"
        add_transition(document, "Stopping", "Stopping the training job", now)

    update_job(ctx.platform, KIND, name, change, status_field="TrainingJobStatus")
    ctx.platform.executor.request_stop(KIND, name)
    return {}


OPERATIONS = {
    "CreateTrainingJob": create_training_job,
    "DescribeTrainingJob": describe_training_job,
    "ListTrainingJobs": list_training_jobs,
    "StopTrainingJob": stop_training_job,
}
