"""Data and model quality job definitions: Create, Describe, List, Delete.

A job definition is what a monitoring schedule runs by name (``MonitoringJobDefinitionName``
with ``MonitoringType`` DataQuality or ModelQuality). Both families share one namespace of
names, as in SageMaker, and a definition a schedule uses cannot be deleted.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError, validation_error
from ..engine.processing_job import KIND as PROCESSING_KIND
from ..monitor.schedules import (
    DEFINITION_KINDS, SCHEDULE_KIND, check_baseline, check_input, check_outputs,
)
from ..store.resources import ListQuery
from .common import DEFAULT_MAX_RESULTS, resource_arn


def definition_not_found(monitoring_type: str, name: str) -> AwsError:
    return AwsError("ResourceNotFound",
                    f"Could not find {monitoring_type} job definition {name}. Check the name "
                    f"with List{monitoring_type}JobDefinitions.")


def _create(monitoring_type: str):
    kind = DEFINITION_KINDS[monitoring_type]

    def create(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        name = request["JobDefinitionName"]
        job_input = request[f"{monitoring_type}JobInput"]
        check_input(job_input, f"{monitoring_type}JobInput")
        if monitoring_type == "ModelQuality":
            _check_model_quality(request)
        check_outputs(request[f"{monitoring_type}JobOutputConfig"]["MonitoringOutputs"],
                      f"{monitoring_type}JobOutputConfig")
        baseline = request.get(f"{monitoring_type}BaselineConfig") or {}
        check_baseline((baseline.get("StatisticsResource") or {}).get("S3Uri"),
                       (baseline.get("ConstraintsResource") or {}).get("S3Uri"),
                       f"{monitoring_type}BaselineConfig")
        job = baseline.get("BaseliningJobName")
        if job and ctx.platform.resources.get(PROCESSING_KIND, job) is None:
            raise validation_error(
                f"{monitoring_type}BaselineConfig.BaseliningJobName {job} is not a processing "
                "job; give the name of the job that suggested the baseline.")
        for other in DEFINITION_KINDS.values():
            if other != kind and ctx.platform.resources.get(other, name) is not None:
                raise _exists(name)
        arn = resource_arn(ctx, kind, name)
        document = {**request, "Tags": request.get("Tags", [])}  # ListTags reads them
        document.update(JobDefinitionArn=arn, CreationTime=ctx.now)
        ctx.platform.resources.create(kind, name, arn, document, now=ctx.now,
                                      parent=_endpoint_of(job_input),
                                      already_exists=lambda: _exists(name))
        return {"JobDefinitionArn": arn}

    return create


def _check_model_quality(request: dict[str, Any]) -> None:
    job_input = request["ModelQualityJobInput"]
    if not (job_input.get("GroundTruthS3Input") or {}).get("S3Uri"):
        raise validation_error(
            "ModelQualityJobInput.GroundTruthS3Input.S3Uri is required: model quality compares "
            "captured predictions with the ground truth labels you upload there.")
    problem = request["ModelQualityAppSpecification"].get("ProblemType")
    if problem is None:
        raise validation_error(
            "ModelQualityAppSpecification.ProblemType is required (BinaryClassification, "
            "MulticlassClassification or Regression).")


def _exists(name: str) -> AwsError:
    return AwsError("ResourceInUse",
                    f"A monitoring job definition named {name} already exists. Choose another "
                    "name or delete it first.")


def _endpoint_of(job_input: dict[str, Any]) -> str | None:
    endpoint = job_input.get("EndpointInput")
    return endpoint["EndpointName"] if endpoint else None


def _describe(monitoring_type: str):
    kind = DEFINITION_KINDS[monitoring_type]

    def describe(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        name = request["JobDefinitionName"]
        found = ctx.platform.resources.get(kind, name)
        if found is None:
            raise definition_not_found(monitoring_type, name)
        return {key: value for key, value in found.document.items() if key != "Tags"}

    return describe


def _list(monitoring_type: str):
    kind = DEFINITION_KINDS[monitoring_type]

    def list_definitions(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        items = ctx.platform.resources.list(kind, ListQuery(
            name_contains=request.get("NameContains"), parent=request.get("EndpointName"),
            created_after=request.get("CreationTimeAfter"),
            created_before=request.get("CreationTimeBefore"),
            sort_by="name" if request.get("SortBy") == "Name" else "creation_time",
            descending=request.get("SortOrder", "Descending") == "Descending",
            max_results=request.get("MaxResults", DEFAULT_MAX_RESULTS),
            next_token=request.get("NextToken")))
        summaries = [{"MonitoringJobDefinitionName": item.name,
                      "MonitoringJobDefinitionArn": item.arn,
                      "CreationTime": item.creation_time,
                      **({"EndpointName": item.parent} if item.parent else {})}
                     for item in items.items]
        return {"JobDefinitionSummaries": summaries, "NextToken": items.next_token}

    return list_definitions


def _delete(monitoring_type: str):
    kind = DEFINITION_KINDS[monitoring_type]

    def delete(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        name = request["JobDefinitionName"]
        if ctx.platform.resources.get(kind, name) is None:
            raise definition_not_found(monitoring_type, name)
        users = [item.name for item in ctx.platform.resources.list(
            SCHEDULE_KIND, ListQuery(max_results=10_000)).items
            if (item.document["MonitoringScheduleConfig"].get("MonitoringJobDefinitionName")
                or "").lower() == name.lower()]
        if users:
            raise AwsError("ResourceInUse",
                           f"Job definition {name} is used by monitoring schedule(s) "
                           f"{', '.join(users)}; delete them first.")
        ctx.platform.resources.delete(kind, name)
        return {}

    return delete


def page(items: list[dict[str, Any]], request: dict[str, Any], member: str,
         label: str) -> dict[str, Any]:
    """One page of an already filtered and sorted list; NextToken is an opaque offset."""
    offset = 0
    token = request.get("NextToken")
    if token:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            if data["l"] != label:
                raise ValueError
            offset = int(data["o"])
        except Exception:
            raise validation_error(
                "The NextToken is not valid for this request. Pass it exactly as the previous "
                "response returned it, with the same filters.") from None
    size = request.get("MaxResults", DEFAULT_MAX_RESULTS)
    result: dict[str, Any] = {member: items[offset:offset + size]}
    if offset + size < len(items):
        result["NextToken"] = base64.urlsafe_b64encode(
            json.dumps({"l": label, "o": offset + size}).encode()).decode()
    return result


OPERATIONS = {
    f"{verb}{monitoring_type}JobDefinition{'s' if verb == 'List' else ''}": factory(
        monitoring_type)
    for monitoring_type in DEFINITION_KINDS
    for verb, factory in (("Create", _create), ("Describe", _describe), ("List", _list),
                          ("Delete", _delete))
}
