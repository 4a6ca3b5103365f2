"""Where Application Auto Scaling keeps its state: scalable targets, scaling policies,
scheduled actions and scaling activities, each a resource in ``platform.resources``.

A target's key is ``<namespace>|<dimension>|<resource id>``; policies and scheduled actions
are named ``<target key>|<name>`` with the target key as their parent, and activities are
named by their id with the target key as parent, so every Describe is one indexed query.
Members starting with ``_`` are modelyard's own bookkeeping (cooldown clocks, the managed
alarms, the desired capacity of an activity) and never shown.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from ..store.resources import ListQuery, Resource

if TYPE_CHECKING:
    from ..platform import Platform

TARGET = "AppAutoScalingTarget"
POLICY = "AppAutoScalingPolicy"
SCHEDULED = "AppAutoScalingScheduledAction"
ACTIVITY = "AppAutoScalingActivity"

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
RESOURCE_ID = re.compile(r"^endpoint/([a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62})/variant/([^/]{1,63})$")


def validation(message: str) -> AwsError:
    return AwsError("ValidationException", message)


def target_key(namespace: str, dimension: str, resource_id: str) -> str:
    return f"{namespace}|{dimension}|{resource_id}"


def check_target_identity(namespace: str, dimension: str | None, resource_id: str | None) -> None:
    """The namespace, dimension and resource id modelyard scales, or AWS's ValidationException."""
    if namespace != NAMESPACE:
        raise validation(f"Service namespace {namespace!r} is not supported by modelyard: it "
                         f"scales SageMaker endpoint variants only (ServiceNamespace "
                         f"{NAMESPACE!r}, ScalableDimension {DIMENSION!r}).")
    if dimension is not None and dimension != DIMENSION:
        raise validation(f"Unsupported scalable dimension {dimension!r} for service namespace "
                         f"{NAMESPACE!r}: modelyard scales {DIMENSION!r} (the instance count "
                         "of an endpoint variant).")
    if resource_id is not None and not RESOURCE_ID.match(resource_id):
        raise validation(f"Invalid ResourceId {resource_id!r}: a SageMaker endpoint variant is "
                         "named endpoint/<endpoint name>/variant/<variant name>.")


def endpoint_and_variant(resource_id: str) -> tuple[str, str]:
    match = RESOURCE_ID.match(resource_id)
    if match is None:
        raise validation(f"Invalid ResourceId {resource_id!r}.")
    return match.group(1), match.group(2)


def not_registered(namespace: str, resource_id: str, dimension: str) -> AwsError:
    return AwsError("ObjectNotFoundException",
                    f"No scalable target registered for service namespace: {namespace}, "
                    f"resource ID: {resource_id}, scalable dimension: {dimension}. Register it "
                    "with RegisterScalableTarget first.")


def new_id() -> str:
    return str(uuid.uuid4())


def target_arn(platform: "Platform", target_id: str) -> str:
    return platform.settings.arn("application-autoscaling", f"scalable-target/{target_id}")


def policy_arn(platform: "Platform", resource_id: str, name: str) -> str:
    return platform.settings.arn(
        "autoscaling", f"scalingPolicy:{new_id()}:resource/{NAMESPACE}/{resource_id}"
        f":policyName/{name}")


def scheduled_action_arn(platform: "Platform", resource_id: str, name: str) -> str:
    return platform.settings.arn(
        "autoscaling", f"scheduledAction:{new_id()}:resource/{NAMESPACE}/{resource_id}"
        f":scheduledActionName/{name}")


def public(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if not key.startswith("_")}


def all_of(platform: "Platform", kind: str, parent: str | None = None) -> Iterator[Resource]:
    """Every resource of ``kind`` (under ``parent``), oldest first."""
    token = None
    while True:
        page = platform.resources.list(kind, ListQuery(parent=parent, descending=False,
                                                       max_results=100, next_token=token))
        yield from page.items
        token = page.next_token
        if not token:
            return


def get_target(platform: "Platform", namespace: str, resource_id: str,
               dimension: str) -> Resource:
    found = platform.resources.get(TARGET, target_key(namespace, dimension, resource_id))
    if found is None:
        raise not_registered(namespace, resource_id, dimension)
    return found


def update(platform: "Platform", resource: Resource,
           change: Callable[[dict[str, Any]], dict[str, Any]]) -> Resource:
    """Read, change and write one resource in a transaction; ``change`` gets a copy."""
    return platform.resources.update(
        resource.kind, resource.name, lambda current: change(dict(current.document)),
        now=platform.clock.now(),
        missing=lambda: AwsError("ObjectNotFoundException", f"{resource.name} is gone."))


def page(items: list[dict[str, Any]], request: dict[str, Any],
         default_max: int = 50) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``items`` by MaxResults and an offset NextToken."""
    limit = request.get("MaxResults") or default_max
    token = request.get("NextToken")
    start = 0
    if token:
        try:
            start = int(token)
        except ValueError:
            raise AwsError("InvalidNextTokenException",
                           f"The NextToken {token!r} is not valid; pass the token a previous "
                           "call returned.") from None
    chosen = items[start:start + limit]
    following = str(start + limit) if start + limit < len(items) else None
    return chosen, following
