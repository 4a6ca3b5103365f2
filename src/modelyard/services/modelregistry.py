"""The model registry: model package groups (versions arrive with the registry issue)."""

from __future__ import annotations

from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError, validation_error
from .common import caller, is_arn, list_query, resource_arn

GROUP = "ModelPackageGroup"


def _group_missing(name: str) -> AwsError:
    return validation_error(
        f"ModelPackageGroup {name} does not exist. Create it with CreateModelPackageGroup, "
        "or check the name with ListModelPackageGroups."
    )


def _find_group(ctx: RequestContext, name_or_arn: str):
    resources = ctx.platform.resources
    found = resources.get_by_arn(name_or_arn) if is_arn(name_or_arn) else resources.get(GROUP, name_or_arn)
    if found is None or found.kind != GROUP:
        raise _group_missing(name_or_arn)
    return found


def create_model_package_group(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["ModelPackageGroupName"]
    arn = resource_arn(ctx, "model-package-group", name)
    document = {
        "ModelPackageGroupName": name,
        "ModelPackageGroupArn": arn,
        "ModelPackageGroupDescription": request.get("ModelPackageGroupDescription"),
        "CreationTime": ctx.now,
        "CreatedBy": caller(ctx),
        "ModelPackageGroupStatus": "Completed",
        "Tags": request.get("Tags", []),
    }
    ctx.platform.resources.create(
        GROUP, name, arn, document, now=ctx.now, status="Completed",
        already_exists=lambda: validation_error(
            f"Model Package Group already exists: {arn}. Choose another name, or use the "
            "existing group."
        ),
    )
    return {"ModelPackageGroupArn": arn}


def describe_model_package_group(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return _find_group(ctx, request["ModelPackageGroupName"]).document


def list_model_package_groups(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    query = list_query(request, sort_columns={"Name": "name", "CreationTime": "creation_time"})
    page = ctx.platform.resources.list(GROUP, query)
    return {
        "ModelPackageGroupSummaryList": [item.document for item in page.items],
        "NextToken": page.next_token,
    }


def delete_model_package_group(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    group = _find_group(ctx, request["ModelPackageGroupName"])
    ctx.platform.resources.delete(GROUP, group.name)
    return {}


OPERATIONS = {
    "CreateModelPackageGroup": create_model_package_group,
    "DescribeModelPackageGroup": describe_model_package_group,
    "ListModelPackageGroups": list_model_package_groups,
    "DeleteModelPackageGroup": delete_model_package_group,
}
