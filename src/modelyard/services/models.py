"""Models (CreateModel, DescribeModel, ListModels, DeleteModel) and tags on any resource.

A model is a named set of containers: an image plus model data, given directly or taken
from a model package (``ModelPackageName``), which is resolved when the model is created
so the model keeps working if the package changes later. Any image URI is accepted and
recorded; which of them modelyard can serve is the hosting layer's question, and it reads
the resolved containers from the internal ``_modelyardContainers`` document key.
"""

from __future__ import annotations

import copy
from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError, validation_error
from ..store.resources import Resource
from .common import list_query, resource_arn
from .modelregistry import lookup_package

KIND = "Model"
CONTAINERS_KEY = "_modelyardContainers"
MAX_CONTAINERS = 15
MAX_TAGS = 50

# What a model container takes over from the package container it resolves.
_FROM_PACKAGE = ("ContainerHostname", "Image", "ModelDataUrl", "ModelDataSource",
                 "AdditionalModelDataSources")
# What the model's own container definition still decides for a package container.
_FROM_MODEL = ("ContainerHostname", "ImageConfig", "MultiModelConfig",
               "InferenceSpecificationName")


def model_arn(ctx: RequestContext, name: str) -> str:
    return resource_arn(ctx, "model", name)


def model_missing(arn: str) -> AwsError:
    # The SDK's _deployment_entity_exists looks for exactly this code and "Could not find".
    return validation_error(f'Could not find model "{arn}". Check the name with ListModels.')


def find_model(ctx: RequestContext, name: str) -> Resource:
    """By name, case-insensitively (SageMaker model ARNs carry the name lower-cased)."""
    arn = model_arn(ctx, name)
    found = ctx.platform.resources.get_by_arn(arn)
    if found is None or found.kind != KIND:
        raise model_missing(arn)
    return found


# --- CreateModel -----------------------------------------------------------------------------


def create_model(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["ModelName"]
    arn = model_arn(ctx, name)
    requested = _requested_containers(request)
    resolved = [container for where, definition in requested
                for container in _resolve_container(ctx, definition, where)]
    _check_resolved(resolved)
    now = ctx.now
    document: dict[str, Any] = {
        "ModelName": name,
        "ModelArn": arn,
        "CreationTime": now,
        "EnableNetworkIsolation": request.get("EnableNetworkIsolation", False),
        "Tags": request.get("Tags", []),
        CONTAINERS_KEY: resolved,
    }
    for member in ("ExecutionRoleArn", "VpcConfig", "InferenceExecutionConfig"):
        if member in request:
            document[member] = copy.deepcopy(request[member])
    # One container is described as PrimaryContainer however it was given, as SageMaker
    # does for a model made from a package (the SDK passes those as Containers=[...]);
    # readers such as the SDK's Transformer look at PrimaryContainer first.
    if len(resolved) == 1:
        document["PrimaryContainer"] = resolved[0]
    else:
        document["Containers"] = resolved
    ctx.platform.resources.create(
        KIND, name, arn, document, now=now,
        already_exists=lambda: validation_error(
            f'Cannot create already existing model "{arn}". Choose another ModelName, or '
            "delete the existing model first."))
    return {"ModelArn": arn}


def _requested_containers(request: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label for messages, definition) for each container the request gives."""
    primary = request.get("PrimaryContainer")
    containers = request.get("Containers")
    if primary is not None and containers:
        raise validation_error(
            "Pass either PrimaryContainer or Containers, not both: Containers is for "
            "inference pipelines and multi-container models.")
    if primary is None and not containers:
        raise validation_error(
            "A model needs its container: pass PrimaryContainer (Image and ModelDataUrl, or "
            "ModelPackageName) or a non-empty Containers list.")
    if primary is not None:
        return [("PrimaryContainer", primary)]
    return [(f"Containers[{index}]", item) for index, item in enumerate(containers)]


def _resolve_container(
    ctx: RequestContext, definition: dict[str, Any], where: str,
) -> list[dict[str, Any]]:
    """The container(s) a definition stands for, as DescribeModel shows them."""
    package_name = definition.get("ModelPackageName")
    if package_name is None:
        if not definition.get("Image"):
            raise validation_error(
                f"{where} needs an Image (the inference image URI) or a ModelPackageName.")
        return [{"Mode": "SingleModel", "Environment": {}, **copy.deepcopy(definition)}]
    if "Image" in definition or "ModelDataUrl" in definition:
        raise validation_error(
            f"{where} names ModelPackageName {package_name} and also Image/ModelDataUrl; "
            "the package supplies both, so pass only ModelPackageName.")
    package = lookup_package(ctx, package_name)
    if package is None:
        raise validation_error(
            f"{where}: ModelPackage {package_name} does not exist. Pass the ARN that "
            "CreateModelPackage or ListModelPackages returned.")
    specification = _package_specification(package, definition.get("InferenceSpecificationName"))
    resolved = []
    for package_container in specification["Containers"]:
        if not package_container.get("Image"):
            raise validation_error(
                f"ModelPackage {package.arn} has a container without an Image, so a model "
                "cannot be made from it. Register the package with an inference image.")
        container = {key: copy.deepcopy(package_container[key])
                     for key in _FROM_PACKAGE if key in package_container}
        container.update({key: copy.deepcopy(definition[key])
                          for key in _FROM_MODEL if key in definition})
        # The model's environment adds to, and overrides, the package's.
        container["Environment"] = {**package_container.get("Environment", {}),
                                    **definition.get("Environment", {})}
        container["Mode"] = definition.get("Mode", "SingleModel")
        container["ModelPackageName"] = package.arn
        resolved.append(container)
    return resolved


def _package_specification(package: Resource, name: str | None) -> dict[str, Any]:
    document = package.document
    if name is None:
        specification = document.get("InferenceSpecification")
        if not specification:
            raise validation_error(
                f"ModelPackage {package.arn} has no InferenceSpecification, so a model cannot "
                "be made from it.")
        return specification
    for specification in document.get("AdditionalInferenceSpecifications", []):
        if specification["Name"] == name:
            return specification
    known = [item["Name"] for item in document.get("AdditionalInferenceSpecifications", [])]
    raise validation_error(
        f"ModelPackage {package.arn} has no additional inference specification named {name}; "
        f"it has {known or 'none'}.")


def _check_resolved(containers: list[dict[str, Any]]) -> None:
    if len(containers) > MAX_CONTAINERS:
        raise validation_error(
            f"A model holds at most {MAX_CONTAINERS} containers; this one would have "
            f"{len(containers)} once its model packages are resolved.")
    hostnames = [item["ContainerHostname"] for item in containers if "ContainerHostname" in item]
    repeated = sorted({name for name in hostnames if hostnames.count(name) > 1})
    if repeated:
        raise validation_error(f"ContainerHostname must be unique within a model; repeated: "
                               f"{repeated}.")


# --- Describe, List, Delete ------------------------------------------------------------------


def describe_model(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return find_model(ctx, request["ModelName"]).document


def list_models(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    query = list_query(request, sort_columns={"Name": "name", "CreationTime": "creation_time"})
    page = ctx.platform.resources.list(KIND, query)
    return {"Models": [item.document for item in page.items], "NextToken": page.next_token}


def delete_model(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    model = find_model(ctx, request["ModelName"])
    ctx.platform.resources.delete(KIND, model.name)
    return {}


# --- Tags on any stored resource ----------------------------------------------------------
# Every resource document keeps its tags under "Tags" (the Create requests' member), so
# tagging is one transactional update of the document the ARN names.


def _tagged_missing(arn: str) -> AwsError:
    return validation_error(
        f"Resource {arn} does not exist. Pass the ARN its Create or Describe call returned.")


def _find_tagged(ctx: RequestContext, arn: str) -> Resource:
    resources = ctx.platform.resources
    found = resources.get_by_arn(arn) or resources.get_by_arn(arn.lower())
    if found is None:
        raise _tagged_missing(arn)
    return found


def add_tags(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["ResourceArn"]
    tags = request["Tags"]
    reserved = sorted(tag["Key"] for tag in tags if tag["Key"].lower().startswith("aws:"))
    if reserved:
        raise validation_error(f"Tag keys starting with 'aws:' are reserved for AWS: {reserved}.")
    found = _find_tagged(ctx, arn)

    def change(current: Resource) -> dict[str, Any]:
        merged = {tag["Key"]: tag["Value"] for tag in current.document.get("Tags", [])}
        merged.update({tag["Key"]: tag["Value"] for tag in tags})  # a known key: new value
        if len(merged) > MAX_TAGS:
            raise validation_error(
                f"A resource holds at most {MAX_TAGS} tags; {arn} would have {len(merged)}. "
                "Remove some with DeleteTags first.")
        return {**current.document, "Tags": [{"Key": k, "Value": v} for k, v in merged.items()]}

    ctx.platform.resources.update(found.kind, found.name, change, now=ctx.now,
                                  missing=lambda: _tagged_missing(arn))
    return {"Tags": tags}


def list_tags(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    tags = _find_tagged(ctx, request["ResourceArn"]).document.get("Tags", [])
    start = _tags_offset(request.get("NextToken"))
    size = request.get("MaxResults", MAX_TAGS)
    page = tags[start:start + size]
    more = start + size < len(tags)
    return {"Tags": page, "NextToken": str(start + size) if more else None}


def _tags_offset(token: str | None) -> int:
    if token is None:
        return 0
    if not token.isdigit():
        raise validation_error("The NextToken is not valid: pass it exactly as ListTags "
                               "returned it.")
    return int(token)


def delete_tags(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["ResourceArn"]
    keys = set(request["TagKeys"])
    found = _find_tagged(ctx, arn)

    def change(current: Resource) -> dict[str, Any]:
        kept = [tag for tag in current.document.get("Tags", []) if tag["Key"] not in keys]
        return {**current.document, "Tags": kept}

    ctx.platform.resources.update(found.kind, found.name, change, now=ctx.now,
                                  missing=lambda: _tagged_missing(arn))
    return {}


OPERATIONS = {
    "CreateModel": create_model,
    "DescribeModel": describe_model,
    "ListModels": list_models,
    "DeleteModel": delete_model,
    "AddTags": add_tags,
    "ListTags": list_tags,
    "DeleteTags": delete_tags,
}
