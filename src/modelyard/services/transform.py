"""Batch transform jobs: Create, Describe, List and Stop TransformJob(s).

The model is resolved when the job is created (its containers are kept with the job), so
the job runs the model as it was then; ``engine/transform_job.py`` runs it.
"""

from __future__ import annotations

import copy
from typing import Any

from ..api.context import RequestContext
from ..api.errors import validation_error
from ..engine.images import parse_image
from ..engine.transform_data import FilterError, parse_path
from ..engine.transform_job import CONTAINERS_KEY, KIND
from . import models
from .common import resource_arn
from .jobs_common import (
    find_job, job_exists, list_jobs, request_stop, require_s3_uri, require_single_instance,
)

LABEL = "Transform job"
MAX_PAYLOAD_MB = 100


def create_transform_job(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["TransformJobName"]
    model = models.find_model(ctx, request["ModelName"])
    containers = model.document.get(models.CONTAINERS_KEY, [])
    if len(containers) != 1:
        raise validation_error(
            f"Model {model.name} has {len(containers)} containers; modelyard runs batch "
            "transform with single-container models (inference pipelines are not supported).")
    if parse_image(containers[0]["Image"]) is None:
        raise validation_error(
            f"Model {model.name}'s image {containers[0]['Image']} cannot be served by modelyard: "
            "use a BlazingText, XGBoost or scikit-learn image from sagemaker.image_uris.retrieve.")
    resources = request["TransformResources"]
    require_single_instance(resources["InstanceCount"], "TransformResources.InstanceCount")
    _check_input(request["TransformInput"])
    require_s3_uri(request["TransformOutput"]["S3OutputPath"], "TransformOutput.S3OutputPath")
    if request.get("DataCaptureConfig") is not None:  # engine/transform_capture.py
        require_s3_uri(request["DataCaptureConfig"]["DestinationS3Uri"],
                       "DataCaptureConfig.DestinationS3Uri")
    payload = request.get("MaxPayloadInMB")
    if payload is not None and not 0 <= payload <= MAX_PAYLOAD_MB:
        raise validation_error(f"MaxPayloadInMB {payload} must be between 0 and {MAX_PAYLOAD_MB}.")
    for member in ("InputFilter", "OutputFilter"):
        path = request.get("DataProcessing", {}).get(member)
        if path is not None:
            try:
                parse_path(path)
            except FilterError as error:
                raise validation_error(f"DataProcessing.{member}: {error}") from None

    arn = resource_arn(ctx, "transform-job", name)
    now = ctx.now
    document = {
        **_with_defaults(request),
        "ModelName": model.name,
        "TransformJobArn": arn,
        "TransformJobStatus": "InProgress",
        "CreationTime": now,
        "LastModifiedTime": now,
        CONTAINERS_KEY: copy.deepcopy(containers),
    }
    ctx.platform.resources.create(KIND, name, arn, document, now=now, status="InProgress",
                                  already_exists=lambda: job_exists(LABEL, arn))
    ctx.platform.executor.submit(KIND, name)
    return {"TransformJobArn": arn}


def _check_input(transform_input: dict[str, Any]) -> None:
    split = transform_input.get("SplitType", "None")
    if split in ("RecordIO", "TFRecord"):
        raise validation_error(
            f"TransformInput.SplitType {split} is not supported by modelyard (it has no "
            f"{split} reader); use Line (one record per line) or None (one record per file).")
    source = transform_input["DataSource"].get("S3DataSource")
    if source is None:
        raise validation_error("TransformInput.DataSource needs S3DataSource; modelyard does "
                               "not read FSx or EFS.")
    if source["S3DataType"] not in ("S3Prefix", "ManifestFile"):
        raise validation_error(
            f"TransformInput S3DataType {source['S3DataType']} is not supported by modelyard; "
            "use S3Prefix or ManifestFile.")
    require_s3_uri(source["S3Uri"], "TransformInput.DataSource.S3DataSource.S3Uri")


def _with_defaults(request: dict[str, Any]) -> dict[str, Any]:
    """The request with the members SageMaker's DescribeTransformJob fills in."""
    filled = copy.deepcopy(request)
    filled["TransformInput"].setdefault("CompressionType", "None")
    filled["TransformInput"].setdefault("SplitType", "None")
    filled["TransformOutput"].setdefault("AssembleWith", "None")
    filled.setdefault("DataProcessing", {})
    filled["DataProcessing"].setdefault("InputFilter", "$")
    filled["DataProcessing"].setdefault("OutputFilter", "$")
    filled["DataProcessing"].setdefault("JoinSource", "None")
    return filled


def describe_transform_job(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return find_job(ctx, KIND, LABEL, request["TransformJobName"]).document


def list_transform_jobs(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return list_jobs(ctx, KIND, request, "TransformJobSummaries")


def stop_transform_job(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    request_stop(ctx, KIND, LABEL, request["TransformJobName"], "TransformJobStatus")
    return {}


OPERATIONS = {
    "CreateTransformJob": create_transform_job,
    "DescribeTransformJob": describe_transform_job,
    "ListTransformJobs": list_transform_jobs,
    "StopTransformJob": stop_transform_job,
}
