"""Scaling a variant: activities, and the path every capacity change takes.

A change (from a policy, a scheduled action or new Min/MaxCapacity) becomes a scaling
activity with AWS's Description and Cause, then a call of SageMaker's
UpdateEndpointWeightsAndCapacities through ``modelyard.dispatch`` -- the same path a
client takes, so a real model server is started or stopped. While the endpoint is busy
(Updating) the activity stays ``Pending`` and the background loop tries again; once the
endpoint is InService at the new count the activity is ``Successful``.

Decisions are serialized per platform (one lock), so an alarm delivery and the loop never
scale one variant twice at once.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING, Any

from .. import dispatch
from ..api.errors import AwsError
from . import store

if TYPE_CHECKING:
    from ..platform import Platform
    from ..store.resources import Resource

log = logging.getLogger("modelyard.autoscaling")

_LOCKS: dict[int, threading.RLock] = {}


def lock(platform: "Platform") -> threading.RLock:
    return _LOCKS.setdefault(id(platform), threading.RLock())


def variant_counts(platform: "Platform", resource_id: str) -> tuple[str, int | None, int | None]:
    """(endpoint status, desired, current instance count) of a target's variant; status
    "Missing" when the endpoint or the variant does not exist."""
    endpoint, variant = store.endpoint_and_variant(resource_id)
    try:
        described = dispatch.call(platform, "sagemaker", "DescribeEndpoint",
                                  {"EndpointName": endpoint})
    except AwsError:
        return "Missing", None, None
    for summary in described.get("ProductionVariants", []):
        if summary["VariantName"] == variant:
            return (described["EndpointStatus"], summary.get("DesiredInstanceCount"),
                    summary.get("CurrentInstanceCount"))
    return "Missing", None, None


def record_activity(platform: "Platform", target: "Resource", *, description: str,
                    cause: str, status: str, desired: int | None = None,
                    message: str | None = None,
                    not_scaled: list[dict[str, Any]] | None = None) -> "Resource":
    now = platform.clock.now()
    activity_id = store.new_id()
    document: dict[str, Any] = {
        "ActivityId": activity_id, "ServiceNamespace": target.document["ServiceNamespace"],
        "ResourceId": target.document["ResourceId"],
        "ScalableDimension": target.document["ScalableDimension"],
        "Description": description, "Cause": cause, "StartTime": now, "StatusCode": status,
    }
    if message:
        document["StatusMessage"] = message
    if status in ("Successful", "Failed", "Overridden", "Unfulfilled"):
        document["EndTime"] = now
    if not_scaled:
        document["NotScaledReasons"] = not_scaled
        document["_notScaled"] = True
    if desired is not None:
        document["_desired"] = desired
    arn = platform.settings.arn("application-autoscaling", f"scaling-activity/{activity_id}")
    return platform.resources.create(store.ACTIVITY, activity_id, arn, document, now=now,
                                     status=status, parent=target.name)


def set_capacity(platform: "Platform", target: "Resource", desired: int, *, cause: str,
                 direction: str | None = None) -> "Resource | None":
    """Bring the variant to ``desired`` instances (clamped to Min/MaxCapacity): an
    activity, then the change. None when nothing was to do. ``direction`` ("out"/"in")
    records a not-scaled activity when the bounds stop a policy."""
    document = target.document
    low, high = document["MinCapacity"], document["MaxCapacity"]
    status, current, _ = variant_counts(platform, document["ResourceId"])
    if current is None:
        return None
    wanted = max(low, min(high, desired))
    if wanted == current:
        if direction == "out" and desired > high:
            _not_scaled(platform, target, cause, desired, "AlreadyAtMaxCapacity", current)
        elif direction == "in" and desired < low:
            _not_scaled(platform, target, cause, desired, "AlreadyAtMinCapacity", current)
        return None
    activity = record_activity(
        platform, target, description=f"Setting desired instance count to {wanted}.",
        cause=cause, status="Pending", desired=wanted)
    _remember_change(platform, target, current, wanted)
    return apply(platform, activity)


def _not_scaled(platform: "Platform", target: "Resource", cause: str, desired: int,
                code: str, current: int) -> None:
    latest = next(iter(_activities_newest_first(platform, target.name)), None)
    if latest is not None and latest.document.get("_notScaled") and \
            latest.document["NotScaledReasons"][0]["Code"] == code and \
            latest.document["Cause"] == cause:
        return  # the same refusal again: one record is enough
    reason = {"Code": code, "CurrentCapacity": current}
    reason["MaxCapacity" if code == "AlreadyAtMaxCapacity" else "MinCapacity"] = \
        target.document["MaxCapacity" if code == "AlreadyAtMaxCapacity" else "MinCapacity"]
    record_activity(platform, target, description="Attempting to scale due to alarm triggered",
                    cause=cause, status="Failed",
                    message=f"Failed to set desired instance count to {desired}",
                    not_scaled=[reason])


def _activities_newest_first(platform: "Platform", parent: str) -> list["Resource"]:
    return sorted(store.all_of(platform, store.ACTIVITY, parent),
                  key=lambda item: item.creation_time, reverse=True)


def _remember_change(platform: "Platform", target: "Resource", before: int, after: int) -> None:
    now = platform.clock.now()

    def change(document: dict[str, Any]) -> dict[str, Any]:
        key = "_lastScaleOut" if after > before else "_lastScaleIn"
        document[key] = {"Time": now, "From": before, "To": after}
        return document

    store.update(platform, target, change)


def apply(platform: "Platform", activity: "Resource") -> "Resource":
    """Ask SageMaker for the activity's instance count; Pending while the endpoint is busy."""
    document = activity.document
    endpoint, variant = store.endpoint_and_variant(document["ResourceId"])
    desired = document["_desired"]
    status, _, _ = variant_counts(platform, document["ResourceId"])
    if status == "Missing":
        return _finish(platform, activity, "Failed", f"Failed to set desired instance count "
                       f"to {desired}. The endpoint variant {document['ResourceId']} no "
                       "longer exists.")
    if status != "InService":
        return activity  # Updating (or Creating): try again when it is InService
    try:
        dispatch.call(platform, "sagemaker", "UpdateEndpointWeightsAndCapacities", {
            "EndpointName": endpoint,
            "DesiredWeightsAndCapacities": [{"VariantName": variant,
                                             "DesiredInstanceCount": desired}]})
    except AwsError as error:
        if "in-progress" in error.message or "Updating" in error.message:
            return activity
        return _finish(platform, activity, "Failed",
                       f"Failed to set desired instance count to {desired}. {error.message}")
    return _set_status(platform, activity, "InProgress")


def check_progress(platform: "Platform", activity: "Resource") -> "Resource":
    """An InProgress activity is Successful once the variant serves its count."""
    document = activity.document
    desired = document["_desired"]
    status, wanted, current = variant_counts(platform, document["ResourceId"])
    if status == "Missing":
        return _finish(platform, activity, "Failed", f"Failed to set desired instance count "
                       f"to {desired}. The endpoint variant no longer exists.")
    if status != "InService":
        return activity
    if current == desired:
        return _finish(platform, activity, "Successful",
                       f"Successfully set desired instance count to {desired}. Change "
                       "successfully fulfilled by sagemaker.")
    if wanted != desired:
        return _finish(platform, activity, "Overridden",
                       f"The desired instance count was changed to {wanted} before "
                       f"{desired} was reached.")
    return _finish(platform, activity, "Failed", f"Failed to set desired instance count to "
                   f"{desired}: the endpoint serves {current} instances.")


def _set_status(platform: "Platform", activity: "Resource", status: str) -> "Resource":
    def change(current: Any) -> dict[str, Any]:
        return {**current.document, "StatusCode": status, "__status__": status}

    return platform.resources.update(store.ACTIVITY, activity.name, change,
                                     now=platform.clock.now(), missing=lambda: AwsError(
                                         "ObjectNotFoundException", "activity gone"))


def _finish(platform: "Platform", activity: "Resource", status: str,
            message: str) -> "Resource":
    now = platform.clock.now()

    def change(current: Any) -> dict[str, Any]:
        return {**current.document, "StatusCode": status, "__status__": status,
                "StatusMessage": message, "EndTime": now}

    return platform.resources.update(store.ACTIVITY, activity.name, change, now=now,
                                     missing=lambda: AwsError("ObjectNotFoundException",
                                                              "activity gone"))


def advance(platform: "Platform") -> None:
    """One pass over unfinished activities: retry Pending ones, finish InProgress ones."""
    for status in ("Pending", "InProgress"):
        token = None
        while True:
            from ..store.resources import ListQuery

            found = platform.resources.list(store.ACTIVITY, ListQuery(
                status_equals=status, descending=False, max_results=100, next_token=token))
            for activity in found.items:
                with lock(platform):
                    current = platform.resources.get(store.ACTIVITY, activity.name)
                    if current is None or current.status != status:
                        continue
                    if status == "Pending":
                        apply(platform, current)
                    else:
                        check_progress(platform, current)
            token = found.next_token
            if not token:
                break


def unfinished(platform: "Platform", target_name: str) -> bool:
    return any(item.status in ("Pending", "InProgress")
               for item in store.all_of(platform, store.ACTIVITY, target_name))


def proportional(capacity: int, value: float, target_value: float) -> int:
    """Target tracking's capacity for ``value`` of a per-instance metric: ceil(n * v / t)."""
    if target_value <= 0:
        return capacity
    return max(0, math.ceil(round(capacity * value / target_value, 9)))
