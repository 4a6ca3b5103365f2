"""Hyperparameter tuning jobs: Create/Describe/List/Stop/Delete HyperParameterTuningJob and
ListTrainingJobsForHyperParameterTuningJob.

A tuning job's document is its Describe response plus private members (``_Trials``: one
record per training job it launched; ``_Seed``; ``_WarmStart``: the parents' trials);
the tuning loop (modelyard/tuning/loop.py) runs it.
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any

from .. import tuning
from ..api.context import RequestContext
from ..api.errors import validation_error
from ..tuning import records as rec
from ..tuning.loop import KIND
from ..tuning.validation import check_request, definitions_of
from ..tuning.warm_start import warm_start_seeds
from .common import list_query, resource_arn
from .jobs_common import job_exists, job_not_found

LABEL = "Hyperparameter tuning job"
DEFAULT_MAX_RESULTS = 10


def create_tuning_job(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["HyperParameterTuningJobName"]
    check_request(request)
    seeds = warm_start_seeds(ctx.platform, request) if "WarmStartConfig" in request else []
    config = copy.deepcopy(request["HyperParameterTuningJobConfig"])
    config.setdefault("TrainingJobEarlyStoppingType", "Off")
    seed = config.get("RandomSeed")
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    arn = resource_arn(ctx, "hyper-parameter-tuning-job", name)
    now = ctx.now
    document: dict[str, Any] = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobArn": arn,
        "HyperParameterTuningJobConfig": config,
        "HyperParameterTuningJobStatus": "InProgress",
        "CreationTime": now,
        "LastModifiedTime": now,
        "Tags": request.get("Tags", []),
        "_Seed": seed,
        "_Trials": [],
        "_WarmStart": seeds,
        "_Done": None,
    }
    for member in ("TrainingJobDefinition", "TrainingJobDefinitions", "WarmStartConfig"):
        if member in request:
            document[member] = copy.deepcopy(request[member])
    # SageMaker injects the objective's name as a static hyperparameter of every definition.
    for definition_name, definition in definitions_of(document):
        objective = (definition["TuningObjective"] if definition_name is not None
                     else config["HyperParameterTuningJobObjective"])
        definition.setdefault("StaticHyperParameters", {})
        definition["StaticHyperParameters"]["_tuning_objective_metric"] = objective["MetricName"]
    document.update(rec.derived(document, now))
    ctx.platform.resources.create(KIND, name, arn, document, now=now, status="InProgress",
                                  already_exists=lambda: job_exists(LABEL, arn))
    tuning.wake(ctx.platform)
    return {"HyperParameterTuningJobArn": arn}


def _find(ctx: RequestContext, name: str):  # noqa: ANN202 - Resource
    found = ctx.platform.resources.get(KIND, name)
    if found is None:
        raise job_not_found(LABEL, name)
    return found


def _public(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items()
            if not key.startswith("_") and key != "Tags"}


def describe_tuning_job(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    document = dict(_find(ctx, request["HyperParameterTuningJobName"]).document)
    document.update(rec.derived(document, ctx.now))  # ConsumedResources runs with the clock
    return _public(document)


def list_tuning_jobs(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    query = list_query(request, sort_columns={
        "Name": "name", "CreationTime": "creation_time", "Status": "status"})
    page = ctx.platform.resources.list(KIND, query)
    summaries = []
    for item in page.items:
        document = item.document
        config = document["HyperParameterTuningJobConfig"]
        summaries.append({
            **{key: document[key] for key in (
                "HyperParameterTuningJobName", "HyperParameterTuningJobArn",
                "HyperParameterTuningJobStatus", "CreationTime", "LastModifiedTime",
                "TrainingJobStatusCounters", "ObjectiveStatusCounters") if key in document},
            "Strategy": config["Strategy"],
            "ResourceLimits": config["ResourceLimits"],
            **({"HyperParameterTuningEndTime": document["HyperParameterTuningEndTime"]}
               if "HyperParameterTuningEndTime" in document else {}),
        })
    return {"HyperParameterTuningJobSummaries": summaries, "NextToken": page.next_token}


def stop_tuning_job(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["HyperParameterTuningJobName"]
    _find(ctx, name)

    def change(resource):  # noqa: ANN001, ANN202
        document = dict(resource.document)
        status = document["HyperParameterTuningJobStatus"]
        if status != "InProgress":
            raise validation_error(
                f"The request was rejected because the hyperparameter tuning job {name} is in "
                f"status {status}; only InProgress tuning jobs can be stopped.")
        document["HyperParameterTuningJobStatus"] = "Stopping"
        document["LastModifiedTime"] = ctx.now
        document["__status__"] = "Stopping"
        return document

    ctx.platform.resources.update(KIND, name, change, now=ctx.now,
                                  missing=lambda: job_not_found(LABEL, name))
    tuning.wake(ctx.platform)
    return {}


def delete_tuning_job(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["HyperParameterTuningJobName"]
    status = _find(ctx, name).document["HyperParameterTuningJobStatus"]
    if status in ("InProgress", "Stopping"):
        raise validation_error(
            f"The hyperparameter tuning job {name} is {status}; stop it and wait until it is "
            "Stopped before deleting it.")
    ctx.platform.resources.delete(KIND, name)
    return {}


_SORT_KEYS = {"Name": "TrainingJobName", "CreationTime": "CreationTime",
              "Status": "TrainingJobStatus"}


def list_trials(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    document = _find(ctx, request["HyperParameterTuningJobName"]).document
    summaries = [rec.summary(document, record) for record in document.get("_Trials", [])]
    status = request.get("StatusEquals")
    if status:
        summaries = [item for item in summaries if item["TrainingJobStatus"] == status]
    sort_by = request.get("SortBy", "Name")
    descending = request.get("SortOrder", "Ascending") == "Descending"
    if sort_by == "FinalObjectiveMetricValue":
        # Jobs without a final objective come last in either order, as on SageMaker.
        scored = [item for item in summaries
                  if "FinalHyperParameterTuningJobObjectiveMetric" in item
                  and math.isfinite(item["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])]
        rest = [item for item in summaries if item not in scored]
        scored.sort(key=lambda item: item["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
                    reverse=descending)
        summaries = scored + rest
    else:
        key = _SORT_KEYS[sort_by]
        summaries.sort(key=lambda item: item[key], reverse=descending)
    offset = _offset(request.get("NextToken"))
    limit = request.get("MaxResults", DEFAULT_MAX_RESULTS)
    page = summaries[offset: offset + limit]
    token = str(offset + limit) if offset + limit < len(summaries) else None
    return {"TrainingJobSummaries": page, "NextToken": token}


def _offset(token: str | None) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise validation_error("The NextToken is not valid for this request. Pass the "
                               "NextToken exactly as the previous response returned it.")
    return int(token)


OPERATIONS: dict[str, Any] = {
    "CreateHyperParameterTuningJob": create_tuning_job,
    "DescribeHyperParameterTuningJob": describe_tuning_job,
    "ListHyperParameterTuningJobs": list_tuning_jobs,
    "StopHyperParameterTuningJob": stop_tuning_job,
    "DeleteHyperParameterTuningJob": delete_tuning_job,
    "ListTrainingJobsForHyperParameterTuningJob": list_trials,
}
