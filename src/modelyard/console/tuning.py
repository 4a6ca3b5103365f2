"""Hyperparameter tuning jobs: their list with a status filter and paging
(ListHyperParameterTuningJobs), and a job's status, strategy, objective, limits, counters,
best training job, trials (ListTrainingJobsForHyperParameterTuningJob) with a chart of the
objective per trial, and the StopHyperParameterTuningJob action."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from .charts import line_chart
from .html import (Safe, definition_list, duration, el, epoch, link, number, pager, seg,
                   status, table, url, when)
from .jobs import FAMILIES, job_url
from .page import View, action, breadcrumbs, done, filter_form, heading, list_request, page

if TYPE_CHECKING:
    from ..platform import Platform

TRIALS = 100  # the most ListTrainingJobsForHyperParameterTuningJob gives in one page
STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped", "Deleting",
            "DeleteFailed")
RUNNING = ("InProgress", "Stopping")


def tuning_url(name: str) -> str:
    return f"/console/tuning/{seg(name)}"


def tabs() -> Safe:
    """The Jobs tabs (training, processing, transform, tuning) with tuning current."""
    items = [el("li", link(url("/console/jobs", type=key), f.label + " jobs"))
             for key, f in FAMILIES.items()]
    items.append(el("li", link("/console/tuning", "Tuning jobs", aria_current="page")))
    return el("nav", el("ul", *items), class_="tabs", aria_label="Job types")


def list_tuning(view: View) -> tuple[str, Safe]:
    token, name, state = view.arg("token"), view.arg("name"), view.arg("status")
    result = view.call("sagemaker", "ListHyperParameterTuningJobs",
                       list_request(view, NameContains="name", StatusEquals="status"))
    summaries = result.get("HyperParameterTuningJobSummaries", [])
    now = view.now()
    rows = []
    for item in summaries:
        job = item.get("HyperParameterTuningJobName", "")
        job_state = item.get("HyperParameterTuningJobStatus")
        counters = item.get("TrainingJobStatusCounters") or {}
        limits = item.get("ResourceLimits") or {}
        rows.append([link(tuning_url(job), job), status(job_state), item.get("Strategy") or "",
                     f"{counters.get('Completed', 0)} / "
                     f"{limits.get('MaxNumberOfTrainingJobs', '?')}",
                     when(item.get("CreationTime")),
                     duration(item.get("CreationTime"), None if job_state in RUNNING
                              else item.get("HyperParameterTuningEndTime"), now)])
    filters = filter_form(view, statuses=STATUSES)
    running = any(item.get("HyperParameterTuningJobStatus") in RUNNING for item in summaries)
    body = el("section", heading("Tuning jobs"), tabs(), filters,
              el("div", table(["Name", "Status", "Strategy", "Completed trials", "Created",
                               "Duration"], rows, empty="No tuning jobs match.", id="tuning"),
                 id="tuning-live", data_live="1" if running else None),
              pager("/console/tuning", result.get("NextToken"), name=name, status=state,
                    token=token))
    return "Tuning jobs", body


def _counters(counts: dict[str, Any] | None) -> str:
    return ", ".join(f"{key} {value}" for key, value in (counts or {}).items()) or "—"


def _tuned(values: dict[str, Any] | None) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted((values or {}).items()))


def _objective_value(item: dict[str, Any]) -> Any:
    return (item.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value")


def show_tuning(view: View) -> tuple[str, Safe]:
    name = view.params["name"]
    job = view.call("sagemaker", "DescribeHyperParameterTuningJob",
                    {"HyperParameterTuningJobName": name})
    name = job.get("HyperParameterTuningJobName") or name
    state = job.get("HyperParameterTuningJobStatus", "")
    config = job.get("HyperParameterTuningJobConfig") or {}
    objective = config.get("HyperParameterTuningJobObjective") or {}
    limits = config.get("ResourceLimits") or {}
    objective_type = objective.get("Type", "")
    summaries = view.call("sagemaker", "ListTrainingJobsForHyperParameterTuningJob", {
        "HyperParameterTuningJobName": name, "MaxResults": TRIALS,
        "SortBy": "FinalObjectiveMetricValue",
        "SortOrder": "Ascending" if objective_type == "Minimize" else "Descending",
    }).get("TrainingJobSummaries", [])
    here = tuning_url(name)
    controls = []
    if state == "InProgress":
        controls.append(view.form(f"{here}/stop", el("input", type="hidden", name="back",
                                                     value=here),
                                  button="Stop tuning job", confirm=f"Stop {name}?"))
    best = job.get("BestTrainingJob") or {}
    best_name = best.get("TrainingJobName")
    now = view.now()
    rows = [[link(job_url("training", item.get("TrainingJobName", "")),
                  item.get("TrainingJobName", "")),
             status(item.get("TrainingJobStatus")), _tuned(item.get("TunedHyperParameters")),
             number(value) if (value := _objective_value(item)) is not None else "",
             item.get("ObjectiveStatus") or "", item.get("FailureReason") or ""]
            for item in summaries]
    live = el("div",
              definition_list([
                  ("Status", status(state)),
                  ("Failure reason", job.get("FailureReason")),
                  ("Created", when(job.get("CreationTime"))),
                  ("Duration", duration(job.get("CreationTime"), None if state in RUNNING
                                        else job.get("HyperParameterTuningEndTime"), now)),
                  ("Training jobs", _counters(job.get("TrainingJobStatusCounters"))),
                  ("Objective statuses", _counters(job.get("ObjectiveStatusCounters"))),
                  ("Best training job",
                   el("span", link(job_url("training", best_name), best_name), " ",
                      objective.get("MetricName", ""), " = ",
                      number(_objective_value(best) if _objective_value(best) is not None
                             else "—"), id="best") if best_name else "—")]),
              el("div", *controls, class_="actions"),
              el("h2", "Objective per trial"), _chart(objective, summaries),
              el("h2", "Trials"),
              table(["Training job", "Status", "Tuned hyperparameters", "Objective",
                     "Objective status", "Failure reason"], rows,
                    empty="No trial has started yet.", id="trials"),
              id="tuning-live", data_live="1" if state in RUNNING else None, data_status=state)
    settings = definition_list([
        ("Strategy", config.get("Strategy")),
        ("Objective", f"{objective_type} {objective.get('MetricName', '')}".strip()),
        ("Max training jobs", limits.get("MaxNumberOfTrainingJobs")),
        ("Max parallel training jobs", limits.get("MaxParallelTrainingJobs")),
        ("Max runtime (s)", limits.get("MaxRuntimeInSeconds")),
        ("Early stopping", config.get("TrainingJobEarlyStoppingType")),
        ("Warm start", (job.get("WarmStartConfig") or {}).get("WarmStartType"))])
    body = el("section",
              breadcrumbs(("/console/tuning", "Tuning jobs"), ("", name)),
              heading(name), live, el("h2", "Settings"), settings,
              el("p", el("small", "ARN: ", job.get("HyperParameterTuningJobArn")),
                 class_="mono"))
    return name, body


def _chart(objective: dict[str, Any], summaries: list[dict[str, Any]]) -> Safe:
    """The objective of each trial that reported one, in creation order."""
    points = sorted((moment, float(value)) for item in summaries
                    if (value := _objective_value(item)) is not None
                    and (moment := epoch(item.get("CreationTime"))) is not None)
    metric = objective.get("MetricName") or "objective"
    return el("div", line_chart(metric, {metric: points}), id="objective-chart")


def stop(view: View, form: dict[str, str]) -> str:
    name = view.params["name"]
    view.call("sagemaker", "StopHyperParameterTuningJob", {"HyperParameterTuningJobName": name})
    return done(tuning_url(name), f"Stopping {name}.")


def routes(platform: "Platform") -> list[Route]:
    active = "/console/jobs"
    return [
        Route("/console/tuning", page(platform, list_tuning, active), methods=["GET"]),
        Route("/console/tuning/{name}", page(platform, show_tuning, active), methods=["GET"]),
        Route("/console/tuning/{name}/stop", action(platform, stop), methods=["POST"]),
    ]
