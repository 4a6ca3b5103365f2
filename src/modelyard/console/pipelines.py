"""Pipelines: the list, a pipeline's DAG and executions, an execution's steps; start,
stop and retry (StartPipelineExecution, StopPipelineExecution, RetryPipelineExecution)."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from ..api.errors import AwsError
from ..pipelines.definition import PipelineDefinition, parse_definition
from .charts import dag
from .html import (Safe, definition_list, duration, el, link, pager, seg, status, table, url,
                   when)
from .page import (PAGE_SIZE, View, action, breadcrumbs, done, filter_form, heading,
                   list_request, page)

if TYPE_CHECKING:
    from ..platform import Platform

RUNNING = ("Executing", "Stopping")


def pipeline_url(name: str) -> str:
    return f"/console/pipelines/{seg(name)}"


def execution_url(pipeline: str, arn: str) -> str:
    return url(f"{pipeline_url(pipeline)}/execution", arn=arn)


def list_pipelines(view: View) -> tuple[str, Safe]:
    token = view.arg("token")
    prefix = view.arg("prefix")
    result = view.call("sagemaker", "ListPipelines",
                       list_request(view, PipelineNamePrefix="prefix"))
    rows = [[link(pipeline_url(item["PipelineName"]), item["PipelineName"]),
             item.get("PipelineDescription") or "", when(item.get("CreationTime")),
             when(item.get("LastExecutionTime"))]
            for item in result.get("PipelineSummaries", [])]
    search = filter_form(view, label="Name starts with ", argument="prefix")
    return "Pipelines", el("section", heading("Pipelines"), search,
                           table(["Name", "Description", "Created", "Last run"], rows,
                                 empty="No pipelines yet.", id="pipelines"),
                           pager("/console/pipelines", result.get("NextToken"), token=token,
                                 prefix=prefix))


def _layout(definition: PipelineDefinition) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    layers: dict[str, int] = {}
    edges = []
    for name in definition.order or tuple(definition.steps):
        spec = definition.steps[name]
        parents = set(spec.upstream)
        layers[name] = 1 + max((layers.get(parent, 0) for parent in parents), default=-1)
        edges.extend((parent, name) for parent in sorted(parents))
    steps = [{"name": name, "type": definition.steps[name].type, "layer": layers[name]}
             for name in definition.order or tuple(definition.steps)]
    return steps, edges


def _dag(text: str, statuses: dict[str, str] | None = None,
         links: dict[str, str] | None = None) -> Safe:
    try:
        definition = parse_definition(text)
    except AwsError as error:
        return el("p", f"The definition cannot be drawn: {error.message}", class_="empty")
    steps, edges = _layout(definition)
    return dag(steps, edges, statuses=statuses, links=links)


def show_pipeline(view: View) -> tuple[str, Safe]:
    name = view.params["name"]
    pipeline = view.call("sagemaker", "DescribePipeline", {"PipelineName": name})
    token = view.arg("token")
    request: dict[str, Any] = {"PipelineName": name, "MaxResults": PAGE_SIZE,
                               "SortOrder": "Descending"}
    if token:
        request["NextToken"] = token
    executions = view.call("sagemaker", "ListPipelineExecutions", request)
    rows = []
    for item in executions.get("PipelineExecutionSummaries", []):
        rows.append([link(execution_url(name, item["PipelineExecutionArn"]),
                          item.get("PipelineExecutionDisplayName")
                          or item["PipelineExecutionArn"].rsplit("/", 1)[-1]),
                     status(item.get("PipelineExecutionStatus")), when(item.get("StartTime")),
                     item.get("PipelineExecutionFailureReason") or ""])
    definition_text = pipeline.get("PipelineDefinition") or "{}"
    parameters = _parameters(definition_text)
    start_fields = [el("label", f"{param['Name']} ({param.get('Type', 'String')})",
                       el("input", name=f"param.{param['Name']}",
                          value=_default(param.get("DefaultValue"))))
                    for param in parameters]
    start = view.form(f"{pipeline_url(name)}/start", el("input", type="hidden", name="back",
                                                        value=pipeline_url(name)),
                      *start_fields, button="Start execution", class_="stack")
    live = any(item.get("PipelineExecutionStatus") in RUNNING
               for item in executions.get("PipelineExecutionSummaries", []))
    body = el("section",
              breadcrumbs(("/console/pipelines", "Pipelines"), ("", name)),
              heading(name),
              definition_list([("Description", pipeline.get("PipelineDescription")),
                               ("ARN", pipeline.get("PipelineArn")),
                               ("Status", pipeline.get("PipelineStatus")),
                               ("Created", when(pipeline.get("CreationTime"))),
                               ("Last modified", when(pipeline.get("LastModifiedTime")))]),
              el("h2", "Definition"), _dag(definition_text),
              el("div",
                 el("h2", "Executions"),
                 table(["Execution", "Status", "Started", "Failure reason"], rows,
                       empty="Not run yet.", id="executions"),
                 pager(pipeline_url(name), executions.get("NextToken"), token=token),
                 id="executions-live", data_live="1" if live else None),
              el("details", el("summary", "Start an execution"), start, class_="panel"))
    return name, body


def _parameters(text: str) -> list[dict[str, Any]]:
    try:
        document = json.loads(text)
    except ValueError:
        return []
    return [p for p in document.get("Parameters") or [] if isinstance(p, dict) and "Name" in p]


def _default(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _job_link(metadata: dict[str, Any]) -> Safe | str:
    for key, family in (("TrainingJob", "training"), ("ProcessingJob", "processing"),
                        ("TransformJob", "transform")):
        if key in metadata and metadata[key].get("Arn"):
            job = metadata[key]["Arn"].rsplit("/", 1)[-1]
            return link(f"/console/jobs/{family}/{seg(job)}", job)
    if "RegisterModel" in metadata and metadata["RegisterModel"].get("Arn"):
        arn = metadata["RegisterModel"]["Arn"]
        return link(url("/console/models/package", arn=arn), arn.split("/", 1)[-1])
    if "Condition" in metadata:
        return f"Outcome: {metadata['Condition'].get('Outcome')}"
    if "Fail" in metadata:
        return metadata["Fail"].get("ErrorMessage") or ""
    if "Lambda" in metadata:
        return metadata["Lambda"].get("Arn") or ""
    return ""


def _step_link(metadata: dict[str, Any]) -> str | None:
    found = _job_link(metadata)
    if isinstance(found, Safe) and 'href="' in found:
        return found.split('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    return None


def show_execution(view: View) -> tuple[str, Safe]:
    name = view.params["name"]
    arn = view.arg("arn")
    if not arn:
        raise AwsError("ValidationException", "Which execution? The link lacks its ARN.")
    execution = view.call("sagemaker", "DescribePipelineExecution",
                          {"PipelineExecutionArn": arn})
    steps = view.call("sagemaker", "ListPipelineExecutionSteps",
                      {"PipelineExecutionArn": arn, "SortOrder": "Ascending",
                       "MaxResults": 100}).get("PipelineExecutionSteps", [])
    parameters = view.call("sagemaker", "ListPipelineParametersForExecution",
                           {"PipelineExecutionArn": arn, "MaxResults": 100}
                           ).get("PipelineParameters", [])
    definition = view.call("sagemaker", "DescribePipelineDefinitionForExecution",
                           {"PipelineExecutionArn": arn}).get("PipelineDefinition") or "{}"
    state = execution.get("PipelineExecutionStatus", "")
    statuses = {step["StepName"]: step.get("StepStatus", "") for step in steps}
    links = {step["StepName"]: target for step in steps
             if (target := _step_link(step.get("Metadata") or {}))}
    now = view.now()
    rows = [[step["StepName"], status(step.get("StepStatus")), when(step.get("StartTime")),
             duration(step.get("StartTime"), step.get("EndTime"), now),
             (step.get("CacheHitResult") or {}).get("SourcePipelineExecutionArn") and "cache hit"
             or "", _job_link(step.get("Metadata") or {}), step.get("FailureReason") or "",
             step.get("AttemptCount") or ""]
            for step in steps]
    here = execution_url(name, arn)
    controls = []
    back = el("input", type="hidden", name="back", value=here)
    arn_field = el("input", type="hidden", name="arn", value=arn)
    if state in RUNNING:
        controls.append(view.form("/console/pipelines/executions/stop", back, arn_field,
                                  button="Stop execution", confirm="Stop this execution?"))
    if state in ("Failed", "Stopped"):
        controls.append(view.form("/console/pipelines/executions/retry", back, arn_field,
                                  button="Retry execution"))
    title = execution.get("PipelineExecutionDisplayName") or arn.rsplit("/", 1)[-1]
    live = el("div",
              definition_list([("Status", status(state)),
                               ("Started", when(execution.get("CreationTime"))),
                               ("Duration", duration(execution.get("CreationTime"),
                                                     None if state in RUNNING else
                                                     execution.get("LastModifiedTime"), now)),
                               ("Failure reason", execution.get("FailureReason"))]),
              el("div", *controls, class_="actions"),
              _dag(definition, statuses, links),
              el("h2", "Steps"),
              table(["Step", "Status", "Started", "Duration", "Cache", "Job / result",
                     "Failure reason", "Attempts"], rows, empty="No step has started yet.",
                    id="steps"),
              id="execution-live", data_live="1" if state in RUNNING else None,
              data_status=state)
    body = el("section",
              breadcrumbs(("/console/pipelines", "Pipelines"), (pipeline_url(name), name),
                          ("", title)),
              heading(f"Execution {title}"), live,
              el("h2", "Parameters"),
              table(["Name", "Value"], [[p["Name"], p.get("Value", "")] for p in parameters],
                    empty="No parameters."),
              el("p", el("small", "ARN: ", arn), class_="mono"))
    return f"Execution {title}", body


def start(view: View, form: dict[str, str]) -> str:
    name = view.params["name"]
    parameters = [{"Name": key[len("param."):], "Value": value}
                  for key, value in form.items() if key.startswith("param.") and value != ""]
    result = view.call("sagemaker", "StartPipelineExecution", {
        "PipelineName": name, "PipelineParameters": parameters,
        "ClientRequestToken": uuid.uuid4().hex})
    return done(execution_url(name, result["PipelineExecutionArn"]), "Execution started.")


def stop(view: View, form: dict[str, str]) -> str:
    view.call("sagemaker", "StopPipelineExecution", {
        "PipelineExecutionArn": form.get("arn", ""), "ClientRequestToken": uuid.uuid4().hex})
    return done(form.get("back", "/console/pipelines"), "Stopping the execution.")


def retry(view: View, form: dict[str, str]) -> str:
    view.call("sagemaker", "RetryPipelineExecution", {
        "PipelineExecutionArn": form.get("arn", ""), "ClientRequestToken": uuid.uuid4().hex})
    return done(form.get("back", "/console/pipelines"), "Retrying the execution.")


def routes(platform: "Platform") -> list[Route]:
    active = "/console/pipelines"
    return [
        Route("/console/pipelines", page(platform, list_pipelines, active), methods=["GET"]),
        Route("/console/pipelines/executions/stop", action(platform, stop), methods=["POST"]),
        Route("/console/pipelines/executions/retry", action(platform, retry), methods=["POST"]),
        Route("/console/pipelines/{name}", page(platform, show_pipeline, active),
              methods=["GET"]),
        Route("/console/pipelines/{name}/execution", page(platform, show_execution, active),
              methods=["GET"]),
        Route("/console/pipelines/{name}/start", action(platform, start), methods=["POST"]),
    ]
