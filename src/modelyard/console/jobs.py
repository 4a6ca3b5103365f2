"""Jobs: processing, training and transform jobs; their list with filters and paging
(the List*Jobs operations), and a job's status timeline, settings, S3 inputs and outputs,
metric charts, live log and the Stop*Job action."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from ..api.errors import AwsError
from ..store.metrics import MetricStore
from .charts import line_chart
from .html import (Safe, definition_list, duration, el, link, pager, s3_link, seg, status,
                   table, url, when)
from .page import View, action, breadcrumbs, done, filter_form, heading, list_request, page

if TYPE_CHECKING:
    from ..platform import Platform

LOG_LINES = 300


@dataclass(frozen=True)
class Family:
    key: str  # the URL segment
    label: str
    noun: str  # as in the operation names: TrainingJob
    status_field: str
    log_group: str
    statuses: tuple[str, ...]

    @property
    def list_member(self) -> str:
        return f"{self.noun}Summaries"


FAMILIES = {
    "training": Family("training", "Training", "TrainingJob", "TrainingJobStatus",
                       "/aws/sagemaker/TrainingJobs",
                       ("InProgress", "Completed", "Failed", "Stopping", "Stopped")),
    "processing": Family("processing", "Processing", "ProcessingJob", "ProcessingJobStatus",
                         "/aws/sagemaker/ProcessingJobs",
                         ("InProgress", "Completed", "Failed", "Stopping", "Stopped")),
    "transform": Family("transform", "Transform", "TransformJob", "TransformJobStatus",
                        "/aws/sagemaker/TransformJobs",
                        ("InProgress", "Completed", "Failed", "Stopping", "Stopped")),
}
RUNNING = ("InProgress", "Stopping")


def job_url(family: str, name: str) -> str:
    return f"/console/jobs/{family}/{seg(name)}"


def _family(key: str) -> Family:
    if key not in FAMILIES:
        raise AwsError("ValidationException",
                       f"Unknown job type {key!r}: one of {', '.join(FAMILIES)}.")
    return FAMILIES[key]


def list_jobs(view: View) -> tuple[str, Safe]:
    family = _family(view.arg("type", "training"))
    token, name, state = view.arg("token"), view.arg("name"), view.arg("status")
    result = view.call("sagemaker", f"List{family.noun}s",
                       list_request(view, NameContains="name", StatusEquals="status"))
    now = view.now()
    rows = []
    for item in result.get(family.list_member, []):
        job = item.get(f"{family.noun}Name", "")
        rows.append([link(job_url(family.key, job), job), status(item.get(family.status_field)),
                     when(item.get("CreationTime")),
                     duration(item.get(_started(family, item)),
                              item.get(_ended(family)) if item.get(family.status_field)
                              not in RUNNING else None, now),
                     item.get("FailureReason") or ""])
    tabs = el("nav", el("ul", *(el("li", link(url("/console/jobs", type=key), f.label + " jobs",
                                                  aria_current="page" if key == family.key
                                                  else None))
                                for key, f in FAMILIES.items()),
                         el("li", link("/console/tuning", "Tuning jobs"))), class_="tabs",
              aria_label="Job types")
    filters = filter_form(view, statuses=family.statuses, hidden={"type": family.key})
    running = any(item.get(family.status_field) in RUNNING
                  for item in result.get(family.list_member, []))
    body = el("section", heading(f"{family.label} jobs"), tabs, filters,
              el("div", table(["Name", "Status", "Created", "Duration", "Failure reason"], rows,
                              empty="No jobs match.", id="jobs"),
                 id="jobs-live", data_live="1" if running else None),
              pager("/console/jobs", result.get("NextToken"), type=family.key, name=name,
                    status=state, token=token))
    return f"{family.label} jobs", body


def _started(family: Family, item: dict[str, Any]) -> str:
    return "TrainingStartTime" if family.key == "training" and item.get("TrainingStartTime") \
        else ("TransformStartTime" if family.key == "transform"
              and item.get("TransformStartTime") else "CreationTime")


def _ended(family: Family) -> str:
    return {"training": "TrainingEndTime", "processing": "ProcessingEndTime",
            "transform": "TransformEndTime"}[family.key]


def show_job(view: View) -> tuple[str, Safe]:
    family = _family(view.params["family"])
    name = view.params["name"]
    job = view.call("sagemaker", f"Describe{family.noun}", {f"{family.noun}Name": name})
    # Names are case-insensitive (ARNs, hence step links, carry them lower-cased); the
    # job's logs and metrics are kept under the name as created.
    name = job.get(f"{family.noun}Name") or name
    state = job.get(family.status_field, "")
    here = job_url(family.key, name)
    controls = []
    if state == "InProgress":
        controls.append(view.form(f"{here}/stop", el("input", type="hidden", name="back",
                                                     value=here),
                                  button="Stop job", confirm=f"Stop {name}?"))
    now = view.now()
    live = el("div",
              definition_list([("Status", status(state)),
                               ("Secondary status", job.get("SecondaryStatus")),
                               ("Failure reason", job.get("FailureReason")),
                               ("Created", when(job.get("CreationTime"))),
                               ("Duration", duration(job.get(_started(family, job)),
                                                     None if state in RUNNING
                                                     else job.get(_ended(family)), now)),
                               ("Billable seconds", job.get("BillableTimeInSeconds"))]),
              el("div", *controls, class_="actions"),
              _timeline(job, now) if family.key == "training" else "",
              _metrics(view, name) if family.key == "training" else "",
              el("h2", "Log"), _log(view, family, name),
              id="job-live", data_live="1" if state in RUNNING else None, data_status=state)
    body = el("section",
              breadcrumbs((url("/console/jobs", type=family.key), f"{family.label} jobs"),
                          ("", name)),
              heading(name), live, *_settings(family, job),
              el("p", el("small", "ARN: ", job.get(f"{family.noun}Arn")), class_="mono"))
    return name, body


def _timeline(job: dict[str, Any], now: float) -> Safe:
    transitions = job.get("SecondaryStatusTransitions") or []
    items = [el("li", el("span", item.get("Status", ""), class_="badge st-"
                         + "".join(ch for ch in str(item.get("Status")) if ch.isalnum())),
                " ", el("time", when(item.get("StartTime"))), " ",
                el("span", duration(item.get("StartTime"), item.get("EndTime"), now),
                   class_="muted"),
                el("div", item.get("StatusMessage") or "", class_="muted"))
             for item in transitions]
    return el("div", el("h2", "Status timeline"),
              el("ol", *items, class_="timeline") if items
              else el("p", "No transitions yet.", class_="empty"))


def _metrics(view: View, name: str) -> Safe:
    series: dict[str, list[tuple[float, float]]] = {}
    for point in MetricStore(view.platform.db).series(name):
        series.setdefault(point.metric_name, []).append((point.timestamp, point.value))
    if not series:
        return el("div", el("h2", "Metrics"), el("p", "No metrics reported (yet).",
                                                 class_="empty"))
    charts = [line_chart(metric, {metric: points}) for metric, points in sorted(series.items())]
    return el("div", el("h2", "Metrics"), el("div", *charts, class_="charts"), id="metrics")


def _log(view: View, family: Family, name: str) -> Safe:
    try:
        streams = view.call("logs", "DescribeLogStreams", {
            "logGroupName": family.log_group, "logStreamNamePrefix": f"{name}/"}
        ).get("logStreams", [])
    except AwsError:
        streams = []
    lines: list[tuple[int, str]] = []
    for stream in streams[:8]:
        events = view.call("logs", "GetLogEvents", {
            "logGroupName": family.log_group, "logStreamName": stream["logStreamName"],
            "startFromHead": False, "limit": LOG_LINES}).get("events", [])
        lines.extend((event.get("timestamp", 0), event.get("message", "")) for event in events)
    lines.sort(key=lambda pair: pair[0])
    lines = lines[-LOG_LINES:]
    if not lines:
        return el("p", "No log lines yet.", class_="empty", id="log")
    text = "\n".join(message.rstrip("\n") for _, message in lines)
    return el("pre", text, id="log", class_="log", tabindex="0",
              aria_label=f"Last {len(lines)} log lines")


def _settings(family: Family, job: dict[str, Any]) -> list[Safe]:
    parts: list[Safe] = []
    if family.key == "training":
        hyper = job.get("HyperParameters") or {}
        parts.append(el("h2", "Hyperparameters"))
        parts.append(table(["Name", "Value"], [[k, v] for k, v in sorted(hyper.items())],
                           empty="None.", id="hyperparameters"))
        channels = [[channel.get("ChannelName"), s3_link(((channel.get("DataSource") or {})
                                                          .get("S3DataSource") or {})
                                                         .get("S3Uri"))]
                    for channel in job.get("InputDataConfig") or []]
        parts.append(el("h2", "Inputs and outputs"))
        parts.append(table(["Channel", "S3"], channels, empty="No input channels."))
        parts.append(definition_list([
            ("Output path", s3_link((job.get("OutputDataConfig") or {}).get("S3OutputPath"))),
            ("Model artifacts", s3_link((job.get("ModelArtifacts") or {})
                                        .get("S3ModelArtifacts"))),
            ("Image", (job.get("AlgorithmSpecification") or {}).get("TrainingImage")),
            ("Instance", (job.get("ResourceConfig") or {}).get("InstanceType"))]))
        final = job.get("FinalMetricDataList") or []
        if final:
            parts.append(el("h2", "Final metrics"))
            parts.append(table(["Metric", "Value"], [[m.get("MetricName"), m.get("Value")]
                                                     for m in final]))
    elif family.key == "processing":
        inputs = [[item.get("InputName"), s3_link((item.get("S3Input") or {}).get("S3Uri"))]
                  for item in job.get("ProcessingInputs") or []]
        outputs = [[item.get("OutputName"), s3_link((item.get("S3Output") or {}).get("S3Uri"))]
                   for item in (job.get("ProcessingOutputConfig") or {}).get("Outputs") or []]
        parts += [el("h2", "Inputs"), table(["Name", "S3"], inputs, empty="None."),
                  el("h2", "Outputs"), table(["Name", "S3"], outputs, empty="None."),
                  definition_list([("Image", (job.get("AppSpecification") or {})
                                    .get("ImageUri"))])]
        environment = job.get("Environment") or {}
        if environment:
            parts += [el("h2", "Environment"),
                      table(["Name", "Value"], sorted(map(list, environment.items())))]
    else:
        source = ((job.get("TransformInput") or {}).get("DataSource") or {}) \
            .get("S3DataSource") or {}
        parts.append(definition_list([
            ("Model", job.get("ModelName")), ("Input", s3_link(source.get("S3Uri"))),
            ("Output", s3_link((job.get("TransformOutput") or {}).get("S3OutputPath")))]))
    return parts


def stop(view: View, form: dict[str, str]) -> str:
    family = _family(view.params["family"])
    name = view.params["name"]
    view.call("sagemaker", f"Stop{family.noun}", {f"{family.noun}Name": name})
    return done(job_url(family.key, name), f"Stopping {name}.")


def routes(platform: "Platform") -> list[Route]:
    active = "/console/jobs"
    return [
        Route("/console/jobs", page(platform, list_jobs, active), methods=["GET"]),
        Route("/console/jobs/{family}/{name}", page(platform, show_job, active),
              methods=["GET"]),
        Route("/console/jobs/{family}/{name}/stop", action(platform, stop), methods=["POST"]),
    ]
