"""A tuning job's trial records, summed up as DescribeHyperParameterTuningJob shows them.

Each record is one training job the tuning job launched (a retried trial has one record per
attempt, sharing its ``Trial`` number). Records live in the tuning job's document under
``_Trials``; the public members (counters, best job, completion details) are derived from
them whenever they change.
"""

from __future__ import annotations

import math
from typing import Any

TERMINAL = ("Completed", "Failed", "Stopped")
IMPROVEMENT = 0.01  # SageMaker's "improves by at least 1%"


def objective_of(document: dict[str, Any], definition: str | None) -> dict[str, str]:
    """The {Type, MetricName} objective a definition's trials are judged by."""
    if definition is None:
        return document["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    for item in document.get("TrainingJobDefinitions", []):
        if item["DefinitionName"] == definition:
            return item["TuningObjective"]
    raise KeyError(definition)


def objective_status(record: dict[str, Any]) -> str:
    if record["Status"] not in TERMINAL:
        return "Pending"
    return "Succeeded" if record.get("Objective") is not None else "Failed"


def summary(document: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """A HyperParameterTrainingJobSummary."""
    item: dict[str, Any] = {
        "TrainingJobName": record["TrainingJobName"],
        "TrainingJobArn": record["TrainingJobArn"],
        "TuningJobName": document["HyperParameterTuningJobName"],
        "CreationTime": record["CreationTime"],
        "TrainingJobStatus": record["Status"],
        "TunedHyperParameters": record["Tuned"],
        "ObjectiveStatus": objective_status(record),
    }
    if record.get("Definition") is not None:
        item["TrainingJobDefinitionName"] = record["Definition"]
    for member in ("TrainingStartTime", "TrainingEndTime", "FailureReason"):
        if record.get(member) is not None:
            item[member] = record[member]
    if record.get("Objective") is not None:
        objective = objective_of(document, record.get("Definition"))
        item["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": objective["Type"], "MetricName": objective["MetricName"],
            "Value": record["Objective"]}
    return item


def counters(records: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """(TrainingJobStatusCounters, ObjectiveStatusCounters)."""
    jobs = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0,
            "Stopped": 0}
    objectives = {"Succeeded": 0, "Pending": 0, "Failed": 0}
    for record in records:
        status = record["Status"]
        if status == "Failed":
            jobs[record.get("ErrorClass") or "NonRetryableError"] += 1
        elif status in ("InProgress", "Stopping"):
            jobs["InProgress"] += 1
        else:
            jobs[status] += 1
        objectives[objective_status(record)] += 1
    return jobs, objectives


def better(direction: str, value: float, than: float | None) -> bool:
    if than is None:
        return True
    return value < than if direction == "Minimize" else value > than


def best_record(records: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    """The completed trial with the best final objective (the earliest on a tie)."""
    best = None
    for record in records:
        value = record.get("Objective")
        if record["Status"] != "Completed" or value is None or not math.isfinite(value):
            continue
        if best is None or better(direction, value, best["Objective"]):
            best = record
    return best


def not_improving(records: list[dict[str, Any]], direction: str) -> int:
    """How many trials in a row (by end time) did not improve the best by 1% or more."""
    finished = sorted((record for record in records if record["Status"] == "Completed"
                       and record.get("Objective") is not None),
                      key=lambda record: record.get("TrainingEndTime") or 0)
    best: float | None = None
    streak = 0
    for record in finished:
        value = record["Objective"]
        if best is None or _improves(direction, value, best):
            best, streak = value, 0
        else:
            streak += 1
    return streak


def _improves(direction: str, value: float, best: float) -> bool:
    margin = abs(best) * IMPROVEMENT
    if direction == "Minimize":
        return value <= best - margin if margin else value < best
    return value >= best + margin if margin else value > best


def convergence_window(max_jobs: int) -> int:
    """Trials without a 1% improvement after which ConvergenceDetected declares convergence."""
    return max(5, math.ceil(max_jobs / 4))


def derived(document: dict[str, Any], now: float) -> dict[str, Any]:
    """The public members computed from ``_Trials``: counters, best jobs, completion details."""
    records = document.get("_Trials", [])
    direction = _direction(document)
    jobs, objectives = counters(records)
    fields: dict[str, Any] = {
        "TrainingJobStatusCounters": jobs,
        "ObjectiveStatusCounters": objectives,
        "TuningJobCompletionDetails": {
            "NumberOfTrainingJobsObjectiveNotImproving": not_improving(records, direction)},
    }
    if document.get("_ConvergenceDetectedTime") is not None:
        fields["TuningJobCompletionDetails"]["ConvergenceDetectedTime"] = \
            document["_ConvergenceDetectedTime"]
    end = document.get("HyperParameterTuningEndTime") or now
    fields["ConsumedResources"] = {"RuntimeInSeconds": max(0, int(end - document["CreationTime"]))}
    best = best_record(records, direction)
    if best is not None:
        fields["BestTrainingJob"] = summary(document, best)
    warm = document.get("WarmStartConfig")
    if warm and warm["WarmStartType"] == "IdenticalDataAndAlgorithm":
        overall = best
        for parent in document.get("_WarmStart", []):
            if overall is None or better(direction, parent["Objective"], overall["Objective"]):
                overall = parent
        if overall is not None:
            fields["OverallBestTrainingJob"] = (
                overall["Summary"] if "Summary" in overall else summary(document, overall))
    return fields


def _direction(document: dict[str, Any]) -> str:
    config = document["HyperParameterTuningJobConfig"]
    if "HyperParameterTuningJobObjective" in config:
        return config["HyperParameterTuningJobObjective"]["Type"]
    return document["TrainingJobDefinitions"][0]["TuningObjective"]["Type"]


def direction_of(document: dict[str, Any]) -> str:
    return _direction(document)


def classify_failure(reason: str | None) -> str:
    """SageMaker's classes of failed trials: an internal error can be retried, a client
    (data, configuration) or algorithm error cannot."""
    text = (reason or "").strip()
    if text.startswith(("InternalServerError", "CapacityError", "ThrottlingException")):
        return "RetryableError"
    return "NonRetryableError"
