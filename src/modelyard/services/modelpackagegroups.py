"""Model package groups: the registry's named collections of model versions.

A group's versions are ``ModelPackage`` resources whose ``parent`` column holds the group's
name, so counting or listing a group's versions is one indexed query. The group's document
also carries the last version number it handed out (an internal ``_modelyard`` key the
output shape never shows), which is what makes version numbers atomic: see
``allocate_version``.
"""

from __future__ import annotations

from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError, validation_error
from ..store.resources import Resource
from .common import caller, is_arn, list_query, resource_arn

GROUP = "ModelPackageGroup"
PACKAGE = "ModelPackage"  # the kind of every model package, versioned or not
LATEST_VERSION = "_modelyardLatestVersion"


def group_missing(name: str) -> AwsError:
    return validation_error(
        f"ModelPackageGroup {name} does not exist. Create it with CreateModelPackageGroup, "
        "or check the name with ListModelPackageGroups."
    )


def group_arn(ctx: RequestContext, name: str) -> str:
    return resource_arn(ctx, "model-package-group", name)


def lookup_group(ctx: RequestContext, name_or_arn: str) -> Resource | None:
    """The group by name or ARN; names match case-insensitively, as SageMaker's do."""
    resources = ctx.platform.resources
    arn = name_or_arn if is_arn(name_or_arn) else group_arn(ctx, name_or_arn)
    found = resources.get_by_arn(arn) or resources.get_by_arn(arn.lower())
    return found if found is not None and found.kind == GROUP else None


def find_group(ctx: RequestContext, name_or_arn: str) -> Resource:
    found = lookup_group(ctx, name_or_arn)
    if found is None:
        raise group_missing(name_or_arn)
    return found


def create_model_package_group(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["ModelPackageGroupName"]
    arn = group_arn(ctx, name)
    document = {
        "ModelPackageGroupName": name,
        "ModelPackageGroupArn": arn,
        "ModelPackageGroupDescription": request.get("ModelPackageGroupDescription"),
        "CreationTime": ctx.now,
        "CreatedBy": caller(ctx),
        "ModelPackageGroupStatus": "Completed",
        "Tags": request.get("Tags", []),
        LATEST_VERSION: 0,
    }
    ctx.platform.resources.create(
        GROUP, name, arn, document, now=ctx.now, status="Completed",
        already_exists=lambda: validation_error(
            f"Model Package Group already exists: {arn}. Choose another name, or use the "
            "existing group."
        ),
    )
    return {"ModelPackageGroupArn": arn}


def ensure_model_package_group(ctx: RequestContext, name_or_arn: str) -> Resource:
    """The group, created first if it does not exist (what a RegisterModel step does).

    Safe under concurrency: when two callers race to create it, both get the one group.
    """
    found = lookup_group(ctx, name_or_arn)
    if found is not None:
        return found
    name = name_or_arn.rsplit("/", 1)[-1] if is_arn(name_or_arn) else name_or_arn
    try:
        create_model_package_group(ctx, {"ModelPackageGroupName": name})
    except AwsError:
        pass  # created by a concurrent caller in the meantime; the lookup below finds it
    return find_group(ctx, name)


def allocate_version(ctx: RequestContext, group: Resource) -> tuple[int, float]:
    """Hand out the group's next version number, and the creation time that goes with it.

    The counter lives in the group's document and is bumped in one read-modify-write
    transaction, so concurrent creates get distinct numbers with no gaps. Numbers are not
    reused after a version is deleted, as in SageMaker. The time is read inside the same
    transaction so that creation times follow version order ("latest" means both).
    """
    allocated: dict[str, Any] = {}

    def bump(resource: Resource) -> dict[str, Any]:
        document = dict(resource.document)
        document[LATEST_VERSION] = int(document.get(LATEST_VERSION, 0)) + 1
        allocated["now"] = ctx.now
        return document

    updated = ctx.platform.resources.update(
        GROUP, group.name, bump, now=ctx.now, missing=lambda: group_missing(group.name))
    return int(updated.document[LATEST_VERSION]), allocated["now"]


def describe_model_package_group(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return find_group(ctx, request["ModelPackageGroupName"]).document


def list_model_package_groups(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    query = list_query(request, sort_columns={"Name": "name", "CreationTime": "creation_time"})
    page = ctx.platform.resources.list(GROUP, query)
    return {
        "ModelPackageGroupSummaryList": [item.document for item in page.items],
        "NextToken": page.next_token,
    }


def delete_model_package_group(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    group = find_group(ctx, request["ModelPackageGroupName"])
    versions = ctx.platform.resources.count(PACKAGE, parent=group.name)
    if versions:
        # SageMaker refuses too: a group is deleted only once its versions are gone.
        raise AwsError(
            "ConflictException",
            f"Model Package Group {group.name} cannot be deleted: it still holds {versions} "
            "model package version(s). Delete them first with DeleteModelPackage (find their "
            f"ARNs with ListModelPackages(ModelPackageGroupName='{group.name}')).",
        )
    ctx.platform.resources.delete(GROUP, group.name)
    return {}


OPERATIONS = {
    "CreateModelPackageGroup": create_model_package_group,
    "DescribeModelPackageGroup": describe_model_package_group,
    "ListModelPackageGroups": list_model_package_groups,
    "DeleteModelPackageGroup": delete_model_package_group,
}
