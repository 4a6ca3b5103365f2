"""Endpoints: CreateEndpoint, DescribeEndpoint, ListEndpoints, UpdateEndpoint,
UpdateEndpointWeightsAndCapacities, DeleteEndpoint.

Handlers write the endpoint's desired state (a status and a deployment) and wake the
endpoint controller (hosting/controller.py), which starts and stops the model servers and
records the outcome; DescribeEndpoint reads the record.
"""

from __future__ import annotations

import copy
from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError, validation_error
from ..autoscaling import endpoints as autoscaling_endpoints
from ..hosting.controller import CURRENT_KEY, KIND, TARGET_KEY, variant_summaries
from ..hosting.deployment_config import check_deployment_config
from ..hosting.shadow import shadow_summaries
from ..store.resources import Resource
from .common import list_query, resource_arn
from .endpoint_configs import deployment_from_config, find_config

RETAINABLE = {"DesiredWeight": "Weight", "DesiredInstanceCount": "InstanceCount"}


def endpoint_arn(ctx: RequestContext, name: str) -> str:
    return resource_arn(ctx, "endpoint", name)


def endpoint_missing(arn: str) -> AwsError:
    # The SDK's endpoint_deleted waiter succeeds on exactly this error code.
    return validation_error(f'Could not find endpoint "{arn}".')


def find_endpoint(ctx: RequestContext, name: str) -> Resource:
    found = ctx.platform.resources.get(KIND, name)
    if found is None:
        raise endpoint_missing(endpoint_arn(ctx, name))
    return found


LAST_CONFIG = "LastDeploymentConfig"


def _deployment_config(ctx: RequestContext, request: dict[str, Any],
                       deployment: dict[str, Any],
                       document: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The request's DeploymentConfig (or, with RetainDeploymentConfig, the endpoint's last
    one), checked as SageMaker checks it against the new endpoint configuration."""
    config = request.get("DeploymentConfig")
    if not config and request.get("RetainDeploymentConfig") and document is not None:
        config = document.get(LAST_CONFIG)
    if not config:
        return None
    check_deployment_config(ctx.platform, config, deployment)
    return config


# --- Create, Describe, List ------------------------------------------------------------------


def create_endpoint(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["EndpointName"]
    arn = endpoint_arn(ctx, name)
    config = find_config(ctx, request["EndpointConfigName"]).document
    deployment = {**deployment_from_config(ctx, config), "Mode": "create"}
    # Kept for later updates (RetainDeploymentConfig); a creation has nothing to shift.
    deployment_config = _deployment_config(ctx, request, deployment)
    now = ctx.now
    document = {
        "EndpointName": name,
        "EndpointArn": arn,
        "EndpointConfigName": config["EndpointConfigName"],
        "EndpointStatus": "Creating",
        "CreationTime": now,
        "LastModifiedTime": now,
        "ProductionVariants": variant_summaries(None, deployment, "Creating", now),
        "Tags": request.get("Tags", []),
        TARGET_KEY: deployment,
    }
    if deployment_config:
        document[LAST_CONFIG] = deployment_config
    shadows = shadow_summaries(None, deployment, "Creating", now)
    if shadows:
        document["ShadowProductionVariants"] = shadows
    ctx.platform.resources.create(
        KIND, name, arn, document, now=now, status="Creating",
        already_exists=lambda: validation_error(
            f'Cannot create already existing endpoint "{arn}". Choose another EndpointName, '
            "or update the existing endpoint with UpdateEndpoint."))
    ctx.platform.endpoints.wake(name)
    return {"EndpointArn": arn}


def describe_endpoint(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    document = find_endpoint(ctx, request["EndpointName"]).document
    return {key: value for key, value in document.items()
            if not key.startswith("_") and key != "Tags"}


def list_endpoints(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    query = list_query(request, sort_columns={"Name": "name", "CreationTime": "creation_time",
                                              "Status": "status"})
    page = ctx.platform.resources.list(KIND, query)
    return {"Endpoints": [
        {key: item.document[key] for key in ("EndpointName", "EndpointArn", "CreationTime",
                                              "LastModifiedTime", "EndpointStatus")}
        for item in page.items], "NextToken": page.next_token}


# --- Updates ---------------------------------------------------------------------------------


def _require_in_service(found: Resource, also: tuple[str, ...] = ()) -> dict[str, Any]:
    document = found.document
    status = document["EndpointStatus"]
    if status != "InService" and status not in also:
        raise validation_error(
            f'Cannot update in-progress endpoint "{found.arn}": it is {status}. Wait until it '
            "is InService (the endpoint_in_service waiter)."
            if status in ("Creating", "Updating", "Deleting", "RollingBack") else
            f'Cannot update endpoint "{found.arn}": it is {status}. Delete it and create it '
            "again.")
    return document


def update_endpoint(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    found = find_endpoint(ctx, request["EndpointName"])
    # UpdateRollbackFailed: the endpoint serves; a new UpdateEndpoint is how to repair it.
    current = _require_in_service(found, also=("UpdateRollbackFailed",))[CURRENT_KEY]
    config = find_config(ctx, request["EndpointConfigName"]).document
    deployment = {**deployment_from_config(ctx, config), "Mode": "replace"}
    excluded = [item["VariantPropertyType"]
                for item in request.get("ExcludeRetainedVariantProperties", [])]
    if excluded and not request.get("RetainAllVariantProperties"):
        raise validation_error("ExcludeRetainedVariantProperties applies only with "
                               "RetainAllVariantProperties=true.")
    if request.get("RetainAllVariantProperties"):
        serving = {item["VariantName"]: item for item in current["Variants"]}
        retained = [field for prop, field in RETAINABLE.items() if prop not in excluded]
        for variant in deployment["Variants"]:
            before = serving.get(variant["VariantName"])
            for field in retained if before else []:
                variant[field] = before[field]
    deployment_config = _deployment_config(ctx, request, deployment, found.document)
    if deployment_config:
        deployment["DeploymentConfig"] = deployment_config
    # Application Auto Scaling refuses to retype or remove a scaled variant.
    autoscaling_endpoints.check_update(ctx.platform, found.name, current, deployment)
    _mark_updating(ctx, found, deployment, also=("UpdateRollbackFailed",))
    return {"EndpointArn": found.arn}


def update_endpoint_weights_and_capacities(ctx: RequestContext,
                                           request: dict[str, Any]) -> dict[str, Any]:
    found = find_endpoint(ctx, request["EndpointName"])
    current = _require_in_service(found)[CURRENT_KEY]
    deployment = {**copy.deepcopy(current), "Mode": "adjust"}
    variants = {item["VariantName"]: item
                for item in deployment["Variants"] + (deployment.get("Shadows") or [])}
    for change in request["DesiredWeightsAndCapacities"]:
        variant = variants.get(change["VariantName"])
        if variant is None:
            raise validation_error(
                f'The variant {change["VariantName"]} is not part of endpoint "{found.arn}"; '
                f"its variants are {sorted(variants)}.")
        if change.get("ServerlessUpdateConfig"):
            raise validation_error("ServerlessUpdateConfig is not supported by modelyard "
                                   "(serverless inference).")
        if "DesiredWeight" in change:
            variant["Weight"] = float(change["DesiredWeight"])
        if "DesiredInstanceCount" in change:
            variant["InstanceCount"] = int(change["DesiredInstanceCount"])
    if not any(item["Weight"] > 0 for item in deployment["Variants"]):
        raise validation_error("At least one variant must keep a DesiredWeight above 0, or the "
                               "endpoint could route no request.")
    _mark_updating(ctx, found, deployment)
    return {"EndpointArn": found.arn}


def _mark_updating(ctx: RequestContext, found: Resource, deployment: dict[str, Any],
                   also: tuple[str, ...] = ()) -> None:
    now = ctx.now

    def change(resource: Resource) -> dict[str, Any]:
        document = dict(resource.document)
        if document["EndpointStatus"] != "InService" and document["EndpointStatus"] not in also:
            raise validation_error(f'Cannot update in-progress endpoint "{found.arn}".')
        document.update({
            "EndpointStatus": "Updating", "__status__": "Updating", "LastModifiedTime": now,
            "ProductionVariants": variant_summaries(document[CURRENT_KEY], deployment,
                                                    "Updating", now),
            TARGET_KEY: deployment,
        })
        document.pop("FailureReason", None)
        if deployment.get("DeploymentConfig"):
            document[LAST_CONFIG] = deployment["DeploymentConfig"]
        shadows = shadow_summaries(document[CURRENT_KEY], deployment, "Updating", now)
        document.pop("ShadowProductionVariants", None)
        if shadows:
            document["ShadowProductionVariants"] = shadows
        return document

    ctx.platform.resources.update(KIND, found.name, change, now=now,
                                  missing=lambda: endpoint_missing(found.arn))
    ctx.platform.endpoints.wake(found.name)


# --- Delete ----------------------------------------------------------------------------------


def delete_endpoint(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    found = find_endpoint(ctx, request["EndpointName"])
    now = ctx.now
    # As AWS does, Application Auto Scaling deregisters the variants' scalable targets.
    autoscaling_endpoints.deregister_endpoint(ctx.platform, found.name)

    def change(resource: Resource) -> dict[str, Any]:
        return {**resource.document, "EndpointStatus": "Deleting", "__status__": "Deleting",
                "LastModifiedTime": now}

    ctx.platform.resources.update(KIND, found.name, change, now=now,
                                  missing=lambda: endpoint_missing(found.arn))
    ctx.platform.endpoints.wake(found.name)
    return {}


OPERATIONS = {
    "CreateEndpoint": create_endpoint,
    "DescribeEndpoint": describe_endpoint,
    "ListEndpoints": list_endpoints,
    "UpdateEndpoint": update_endpoint,
    "UpdateEndpointWeightsAndCapacities": update_endpoint_weights_and_capacities,
    "DeleteEndpoint": delete_endpoint,
}
