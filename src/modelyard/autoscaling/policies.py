"""Scaling policies: checking them, the CloudWatch alarms target tracking manages, and
what running a policy does.

Target tracking, as Application Auto Scaling does it for SageMaker variants: two alarms
on the policy's metric, ``TargetTracking-<resource id>-AlarmHigh-<uuid>`` (Sum per minute
above the target for 3 of 3 minutes) and ``...-AlarmLow-<uuid>`` (below 90% of it for 15
of 15; not created with DisableScaleIn), whose action is the policy's ARN. Running the
policy sets the capacity to ``ceil(capacity * metric / target)``: out at once (during the
scale-out cooldown only past what the last scale-out already asked for), in only after
the scale-in cooldown. Step scaling runs the step whose bounds hold the alarm's breach
(the metric minus the alarm's threshold).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from .. import dispatch
from ..api.errors import AwsError
from . import scaling, store
from .store import validation

if TYPE_CHECKING:
    from ..platform import Platform
    from ..store.resources import Resource

log = logging.getLogger("modelyard.autoscaling")

PREDEFINED = "SageMakerVariantInvocationsPerInstance"
DEFAULT_COOLDOWN = 300  # seconds, for SageMaker variants
HIGH_PERIODS, LOW_PERIODS, LOW_FACTOR = 3, 15, 0.9
MIN_TARGET, MAX_TARGET = 8.515920e-109, 6.174020e+307


# --- checking PutScalingPolicy --------------------------------------------------------------


def check(request: dict[str, Any]) -> str:
    """The policy type, once the request's configuration is one AWS accepts."""
    policy_type = request.get("PolicyType") or "StepScaling"
    step = request.get("StepScalingPolicyConfiguration")
    tracking = request.get("TargetTrackingScalingPolicyConfiguration")
    if policy_type == "PredictiveScaling" or request.get("PredictiveScalingPolicyConfiguration"):
        raise validation("Predictive scaling is not supported for SageMaker endpoint variants; "
                         "use TargetTrackingScaling or StepScaling.")
    if policy_type == "TargetTrackingScaling":
        if step:
            raise validation("StepScalingPolicyConfiguration is not allowed with PolicyType "
                             "TargetTrackingScaling; give TargetTrackingScalingPolicyConfiguration.")
        if not tracking:
            raise validation("TargetTrackingScalingPolicyConfiguration is required for PolicyType "
                             "TargetTrackingScaling.")
        _check_tracking(tracking)
    else:
        if tracking:
            raise validation("TargetTrackingScalingPolicyConfiguration is not allowed with "
                             "PolicyType StepScaling; set PolicyType TargetTrackingScaling.")
        if not step:
            raise validation("StepScalingPolicyConfiguration is required for PolicyType "
                             "StepScaling.")
        _check_step(step)
    return policy_type


def _check_tracking(config: dict[str, Any]) -> None:
    target = config["TargetValue"]
    if not MIN_TARGET <= target <= MAX_TARGET:
        raise validation(f"TargetValue {target} is out of range: it must be between "
                         f"{MIN_TARGET} and {MAX_TARGET}.")
    predefined = config.get("PredefinedMetricSpecification")
    custom = config.get("CustomizedMetricSpecification")
    if bool(predefined) == bool(custom):
        raise validation("Give exactly one of PredefinedMetricSpecification and "
                         "CustomizedMetricSpecification.")
    if predefined:
        kind = predefined["PredefinedMetricType"]
        if kind != PREDEFINED:
            raise validation(f"Predefined metric type {kind!r} does not apply to "
                             f"{store.DIMENSION}: use {PREDEFINED}, or a "
                             "CustomizedMetricSpecification.")
        if predefined.get("ResourceLabel"):
            raise validation(f"ResourceLabel is not allowed with {PREDEFINED}.")
    else:
        if custom.get("Metrics"):
            if custom.get("MetricName") or custom.get("Namespace") or custom.get("Statistic"):
                raise validation("A CustomizedMetricSpecification has either Metrics or "
                                 "MetricName/Namespace/Statistic, not both.")
            returning = [query for query in custom["Metrics"] if query.get("ReturnData", True)]
            if len(returning) != 1:
                raise validation("Exactly one of the customized metric's queries must return "
                                 "data (set ReturnData false on the others).")
        else:
            for member in ("MetricName", "Namespace", "Statistic"):
                if not custom.get(member):
                    raise validation(f"CustomizedMetricSpecification.{member} is required "
                                     "(or give Metrics).")


def _check_step(config: dict[str, Any]) -> None:
    if not config.get("AdjustmentType"):
        raise validation("StepScalingPolicyConfiguration.AdjustmentType is required "
                         "(ChangeInCapacity, PercentChangeInCapacity or ExactCapacity).")
    steps = config.get("StepAdjustments") or []
    if not steps:
        raise validation("StepScalingPolicyConfiguration.StepAdjustments needs at least one "
                         "step.")
    if config.get("MinAdjustmentMagnitude") is not None and \
            config["AdjustmentType"] != "PercentChangeInCapacity":
        raise validation("MinAdjustmentMagnitude applies only to PercentChangeInCapacity.")
    bounds = sorted(((step.get("MetricIntervalLowerBound", -math.inf),
                      step.get("MetricIntervalUpperBound", math.inf)) for step in steps))
    for lower, upper in bounds:
        if lower >= upper:
            raise validation(f"Step bounds [{lower}, {upper}) are empty: the lower bound must "
                             "be below the upper bound.")
    for (_, upper), (lower, _) in zip(bounds, bounds[1:]):
        if lower < upper:
            raise validation("Step adjustments overlap: their metric intervals must not "
                             "overlap.")
        if lower > upper:
            raise validation("Step adjustments leave a gap: each interval must start where "
                             "the previous one ends.")


# --- the alarms of target tracking -------------------------------------------------------------


def metric_of(config: dict[str, Any], resource_id: str) -> dict[str, Any]:
    """PutMetricAlarm's metric members for a target tracking configuration."""
    predefined = config.get("PredefinedMetricSpecification")
    if predefined:
        endpoint, variant = store.endpoint_and_variant(resource_id)
        return {"Namespace": "AWS/SageMaker", "MetricName": "InvocationsPerInstance",
                "Statistic": "Sum", "Period": 60,
                "Dimensions": [{"Name": "EndpointName", "Value": endpoint},
                               {"Name": "VariantName", "Value": variant}]}
    custom = config["CustomizedMetricSpecification"]
    if custom.get("Metrics"):
        return {"Metrics": [_query(query) for query in custom["Metrics"]]}
    metric = {"Namespace": custom["Namespace"], "MetricName": custom["MetricName"],
              "Statistic": custom["Statistic"], "Period": 60,
              "Dimensions": custom.get("Dimensions", [])}
    if custom.get("Unit"):
        metric["Unit"] = custom["Unit"]
    return metric


def _query(query: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {"Id": query["Id"], "ReturnData": query.get("ReturnData", True)}
    if query.get("Expression"):
        item["Expression"] = query["Expression"]
    if query.get("Label"):
        item["Label"] = query["Label"]
    if query.get("MetricStat"):
        stat = query["MetricStat"]
        item["MetricStat"] = {"Metric": stat["Metric"], "Stat": stat["Stat"], "Period": 60}
        if stat.get("Unit"):
            item["MetricStat"]["Unit"] = stat["Unit"]
    if query.get("Expression") and not query.get("MetricStat"):
        item["Period"] = 60
    return item


def put_alarms(platform: "Platform", policy: dict[str, Any],
               previous: dict[str, Any] | None) -> dict[str, str]:
    """Create (or replace) the policy's managed alarms; {"High": name, "Low": name}."""
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    resource_id = policy["ResourceId"]
    names = dict((previous or {}).get("_alarms") or {})
    wanted = {"High": (HIGH_PERIODS, "GreaterThanThreshold", config["TargetValue"])}
    if not config.get("DisableScaleIn"):
        wanted["Low"] = (LOW_PERIODS, "LessThanThreshold", config["TargetValue"] * LOW_FACTOR)
    stale = [name for which, name in names.items() if which not in wanted]
    if stale:
        dispatch.call(platform, "cloudwatch", "DeleteAlarms", {"AlarmNames": stale})
    metric = metric_of(config, resource_id)
    result = {}
    for which, (periods, operator, threshold) in wanted.items():
        name = names.get(which) or \
            f"TargetTracking-{resource_id}-Alarm{which}-{store.new_id()}"
        try:
            _put_alarm(platform, name, metric, policy["PolicyARN"], periods, operator,
                       threshold)
        except AwsError as error:
            raise validation(f"Application Auto Scaling could not create the alarm for this "
                             f"policy's metric: {error.message}") from None
        result[which] = name
    return result


def _put_alarm(platform: "Platform", name: str, metric: dict[str, Any], policy_arn: str,
               periods: int, operator: str, threshold: float) -> None:
    dispatch.call(platform, "cloudwatch", "PutMetricAlarm", {
        "AlarmName": name, **metric,
        "AlarmDescription": "DO NOT EDIT OR DELETE. For TargetTrackingScaling policy "
                            f"{policy_arn}.",
        "ActionsEnabled": True, "AlarmActions": [policy_arn],
        "EvaluationPeriods": periods, "DatapointsToAlarm": periods,
        "Threshold": threshold, "ComparisonOperator": operator})


def delete_alarms(platform: "Platform", policy: dict[str, Any]) -> None:
    names = list((policy.get("_alarms") or {}).values())
    if names:
        dispatch.call(platform, "cloudwatch", "DeleteAlarms", {"AlarmNames": names})


def alarm_list(platform: "Platform", names: dict[str, str]) -> list[dict[str, str]]:
    from ..cloudwatch.alarm_store import alarm_arn

    return [{"AlarmName": name, "AlarmARN": alarm_arn(platform, name)}
            for _, name in sorted(names.items())]


# --- running a policy ------------------------------------------------------------------------


def latest_value(platform: "Platform", alarm: dict[str, Any]) -> float | None:
    """The newest value, among the complete periods an alarm evaluates, of its metric."""
    now = platform.clock.now()
    period = alarm.get("Period") or 60
    if alarm.get("Metrics"):
        queries = alarm["Metrics"]
        period = next((query["MetricStat"]["Period"] for query in queries
                       if query.get("MetricStat")), period)
    else:
        stat: dict[str, Any] = {"Metric": {"Namespace": alarm["Namespace"],
                                           "MetricName": alarm["MetricName"],
                                           "Dimensions": alarm.get("Dimensions", [])},
                                "Period": period,
                                "Stat": alarm.get("Statistic") or alarm["ExtendedStatistic"]}
        if alarm.get("Unit"):
            stat["Unit"] = alarm["Unit"]
        queries = [{"Id": "m", "MetricStat": stat, "ReturnData": True}]
    end = math.floor(now / period) * period
    # The periods the alarm itself looks at (CloudWatch's EvaluationPeriods + 2).
    span = (alarm.get("EvaluationPeriods", 1) + 2) * period
    result = dispatch.call(platform, "cloudwatch", "GetMetricData", {
        "MetricDataQueries": queries, "StartTime": end - max(span, 5 * period), "EndTime": end,
        "ScanBy": "TimestampDescending"})
    for series in result.get("MetricDataResults", []):
        points = sorted(zip(series.get("Timestamps", []), series.get("Values", [])),
                        key=lambda point: _epoch(point[0]), reverse=True)
        if points:
            return float(points[0][1])
    return None


def _epoch(value: Any) -> float:
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


def run(platform: "Platform", policy_arn: str, alarm: dict[str, Any]) -> None:
    """An alarm in ALARM invoked the policy ``policy_arn``: scale if the policy says so."""
    with scaling.lock(platform):
        found = platform.resources.get_by_arn(policy_arn)
        if found is None or found.kind != store.POLICY:
            log.info("alarm %s names policy %s, which does not exist", alarm["AlarmName"],
                     policy_arn)
            return
        policy = found.document
        target = platform.resources.get(store.TARGET, found.parent or "")
        if target is None or scaling.unfinished(platform, target.name):
            return
        value = latest_value(platform, alarm)
        if value is None:
            return
        cause = (f"monitor alarm {alarm['AlarmName']} in state ALARM triggered policy "
                 f"{policy['PolicyName']}")
        _, current, _ = scaling.variant_counts(platform, target.document["ResourceId"])
        if current is None:
            return
        if policy["PolicyType"] == "TargetTrackingScaling":
            _track(platform, target, policy, alarm, value, current, cause)
        else:
            _step(platform, target, policy, alarm, value, current, cause)


def _track(platform: "Platform", target: "Resource", policy: dict[str, Any],
           alarm: dict[str, Any], value: float, current: int, cause: str) -> None:
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    suspended = target.document.get("SuspendedState") or {}
    now = platform.clock.now()
    goal = config["TargetValue"]
    if alarm["AlarmName"] == (policy.get("_alarms") or {}).get("High"):
        if suspended.get("DynamicScalingOutSuspended"):
            return
        base = current
        last = target.document.get("_lastScaleOut")
        cooldown = config.get("ScaleOutCooldown", DEFAULT_COOLDOWN)
        if last and now - last["Time"] < cooldown:
            base = last["From"]  # the last scale-out's capacity is part of this one
        desired = scaling.proportional(base, value, goal)
        if desired > current or desired > target.document["MaxCapacity"]:
            scaling.set_capacity(platform, target, max(desired, current), cause=cause,
                                 direction="out")
    else:
        if config.get("DisableScaleIn") or suspended.get("DynamicScalingInSuspended"):
            return
        last = target.document.get("_lastScaleIn")
        cooldown = config.get("ScaleInCooldown", DEFAULT_COOLDOWN)
        if last and now - last["Time"] < cooldown:
            return
        desired = scaling.proportional(current, value, goal)
        if desired < current:
            scaling.set_capacity(platform, target, desired, cause=cause, direction="in")


def _step(platform: "Platform", target: "Resource", policy: dict[str, Any],
          alarm: dict[str, Any], value: float, current: int, cause: str) -> None:
    config = policy["StepScalingPolicyConfiguration"]
    threshold = alarm.get("Threshold")
    if threshold is None:
        return
    breach = value - threshold
    step = next((item for item in config["StepAdjustments"]
                 if item.get("MetricIntervalLowerBound", -math.inf) <= breach
                 < item.get("MetricIntervalUpperBound", math.inf)), None)
    if step is None:
        return
    adjustment = step["ScalingAdjustment"]
    kind = config["AdjustmentType"]
    if kind == "ExactCapacity":
        desired = adjustment
    elif kind == "ChangeInCapacity":
        desired = current + adjustment
    else:
        change = current * adjustment / 100.0
        change = math.floor(change) if change > 1 else math.ceil(change) if change < -1 else \
            (1 if change > 0 else -1 if change < 0 else 0)
        magnitude = config.get("MinAdjustmentMagnitude")
        if magnitude and abs(change) < magnitude:
            change = magnitude if change > 0 else -magnitude
        desired = current + change
    suspended = target.document.get("SuspendedState") or {}
    now = platform.clock.now()
    cooldown = config.get("Cooldown", DEFAULT_COOLDOWN)
    if desired > current:
        last = target.document.get("_lastScaleOut")
        if suspended.get("DynamicScalingOutSuspended") or \
                (last and now - last["Time"] < cooldown and desired <= last["To"]):
            return
        scaling.set_capacity(platform, target, desired, cause=cause, direction="out")
    elif desired < current:
        last = target.document.get("_lastScaleIn") or target.document.get("_lastScaleOut")
        if suspended.get("DynamicScalingInSuspended") or \
                (last and now - last["Time"] < cooldown):
            return
        scaling.set_capacity(platform, target, desired, cause=cause, direction="in")


def describe(document: dict[str, Any]) -> dict[str, Any]:
    return store.public(document)


def not_found(name: str, resource_id: str) -> AwsError:
    return AwsError("ObjectNotFoundException",
                    f"No scaling policy found for service namespace: {store.NAMESPACE}, "
                    f"resource ID: {resource_id}, scalable dimension: {store.DIMENSION}, "
                    f"policy name: {name}")
