"""Inference experiments (shadow tests): Create, Describe, List, Stop and
UpdateInferenceExperiment.

The handlers check a request as SageMaker does and write the experiment's record; the
experiment loop (hosting/experiments.py) starts it at ``Schedule.StartTime`` by updating
the endpoint to a production variant plus a shadow variant that gets
``ShadowModeConfig.ShadowModelVariants[0].SamplingPercentage`` of the requests, and ends it
at ``Schedule.EndTime`` (default: 7 days after the start; at most 30 days) by putting back
the variants the endpoint had. ``StopInferenceExperiment`` ends it earlier with
``ModelVariantActions``: ``Promote`` makes the shadow a production variant, ``Retain``
keeps a variant as it is, ``Remove`` deletes it; ``DesiredModelVariants`` resizes what
stays. An endpoint runs one experiment at a time.
"""

from __future__ import annotations

import copy
from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError, validation_error
from ..hosting import experiments
from ..hosting.experiments import (
    ACTIVE, APPLIED_KEY, ENDPOINT_KIND, FINAL_KEY, KIND, PREVIOUS_KEY, apply,
    production_variant, set_variant_statuses,
)
from ..store.resources import ListQuery, Resource
from .common import list_query, resource_arn
from .endpoint_configs import check_variant

DEFAULT_DAYS = 7
MAX_DAYS = 30
DAY = 86400.0
SUMMARY_KEYS = ("Name", "Type", "Schedule", "Status", "StatusReason", "Description",
                "CreationTime", "CompletionTime", "LastModifiedTime", "RoleArn")


def experiment_arn(ctx: RequestContext, name: str) -> str:
    return resource_arn(ctx, "inference-experiment", name)


def not_found(ctx: RequestContext, name: str) -> AwsError:
    return AwsError("ResourceNotFound", f"Inference experiment {experiment_arn(ctx, name)} "
                    "does not exist. Check the name with ListInferenceExperiments.")


def conflict(message: str) -> AwsError:
    return AwsError("ConflictException", message, status=409)


def find_experiment(ctx: RequestContext, name: str) -> Resource:
    found = ctx.platform.resources.get(KIND, name)
    if found is None:
        raise not_found(ctx, name)
    return found


# --- checks ---------------------------------------------------------------------------------


def _check_variants(ctx: RequestContext, variants: list[dict[str, Any]],
                    mode: dict[str, Any]) -> None:
    names = [item["VariantName"] for item in variants]
    if len(set(names)) != len(names):
        raise validation_error(f"ModelVariants must have distinct VariantNames; got {names}.")
    source = mode["SourceModelVariantName"]
    shadow_config = mode["ShadowModelVariants"][0]
    shadow = shadow_config["ShadowModelVariantName"]
    for role, name in (("SourceModelVariantName", source), ("ShadowModelVariantName", shadow)):
        if name not in names:
            raise validation_error(f"ShadowModeConfig.{role} {name} is not one of the "
                                   f"ModelVariants ({', '.join(names)}).")
    if source == shadow:
        raise validation_error("The shadow variant must differ from the production variant "
                               f"({source}).")
    percentage = shadow_config["SamplingPercentage"]
    if not 0 <= percentage <= 100:
        raise validation_error(f"SamplingPercentage {percentage} of shadow variant {shadow} "
                               "must be between 0 and 100.")
    for item in variants:
        infrastructure = item["InfrastructureConfig"]["RealTimeInferenceConfig"]
        if infrastructure["InstanceCount"] < 1:
            raise validation_error(f"InstanceCount of model variant {item['VariantName']} "
                                   "must be at least 1.")
        check_variant(ctx, production_variant(item, 1.0), kind="ModelVariant")


def _schedule(schedule: dict[str, Any] | None, now: float,
              current: dict[str, Any] | None = None) -> dict[str, float]:
    schedule, current = schedule or {}, current or {}
    start = schedule.get("StartTime", current.get("StartTime", now))
    end = schedule.get("EndTime", current.get("EndTime", start + DEFAULT_DAYS * DAY))
    if end <= start:
        raise validation_error("Schedule.EndTime must be after Schedule.StartTime.")
    if end <= now:
        raise validation_error("Schedule.EndTime must be in the future.")
    if end - start > MAX_DAYS * DAY:
        raise validation_error(f"An inference experiment runs at most {MAX_DAYS} days; "
                               "bring Schedule.EndTime closer to Schedule.StartTime.")
    return {"StartTime": start, "EndTime": end}


def _check_storage(storage: dict[str, Any] | None) -> None:
    if storage and not storage["Destination"].startswith("s3://"):
        raise validation_error("DataStorageConfig.Destination must be an s3:// URI.")


def _summaries(variants: list[dict[str, Any]], status: str) -> list[dict[str, Any]]:
    return [{**copy.deepcopy(item), "Status": status} for item in variants]


# --- Create, Describe, List -----------------------------------------------------------------


def create_inference_experiment(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["Name"]
    arn = experiment_arn(ctx, name)
    if ctx.platform.resources.get(KIND, name) is not None:
        raise AwsError("ResourceInUse", f"Inference experiment {arn} already exists. Choose "
                       "another Name.")
    endpoint_name = request["EndpointName"]
    endpoint = ctx.platform.resources.get(ENDPOINT_KIND, endpoint_name)
    if endpoint is None:
        arn_of_endpoint = resource_arn(ctx, "endpoint", endpoint_name)
        raise validation_error(f'Could not find endpoint "{arn_of_endpoint}".')
    if endpoint.document["EndpointStatus"] in ("Failed", "Deleting"):
        raise validation_error(f"Endpoint {endpoint.name} is {endpoint.document['EndpointStatus']}"
                               "; an inference experiment needs an endpoint in service.")
    running = _active_on(ctx, endpoint.name)
    if running is not None:
        raise AwsError("ResourceInUse", f"Endpoint {endpoint.name} already runs inference "
                       f"experiment {running}; stop it before creating another.")
    _check_variants(ctx, request["ModelVariants"], request["ShadowModeConfig"])
    _check_storage(request.get("DataStorageConfig"))
    now = ctx.now
    document: dict[str, Any] = {
        "Arn": arn, "Name": name, "Type": request["Type"],
        "Schedule": _schedule(request.get("Schedule"), now),
        "Status": "Creating", "CreationTime": now, "LastModifiedTime": now,
        "RoleArn": request["RoleArn"],
        "EndpointMetadata": {"EndpointName": endpoint.name},
        "ModelVariants": _summaries(request["ModelVariants"], "Creating"),
        "ShadowModeConfig": request["ShadowModeConfig"],
        "Tags": request.get("Tags", []),
    }
    for member in ("Description", "DataStorageConfig", "KmsKey"):
        if member in request:
            document[member] = request[member]
    ctx.platform.resources.create(KIND, name, arn, document, now=now, status="Creating",
                                  parent=endpoint.name.lower())
    experiments.wake(ctx.platform)
    return {"InferenceExperimentArn": arn}


def _active_on(ctx: RequestContext, endpoint: str) -> str | None:
    for status in ACTIVE:
        page = ctx.platform.resources.list(KIND, ListQuery(
            status_equals=status, parent=endpoint.lower(), max_results=1))
        if page.items:
            return page.items[0].name
    return None


def describe_inference_experiment(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    document = find_experiment(ctx, request["Name"]).document
    result = {key: value for key, value in document.items()
              if not key.startswith("_") and key != "Tags"}
    metadata = {"EndpointName": document["EndpointMetadata"]["EndpointName"]}
    endpoint = ctx.platform.resources.get(ENDPOINT_KIND, metadata["EndpointName"])
    if endpoint is not None:
        for key in ("EndpointConfigName", "EndpointStatus", "FailureReason"):
            if endpoint.document.get(key):
                metadata[key] = endpoint.document[key]
    result["EndpointMetadata"] = metadata
    return result


def list_inference_experiments(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    query = list_query(request, sort_columns={"Name": "name", "CreationTime": "creation_time",
                                              "Status": "status"})
    page = ctx.platform.resources.list(KIND, query)
    items = [item.document for item in page.items
             if request.get("Type") in (None, item.document["Type"])]
    return {"InferenceExperiments": [{key: doc[key] for key in SUMMARY_KEYS if key in doc}
                                     for doc in items], "NextToken": page.next_token}


# --- Stop, Update ---------------------------------------------------------------------------


def stop_inference_experiment(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    found = find_experiment(ctx, request["Name"])
    document = copy.deepcopy(found.document)
    status = document["Status"]
    desired = request.get("DesiredState", "Completed")
    mode = document["ShadowModeConfig"]
    source = mode["SourceModelVariantName"]
    shadow = mode["ShadowModelVariants"][0]["ShadowModelVariantName"]
    actions = {source: "Retain", shadow: "Remove", **request["ModelVariantActions"]}
    unknown = sorted(set(actions) - {source, shadow})
    if unknown:
        raise validation_error(f"ModelVariantActions names {unknown}, which are not variants of "
                               f"inference experiment {found.name} ({source}, {shadow}).")
    if actions[source] == "Promote":
        raise validation_error(f"{source} is the production variant; only the shadow variant "
                               f"({shadow}) can be promoted.")
    production = ([source] if actions[source] == "Retain" else []) + (
        [shadow] if actions[shadow] == "Promote" else [])
    keep_shadow = actions[shadow] == "Retain"
    if not production:
        raise validation_error("After the experiment the endpoint needs a production variant: "
                               f"Retain {source} or Promote {shadow}.")
    if keep_shadow and actions[source] != "Retain":
        raise validation_error(f"Retaining shadow variant {shadow} needs its production variant "
                               f"{source} retained too.")
    if status == "Created":
        now = ctx.now

        def cancelled(resource: Resource) -> dict[str, Any]:
            doc = copy.deepcopy(resource.document)
            doc.update(Status=desired, __status__=desired, CompletionTime=now,
                       LastModifiedTime=now)
            if request.get("Reason"):
                doc["StatusReason"] = request["Reason"]
            set_variant_statuses(doc, {v["VariantName"]: "Deleted"
                                       for v in doc["ModelVariants"]})
            return doc

        ctx.platform.resources.update(KIND, found.name, cancelled, now=now,
                                      missing=lambda: not_found(ctx, found.name))
        return {"InferenceExperimentArn": found.arn}
    if status != "Running":
        raise conflict(f"Inference experiment {found.name} is {status}; only a Running (or a "
                       "Created, not yet started) experiment can be stopped.")
    variants = {item["VariantName"]: item for item in document["ModelVariants"]}
    for item in request.get("DesiredModelVariants", []):
        if item["VariantName"] not in production + ([shadow] if keep_shadow else []):
            raise validation_error(f"DesiredModelVariants names {item['VariantName']}, which "
                                   "the ModelVariantActions do not keep.")
        check_variant(ctx, production_variant(item, 1.0), kind="ModelVariant")
        variants[item["VariantName"]] = {**item, "Status": "Updating"}
    members: dict[str, Any] = {
        "ProductionVariants": [production_variant(variants[name], 1.0) for name in production]}
    if keep_shadow:
        percentage = mode["ShadowModelVariants"][0]["SamplingPercentage"]
        members["ShadowProductionVariants"] = [production_variant(variants[shadow],
                                                                  percentage / 100.0)]
    capture = document[PREVIOUS_KEY].get("DataCaptureConfig")
    if capture:
        members["DataCaptureConfig"] = capture
    try:
        applied = apply(ctx.platform, document, "stop", members)
    except AwsError as error:
        raise conflict(f"Inference experiment {found.name} cannot stop now: {error.message}") \
            from None
    final = {name: ("Deleted" if action == "Remove" else "InService")
             for name, action in actions.items()}
    now = ctx.now

    def stopping(resource: Resource) -> dict[str, Any]:
        doc = copy.deepcopy(resource.document)
        doc["ModelVariants"] = [{**variants[item["VariantName"]],
                                 "Status": "Deleting" if actions[item["VariantName"]] == "Remove"
                                 else "Updating"} for item in doc["ModelVariants"]]
        doc.update(Status="Stopping", __status__="Stopping", LastModifiedTime=now,
                   **{APPLIED_KEY: applied, FINAL_KEY: {"Status": desired, "Variants": final}})
        if request.get("Reason"):
            doc["StatusReason"] = request["Reason"]
        return doc

    ctx.platform.resources.update(KIND, found.name, stopping, now=now,
                                  missing=lambda: not_found(ctx, found.name))
    experiments.wake(ctx.platform)
    return {"InferenceExperimentArn": found.arn}


def update_inference_experiment(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    found = find_experiment(ctx, request["Name"])
    document = copy.deepcopy(found.document)
    status = document["Status"]
    if status not in ("Created", "Running"):
        raise conflict(f"Inference experiment {found.name} is {status}; it can be updated "
                       "only while Created or Running.")
    now = ctx.now
    schedule = request.get("Schedule")
    if schedule is not None:
        if status == "Running" and "StartTime" in schedule and \
                schedule["StartTime"] != document["Schedule"]["StartTime"]:
            raise validation_error("The experiment is Running: only Schedule.EndTime can "
                                   "change.")
        document["Schedule"] = _schedule(schedule, now, document["Schedule"])
    if "Description" in request:
        document["Description"] = request["Description"]
    deployed_before = (document["ModelVariants"], document["ShadowModeConfig"],
                       document.get("DataStorageConfig"))
    if "ModelVariants" in request:
        statuses = {item["VariantName"]: item["Status"] for item in document["ModelVariants"]}
        document["ModelVariants"] = [
            {**item, "Status": statuses.get(item["VariantName"], "Creating")}
            for item in request["ModelVariants"]]
    if "ShadowModeConfig" in request:
        document["ShadowModeConfig"] = request["ShadowModeConfig"]
    if "DataStorageConfig" in request:
        _check_storage(request["DataStorageConfig"])
        document["DataStorageConfig"] = request["DataStorageConfig"]
    _check_variants(ctx, [{k: v for k, v in item.items() if k != "Status"}
                          for item in document["ModelVariants"]], document["ShadowModeConfig"])
    redeploy = status == "Running" and (
        document["ModelVariants"], document["ShadowModeConfig"],
        document.get("DataStorageConfig")) != deployed_before
    applied = None
    if redeploy:
        try:
            applied = apply(ctx.platform, document, "update",
                            experiments.experiment_config(document))
        except AwsError as error:
            raise conflict(f"Inference experiment {found.name} cannot be updated now: "
                           f"{error.message}") from None

    def updated(resource: Resource) -> dict[str, Any]:
        doc = {**document, "LastModifiedTime": now}
        if applied:
            doc.update(Status="Updating", **{APPLIED_KEY: applied})
            set_variant_statuses(doc, {v["VariantName"]: "Updating"
                                       for v in doc["ModelVariants"]})
        doc["__status__"] = doc["Status"]
        return doc

    ctx.platform.resources.update(KIND, found.name, updated, now=now,
                                  missing=lambda: not_found(ctx, found.name))
    experiments.wake(ctx.platform)
    return {"InferenceExperimentArn": found.arn}


OPERATIONS: dict[str, Any] = {
    "CreateInferenceExperiment": create_inference_experiment,
    "DescribeInferenceExperiment": describe_inference_experiment,
    "ListInferenceExperiments": list_inference_experiments,
    "StopInferenceExperiment": stop_inference_experiment,
    "UpdateInferenceExperiment": update_inference_experiment,
}
