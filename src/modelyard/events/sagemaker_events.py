"""SageMaker's own state-change events, emitted as SageMaker sends them to EventBridge.

The resource store calls ``on_status_change`` after each committed status change (and
each create with a status). Kinds map to AWS's detail types:

- TrainingJob, ProcessingJob, TransformJob: "SageMaker <Training|Processing|Transform> Job
  State Change", the detail being the job's Describe document;
- HyperParameterTuningJob: "SageMaker HyperParameter Tuning Job State Change", the detail
  being DescribeHyperParameterTuningJob's document (TrainingJobDefinition(s),
  TrainingJobStatusCounters, ObjectiveStatusCounters, BestTrainingJob, ...) with Tags as a
  map, as the developer guide's example shows;
- ModelPackage: "SageMaker Model Package State Change" (its status here is the approval
  status, so an approval emits one), the detail being DescribeModelPackage's document;
- Endpoint: "SageMaker Endpoint State Change", the detail being DescribeEndpoint's with
  the status in capitals as those events spell it (``IN_SERVICE``);
- PipelineExecution: "SageMaker Model Building Pipeline Execution Status Change" with
  currentPipelineExecutionStatus, previousPipelineExecutionStatus, executionStartTime, ...;
- PipelineExecutionStep: "SageMaker Model Building Pipeline Execution Step Status Change"
  with stepName, currentStepStatus, previousStepStatus, stepType, metadata, ...

Nothing is built unless some enabled rule has an event pattern, so jobs pay one attribute
read per status change when no rule exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .bus import iso_time, put_event
from .rules import rule_cache

if TYPE_CHECKING:
    from ..platform import Platform
    from ..store.resources import Resource

SOURCE = "aws.sagemaker"
# What a builder makes of a status change: (detail-type, detail, resources).
Built = tuple[str, dict[str, Any], list[str]]
_JOB_EVENTS = {
    "TrainingJob": "SageMaker Training Job State Change",
    "ProcessingJob": "SageMaker Processing Job State Change",
    "TransformJob": "SageMaker Transform Job State Change",
    "Endpoint": "SageMaker Endpoint State Change",
}
_TIME_MEMBERS = ("CreationTime", "LastModifiedTime", "TrainingStartTime", "TrainingEndTime",
                 "ProcessingStartTime", "ProcessingEndTime", "TransformStartTime",
                 "TransformEndTime", "StartTime", "EndTime", "HyperParameterTuningEndTime")
# Step metadata members and the stepType the event names.
_STEP_TYPES = {"TrainingJob": "Training", "ProcessingJob": "Processing",
               "TransformJob": "Transform", "Condition": "Condition", "Fail": "Fail",
               "RegisterModel": "RegisterModel", "Model": "Model", "Callback": "Callback",
               "Lambda": "Lambda", "QualityCheck": "QualityCheck", "ClarifyCheck": "ClarifyCheck",
               "EMR": "EMR", "TuningJob": "Tuning", "AutoMLJob": "AutoML"}


def listener(platform: "Platform") -> Callable[[str, str | None, "Resource"], None]:
    """The status listener ``events.start`` adds to ``platform.resources``."""
    cache = rule_cache(platform)

    def on_status_change(kind: str, old_status: str | None, resource: "Resource") -> None:
        if not cache.has_pattern_rules:
            return
        build = _BUILDERS.get(kind)
        if build is None:
            return
        built = build(platform, old_status, resource)
        if built is not None:
            detail_type, detail, resources = built
            put_event(platform, SOURCE, detail_type, detail, resources)

    return on_status_change


def _public(document: dict[str, Any]) -> dict[str, Any]:
    """A Describe document as an event detail: no internal keys, times in epoch ms."""
    detail = {key: value for key, value in document.items()
              if not key.startswith("_") and value is not None}
    for member in _TIME_MEMBERS:
        if isinstance(detail.get(member), (int, float)):
            detail[member] = int(detail[member] * 1000)
    detail.setdefault("Tags", {})
    return detail


def _job(platform: "Platform", old_status: str | None, resource: "Resource") -> "Built":
    detail = _public(resource.document)
    if resource.kind == "Endpoint" and isinstance(detail.get("EndpointStatus"), str):
        # Endpoint events spell the status in capitals: InService -> IN_SERVICE.
        detail["EndpointStatus"] = re.sub(r"(?<!^)(?=[A-Z])", "_",
                                          detail["EndpointStatus"]).upper()
    return _JOB_EVENTS[resource.kind], detail, [resource.arn]


def _tuning_job(platform: "Platform", old_status: str | None, resource: "Resource") -> "Built":
    from ..tuning.records import derived

    document = dict(resource.document)
    document.update(derived(document, platform.clock.now()))
    tags = document.pop("Tags", None) or []
    detail = _public(document)
    detail["Tags"] = {item["Key"]: item["Value"] for item in tags} \
        if isinstance(tags, list) else dict(tags)
    for member in ("BestTrainingJob", "OverallBestTrainingJob", "TuningJobCompletionDetails"):
        summary = detail.get(member)
        if isinstance(summary, dict):
            detail[member] = {key: int(value * 1000) if key.endswith("Time")
                              and isinstance(value, (int, float)) else value
                              for key, value in summary.items()}
    return ("SageMaker HyperParameter Tuning Job State Change", detail, [resource.arn])


def _model_package(platform: "Platform", old_status: str | None, resource: "Resource") -> "Built":
    detail = _public(resource.document)
    for member in ("CreationTime", "LastModifiedTime"):
        if member in resource.document and isinstance(resource.document[member], (int, float)):
            detail[member] = iso_time(resource.document[member])
    detail.setdefault("ModelPackageStatus", "Completed")
    if not resource.document.get("Tags"):
        detail.pop("Tags", None)
    return "SageMaker Model Package State Change", detail, [resource.arn]


def _pipeline_execution(platform: "Platform", old_status: str | None, resource: "Resource") -> "Built":
    document = resource.document
    detail: dict[str, Any] = {
        "pipelineExecutionDisplayName": document.get("PipelineExecutionDisplayName"),
        "currentPipelineExecutionStatus": document.get("PipelineExecutionStatus"),
        "previousPipelineExecutionStatus": old_status,
        "executionStartTime": _iso(document.get("CreationTime")),
        "pipelineArn": document.get("PipelineArn"),
        "pipelineExecutionArn": document.get("PipelineExecutionArn", resource.arn),
    }
    if document.get("PipelineExecutionStatus") in ("Succeeded", "Failed", "Stopped"):
        detail["executionEndTime"] = _iso(document.get("LastModifiedTime"))
    if document.get("PipelineExecutionDescription"):
        detail["pipelineExecutionDescription"] = document["PipelineExecutionDescription"]
    if document.get("FailureReason"):
        detail["failureReason"] = document["FailureReason"]
    detail = {key: value for key, value in detail.items() if value is not None}
    return ("SageMaker Model Building Pipeline Execution Status Change", detail,
            [detail["pipelineArn"], detail["pipelineExecutionArn"]])


def _pipeline_step(platform: "Platform", old_status: str | None, resource: "Resource") -> "Built":
    document = resource.document
    execution_arn = resource.arn.rsplit("/step/", 1)[0]
    pipeline_arn = execution_arn.rsplit("/execution/", 1)[0]
    metadata = document.get("Metadata") or {}
    detail: dict[str, Any] = {
        "metadata": {_lower_camel(key): _lower_keys(value) for key, value in metadata.items()},
        "stepStartTime": _iso(document.get("StartTime")),
        "stepEndTime": _iso(document.get("EndTime")),
        "stepName": document.get("StepName"),
        "stepType": next((_STEP_TYPES[key] for key in metadata if key in _STEP_TYPES), None),
        "previousStepStatus": old_status,
        "currentStepStatus": document.get("StepStatus"),
        "pipelineArn": pipeline_arn,
        "pipelineExecutionArn": execution_arn,
    }
    if document.get("StepStatus") == "Failed" and document.get("FailureReason"):
        detail["failureReason"] = document["FailureReason"]
    if document.get("CacheHitResult"):
        detail["cacheHitResult"] = _lower_keys(document["CacheHitResult"])
    detail = {key: value for key, value in detail.items() if value is not None}
    return ("SageMaker Model Building Pipeline Execution Step Status Change", detail,
            [pipeline_arn, execution_arn])


def _iso(epoch: Any) -> str | None:
    if not isinstance(epoch, (int, float)):
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_lower_camel(key): _lower_keys(item) for key, item in value.items()}
    return value


_BUILDERS = {
    "TrainingJob": _job,
    "ProcessingJob": _job,
    "TransformJob": _job,
    "Endpoint": _job,
    "HyperParameterTuningJob": _tuning_job,
    "ModelPackage": _model_package,
    "PipelineExecution": _pipeline_execution,
    "PipelineExecutionStep": _pipeline_step,
}
