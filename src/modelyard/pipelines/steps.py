"""What each pipeline step type does when it starts, and how a running one is checked.

Job steps (Processing, Training, Transform) create real jobs through the same handlers the API
uses, so a step's job is validated, run and listed like any other. The other step types
finish as they start: a Condition evaluates, a Fail fails, RegisterModel and Model
create registry entries. A Callback waits for SendPipelineExecutionStep{Success,Failure}.
A Lambda step invokes its function off the engine's thread and is polled like a job.
A QualityCheck step runs the Model Monitor analyzer as a processing job (quality_check.py).
A Tuning step runs a hyperparameter tuning job through the API (tuning_step.py).
"""

from __future__ import annotations

import json
import re
import secrets
import string
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..api.context import RequestContext
from ..api.errors import AwsError
from ..api.shapes import operation_model, parse_input
from ..engine import processing_job, training_job, transform_job
from ..engine.channels import S3Location
from .expressions import ExpressionError, Scope, evaluate_conditions, to_text

if TYPE_CHECKING:
    from ..platform import Platform
    from .definition import StepSpec

JOB_STEPS = {
    "Processing": ("CreateProcessingJob", processing_job.KIND, "ProcessingJobName",
                   "ProcessingJobStatus", "ProcessingJob", "ProcessingJobArn"),
    "Training": ("CreateTrainingJob", training_job.KIND, "TrainingJobName",
                 "TrainingJobStatus", "TrainingJob", "TrainingJobArn"),
    "Transform": ("CreateTransformJob", transform_job.KIND, "TransformJobName",
                  "TransformJobStatus", "TransformJob", "TransformJobArn"),
}
NOT_YET = {
    "ClarifyCheck": "SageMaker Clarify",
}


@dataclass
class StepResult:
    """How a step stands after starting or checking it."""

    status: str  # "Executing", "Succeeded", "Failed"
    metadata: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    failure_reason: str | None = None
    job: dict[str, str] | None = None  # {"kind", "name"} of the job a job step runs
    retryable: bool = False  # a failure SageMakerJobStepRetryPolicy may retry


def internal_context(platform: "Platform", operation: str) -> RequestContext:
    return RequestContext(platform, uuid.uuid4().hex, "sagemaker", operation, "pipelines")


def job_name(execution_id: str, step_name: str) -> str:
    """SageMaker's pattern: pipelines-<execution>-<step>-<random>, within 63 characters."""
    cleaned = re.sub(r"[^a-zA-Z0-9]+", "-", step_name).strip("-") or "step"
    return f"pipelines-{execution_id}-{cleaned}"[:52] + "-" + uuid.uuid4().hex[:10]


def start_step(platform: "Platform", spec: "StepSpec", arguments: Any, scope: Scope,
               execution_id: str) -> StepResult:
    if spec.type in JOB_STEPS:
        return _start_job(platform, spec, arguments, execution_id)
    if spec.type == "Condition":
        outcome = evaluate_conditions(arguments.get("Conditions", []), scope)
        return StepResult("Succeeded", {"Condition": {"Outcome": str(outcome)}}, {"Outcome": outcome})
    if spec.type == "Fail":
        # The step keeps its message; SageMaker leaves FailureReason out when it is empty.
        value = arguments.get("ErrorMessage")  # the SDK writes "" when there is no message
        message = "" if value is None else to_text(value)
        return StepResult("Failed", {"Fail": {"ErrorMessage": message}},
                          failure_reason=message or None)
    if spec.type == "RegisterModel":
        return _register_model(platform, arguments)
    if spec.type in ("Model", "CreateModel"):
        return _create_model(platform, arguments, execution_id, spec.name)
    if spec.type == "Lambda":
        from ..lambdas import pipeline_step

        return pipeline_step.start(platform, spec, arguments)
    if spec.type == "QualityCheck":
        from . import quality_check

        return quality_check.start(platform, spec, arguments, scope, execution_id)
    if spec.type == "Tuning":
        from . import tuning_step

        return tuning_step.start(platform, spec, arguments, execution_id)
    if spec.type == "Callback":
        # The API's CallbackToken is ten letters and digits.
        token = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(10))
        return StepResult("Executing", {"Callback": {
            "CallbackToken": token, "SqsQueueUrl": spec.raw.get("SqsQueueUrl", ""),
            "OutputParameters": []}})
    if spec.type in NOT_YET:
        return StepResult("Failed", failure_reason=(
            f"{spec.type} step {spec.name} needs {NOT_YET[spec.type]}, which modelyard does "
            "not run yet."))
    return StepResult("Failed", failure_reason=f"modelyard cannot run {spec.type} step {spec.name}.")


def _start_job(platform: "Platform", spec: "StepSpec", arguments: dict, execution_id: str) -> StepResult:
    operation, _, name_member, _, metadata_key, arn_member = JOB_STEPS[spec.type]
    name = job_name(execution_id, spec.name)
    request = {**arguments, name_member: name}
    ctx = internal_context(platform, operation)
    try:
        request = parse_input(operation_model("sagemaker", operation).input_shape, request)
        handler = _handlers()[operation]
        response = handler(ctx, request)
    except AwsError as error:
        return StepResult("Failed", failure_reason=f"{error.code}: {error.message}")
    kind = JOB_STEPS[spec.type][1]
    return StepResult("Executing", {metadata_key: {"Arn": response[arn_member]}},
                      job={"kind": kind, "name": name})


def check_job(platform: "Platform", spec: "StepSpec", job: dict[str, str],
              metadata: dict[str, Any]) -> StepResult:
    if job.get("kind") == "Lambda":
        from ..lambdas import pipeline_step

        return pipeline_step.check(platform, spec, job, metadata)
    if spec.type == "QualityCheck":
        from . import quality_check

        return quality_check.check(platform, spec, job, metadata)
    if spec.type == "Tuning":
        from . import tuning_step

        return tuning_step.check(platform, job, metadata)
    _, kind, _, status_field, _, _ = JOB_STEPS[spec.type]
    resource = platform.resources.get(kind, job["name"])
    if resource is None:
        return StepResult("Failed", metadata, failure_reason=f"The job {job['name']} disappeared.")
    document = resource.document
    status = document[status_field]
    if status in ("InProgress", "Stopping"):
        return StepResult("Executing", metadata, job=job)
    properties = {key: value for key, value in document.items() if not key.startswith("_")}
    if status == "Completed":
        return StepResult("Succeeded", metadata, properties, job=job)
    reason = document.get("FailureReason") or f"{kind} {job['name']} ended {status}"
    # A ClientError is the user's input; anything else may pass on a second attempt.
    retryable = status == "Failed" and not reason.startswith("ClientError")
    return StepResult("Stopped" if status == "Stopped" else "Failed", metadata, properties,
                      failure_reason=reason, job=job, retryable=retryable)


def job_status(platform: "Platform", job: dict[str, str]) -> str | None:
    """The status of a step's job of any kind a step runs; None when there is no such job."""
    from . import tuning_step

    if job["kind"] == tuning_step.KIND:
        return tuning_step.status(platform, job)
    resource = platform.resources.get(job["kind"], job["name"])
    # TrainingJobStatus, ProcessingJobStatus, TransformJobStatus
    return None if resource is None else resource.document.get(f"{job['kind']}Status")


def stop_job(platform: "Platform", job: dict[str, str]) -> None:
    """Ask a step's running job to stop, through the same handler StopXJob uses."""
    from . import tuning_step

    if job["kind"] == tuning_step.KIND:
        tuning_step.stop(platform, job)
        return
    operation, member = next((create.replace("Create", "Stop", 1), name_member)
                             for create, kind, name_member, *_ in JOB_STEPS.values()
                             if kind == job["kind"])
    _handlers()[operation](internal_context(platform, operation), {member: job["name"]})


def read_property_files(platform: "Platform", spec: "StepSpec",
                        properties: dict[str, Any]) -> dict[str, Any]:
    """Fetch a finished processing step's property files (JSON) from its outputs."""
    outputs = {item["OutputName"]: item for item in
               properties.get("ProcessingOutputConfig", {}).get("Outputs", [])}
    files: dict[str, Any] = {}
    for property_file in spec.property_files:
        output = outputs.get(property_file.output_name)
        if output is None:
            raise ExpressionError(
                f"Property file {property_file.name} of step {spec.name} names output "
                f"{property_file.output_name}, which the step does not have.")
        location = S3Location.parse(output["S3Output"]["S3Uri"]).child(property_file.file_path)
        try:
            reader = platform.objects.open_object(location.bucket, location.key)
            files[property_file.name] = json.loads(b"".join(reader.iter_chunks()))
        except AwsError as error:
            raise ExpressionError(
                f"Property file {property_file.name} of step {spec.name} was not written: "
                f"{location.uri}: {error.message}") from None
        except ValueError as error:
            raise ExpressionError(
                f"Property file {property_file.name} ({location.uri}) is not JSON: {error}") from None
    return files


def _register_model(platform: "Platform", arguments: dict) -> StepResult:
    from ..services import modelregistry

    ctx = internal_context(platform, "CreateModelPackage")
    # The SDK writes SkipModelValidation "None" and may pass Tags, which versioned
    # packages cannot carry; neither belongs in the CreateModelPackage request here.
    request = {key: value for key, value in arguments.items()
               if key != "Tags" and not (key == "SkipModelValidation" and value == "None")}
    try:
        if request.get("ModelPackageGroupName"):
            # SageMaker Pipelines creates the group a RegisterModel step names.
            modelregistry.ensure_model_package_group(ctx, request["ModelPackageGroupName"])
        request = parse_input(operation_model("sagemaker", "CreateModelPackage").input_shape, request)
        response = modelregistry.OPERATIONS["CreateModelPackage"](ctx, request)
    except AwsError as error:
        return StepResult("Failed", failure_reason=f"{error.code}: {error.message}")
    arn = response["ModelPackageArn"]
    return StepResult("Succeeded", {"RegisterModel": {"Arn": arn}}, {"ModelPackageArn": arn})


def _create_model(platform: "Platform", arguments: dict, execution_id: str, step: str) -> StepResult:
    from ..services import OPERATIONS

    name = arguments.get("ModelName") or job_name(execution_id, step)
    ctx = internal_context(platform, "CreateModel")
    try:
        request = parse_input(operation_model("sagemaker", "CreateModel").input_shape,
                              {**arguments, "ModelName": name})
        response = OPERATIONS["sagemaker"]["CreateModel"](ctx, request)
    except (AwsError, KeyError) as error:
        message = error.message if isinstance(error, AwsError) else "CreateModel is not available"
        return StepResult("Failed", failure_reason=message)
    return StepResult("Succeeded", {"Model": {"Arn": response["ModelArn"]}}, {"ModelName": name})


def _handlers() -> dict[str, Any]:
    from ..services import OPERATIONS

    return OPERATIONS["sagemaker"]
