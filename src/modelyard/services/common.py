"""Helpers every SageMaker resource family shares: names, ARNs, List requests."""

from __future__ import annotations

from typing import Any

from ..api.context import RequestContext
from ..store.resources import ListQuery

DEFAULT_MAX_RESULTS = 10  # SageMaker's List default when MaxResults is absent


def resource_arn(ctx: RequestContext, resource_type: str, name: str) -> str:
    """SageMaker ARNs carry the name lower-cased: names are case-insensitive there."""
    return ctx.arn("sagemaker", f"{resource_type}/{name.lower()}")


def is_arn(value: str) -> bool:
    return value.startswith("arn:")


def list_query(
    request: dict[str, Any],
    *,
    sort_columns: dict[str, str],
    default_sort: str = "CreationTime",
    parent: str | None = None,
    status_member: str = "StatusEquals",
) -> ListQuery:
    """Read the List members every SageMaker List operation shares.

    ``sort_columns`` maps the operation's SortBy enum values to resource columns.
    """
    sort_by = request.get("SortBy", default_sort)
    return ListQuery(
        name_contains=request.get("NameContains"),
        status_equals=request.get(status_member),
        parent=parent,
        created_after=request.get("CreationTimeAfter"),
        created_before=request.get("CreationTimeBefore"),
        modified_after=request.get("LastModifiedTimeAfter"),
        modified_before=request.get("LastModifiedTimeBefore"),
        sort_by=sort_columns.get(sort_by, "creation_time"),
        descending=request.get("SortOrder", "Descending") == "Descending",
        max_results=request.get("MaxResults", DEFAULT_MAX_RESULTS),
        next_token=request.get("NextToken"),
    )


def caller(ctx: RequestContext) -> dict[str, Any]:
    """SageMaker's UserContext for CreatedBy / LastModifiedBy."""
    from .identity import EXECUTION_ROLE, ROLE_ID, SESSION_NAME

    return {
        "IamIdentity": {
            "Arn": f"arn:aws:sts::{ctx.account_id}:assumed-role/{EXECUTION_ROLE}/{SESSION_NAME}",
            "PrincipalId": f"{ROLE_ID}:{SESSION_NAME}",
        }
    }
