"""The pipeline TuningStep: a hyperparameter tuning job, run and watched through the API.

The SDK's ``TuningStep`` compiles to a ``CreateHyperParameterTuningJob`` request without
its name. The step names the job (within the API's 32 characters, so that its trials'
names still fit), creates it through ``dispatch.call`` exactly as a client would, and is
``Executing`` until the job ends. Its properties are, as the SDK models them, the job's
``DescribeHyperParameterTuningJob`` response plus ``TrainingJobSummaries`` from
``ListTrainingJobsForHyperParameterTuningJob``: up to 50 trials with an objective value,
best first (descending for ``Maximize``, ascending for ``Minimize``), which is what
``TuningStep.get_top_model_s3_uri(top_k=...)`` indexes
(``Steps.<step>.TrainingJobSummaries[<k>].TrainingJobName``).
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from .. import dispatch
from ..api.errors import AwsError
from ..api.shapes import operation_model, shape_output
from .steps import StepResult

if TYPE_CHECKING:
    from ..platform import Platform
    from .definition import StepSpec

KIND = "HyperParameterTuningJob"  # the ``kind`` of a Tuning step's job record
TOP_JOBS = 50  # the SDK: "tuning step stores up to 50 top performing training jobs"
RUNNING = ("InProgress", "Stopping")
MAX_NAME = 32  # botocore HyperParameterTuningJobName


def tuning_job_name(execution_id: str, step_name: str) -> str:
    """``<execution>-<step>-<random>`` within 32 letters, digits and single hyphens."""
    cleaned = re.sub(r"[^a-zA-Z0-9]+", "-", step_name).strip("-")[:9].strip("-") or "tuning"
    return f"{execution_id[:12]}-{cleaned}-{uuid.uuid4().hex[:8]}"[:MAX_NAME]


def start(platform: "Platform", spec: "StepSpec", arguments: dict, execution_id: str) -> StepResult:
    """Create the step's tuning job; the step runs until the job ends."""
    name = tuning_job_name(execution_id, spec.name)
    request = {**arguments, "HyperParameterTuningJobName": name}
    try:
        response = dispatch.call(platform, "sagemaker", "CreateHyperParameterTuningJob", request,
                                 caller="pipelines")
    except AwsError as error:
        return StepResult("Failed", failure_reason=f"{error.code}: {error.message}")
    arn = response["HyperParameterTuningJobArn"]
    return StepResult("Executing", {"TuningJob": {"Arn": arn}}, job={"kind": KIND, "name": name})


def check(platform: "Platform", job: dict[str, str], metadata: dict[str, Any]) -> StepResult:
    """How the step's tuning job stands; on success, its properties for later steps."""
    try:
        description = _call(platform, "DescribeHyperParameterTuningJob",
                            {"HyperParameterTuningJobName": job["name"]})
    except AwsError as error:
        if error.code in ("ResourceNotFound", "ValidationException"):
            return StepResult("Failed", metadata, job=job, failure_reason=(
                f"The tuning job {job['name']} disappeared: {error.message}"))
        raise
    status = description["HyperParameterTuningJobStatus"]
    if status in RUNNING:
        return StepResult("Executing", metadata, job=job)
    properties = {**description, "TrainingJobSummaries": top_training_jobs(platform, description)}
    if status == "Completed":
        return StepResult("Succeeded", metadata, properties, job=job)
    reason = description.get("FailureReason") or f"{KIND} {job['name']} ended {status}"
    return StepResult("Stopped" if status == "Stopped" else "Failed", metadata, properties,
                      failure_reason=reason, job=job,
                      retryable=status == "Failed" and not reason.startswith("ClientError"))


def status(platform: "Platform", job: dict[str, str]) -> str | None:
    """The tuning job's status; None when it is gone."""
    try:
        description = _call(platform, "DescribeHyperParameterTuningJob",
                            {"HyperParameterTuningJobName": job["name"]})
    except AwsError:
        return None
    return description["HyperParameterTuningJobStatus"]


def stop(platform: "Platform", job: dict[str, str]) -> None:
    """StopHyperParameterTuningJob: its running trials stop, and then the job."""
    try:
        _call(platform, "StopHyperParameterTuningJob", {"HyperParameterTuningJobName": job["name"]})
    except AwsError as error:
        if error.code not in ("ResourceNotFound", "ValidationException"):
            raise  # a job that already ended or is gone needs no stop


def top_training_jobs(platform: "Platform", description: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's trials with an objective value, best first, at most 50."""
    order = "Ascending" if objective_type(description) == "Minimize" else "Descending"
    response = _call(platform, "ListTrainingJobsForHyperParameterTuningJob", {
        "HyperParameterTuningJobName": description["HyperParameterTuningJobName"],
        "SortBy": "FinalObjectiveMetricValue", "SortOrder": order, "MaxResults": TOP_JOBS})
    return response.get("TrainingJobSummaries", [])[:TOP_JOBS]


def objective_type(description: dict[str, Any]) -> str:
    """Maximize or Minimize, from the job's config or its (first) training definition."""
    objective = description.get("HyperParameterTuningJobConfig", {}).get(
        "HyperParameterTuningJobObjective")
    definitions = description.get("TrainingJobDefinitions") or [
        description.get("TrainingJobDefinition") or {}]
    for candidate in [objective] + [item.get("TuningObjective") for item in definitions]:
        if candidate and candidate.get("Type"):
            return candidate["Type"]
    return "Maximize"


def _call(platform: "Platform", operation: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run ``operation`` and shape its answer as a client would see it (JSON-safe)."""
    response = dispatch.call(platform, "sagemaker", operation, request, caller="pipelines")
    return shape_output(operation_model("sagemaker", operation).output_shape, response)
