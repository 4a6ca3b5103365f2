"""The model registry: model packages, versioned in a group or standing alone.

Versioned packages (created with ``ModelPackageGroupName``) are stored under the name
``<group>/<version>`` with the group as their ``parent``; their ARN is
``model-package/<group-lower>/<version>``. Unversioned packages (``ModelPackageName``)
are stored under their own name with the parent ``""`` so List can tell the two apart.
Groups live in ``modelpackagegroups``; this module re-exports what callers used to import
from here (``GROUP``, ``create_model_package_group``, ...).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import time
from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError, validation_error
from ..api.shapes import service_model
from ..store.resources import Resource
from . import modelpackagegroups
from .common import caller, is_arn, list_query, resource_arn
from .modelpackagegroups import (  # noqa: F401 - re-exported for the pipelines engine
    GROUP,
    PACKAGE,
    allocate_version,
    create_model_package_group,
    ensure_model_package_group,
    group_missing,
    lookup_group,
)

UNVERSIONED = ""  # the parent of packages outside any group
CLIENT_TOKEN = "ModelPackageClientToken"  # token -> the package its first request created
TOKEN_KEY = "_modelyardClientToken"
DEFAULT_APPROVAL = "PendingManualApproval"
MAX_ADDITIONAL_SPECIFICATIONS = 15
_ALLOCATION_ATTEMPTS = 50
_TOKEN_WAIT_SECONDS = 10.0
_TOKEN_STALE_SECONDS = 60.0  # a claim this old with no package: its request died mid-way
# A SourceUri naming one of these gives the package its InferenceSpecification.
_PACKAGE_ARN = re.compile(r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]+:[0-9]{12}:model-package/.+")
_MODEL_ARN = re.compile(r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]+:[0-9]{12}:model/.+")

# Request members a package keeps exactly as given; Describe shows them back.
_STORED_AS_GIVEN = (
    "ModelPackageDescription", "InferenceSpecification", "MetadataProperties", "ModelMetrics",
    "Domain", "Task", "SamplePayloadUrl", "CustomerMetadataProperties", "DriftCheckBaselines",
    "AdditionalInferenceSpecifications", "SkipModelValidation", "SourceUri", "SecurityConfig",
    "ModelCard", "ModelLifeCycle", "ValidationSpecification", "ManagedStorageType",
)
_SUMMARY_MEMBERS = (
    "ModelPackageGroupName", "ModelPackageVersion", "ModelPackageArn", "ModelPackageDescription",
    "CreationTime", "ModelPackageStatus", "ModelApprovalStatus", "ModelLifeCycle",
    "ModelPackageRegistrationType",
)
_UPDATABLE = (
    "ModelApprovalStatus", "ApprovalDescription", "CustomerMetadataProperties",
    "CustomerMetadataPropertiesToRemove", "AdditionalInferenceSpecificationsToAdd",
    "InferenceSpecification", "SourceUri", "ModelCard", "ModelLifeCycle",
    "ModelPackageRegistrationType",
)


class _VersionTaken(AwsError):
    """Another create stored this version first (possible when PostgreSQL's read-committed
    transactions let two allocations read the same counter); the loop takes the next one."""

    def __init__(self) -> None:
        super().__init__("Conflict", "version already taken")


# --- lookups -------------------------------------------------------------------------------


def package_missing(ctx: RequestContext, name_or_arn: str) -> AwsError:
    hint = "Check it with ListModelPackages (ModelPackageType='Both' lists every package)."
    if not is_arn(name_or_arn) and "/" not in name_or_arn and lookup_group(ctx, name_or_arn):
        hint = (f"{name_or_arn} is a model package group: address one of its versions by ARN "
                f"(…:model-package/{name_or_arn.lower()}/<version>), as "
                f"ListModelPackages(ModelPackageGroupName='{name_or_arn}') returns them.")
    return validation_error(f"ModelPackage {name_or_arn} does not exist. {hint}")


def lookup_package(ctx: RequestContext, name_or_arn: str) -> Resource | None:
    """By ARN, by unversioned name, or by ``<group>/<version>``; case-insensitive like ARNs."""
    arn = name_or_arn if is_arn(name_or_arn) else resource_arn(ctx, "model-package", name_or_arn)
    resources = ctx.platform.resources
    found = resources.get_by_arn(arn) or resources.get_by_arn(arn.lower())
    return found if found is not None and found.kind == PACKAGE else None


def find_package(ctx: RequestContext, name_or_arn: str) -> Resource:
    found = lookup_package(ctx, name_or_arn)
    if found is None:
        raise package_missing(ctx, name_or_arn)
    return found


# --- CreateModelPackage --------------------------------------------------------------------


def create_model_package(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    request = _with_source_specification(ctx, request)
    _check_create_request(request)
    token = request.get("ClientToken")
    if token is None:
        return {"ModelPackageArn": _create_package(ctx, request).arn}
    earlier = _claim_client_token(ctx, token)
    if earlier is not None:
        return {"ModelPackageArn": earlier}
    try:
        package = _create_package(ctx, request)
    except BaseException:
        ctx.platform.resources.delete(CLIENT_TOKEN, token)  # let a retry with it run again
        raise
    _record_client_token(ctx, token, package.arn)
    return {"ModelPackageArn": package.arn}


def _with_source_specification(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    """The request with the InferenceSpecification its SourceUri stands for, as SageMaker fills it.

    A model package ARN lends its InferenceSpecification, a model ARN its containers; any
    other URI (an S3 location, ...) is only recorded.
    """
    uri = request.get("SourceUri", "")
    from_package = _PACKAGE_ARN.fullmatch(uri) is not None
    if not from_package and _MODEL_ARN.fullmatch(uri) is None:
        return request
    what = "model package" if from_package else "model"
    if "InferenceSpecification" in request:
        raise validation_error(
            f"SourceUri {uri} names a {what}, from which SageMaker takes the package's "
            "InferenceSpecification: pass either InferenceSpecification or that SourceUri, "
            "not both.")
    if from_package:
        source = lookup_package(ctx, uri)
        if source is None:
            raise validation_error(
                f"SourceUri {uri}: that model package does not exist. Pass an ARN that "
                "CreateModelPackage or ListModelPackages returned.")
        specification = source.document.get("InferenceSpecification")
    else:
        specification = _model_specification(ctx, uri)
    if not specification:
        return request
    return {**request, "InferenceSpecification": copy.deepcopy(specification)}


def _model_specification(ctx: RequestContext, uri: str) -> dict[str, Any]:
    """The model's containers as a package's: the members a package container has."""
    from .models import CONTAINERS_KEY, KIND  # models imports this module

    resources = ctx.platform.resources
    model = resources.get_by_arn(uri) or resources.get_by_arn(uri.lower())
    if model is None or model.kind != KIND:
        raise validation_error(
            f"SourceUri {uri}: that model does not exist. Pass an ARN that CreateModel or "
            "ListModels returned.")
    members = service_model("sagemaker").shape_for("ModelPackageContainerDefinition").members
    return {"Containers": [
        {key: copy.deepcopy(value) for key, value in container.items()
         if key in members and value not in ({}, None)}
        for container in model.document[CONTAINERS_KEY]]}


def _check_create_request(request: dict[str, Any]) -> None:
    versioned = "ModelPackageGroupName" in request
    if versioned and "ModelPackageName" in request:
        raise validation_error(
            "Both ModelPackageName and ModelPackageGroupName are provided. Pass "
            "ModelPackageGroupName to register a version in a group, or ModelPackageName for "
            "an unversioned package, not both.")
    if not versioned and "ModelPackageName" not in request:
        raise validation_error(
            "Missing ModelPackageGroupName: pass it to register a model version in a group "
            "(or ModelPackageName for an unversioned package).")
    if versioned and request.get("Tags"):
        raise validation_error(
            "Tags cannot be set on a versioned model package: it uses the tags of its model "
            "package group. Tag the group with AddTags instead.")
    if "SourceAlgorithmSpecification" in request:
        raise validation_error(
            "SourceAlgorithmSpecification needs AWS Marketplace algorithm resources, which "
            "modelyard does not have. Pass InferenceSpecification with your image and model "
            "data instead.")
    if "ValidationSpecification" in request and request.get("SkipModelValidation") != "All":
        raise validation_error(
            "modelyard does not run ValidationSpecification transform jobs yet. Omit "
            "ValidationSpecification, or set SkipModelValidation='All' to store it unchecked.")
    if not versioned:
        _check_unversioned_specification(request.get("InferenceSpecification"))
    _check_additional_specifications(request.get("AdditionalInferenceSpecifications", []))


def _check_unversioned_specification(specification: dict[str, Any] | None) -> None:
    required = ("SupportedTransformInstanceTypes", "SupportedRealtimeInferenceInstanceTypes")
    if specification is None or any(not specification.get(member) for member in required):
        raise validation_error(
            "An unversioned model package needs InferenceSpecification with Containers, "
            "SupportedTransformInstanceTypes and SupportedRealtimeInferenceInstanceTypes.")


def _check_additional_specifications(specifications: list[dict[str, Any]]) -> None:
    names = [item["Name"] for item in specifications]
    if len(names) > MAX_ADDITIONAL_SPECIFICATIONS:
        raise validation_error(
            f"A model package holds at most {MAX_ADDITIONAL_SPECIFICATIONS} "
            f"AdditionalInferenceSpecifications; {len(names)} were given.")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise validation_error(
            f"AdditionalInferenceSpecifications names must be unique; repeated: {duplicates}.")


def _create_package(ctx: RequestContext, request: dict[str, Any]) -> Resource:
    if "ModelPackageGroupName" in request:
        return _create_version(ctx, request)
    return _create_unversioned(ctx, request)


def _create_version(ctx: RequestContext, request: dict[str, Any]) -> Resource:
    group = lookup_group(ctx, request["ModelPackageGroupName"])
    if group is None:
        # SageMaker's own words: scripts in the wild compare this message verbatim.
        raise validation_error("Model Package Group does not exist.")
    approval = request.get("ModelApprovalStatus", DEFAULT_APPROVAL)
    resources = ctx.platform.resources
    for _ in range(_ALLOCATION_ATTEMPTS):
        version, now = allocate_version(ctx, group)
        name = f"{group.name}/{version}"
        arn = resource_arn(ctx, "model-package", name)
        document = {
            **_package_document(ctx, request, group.name, arn, now),
            "ModelPackageGroupName": group.name,
            "ModelPackageVersion": version,
            "ModelApprovalStatus": approval,
            "ModelPackageRegistrationType": request.get("ModelPackageRegistrationType",
                                                        "Registered"),
        }
        try:
            package = resources.create(PACKAGE, name, arn, document, now=now, status=approval,
                                       parent=group.name, already_exists=_VersionTaken)
        except _VersionTaken:
            continue
        if lookup_group(ctx, group.arn) is None:
            # The group was deleted between allocation and insert: leave no orphan behind.
            resources.delete(PACKAGE, name)
            raise validation_error("Model Package Group does not exist.")
        return package
    raise AwsError("InternalFailure", f"Could not allocate a version in {group.name}; retry.",
                   status=500)


def _create_unversioned(ctx: RequestContext, request: dict[str, Any]) -> Resource:
    name = request["ModelPackageName"]
    arn = resource_arn(ctx, "model-package", name)
    now = ctx.now
    document = {**_package_document(ctx, request, name, arn, now),
                "Tags": request.get("Tags", [])}
    return ctx.platform.resources.create(
        PACKAGE, name, arn, document, now=now, parent=UNVERSIONED,
        already_exists=lambda: validation_error(
            f"Model Package already exists: {arn}. Choose another ModelPackageName."))


def _package_document(
    ctx: RequestContext, request: dict[str, Any], name: str, arn: str, now: float,
) -> dict[str, Any]:
    """What every package's Describe shows; validation is immediate, so it is Completed."""
    document: dict[str, Any] = {
        "ModelPackageName": name,  # a version is named after its group, as in SageMaker
        "ModelPackageArn": arn,
        "CreationTime": now,
        "CreatedBy": caller(ctx),
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
        "CertifyForMarketplace": request.get("CertifyForMarketplace", False),
    }
    for member in _STORED_AS_GIVEN:
        if member in request:
            document[member] = copy.deepcopy(request[member])
    if "ClientToken" in request:
        document[TOKEN_KEY] = request["ClientToken"]
    return document


# --- ClientToken idempotency -----------------------------------------------------------------


def _claim_client_token(ctx: RequestContext, token: str) -> str | None:
    """Claim ``token`` for this request, or return the package an earlier request made with it.

    The claim is a resource named by the token, so the store's unique index decides which of
    two concurrent requests creates the package; the other waits for its ARN.
    """
    resources = ctx.platform.resources
    deadline = time.monotonic() + _TOKEN_WAIT_SECONDS
    while True:
        try:
            resources.create(CLIENT_TOKEN, token, _token_arn(ctx, token),
                             {"ModelPackageArn": None}, now=ctx.now)
            return None
        except AwsError:
            pass
        claim = resources.get(CLIENT_TOKEN, token)
        if claim is None:
            continue  # the other request failed and released it: claim it again
        if claim.document.get("ModelPackageArn"):
            return claim.document["ModelPackageArn"]
        if ctx.now - claim.creation_time > _TOKEN_STALE_SECONDS:
            resources.delete(CLIENT_TOKEN, token)
            continue
        if time.monotonic() > deadline:
            raise AwsError(
                "ConflictException",
                f"A CreateModelPackage request with ClientToken {token} is still in progress. "
                "Retry in a moment to get its ModelPackageArn.")
        time.sleep(0.05)


def _record_client_token(ctx: RequestContext, token: str, arn: str) -> None:
    ctx.platform.resources.update(
        CLIENT_TOKEN, token, lambda claim: {"ModelPackageArn": arn}, now=ctx.now,
        missing=lambda: AwsError("InternalFailure", f"ClientToken {token} claim vanished.", 500))


def _token_arn(ctx: RequestContext, token: str) -> str:
    # Not a SageMaker resource type: only the store's unique ARN column needs it.
    return ctx.arn("sagemaker", f"model-package-client-token/{token}")


# --- Describe, List, Delete ------------------------------------------------------------------


def describe_model_package(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return find_package(ctx, request["ModelPackageName"]).document


def list_model_packages(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    package_type = request.get("ModelPackageType")
    group_member = request.get("ModelPackageGroupName")
    versioned_only = False
    if group_member is not None:
        group = lookup_group(ctx, group_member)
        if group is None or package_type == "Unversioned":
            return {"ModelPackageSummaryList": []}  # a filter nothing matches, not an error
        parent: str | None = group.name
    else:
        package_type = package_type or "Unversioned"  # SageMaker's default without a group
        parent = UNVERSIONED if package_type == "Unversioned" else None
        versioned_only = package_type == "Versioned"
    query = list_query(request, sort_columns={"Name": "name", "CreationTime": "creation_time"},
                       parent=parent, status_member="ModelApprovalStatus")
    # ListModelPackages sorts ascending unless told otherwise (most Lists default descending).
    query = dataclasses.replace(query, descending=request.get("SortOrder") == "Descending")
    page = ctx.platform.resources.list(PACKAGE, query)
    # The store cannot express these two filters; dropping rows from a page keeps the
    # NextToken valid (a page may then hold fewer than MaxResults, as AWS allows).
    items = [item for item in page.items
             if not (versioned_only and item.parent == UNVERSIONED)
             and _name_contains(item, request.get("NameContains"))]
    return {"ModelPackageSummaryList": [_summary(item) for item in items],
            "NextToken": page.next_token}


def _name_contains(item: Resource, needle: str | None) -> bool:
    """Match a version by its group's name only: its stored name's "/<version>" is ours."""
    if not needle:
        return True
    return needle.lower() in item.document["ModelPackageName"].lower()


def _summary(item: Resource) -> dict[str, Any]:
    document = item.document
    summary = {member: document[member] for member in _SUMMARY_MEMBERS if member in document}
    if item.parent == UNVERSIONED:
        # SageMaker's summaries name unversioned packages only; versions go by ARN.
        summary["ModelPackageName"] = document["ModelPackageName"]
    return summary


def delete_model_package(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    package = find_package(ctx, request["ModelPackageName"])
    ctx.platform.resources.delete(PACKAGE, package.name)
    token = package.document.get(TOKEN_KEY)
    if token:
        ctx.platform.resources.delete(CLIENT_TOKEN, token)
    return {}


# --- UpdateModelPackage ----------------------------------------------------------------------


def update_model_package(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["ModelPackageArn"]
    package = find_package(ctx, arn)
    _check_update_request(request)
    now = ctx.now
    who = caller(ctx)

    def change(current: Resource) -> dict[str, Any]:
        document = copy.deepcopy(current.document)
        _apply_approval(document, request, versioned=current.parent != UNVERSIONED)
        _apply_metadata(document, request)
        _apply_specifications(document, request)
        for member in ("SourceUri", "ModelLifeCycle", "ModelPackageRegistrationType"):
            if member in request:
                document[member] = copy.deepcopy(request[member])
        if "ModelCard" in request:
            # Content and status change separately (the SDK's update_model_card sends one
            # of them at a time): a member left out keeps its value.
            document["ModelCard"] = {**document.get("ModelCard", {}),
                                     **copy.deepcopy(request["ModelCard"])}
        document["LastModifiedTime"] = now
        document["LastModifiedBy"] = who
        document["__status__"] = document.get("ModelApprovalStatus")
        return document

    ctx.platform.resources.update(PACKAGE, package.name, change, now=now,
                                  missing=lambda: package_missing(ctx, arn))
    return {"ModelPackageArn": package.arn}


def _check_update_request(request: dict[str, Any]) -> None:
    if not any(member in request for member in _UPDATABLE):
        raise validation_error(
            f"UpdateModelPackage needs something to change: one of {', '.join(_UPDATABLE)}.")
    both = set(request.get("CustomerMetadataProperties", {})) & set(
        request.get("CustomerMetadataPropertiesToRemove", []))
    if both:
        raise validation_error(
            f"CustomerMetadataProperties keys {sorted(both)} are both set and removed in one "
            "request; pass each key in only one of the two members.")


def _apply_approval(document: dict[str, Any], request: dict[str, Any], *, versioned: bool) -> None:
    status = request.get("ModelApprovalStatus")
    if status is not None and not versioned:
        raise validation_error(
            "ModelApprovalStatus applies to versioned model packages only; "
            f"{document['ModelPackageArn']} is unversioned.")
    if status is not None and status != document.get("ModelApprovalStatus"):
        document["ModelApprovalStatus"] = status
        # The old description explained the old decision; keep it only if re-stated.
        document.pop("ApprovalDescription", None)
    if "ApprovalDescription" in request:
        document["ApprovalDescription"] = request["ApprovalDescription"]


def _apply_metadata(document: dict[str, Any], request: dict[str, Any]) -> None:
    properties = dict(document.get("CustomerMetadataProperties", {}))
    properties.update(request.get("CustomerMetadataProperties", {}))
    for key in request.get("CustomerMetadataPropertiesToRemove", []):
        properties.pop(key, None)
    if len(properties) > 50:
        raise validation_error(
            f"A model package holds at most 50 CustomerMetadataProperties; this update would "
            f"leave {len(properties)}. Remove some with CustomerMetadataPropertiesToRemove.")
    if properties or "CustomerMetadataProperties" in document:
        document["CustomerMetadataProperties"] = properties


def _apply_specifications(document: dict[str, Any], request: dict[str, Any]) -> None:
    if "InferenceSpecification" in request:
        document["InferenceSpecification"] = copy.deepcopy(request["InferenceSpecification"])
    added = request.get("AdditionalInferenceSpecificationsToAdd")
    if added:
        combined = document.get("AdditionalInferenceSpecifications", []) + copy.deepcopy(added)
        _check_additional_specifications(combined)
        document["AdditionalInferenceSpecifications"] = combined


OPERATIONS = {
    **modelpackagegroups.OPERATIONS,
    "CreateModelPackage": create_model_package,
    "DescribeModelPackage": describe_model_package,
    "ListModelPackages": list_model_packages,
    "UpdateModelPackage": update_model_package,
    "DeleteModelPackage": delete_model_package,
}
