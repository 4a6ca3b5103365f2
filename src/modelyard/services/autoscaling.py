"""Application Auto Scaling (botocore ``application-autoscaling``) for SageMaker endpoint
variants: scalable targets, scaling policies, scheduled actions and scaling activities.

The work happens in modelyard.autoscaling (see its package docstring); these handlers check
requests the way AWS does and read and write the records.
"""

from __future__ import annotations

from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError
from ..autoscaling import policies, scaling, scheduled, store
from ..autoscaling.store import validation


def _identity(request: dict[str, Any]) -> tuple[str, str, str]:
    namespace, resource_id = request["ServiceNamespace"], request["ResourceId"]
    dimension = request["ScalableDimension"]
    store.check_target_identity(namespace, dimension, resource_id)
    return namespace, resource_id, dimension


def _filters(request: dict[str, Any]) -> tuple[str | None, str | None]:
    store.check_target_identity(request["ServiceNamespace"], request.get("ScalableDimension"),
                                request.get("ResourceId"))
    if request.get("ScalableDimension") and not request.get("ResourceId"):
        raise validation("If you specify a scalable dimension, you must also specify a "
                         "resource ID.")
    return request.get("ResourceId"), request.get("ScalableDimension")


def _matches(document: dict[str, Any], resource_ids: list[str] | None,
             dimension: str | None) -> bool:
    if resource_ids and document["ResourceId"] not in resource_ids:
        return False
    return not dimension or document["ScalableDimension"] == dimension


# --- scalable targets ------------------------------------------------------------------------


def register_scalable_target(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    platform = ctx.platform
    namespace, resource_id, dimension = _identity(request)
    low, high = request.get("MinCapacity"), request.get("MaxCapacity")
    if low is not None and low < 1:
        raise validation(f"MinCapacity {low} is not valid for a SageMaker endpoint variant: "
                         "it must be at least 1.")
    if high is not None and high < 1:
        raise validation(f"MaxCapacity {high} is not valid: it must be at least 1.")
    status, _, _ = scaling.variant_counts(platform, resource_id)
    if status == "Missing":
        raise validation(f"The endpoint variant {resource_id} does not exist: create the "
                         "endpoint (with that variant) first.")
    key = store.target_key(namespace, dimension, resource_id)
    with scaling.lock(platform):
        existing = platform.resources.get(store.TARGET, key)
        if existing is None:
            if low is None or high is None:
                raise validation("MinCapacity and MaxCapacity are required to register a new "
                                 "scalable target.")
            if low > high:
                raise validation(f"Minimum capacity ({low}) cannot be greater than maximum "
                                 f"capacity ({high}).")
            target_id = store.new_id().replace("-", "")
            arn = store.target_arn(platform, target_id)
            document = {
                "ServiceNamespace": namespace, "ResourceId": resource_id,
                "ScalableDimension": dimension, "MinCapacity": low, "MaxCapacity": high,
                "RoleARN": request.get("RoleARN") or platform.settings.arn(
                    "iam", "role/aws-service-role/sagemaker.application-autoscaling."
                    "amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
                    regional=False),
                "CreationTime": ctx.now,
                "SuspendedState": _suspended(request.get("SuspendedState"), None),
                "ScalableTargetARN": arn, "_tags": request.get("Tags") or {},
            }
            target = platform.resources.create(store.TARGET, key, arn, document, now=ctx.now)
            bounds_low, bounds_high = low, high
        else:
            merged_low = existing.document["MinCapacity"] if low is None else low
            merged_high = existing.document["MaxCapacity"] if high is None else high
            if merged_low > merged_high:
                raise validation(f"Minimum capacity ({merged_low}) cannot be greater than "
                                 f"maximum capacity ({merged_high}).")

            def change(document: dict[str, Any]) -> dict[str, Any]:
                if request.get("SuspendedState") is not None:
                    document["SuspendedState"] = _suspended(request["SuspendedState"],
                                                            document.get("SuspendedState"))
                if request.get("RoleARN"):
                    document["RoleARN"] = request["RoleARN"]
                return document

            target = store.update(platform, existing, change)
            bounds_low, bounds_high = low, high
        cause = ("minimum capacity was set to " + str(target.document["MinCapacity"])
                 if bounds_low is not None else "maximum capacity was set to "
                 + str(target.document["MaxCapacity"]))
        scheduled.apply_bounds(platform, target, bounds_low, bounds_high, cause=cause)
    return {"ScalableTargetARN": target.arn}


def _suspended(given: dict[str, Any] | None, before: dict[str, Any] | None) -> dict[str, Any]:
    state = dict(before or {"DynamicScalingInSuspended": False,
                            "DynamicScalingOutSuspended": False,
                            "ScheduledScalingSuspended": False})
    state.update({key: value for key, value in (given or {}).items() if value is not None})
    return state


def describe_scalable_targets(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    store.check_target_identity(request["ServiceNamespace"], request.get("ScalableDimension"),
                                None)
    wanted = request.get("ResourceIds")
    items = [store.public(item.document) for item in store.all_of(ctx.platform, store.TARGET)
             if _matches(item.document, wanted, request.get("ScalableDimension"))]
    chosen, token = store.page(items, request)
    return {"ScalableTargets": chosen, "NextToken": token}


def deregister_scalable_target(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    platform = ctx.platform
    namespace, resource_id, dimension = _identity(request)
    with scaling.lock(platform):
        target = store.get_target(platform, namespace, resource_id, dimension)
        for policy in list(store.all_of(platform, store.POLICY, target.name)):
            policies.delete_alarms(platform, policy.document)
            platform.resources.delete(store.POLICY, policy.name)
        for action in list(store.all_of(platform, store.SCHEDULED, target.name)):
            platform.resources.delete(store.SCHEDULED, action.name)
        platform.resources.delete(store.TARGET, target.name)
    return {}


# --- scaling policies ------------------------------------------------------------------------


def put_scaling_policy(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    platform = ctx.platform
    namespace, resource_id, dimension = _identity(request)
    with scaling.lock(platform):
        target = store.get_target(platform, namespace, resource_id, dimension)
        policy_type = policies.check(request)
        name = request["PolicyName"]
        key = f"{target.name}|{name}"
        existing = platform.resources.get(store.POLICY, key)
        document: dict[str, Any] = {
            "PolicyARN": existing.arn if existing else
            store.policy_arn(platform, resource_id, name),
            "PolicyName": name, "ServiceNamespace": namespace, "ResourceId": resource_id,
            "ScalableDimension": dimension, "PolicyType": policy_type,
            "CreationTime": existing.document["CreationTime"] if existing else ctx.now,
        }
        if policy_type == "TargetTrackingScaling":
            document["TargetTrackingScalingPolicyConfiguration"] = \
                request["TargetTrackingScalingPolicyConfiguration"]
            document["_alarms"] = policies.put_alarms(
                platform, document, existing.document if existing else None)
        else:
            document["StepScalingPolicyConfiguration"] = request["StepScalingPolicyConfiguration"]
            if existing is not None:
                policies.delete_alarms(platform, existing.document)
        if existing is None:
            platform.resources.create(store.POLICY, key, document["PolicyARN"], document,
                                      now=ctx.now, parent=target.name)
        else:
            platform.resources.update(store.POLICY, key, lambda _: document, now=ctx.now,
                                      missing=lambda: policies.not_found(name, resource_id))
    return {"PolicyARN": document["PolicyARN"],
            "Alarms": policies.alarm_list(platform, document.get("_alarms") or {})}


def _policy_alarms(ctx: RequestContext, document: dict[str, Any],
                   every_alarm: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    if document.get("_alarms"):
        return policies.alarm_list(ctx.platform, document["_alarms"])
    return [{"AlarmName": alarm["AlarmName"], "AlarmARN": alarm["AlarmArn"]}
            for alarm in every_alarm or []
            if document["PolicyARN"] in alarm.get("AlarmActions", [])]


def describe_scaling_policies(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    from ..cloudwatch import alarm_store

    resource_id, dimension = _filters(request)
    names = request.get("PolicyNames")
    found = [item.document for item in store.all_of(ctx.platform, store.POLICY)
             if _matches(item.document, [resource_id] if resource_id else None, dimension)
             and (not names or item.document["PolicyName"] in names)]
    every_alarm = alarm_store.list_alarms(ctx.platform, "MetricAlarm") \
        if any(item["PolicyType"] == "StepScaling" for item in found) else None
    items = [{**store.public(item), "Alarms": _policy_alarms(ctx, item, every_alarm)}
             for item in found]
    chosen, token = store.page(items, request)
    return {"ScalingPolicies": chosen, "NextToken": token}


def delete_scaling_policy(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    platform = ctx.platform
    namespace, resource_id, dimension = _identity(request)
    with scaling.lock(platform):
        key = f"{store.target_key(namespace, dimension, resource_id)}|{request['PolicyName']}"
        policy = platform.resources.get(store.POLICY, key)
        if policy is None:
            raise policies.not_found(request["PolicyName"], resource_id)
        policies.delete_alarms(platform, policy.document)
        platform.resources.delete(store.POLICY, key)
    return {}


# --- activities ------------------------------------------------------------------------------


def describe_scaling_activities(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    resource_id, dimension = _filters(request)
    include_not_scaled = request.get("IncludeNotScaledActivities", False)
    if resource_id and dimension:
        parent = store.target_key(request["ServiceNamespace"], dimension, resource_id)
        found = list(store.all_of(ctx.platform, store.ACTIVITY, parent))
    else:
        found = [item for item in store.all_of(ctx.platform, store.ACTIVITY)
                 if _matches(item.document, [resource_id] if resource_id else None, dimension)]
    found.sort(key=lambda item: item.creation_time, reverse=True)
    items = [store.public(item.document) for item in found
             if include_not_scaled or not item.document.get("_notScaled")]
    chosen, token = store.page(items, request)
    return {"ScalingActivities": chosen, "NextToken": token}


# --- scheduled actions -----------------------------------------------------------------------


def put_scheduled_action(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    platform = ctx.platform
    namespace, resource_id, dimension = _identity(request)
    with scaling.lock(platform):
        target = store.get_target(platform, namespace, resource_id, dimension)
        name = request["ScheduledActionName"]
        key = f"{target.name}|{name}"
        existing = platform.resources.get(store.SCHEDULED, key)
        merged = {**(store.public(existing.document) if existing else {}),
                  **{member: request[member] for member in
                     ("Schedule", "Timezone", "StartTime", "EndTime", "ScalableTargetAction")
                     if request.get(member) is not None}}
        scheduled.check(merged)
        if (request.get("StartTime") and request.get("EndTime")
                and request["StartTime"] > request["EndTime"]):
            raise validation("StartTime must be before EndTime.")
        document = {
            **merged, "ScheduledActionName": name,
            "ScheduledActionARN": existing.arn if existing else
            store.scheduled_action_arn(platform, resource_id, name),
            "ServiceNamespace": namespace, "ResourceId": resource_id,
            "ScalableDimension": dimension,
            "CreationTime": existing.document["CreationTime"] if existing else ctx.now,
        }
        document["_next"] = scheduled.next_run(document, ctx.now)
        if existing is None:
            platform.resources.create(store.SCHEDULED, key, document["ScheduledActionARN"],
                                      document, now=ctx.now, parent=target.name)
        else:
            platform.resources.update(store.SCHEDULED, key, lambda _: document, now=ctx.now,
                                      missing=lambda: _no_action(name, resource_id))
    return {}


def _no_action(name: str, resource_id: str) -> AwsError:
    return AwsError("ObjectNotFoundException",
                    f"No scheduled action found for service namespace: {store.NAMESPACE}, "
                    f"resource ID: {resource_id}, scalable dimension: {store.DIMENSION}, "
                    f"scheduled action name: {name}")


def describe_scheduled_actions(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    resource_id, dimension = _filters(request)
    names = request.get("ScheduledActionNames")
    items = [store.public(item.document) for item in store.all_of(ctx.platform, store.SCHEDULED)
             if _matches(item.document, [resource_id] if resource_id else None, dimension)
             and (not names or item.document["ScheduledActionName"] in names)]
    chosen, token = store.page(items, request)
    return {"ScheduledActions": chosen, "NextToken": token}


def delete_scheduled_action(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    namespace, resource_id, dimension = _identity(request)
    name = request["ScheduledActionName"]
    key = f"{store.target_key(namespace, dimension, resource_id)}|{name}"
    if not ctx.platform.resources.delete(store.SCHEDULED, key):
        raise _no_action(name, resource_id)
    return {}


OPERATIONS: dict[str, Any] = {
    "RegisterScalableTarget": register_scalable_target,
    "DescribeScalableTargets": describe_scalable_targets,
    "DeregisterScalableTarget": deregister_scalable_target,
    "PutScalingPolicy": put_scaling_policy,
    "DescribeScalingPolicies": describe_scaling_policies,
    "DeleteScalingPolicy": delete_scaling_policy,
    "DescribeScalingActivities": describe_scaling_activities,
    "PutScheduledAction": put_scheduled_action,
    "DescribeScheduledActions": describe_scheduled_actions,
    "DeleteScheduledAction": delete_scheduled_action,
}
