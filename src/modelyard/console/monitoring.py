"""Model Monitor: monitoring schedules, their list with filters and paging
(ListMonitoringSchedules), and a schedule's settings (type, input, cron, baseline files as
S3 links), its executions (ListMonitoringExecutions) linked to their processing jobs, the
violations the latest completed execution found (its ``constraint_violations.json``) and the
Stop/StartMonitoringSchedule actions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from ..api.errors import AwsError
from ..monitor.schedules import DEFINITION_KINDS
from .html import Safe, definition_list, el, link, pager, s3_link, seg, status, table, url, when
from .jobs import job_url
from .page import (View, action, breadcrumbs, done, filter_form, heading, list_request, page,
                   read_json_object)

if TYPE_CHECKING:
    from ..platform import Platform

STATUSES = ("Pending", "Scheduled", "Stopped", "Failed")
TYPE_LABELS = {"DataQuality": "Data quality", "ModelQuality": "Model quality",
               "ModelBias": "Bias", "ModelExplainability": "Explainability"}
OPEN = ("Pending", "InProgress", "Stopping")
COMPLETED = ("Completed", "CompletedWithViolations")
EXECUTIONS = 50
MAX_REPORT_BYTES = 4 * 1024 * 1024
VIOLATIONS_FILE = "constraint_violations.json"


def schedule_url(name: str) -> str:
    return f"/console/monitoring/{seg(name)}"


def _type_label(monitoring_type: str | None) -> str:
    return TYPE_LABELS.get(monitoring_type or "", monitoring_type or "")


def _input_of(view: View, described: dict[str, Any], definition: dict[str, Any] | None = None
              ) -> tuple[str | None, str | None]:
    """(endpoint name, batch transform capture S3 URI) of a schedule."""
    if described.get("EndpointName"):
        return described["EndpointName"], None
    if definition is None:
        definition = _job_definition(view, described)
    for item in definition.get("inputs", []):
        batch = item.get("BatchTransformInput") or {}
        if batch:
            return None, batch.get("DataCapturedDestinationS3Uri")
        endpoint = (item.get("EndpointInput") or {}).get("EndpointName")
        if endpoint:
            return endpoint, None
    return None, None


def _job_definition(view: View, described: dict[str, Any]) -> dict[str, Any]:
    """The parts of a schedule's job definition (inline or named) the pages show:
    ``inputs``, ``constraints``, ``statistics``, ``output``, ``image``, ``name``."""
    config = described.get("MonitoringScheduleConfig") or {}
    monitoring_type = config.get("MonitoringType") or described.get("MonitoringType") \
        or "DataQuality"
    inline = config.get("MonitoringJobDefinition")
    if inline is not None:
        baseline = inline.get("BaselineConfig") or {}
        outputs = (inline.get("MonitoringOutputConfig") or {}).get("MonitoringOutputs") or []
        return {"inputs": inline.get("MonitoringInputs") or [],
                "constraints": (baseline.get("ConstraintsResource") or {}).get("S3Uri"),
                "statistics": (baseline.get("StatisticsResource") or {}).get("S3Uri"),
                "output": _output_uri(outputs),
                "image": (inline.get("MonitoringAppSpecification") or {}).get("ImageUri"),
                "name": None}
    name = config.get("MonitoringJobDefinitionName")
    if not name or monitoring_type not in DEFINITION_KINDS:
        return {"inputs": [], "name": name}
    try:
        found = view.call("sagemaker", f"Describe{monitoring_type}JobDefinition",
                          {"JobDefinitionName": name})
    except AwsError:
        return {"inputs": [], "name": name}
    baseline = found.get(f"{monitoring_type}BaselineConfig") or {}
    outputs = (found.get(f"{monitoring_type}JobOutputConfig") or {}).get("MonitoringOutputs") \
        or []
    return {"inputs": [found.get(f"{monitoring_type}JobInput") or {}],
            "constraints": (baseline.get("ConstraintsResource") or {}).get("S3Uri"),
            "statistics": (baseline.get("StatisticsResource") or {}).get("S3Uri"),
            "output": _output_uri(outputs),
            "image": (found.get(f"{monitoring_type}AppSpecification") or {}).get("ImageUri"),
            "name": name}


def _output_uri(outputs: list[dict[str, Any]]) -> str | None:
    for item in outputs:
        uri = (item.get("S3Output") or {}).get("S3Uri")
        if uri:
            return uri
    return None


def _cron(described: dict[str, Any]) -> str:
    config = (described.get("MonitoringScheduleConfig") or {}).get("ScheduleConfig") or {}
    return config.get("ScheduleExpression") or ""


def _input_cell(endpoint: str | None, batch: str | None) -> Any:
    if endpoint:
        return el("span", "Endpoint ", link(f"/console/endpoints/{seg(endpoint)}", endpoint))
    if batch:
        return el("span", "Batch transform ", s3_link(batch))
    return ""


def list_schedules(view: View) -> tuple[str, Safe]:
    token, name, state, endpoint = (view.arg("token"), view.arg("name"), view.arg("status"),
                                    view.arg("endpoint"))
    result = view.call("sagemaker", "ListMonitoringSchedules",
                       list_request(view, NameContains="name", StatusEquals="status",
                                    EndpointName="endpoint"))
    rows = []
    for item in result.get("MonitoringScheduleSummaries", []):
        schedule = item.get("MonitoringScheduleName", "")
        try:
            described = view.call("sagemaker", "DescribeMonitoringSchedule",
                                  {"MonitoringScheduleName": schedule})
        except AwsError:  # deleted between the list and now
            continue
        last = described.get("LastMonitoringExecutionSummary") or {}
        rows.append([link(schedule_url(schedule), schedule),
                     status(item.get("MonitoringScheduleStatus")),
                     _type_label(item.get("MonitoringType")),
                     _input_cell(*_input_of(view, described)),
                     el("span", _cron(described), class_="mono"),
                     status(last.get("MonitoringExecutionStatus")) if last else "—",
                     when(last.get("ScheduledTime")) if last else "",
                     when(item.get("CreationTime"))])
    hidden = {"endpoint": endpoint} if endpoint else None
    title = f"Monitoring schedules of {endpoint}" if endpoint else "Monitoring schedules"
    body = el("section", heading(title),
              filter_form(view, statuses=STATUSES, hidden=hidden),
              table(["Schedule", "Status", "Type", "Input", "Schedule expression",
                     "Last execution", "Last scheduled", "Created"], rows,
                    empty="No monitoring schedules match.", id="schedules"),
              pager("/console/monitoring", result.get("NextToken"), name=name, status=state,
                    endpoint=endpoint, token=token))
    return title, body


def show_schedule(view: View) -> tuple[str, Safe]:
    name = view.params["name"]
    described = view.call("sagemaker", "DescribeMonitoringSchedule",
                          {"MonitoringScheduleName": name})
    name = described.get("MonitoringScheduleName") or name
    state = described.get("MonitoringScheduleStatus", "")
    definition = _job_definition(view, described)
    endpoint, batch = _input_of(view, described, definition)
    token = view.arg("token")
    request: dict[str, Any] = {"MonitoringScheduleName": name, "MaxResults": EXECUTIONS,
                               "SortBy": "ScheduledTime", "SortOrder": "Descending"}
    if token:
        request["NextToken"] = token
    listed = view.call("sagemaker", "ListMonitoringExecutions", request)
    executions = listed.get("MonitoringExecutionSummaries", [])
    rows = [[when(item.get("ScheduledTime")), status(item.get("MonitoringExecutionStatus")),
             _job_link(item.get("ProcessingJobArn")), item.get("FailureReason") or "",
             when(item.get("CreationTime")), when(item.get("LastModifiedTime"))]
            for item in executions]
    here = schedule_url(name)
    back = el("input", type="hidden", name="back", value=here)
    controls = []
    if state in ("Scheduled", "Pending"):
        controls.append(view.form(f"{here}/stop", back, button="Stop schedule",
                                  confirm=f"Stop {name}?"))
    if state in ("Stopped", "Failed"):
        controls.append(view.form(f"{here}/start", back, button="Start schedule"))
    latest = _latest_completed(view, name, executions if not token else None)
    live = any(item.get("MonitoringExecutionStatus") in OPEN for item in executions) \
        or state == "Pending"
    settings = definition_list([
        ("Status", status(state)),
        ("Failure reason", described.get("FailureReason")),
        ("Type", _type_label(described.get("MonitoringType")
                             or (described.get("MonitoringScheduleConfig") or {})
                             .get("MonitoringType"))),
        ("Input", _input_cell(endpoint, batch)),
        ("Schedule expression", el("span", _cron(described), class_="mono")),
        ("Job definition", definition.get("name") or "inline"),
        ("Baseline constraints", s3_link(definition["constraints"])
         if definition.get("constraints") else "none"),
        ("Baseline statistics", s3_link(definition["statistics"])
         if definition.get("statistics") else "none"),
        ("Reports", s3_link(definition["output"]) if definition.get("output") else None),
        ("Created", when(described.get("CreationTime"))),
        ("Last modified", when(described.get("LastModifiedTime")))])
    body = el("section",
              breadcrumbs(("/console/monitoring", "Monitoring schedules"), ("", name)),
              heading(name),
              el("div", settings, el("div", *controls, class_="actions"),
                 el("h2", "Violations of the latest completed execution"),
                 _violations(view, latest),
                 el("h2", "Executions"),
                 table(["Scheduled", "Status", "Processing job", "Failure reason", "Created",
                        "Last modified"], rows, empty="No executions yet.", id="executions"),
                 pager(here, listed.get("NextToken"), token=token),
                 id="schedule-live", data_live="1" if live else None, data_status=state),
              el("p", el("small", "ARN: ", described.get("MonitoringScheduleArn")),
                 class_="mono"))
    return name, body


def _job_link(arn: str | None) -> Any:
    if not arn:
        return ""
    job = arn.rsplit("/", 1)[-1]
    return link(job_url("processing", job), job)


def _latest_completed(view: View, name: str, first_page: list[dict[str, Any]] | None
                      ) -> dict[str, Any] | None:
    """The newest execution that completed (with or without violations) and has a job."""
    for item in first_page or []:
        if item.get("MonitoringExecutionStatus") in COMPLETED and item.get("ProcessingJobArn"):
            return item
    if first_page is not None and len(first_page) < EXECUTIONS:
        return None
    for wanted in COMPLETED:
        found = view.call("sagemaker", "ListMonitoringExecutions", {
            "MonitoringScheduleName": name, "MaxResults": 1, "StatusEquals": wanted,
            "SortBy": "ScheduledTime", "SortOrder": "Descending"}
        ).get("MonitoringExecutionSummaries", [])
        if found and found[0].get("ProcessingJobArn"):
            return found[0]
    return None


def _violations(view: View, execution: dict[str, Any] | None) -> Safe:
    if execution is None:
        return el("p", "No execution has completed yet.", class_="empty")
    job = execution["ProcessingJobArn"].rsplit("/", 1)[-1]
    caption = el("p", "Execution scheduled ", when(execution.get("ScheduledTime")), " (",
                 status(execution.get("MonitoringExecutionStatus")), ", ",
                 link(job_url("processing", job), job), ")")
    try:
        described = view.call("sagemaker", "DescribeProcessingJob", {"ProcessingJobName": job})
    except AwsError:
        return el("div", caption, el("p", "Its processing job is gone.", class_="empty"))
    outputs = (described.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    report = _output_uri(outputs)
    if not report:
        return el("div", caption, el("p", "The job wrote no report.", class_="empty"))
    report = report.rstrip("/")
    document = read_json_object(view, MAX_REPORT_BYTES, f"{report}/{VIOLATIONS_FILE}")
    violations = document.get("violations") if isinstance(document, dict) else None
    files = el("p", "Report: ", s3_link(f"{report}/{VIOLATIONS_FILE}"), " · ",
               s3_link(f"{report}/statistics.json"))
    if violations is None:
        return el("div", caption, files,
                  el("p", f"No readable {VIOLATIONS_FILE} in the report.", class_="empty"))
    rows = [[item.get("feature_name") or item.get("metric_name") or "",
             el("span", item.get("constraint_check_type", ""), class_="mono"),
             item.get("description", "")]
            for item in violations if isinstance(item, dict)]
    return el("div", caption, files,
              table(["Feature", "Constraint check", "Description"], rows,
                    empty="No violations: the data met every baseline constraint.",
                    id="violations"))



def stop(view: View, form: dict[str, str]) -> str:
    name = view.params["name"]
    view.call("sagemaker", "StopMonitoringSchedule", {"MonitoringScheduleName": name})
    return done(schedule_url(name), f"Stopped {name}.")


def start(view: View, form: dict[str, str]) -> str:
    name = view.params["name"]
    view.call("sagemaker", "StartMonitoringSchedule", {"MonitoringScheduleName": name})
    return done(schedule_url(name), f"Started {name}.")


def endpoint_link(endpoint: str) -> Safe:
    """For the endpoint page: its monitoring schedules' list."""
    return link(url("/console/monitoring", endpoint=endpoint), "Monitoring schedules")


def routes(platform: "Platform") -> list[Route]:
    active = "/console/monitoring"
    return [
        Route("/console/monitoring", page(platform, list_schedules, active), methods=["GET"]),
        Route("/console/monitoring/{name}", page(platform, show_schedule, active),
              methods=["GET"]),
        Route("/console/monitoring/{name}/stop", action(platform, stop), methods=["POST"]),
        Route("/console/monitoring/{name}/start", action(platform, start), methods=["POST"]),
    ]
