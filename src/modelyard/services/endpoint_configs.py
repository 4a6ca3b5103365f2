"""Endpoint configurations: CreateEndpointConfig, Describe, List, DeleteEndpointConfig.

A configuration names the models each production variant serves and on what. It is
checked when created -- its models exist and modelyard can serve them -- and copied into
an endpoint when the endpoint is created or updated (services/endpoints.py), so, as in
SageMaker, deleting a configuration (or a model) does not disturb endpoints that use it.

``ShadowProductionVariants`` are checked like production variants; as in SageMaker, a
config with one holds exactly one production variant and one shadow variant, with distinct
names. The deployment lists them under ``Shadows`` (hosting/shadow.py serves them).
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
    shadows = request.get("ShadowProductionVariants")
    if shadows is not None:
        _check_shadow_layout(variants, shadows)
    names = [variant["VariantName"] for variant in variants + (shadows or [])]
    repeated = sorted({item for item in names if names.count(item) > 1})
    if repeated:
        raise validation_error(
            f"VariantName must be unique within ProductionVariants"
            f"{' and ShadowProductionVariants' if shadows else ''}; repeated: {repeated}.")
    for variant in variants:
        check_variant(ctx, variant)
    for variant in shadows or []:
        check_variant(ctx, variant, kind="ShadowProductionVariant")
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
    if shadows:
        document["ShadowProductionVariants"] = [
            {"InitialVariantWeight": 1.0, **variant}
            for variant in document["ShadowProductionVariants"]]
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
    ):
        if request.get(member):
            raise validation_error(
                f"{member} is not supported by modelyard ({what}); modelyard serves real-time "
                "endpoints with ProductionVariants only. Remove it from the request.")


def _check_shadow_layout(variants: list[dict[str, Any]], shadows: list[dict[str, Any]]) -> None:
    """SageMaker: with ShadowProductionVariants, one production and one shadow variant."""
    if len(shadows) != 1:
        raise validation_error(
            f"ShadowProductionVariants holds {len(shadows)} variants, but an endpoint may have "
            "at most one shadow variant. Keep one.")
    if len(variants) != 1:
        raise validation_error(
            f"An endpoint configuration with ShadowProductionVariants must have exactly one "
            f"production variant in ProductionVariants; it has {len(variants)}. Keep the one "
            "the shadow variant is compared with.")


def check_variant(ctx: RequestContext, variant: dict[str, Any],
                  kind: str = "ProductionVariant") -> None:
    """Refuse, with what to change, a variant modelyard cannot serve."""
    label = f"{kind} {variant['VariantName']}"
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
    deployment: dict[str, Any] = {
        "EndpointConfigName": config["EndpointConfigName"],
        "Variants": [_deployed(ctx, variant) for variant in config["ProductionVariants"]],
        "DataCaptureConfig": config.get("DataCaptureConfig"),
    }
    shadows = config.get("ShadowProductionVariants")
    if shadows:
        deployment["Shadows"] = [_deployed(ctx, variant, "ShadowProductionVariant")
                                 for variant in shadows]
    return deployment


def _deployed(ctx: RequestContext, variant: dict[str, Any],
              kind: str = "ProductionVariant") -> dict[str, Any]:
    check_variant(ctx, variant, kind)  # the model may have changed since the config was made
    container = find_model(ctx, variant["ModelName"]).document[CONTAINERS_KEY][0]
    return {
        "VariantName": variant["VariantName"],
        "ModelName": variant["ModelName"],
        "InstanceType": variant["InstanceType"],
        "Weight": float(variant.get("InitialVariantWeight", 1.0)),
        "InstanceCount": variant["InitialInstanceCount"],
        "Container": container,
        "StartupTimeout": variant.get("ContainerStartupHealthCheckTimeoutInSeconds",
                                      DEFAULT_STARTUP_TIMEOUT_SECONDS),
    }


OPERATIONS = {
    "CreateEndpointConfig": create_endpoint_config,
    "DescribeEndpointConfig": describe_endpoint_config,
    "ListEndpointConfigs": list_endpoint_configs,
    "DeleteEndpointConfig": delete_endpoint_config,
}
