"""Processing jobs: Create, Describe, List and Stop ProcessingJob(s)."""

from __future__ import annotations

import copy
from typing import Any

from ..api.context import RequestContext
from ..api.errors import validation_error
from ..engine.images import MODEL_MONITOR, processing_image
from ..engine.processing_job import KIND
from .common import resource_arn
from .jobs_common import (
    DEFAULT_MAX_RUNTIME_SECONDS, find_job, job_exists, list_jobs, request_stop, require_file_mode,
    require_s3_uri, require_single_instance,
)

LABEL = "Processing job"
PROCESSING_ROOT = "/opt/ml/processing/"


def create_processing_job(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["ProcessingJobName"]
    app = request["AppSpecification"]
    image = processing_image(app["ImageUri"], "AppSpecification.ImageUri")
    if not app.get("ContainerEntrypoint") and image.framework != MODEL_MONITOR:
        raise validation_error(
            f"AppSpecification.ContainerEntrypoint is required: modelyard runs the command you "
            f"give in the {image.repository} environment (the SDK's processors set it, e.g. "
            "['python3', '/opt/ml/processing/input/code/script.py'])."
        )
    cluster = request["ProcessingResources"]["ClusterConfig"]
    require_single_instance(cluster["InstanceCount"], "ProcessingResources.ClusterConfig.InstanceCount")
    for item in request.get("ProcessingInputs", []):
        source = item.get("S3Input")
        if source is None:
            raise validation_error(
                f"ProcessingInput {item['InputName']}: only S3Input is supported "
                "(DatasetDefinition needs Athena or Redshift).")
        require_file_mode(source.get("S3InputMode"), f"ProcessingInput {item['InputName']} S3InputMode")
        require_s3_uri(source["S3Uri"], f"ProcessingInput {item['InputName']} S3Uri")
        _require_processing_path(source["LocalPath"], f"ProcessingInput {item['InputName']}")
    for item in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
        target = item.get("S3Output")
        if target is None:
            raise validation_error(
                f"ProcessingOutput {item['OutputName']}: only S3Output is supported.")
        require_s3_uri(target["S3Uri"], f"ProcessingOutput {item['OutputName']} S3Uri")
        _require_processing_path(target["LocalPath"], f"ProcessingOutput {item['OutputName']}")

    arn = resource_arn(ctx, "processing-job", name)
    now = ctx.now
    document = {
        **_with_defaults(request),
        "ProcessingJobArn": arn,
        "ProcessingJobStatus": "InProgress",
        "CreationTime": now,
        "LastModifiedTime": now,
    }
    ctx.platform.resources.create(KIND, name, arn, document, now=now, status="InProgress",
                                  already_exists=lambda: job_exists(LABEL, arn))
    ctx.platform.executor.submit(KIND, name)
    return {"ProcessingJobArn": arn}


def _with_defaults(request: dict[str, Any]) -> dict[str, Any]:
    """The request with the members SageMaker fills in when they are left out.

    DescribeProcessingJob shows them, and the runtime limit is enforced like a given one.
    """
    filled = copy.deepcopy(request)
    filled.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": DEFAULT_MAX_RUNTIME_SECONDS})
    for item in filled.get("ProcessingInputs", []):
        item.setdefault("AppManaged", False)
    for item in filled.get("ProcessingOutputConfig", {}).get("Outputs", []):
        item.setdefault("AppManaged", False)
    return filled


def _require_processing_path(path: str, member: str) -> None:
    normalized = path.rstrip("/") + "/"
    if not normalized.startswith(PROCESSING_ROOT) or "/../" in normalized:
        raise validation_error(
            f"{member} LocalPath {path!r} must be an absolute path under {PROCESSING_ROOT}"
        )


def describe_processing_job(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["ProcessingJobName"]
    found = find_job(ctx, KIND, LABEL, name)
    return found.document


def list_processing_jobs(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return list_jobs(ctx, KIND, request, "ProcessingJobSummaries")


def stop_processing_job(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    request_stop(ctx, KIND, LABEL, request["ProcessingJobName"], "ProcessingJobStatus")
    return {}


OPERATIONS = {
    "CreateProcessingJob": create_processing_job,
    "DescribeProcessingJob": describe_processing_job,
    "ListProcessingJobs": list_processing_jobs,
    "StopProcessingJob": stop_processing_job,
}
