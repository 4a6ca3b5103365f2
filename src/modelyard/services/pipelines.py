"""SageMaker Pipelines: pipelines, their executions and steps. The engine runs them."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError, validation_error
from ..pipelines import records, versions
from ..pipelines.definition import convert_value, parse_definition, resolve_parameters
from ..store.resources import ListQuery
from .common import caller, is_arn, resource_arn

DEFAULT_MAX_RESULTS = 50


def _definition_text(ctx: RequestContext, request: dict[str, Any]) -> str:
    if "PipelineDefinition" in request:
        return request["PipelineDefinition"]
    location = request.get("PipelineDefinitionS3Location")
    if location is None:
        raise validation_error("Give PipelineDefinition or PipelineDefinitionS3Location.")
    try:
        reader = ctx.platform.objects.open_object(location["Bucket"], location["ObjectKey"])
        return b"".join(reader.iter_chunks()).decode("utf-8")
    except AwsError as error:
        raise validation_error(
            f"Cannot read the pipeline definition at s3://{location['Bucket']}/"
            f"{location['ObjectKey']}: {error.message}") from None


def _pipeline(ctx: RequestContext, name_or_arn: str):
    resources = ctx.platform.resources
    found = resources.get_by_arn(name_or_arn) if is_arn(name_or_arn) else resources.get(
        records.PIPELINE, name_or_arn)
    if found is None or found.kind != records.PIPELINE:
        raise AwsError("ResourceNotFound", f"Pipeline {name_or_arn} does not exist. "
                       "Create it with CreatePipeline (the SDK's pipeline.upsert()).")
    return found


def _execution(ctx: RequestContext, arn: str):
    found = ctx.platform.resources.get(records.EXECUTION, records.execution_id_from_arn(arn))
    if found is None:
        raise AwsError("ResourceNotFound", f"Pipeline execution {arn} does not exist.")
    return found


def create_pipeline(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["PipelineName"]
    text = _definition_text(ctx, request)
    parse_definition(text)
    arn = resource_arn(ctx, "pipeline", name)
    now = ctx.now
    document = {
        "PipelineArn": arn,
        "PipelineName": name,
        "PipelineDisplayName": request.get("PipelineDisplayName", name),
        "PipelineDefinition": text,
        "PipelineDescription": request.get("PipelineDescription"),
        "RoleArn": request.get("RoleArn"),
        "PipelineStatus": "Active",
        "CreationTime": now,
        "LastModifiedTime": now,
        "CreatedBy": caller(ctx),
        "LastModifiedBy": caller(ctx),
        "ParallelismConfiguration": request.get("ParallelismConfiguration"),
        "PipelineVersionId": 1,
        "Tags": request.get("Tags", []),
    }
    pipeline = ctx.platform.resources.create(
        records.PIPELINE, name, arn, document, now=now, status="Active",
        already_exists=lambda: validation_error(
            f"Pipeline names must be unique within an AWS account and region. Pipeline with "
            f"name ({name}) already exists. Update it with UpdatePipeline."))
    versions.delete_versions(ctx.platform, name)  # left over from a pipeline deleted midway
    versions.record_version(ctx.platform, pipeline, 1, text, now, caller(ctx))
    return {"PipelineArn": arn}


def update_pipeline(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    pipeline = _pipeline(ctx, request["PipelineName"])
    text = None
    if "PipelineDefinition" in request or "PipelineDefinitionS3Location" in request:
        text = _definition_text(ctx, request)
        parse_definition(text)

    now = ctx.now
    new_version = False

    def change(resource) -> dict[str, Any]:  # noqa: ANN001
        nonlocal new_version
        document = dict(resource.document)
        for member in ("PipelineDisplayName", "PipelineDescription", "RoleArn",
                       "ParallelismConfiguration"):
            if member in request:
                document[member] = request[member]
        # Only a changed definition makes a new version; the other members are the pipeline's.
        new_version = text is not None and _canonical(text) != _canonical(
            document["PipelineDefinition"])
        if new_version:
            document["PipelineDefinition"] = text
            document["PipelineVersionId"] = document.get("PipelineVersionId", 1) + 1
        document["LastModifiedTime"] = now
        document["LastModifiedBy"] = caller(ctx)
        return document

    updated = ctx.platform.resources.update(
        records.PIPELINE, pipeline.name, change, now=now,
        missing=lambda: validation_error("The pipeline was deleted."))
    version_id = updated.document["PipelineVersionId"]
    if new_version:
        versions.record_version(ctx.platform, updated, version_id, text, now, caller(ctx))
    return {"PipelineArn": pipeline.arn, "PipelineVersionId": version_id}


def _canonical(definition: str) -> str:
    """The definition's JSON with key order and spacing normalized (1, 1.0 and true differ)."""
    return json.dumps(json.loads(definition), sort_keys=True, separators=(",", ":"))


def describe_pipeline(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    """The pipeline with the definition of the version asked for (by default the latest)."""
    pipeline = _pipeline(ctx, request["PipelineName"])
    version_id = request.get("PipelineVersionId", pipeline.document.get("PipelineVersionId", 1))
    version = versions.get_version(ctx.platform, pipeline, version_id)
    return {**pipeline.document, "PipelineDefinition": version["_definition"],
            "PipelineVersionDisplayName": version.get("PipelineVersionDisplayName"),
            "PipelineVersionDescription": version.get("PipelineVersionDescription")}


def delete_pipeline(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    pipeline = _pipeline(ctx, request["PipelineName"])
    ctx.platform.resources.delete(records.PIPELINE, pipeline.name)
    versions.delete_versions(ctx.platform, pipeline.name)
    return {"PipelineArn": pipeline.arn}


def _pipeline_children_query(request: dict[str, Any], pipeline: str) -> ListQuery:
    """A pipeline's versions or executions: CreatedAfter/Before, newest first by default."""
    return ListQuery(
        parent=pipeline,
        created_after=request.get("CreatedAfter"),
        created_before=request.get("CreatedBefore"),
        descending=request.get("SortOrder", "Descending") == "Descending",
        max_results=request.get("MaxResults", DEFAULT_MAX_RESULTS),
        next_token=request.get("NextToken"),
    )


def list_pipeline_versions(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    pipeline = _pipeline(ctx, request["PipelineName"])
    page = versions.list_versions(ctx.platform, pipeline, _pipeline_children_query(request, pipeline.name))
    summaries = [{**item.document, "LastExecutionPipelineExecutionArn":
                  item.document.get("LastExecutedPipelineExecutionArn")} for item in page.items]
    return {"PipelineVersionSummaries": summaries, "NextToken": page.next_token}


def update_pipeline_version(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    pipeline = _pipeline(ctx, request["PipelineArn"])
    version_id = request["PipelineVersionId"]

    def change(document: dict[str, Any]) -> None:
        for member in ("PipelineVersionDisplayName", "PipelineVersionDescription"):
            if member in request:
                document[member] = request[member]
        document["LastModifiedTime"] = ctx.now
        document["LastModifiedBy"] = caller(ctx)

    versions.update_version(ctx.platform, pipeline, version_id, ctx.now, change)
    return {"PipelineArn": pipeline.arn, "PipelineVersionId": version_id}


def list_pipelines(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    page = ctx.platform.resources.list(records.PIPELINE, ListQuery(
        name_prefix=request.get("PipelineNamePrefix"),
        created_after=request.get("CreatedAfter"),
        created_before=request.get("CreatedBefore"),
        sort_by="name" if request.get("SortBy") == "Name" else "creation_time",
        descending=request.get("SortOrder", "Descending") == "Descending",
        max_results=request.get("MaxResults", DEFAULT_MAX_RESULTS),
        next_token=request.get("NextToken"),
    ))
    summaries = [{**item.document, "LastExecutionTime": item.document.get("LastRunTime")}
                 for item in page.items]
    return {"PipelineSummaries": summaries, "NextToken": page.next_token}


def _new_execution_id() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12))


def start_pipeline_execution(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    pipeline = _pipeline(ctx, request["PipelineName"])
    token_name = f"{pipeline.name}/{request['ClientRequestToken']}"
    earlier = ctx.platform.resources.get("PipelineExecutionRequest", token_name)
    if earlier is not None and ctx.platform.resources.get_by_arn(
            earlier.document["PipelineExecutionArn"]) is not None:
        # The same request again: the same execution, as AWS does.
        return {"PipelineExecutionArn": earlier.document["PipelineExecutionArn"]}
    version_id = request.get("PipelineVersionId", pipeline.document.get("PipelineVersionId", 1))
    text = versions.get_version(ctx.platform, pipeline, version_id)["_definition"]
    definition = parse_definition(text)
    parameters = resolve_parameters(definition, request.get("PipelineParameters"))
    selected = _selected_steps(ctx, pipeline.name, definition, request.get("SelectiveExecutionConfig"))
    if earlier is not None:  # a start cut off before its execution was written: finish it
        arn = earlier.document["PipelineExecutionArn"]
        execution_id = records.execution_id_from_arn(arn)
    else:
        execution_id = _new_execution_id()
        arn = f"{pipeline.arn}/execution/{execution_id}"
    now = ctx.now
    document = {
        "PipelineArn": pipeline.arn,
        "PipelineExecutionArn": arn,
        "PipelineExecutionDisplayName": request.get("PipelineExecutionDisplayName", f"execution-{int(now * 1000)}"),
        "PipelineExecutionStatus": "Executing",
        "PipelineExecutionDescription": request.get("PipelineExecutionDescription"),
        "PipelineExperimentConfig": {"ExperimentName": pipeline.name, "TrialName": execution_id},
        "CreationTime": now,
        "LastModifiedTime": now,
        "CreatedBy": caller(ctx),
        "LastModifiedBy": caller(ctx),
        "ParallelismConfiguration": request.get("ParallelismConfiguration")
        or pipeline.document.get("ParallelismConfiguration") or {},
        "SelectiveExecutionConfig": request.get("SelectiveExecutionConfig"),
        "PipelineVersionId": version_id,
        "_id": execution_id,
        "_pipeline_name": pipeline.name,
        "_definition": text,
        "_parameters": parameters,
        "_selected_steps": selected,
    }
    # The token first: a token is claimed once, so one ClientRequestToken (an EventBridge
    # target's delivery retried after a crash, a client's retry) starts one execution.
    if earlier is None:
        try:
            ctx.platform.resources.create("PipelineExecutionRequest", token_name,
                                          f"{arn}/request", {"PipelineExecutionArn": arn},
                                          now=now, already_exists=_TokenTaken)
        except _TokenTaken:
            return _execution_of_token(ctx, token_name)
    try:
        ctx.platform.resources.create(records.EXECUTION, execution_id, arn, document, now=now,
                                      status="Executing", parent=pipeline.name,
                                      already_exists=_TokenTaken)
    except _TokenTaken:  # a concurrent retry of the same request wrote it
        return {"PipelineExecutionArn": arn}
    if selected is not None:
        _copy_unselected_steps(ctx, request["SelectiveExecutionConfig"], execution_id, arn, selected)
    ctx.platform.resources.update(
        records.PIPELINE, pipeline.name, lambda r: {**r.document, "LastRunTime": now}, now=now,
        missing=lambda: validation_error("The pipeline was deleted."))
    versions.update_version(ctx.platform, pipeline, version_id, now, lambda doc: doc.update(
        LastExecutedPipelineExecutionArn=arn,
        LastExecutedPipelineExecutionDisplayName=document["PipelineExecutionDisplayName"]))
    ctx.platform.pipelines.wake()
    return {"PipelineExecutionArn": arn}


class _TokenTaken(Exception):
    """A concurrent StartPipelineExecution with the same ClientRequestToken won."""


def _execution_of_token(ctx: RequestContext, token_name: str) -> dict[str, Any]:
    earlier = ctx.platform.resources.get("PipelineExecutionRequest", token_name)
    if earlier is None:
        raise AwsError("ConflictException", "A request with this ClientRequestToken is in "
                       "progress; retry it.", status=409)
    return {"PipelineExecutionArn": earlier.document["PipelineExecutionArn"]}


def _selected_steps(ctx: RequestContext, pipeline_name: str, definition, config) -> list[str] | None:  # noqa: ANN001
    if not config:
        return None
    source = _execution(ctx, config["SourcePipelineExecutionArn"])
    if source.parent != pipeline_name:
        raise validation_error("SourcePipelineExecutionArn must be an execution of the same pipeline.")
    selected = [item["StepName"] for item in config["SelectedSteps"]]
    unknown = [name for name in selected if name not in definition.steps]
    if unknown:
        raise validation_error(f"SelectedSteps names steps the pipeline does not have: {', '.join(unknown)}.")
    return selected


def _copy_unselected_steps(ctx: RequestContext, config: dict, execution_id: str, arn: str,
                           selected: list[str]) -> None:
    source = _execution(ctx, config["SourcePipelineExecutionArn"])
    for name, record in records.execution_steps(ctx.platform, source.name).items():
        if name in selected or record["StepStatus"] != "Succeeded":
            continue
        copied = {**record, "SelectiveExecutionResult": {
            "SourcePipelineExecutionArn": source.arn}}
        records.create_step_record(ctx.platform, execution_id, arn, copied)


def describe_pipeline_execution(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return _execution(ctx, request["PipelineExecutionArn"]).document


def list_pipeline_executions(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    pipeline = _pipeline(ctx, request["PipelineName"])
    page = ctx.platform.resources.list(records.EXECUTION, _pipeline_children_query(request, pipeline.name))
    summaries = [{**item.document, "StartTime": item.document["CreationTime"],
                  "PipelineExecutionFailureReason": item.document.get("FailureReason")}
                 for item in page.items]
    return {"PipelineExecutionSummaries": summaries, "NextToken": page.next_token}


def list_pipeline_execution_steps(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    if "PipelineExecutionArn" not in request:  # optional in the model, needed here
        raise validation_error("ListPipelineExecutionSteps needs a PipelineExecutionArn.")
    execution = _execution(ctx, request["PipelineExecutionArn"])
    steps = sorted(records.execution_steps(ctx.platform, execution.name).values(),
                   key=lambda record: record["StartTime"],
                   reverse=request.get("SortOrder", "Descending") == "Descending")
    return _page(steps, request, "PipelineExecutionSteps")


def list_pipeline_parameters_for_execution(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    execution = _execution(ctx, request["PipelineExecutionArn"]).document
    parameters = [{"Name": name, "Value": _wire_value(value)}
                  for name, value in execution["_parameters"].items()]
    return _page(parameters, request, "PipelineParameters")


def _wire_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _page(items: list, request: dict[str, Any], member: str) -> dict[str, Any]:
    """Pagination over a short in-memory list; the token is the offset."""
    limit = request.get("MaxResults", DEFAULT_MAX_RESULTS)
    token = request.get("NextToken")
    try:
        offset = int(token) if token else 0
    except ValueError:
        raise validation_error("NextToken is not valid; pass the one the previous call returned.") from None
    chunk = items[offset: offset + limit]
    next_token = str(offset + limit) if offset + limit < len(items) else None
    return {member: chunk, "NextToken": next_token}


def describe_pipeline_definition_for_execution(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    execution = _execution(ctx, request["PipelineExecutionArn"]).document
    return {"PipelineDefinition": execution["_definition"], "CreationTime": execution["CreationTime"]}


def stop_pipeline_execution(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    execution = _execution(ctx, request["PipelineExecutionArn"])
    status = execution.document["PipelineExecutionStatus"]
    if status not in ("Executing", "Stopping"):
        raise validation_error(
            f"Pipeline execution {execution.arn} is {status}; only an Executing execution can be stopped.")
    records.update_execution(ctx.platform, execution.name,
                             lambda doc: doc.update(PipelineExecutionStatus="Stopping"))
    ctx.platform.pipelines.wake()
    return {"PipelineExecutionArn": execution.arn}


def retry_pipeline_execution(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    execution = _execution(ctx, request["PipelineExecutionArn"])
    status = execution.document["PipelineExecutionStatus"]
    if status not in ("Failed", "Stopped"):
        raise validation_error(
            f"Pipeline execution {execution.arn} is {status}; only a Failed or Stopped execution "
            "can be retried.")
    for name, record in records.execution_steps(ctx.platform, execution.name).items():
        if record["StepStatus"] in ("Failed", "Stopped"):
            records.delete_step_record(ctx.platform, execution.name, name)

    def change(document: dict) -> None:
        document["PipelineExecutionStatus"] = "Executing"
        document.pop("FailureReason", None)
        if "ParallelismConfiguration" in request:
            document["ParallelismConfiguration"] = request["ParallelismConfiguration"]

    records.update_execution(ctx.platform, execution.name, change)
    ctx.platform.pipelines.wake()
    return {"PipelineExecutionArn": execution.arn}


def _callback_step(ctx: RequestContext, token: str) -> tuple[str, str, str]:
    """(execution id, execution ARN, step name) of the callback step holding ``token``."""
    for status in ("Executing", "Stopping"):
        page = ctx.platform.resources.list(records.EXECUTION, ListQuery(
            status_equals=status, max_results=1000))
        for execution in page.items:
            for name, record in records.execution_steps(ctx.platform, execution.name).items():
                callback = record.get("Metadata", {}).get("Callback", {})
                if callback.get("CallbackToken") == token and record["StepStatus"] == "Executing":
                    return execution.name, execution.arn, name
    raise validation_error(
        f"CallbackToken {token} belongs to no waiting callback step; it may have finished already.")


def send_pipeline_execution_step_success(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    execution_id, arn, step = _callback_step(ctx, request["CallbackToken"])
    outputs = request.get("OutputParameters", [])
    execution = ctx.platform.resources.get(records.EXECUTION, execution_id).document
    declared = {item["OutputName"]: item.get("OutputType", "String") for item in
                ctx.platform.pipelines.definition(execution).steps[step].raw.get("OutputParameters", [])}
    try:
        # Get "Steps.X.OutputParameters['name']" yields the value, typed as declared.
        typed = {item["Name"]: convert_value(item["Value"], declared.get(item["Name"], "String"))
                 for item in outputs}
    except (ValueError, TypeError) as error:
        raise validation_error(f"An output parameter does not match its declared type: {error}") from None

    def change(document: dict) -> None:
        document["Metadata"]["Callback"]["OutputParameters"] = outputs
        document["_properties"] = {"OutputParameters": typed}
        document.update(StepStatus="Succeeded", EndTime=ctx.now)

    records.update_step_record(ctx.platform, execution_id, step, change)
    ctx.platform.pipelines.wake()
    return {"PipelineExecutionArn": arn}


def send_pipeline_execution_step_failure(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    execution_id, arn, step = _callback_step(ctx, request["CallbackToken"])
    reason = request.get("FailureReason", "The callback reported a failure.")
    records.update_step_record(ctx.platform, execution_id, step, lambda doc: doc.update(
        StepStatus="Failed", EndTime=ctx.now, FailureReason=reason))
    ctx.platform.pipelines.wake()
    return {"PipelineExecutionArn": arn}


OPERATIONS = {
    "CreatePipeline": create_pipeline,
    "UpdatePipeline": update_pipeline,
    "DescribePipeline": describe_pipeline,
    "DeletePipeline": delete_pipeline,
    "ListPipelines": list_pipelines,
    "ListPipelineVersions": list_pipeline_versions,
    "UpdatePipelineVersion": update_pipeline_version,
    "StartPipelineExecution": start_pipeline_execution,
    "DescribePipelineExecution": describe_pipeline_execution,
    "ListPipelineExecutions": list_pipeline_executions,
    "ListPipelineExecutionSteps": list_pipeline_execution_steps,
    "ListPipelineParametersForExecution": list_pipeline_parameters_for_execution,
    "DescribePipelineDefinitionForExecution": describe_pipeline_definition_for_execution,
    "StopPipelineExecution": stop_pipeline_execution,
    "RetryPipelineExecution": retry_pipeline_execution,
    "SendPipelineExecutionStepSuccess": send_pipeline_execution_step_success,
    "SendPipelineExecutionStepFailure": send_pipeline_execution_step_failure,
}
