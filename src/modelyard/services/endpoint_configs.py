"""Endpoint configurations: CreateEndpointConfig, Describe, List, DeleteEndpointConfig.

A configuration names the models each production variant serves and on what. It is
checked when created -- its models exist and modelyard can serve them -- and copied into
an endpoint when the endpoint is created or updated (services/endpoints.py), so, as in
SageMaker, deleting a configuration (or a model) does not disturb endpoints that use it.
"""

from __future__ import annotations

import copy
from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError, validation_error
from ..engine.images import SUPPORTED, parse_image
from ..hosting.fleet import DEFAULT_STARTUP_TIMEOUT_SECONDS, script_mode
from ..store.resources import Resource
from .common import list_query, resource_arn
from .models import CONTAINERS_KEY, find_model

KIND = "EndpointConfig"


def config_arn(ctx: RequestContext, name: str) -> str:
    return resource_arn(ctx, "endpoint-config", name)


def config_missing(arn: str) -> AwsError:
    # The SDK's _deployment_entity_exists looks for ValidationException and "Could not find".
    return validation_error(
        f'Could not find endpoint configuration "{arn}". Check the name with ListEndpointConfigs.')


def find_config(ctx: RequestContext, name: str) -> Resource:
    arn = config_arn(ctx, name)
    found = ctx.platform.resources.get(KIND, name)
    if found is None:
        raise config_missing(arn)
    return found


# --- Create ----------------------------------------------------------------------------------


def create_endpoint_config(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["EndpointConfigName"]
    arn = config_arn(ctx, name)
    _refuse_unsupported(request)
    variants = request["ProductionVariants"]
    names = [variant["VariantName"] for variant in variants]
    repeated = sorted({item for item in names if names.count(item) > 1})
    if repeated:
        raise validation_error(f"VariantName must be unique within ProductionVariants; "
                               f"repeated: {repeated}.")
    for variant in variants:
        check_variant(ctx, variant)
    capture = request.get("DataCaptureConfig")
    if capture is not None:
        _check_capture(capture)
    now = ctx.now
    document: dict[str, Any] = {
        **copy.deepcopy({k: v for k, v in request.items() if k != "Tags"}),
        "EndpointConfigArn": arn,
        "CreationTime": now,
        "Tags": request.get("Tags", []),
        "EnableNetworkIsolation": request.get("EnableNetworkIsolation", False),
    }
    document["ProductionVariants"] = [
        {"InitialVariantWeight": 1.0, **variant} for variant in document["ProductionVariants"]]
    ctx.platform.resources.create(
        KIND, name, arn, document, now=now,
        already_exists=lambda: validation_error(
            f'Cannot create already existing endpoint configuration "{arn}". Choose another '
            "EndpointConfigName, or delete the existing one first."))
    return {"EndpointConfigArn": arn}


def _refuse_unsupported(request: dict[str, Any]) -> None:
    for member, what in (
        ("AsyncInferenceConfig", "asynchronous inference"),
        ("ExplainerConfig", "SageMaker Clarify online explainability"),
        ("ShadowProductionVariants", "shadow variants"),
    ):
        if request.get(member):
            raise validation_error(
                f"{member} is not supported by modelyard ({what}); modelyard serves real-time "
                "endpoints with ProductionVariants only. Remove it from the request.")


def check_variant(ctx: RequestContext, variant: dict[str, Any]) -> None:
    """Refuse, with what to change, a variant modelyard cannot serve."""
    label = f"ProductionVariant {variant['VariantName']}"
    if variant.get("ServerlessConfig"):
        raise validation_error(
            f"{label}: ServerlessConfig (serverless inference) is not supported by modelyard. "
            "Pass InstanceType and InitialInstanceCount instead.")
    for member in ("AcceleratorType", "InstancePools", "ManagedInstanceScaling",
                   "CapacityReservationConfig"):
        if variant.get(member):
            raise validation_error(f"{label}: {member} is not supported by modelyard. Remove it.")
    if not variant.get("InstanceType") or variant.get("InitialInstanceCount") is None:
        raise validation_error(f"{label} needs InstanceType and InitialInstanceCount.")
    if variant["InitialInstanceCount"] < 1:
        raise validation_error(f"{label}: InitialInstanceCount must be at least 1.")
    containers = find_model(ctx, variant["ModelName"]).document[CONTAINERS_KEY]
    model = variant["ModelName"]
    if len(containers) != 1:
        raise validation_error(
            f"{label}: model {model} has {len(containers)} containers (an inference pipeline "
            "or multi-container model), which modelyard cannot serve. Use a model with one "
            "container.")
    container = containers[0]
    if container.get("Mode", "SingleModel") != "SingleModel":
        raise validation_error(f"{label}: model {model} is a multi-model container "
                               "(Mode MultiModel), which modelyard cannot serve.")
    image = parse_image(container["Image"])
    if image is None:
        raise validation_error(
            f"{label}: the image {container['Image']!r} of model {model} is not one modelyard "
            f"can serve. modelyard serves {SUPPORTED}; custom containers need Docker.")
    if not container.get("ModelDataUrl") and container.get("ModelDataSource"):
        raise validation_error(
            f"{label}: model {model} gives its data as ModelDataSource, which modelyard does "
            "not serve; give ModelDataUrl (an s3:// model.tar.gz) instead.")
    environment = container.get("Environment", {})
    if image.framework == "sklearn" and not environment.get("SAGEMAKER_PROGRAM"):
        raise validation_error(
            f"{label}: model {model} runs on the scikit-learn image, which serves an entry "
            "point: set SAGEMAKER_PROGRAM (the SDK's entry_point) in its Environment.")
    if not container.get("ModelDataUrl") and not script_mode(image, environment):
        raise validation_error(f"{label}: model {model} has no ModelDataUrl; the "
                               f"{image.framework} container needs a model.tar.gz.")


def _check_capture(capture: dict[str, Any]) -> None:
    if not capture["DestinationS3Uri"].startswith("s3://"):
        raise validation_error("DataCaptureConfig.DestinationS3Uri must be an s3:// URI.")


# --- Describe, List, Delete ------------------------------------------------------------------


def describe_endpoint_config(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return find_config(ctx, request["EndpointConfigName"]).document


def list_endpoint_configs(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    query = list_query(request, sort_columns={"Name": "name", "CreationTime": "creation_time"})
    page = ctx.platform.resources.list(KIND, query)
    return {"EndpointConfigs": [
        {key: item.document[key] for key in ("EndpointConfigName", "EndpointConfigArn",
                                              "CreationTime")}
        for item in page.items], "NextToken": page.next_token}


def delete_endpoint_config(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    found = find_config(ctx, request["EndpointConfigName"])
    ctx.platform.resources.delete(KIND, found.name)
    return {}


def deployment_from_config(ctx: RequestContext, config: dict[str, Any]) -> dict[str, Any]:
    """What an endpoint records to run ``config``: its variants with their models' resolved
    containers, so later changes to the config or the models do not reach it."""
    variants = []
    for variant in config["ProductionVariants"]:
        check_variant(ctx, variant)  # the model may have changed since the config was made
        container = find_model(ctx, variant["ModelName"]).document[CONTAINERS_KEY][0]
        variants.append({
            "VariantName": variant["VariantName"],
            "ModelName": variant["ModelName"],
            "InstanceType": variant["InstanceType"],
            "Weight": float(variant.get("InitialVariantWeight", 1.0)),
            "InstanceCount": variant["InitialInstanceCount"],
            "Container": container,
            "StartupTimeout": variant.get("ContainerStartupHealthCheckTimeoutInSeconds",
                                          DEFAULT_STARTUP_TIMEOUT_SECONDS),
        })
    return {
        "EndpointConfigName": config["EndpointConfigName"],
        "Variants": variants,
        "DataCaptureConfig": config.get("DataCaptureConfig"),
    }


OPERATIONS = {
    "CreateEndpointConfig": create_endpoint_config,
    "DescribeEndpointConfig": describe_endpoint_config,
    "ListEndpointConfigs": list_endpoint_configs,
    "DeleteEndpointConfig": delete_endpoint_config,
}
