"""SageMaker's checks of an UpdateEndpoint / CreateEndpoint ``DeploymentConfig``.

``check_deployment_config`` raises the ValidationException SageMaker gives for a config that
cannot run against the new endpoint configuration (bounds the botocore model cannot express:
canary at most 50 % of the new fleet, linear steps of 10-50 %, rolling batches of 5-50 %,
``MaximumExecutionTimeoutInSeconds`` above the sum of the waits, rollback alarms that
exist). The step arithmetic here is shared with the step machine in hosting/deployment.py.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..api.errors import validation_error
from ..cloudwatch import alarm_store

if TYPE_CHECKING:
    from ..platform import Platform



def _size_share(size: dict[str, Any], instances: int, member: str) -> float:
    """The share of the fleet's capacity a CapacitySize stands for."""
    value = int(size["Value"])
    if size["Type"] == "INSTANCE_COUNT":
        if value > instances:
            raise validation_error(
                f"{member} of {value} instances is more than the {instances} instance(s) of the "
                "new endpoint configuration; use a smaller Value or CAPACITY_PERCENT.")
        return value / max(instances, 1)
    if value > 100:
        raise validation_error(f"{member} of type CAPACITY_PERCENT must be a Value from 1 to "
                               f"100, not {value}.")
    return value / 100.0


def instance_count(deployment: dict[str, Any]) -> int:
    """The production instances a deployment runs (shadow variants left out)."""
    return sum(int(item["InstanceCount"]) for item in deployment["Variants"])


def blue_green_shares(policy: dict[str, Any], instances: int) -> list[float]:
    """The green fleet's traffic share after each step (the last is 1.0)."""
    routing = policy["TrafficRoutingConfiguration"]
    kind = routing["Type"]
    if kind == "CANARY":
        return [_size_share(routing["CanarySize"], instances, "CanarySize"), 1.0]
    if kind == "LINEAR":
        step = _size_share(routing["LinearStepSize"], instances, "LinearStepSize")
        count = math.ceil(1.0 / step - 1e-9)
        return [min(1.0, step * index) for index in range(1, count + 1)]
    return [1.0]


def check_deployment_config(platform: "Platform", config: dict[str, Any],
                            deployment: dict[str, Any]) -> None:
    """Raise SageMaker's ValidationException for a DeploymentConfig that cannot run with
    ``deployment`` (the new endpoint configuration)."""
    blue_green = config.get("BlueGreenUpdatePolicy")
    rolling = config.get("RollingUpdatePolicy")
    if blue_green and rolling:
        raise validation_error("DeploymentConfig takes either a BlueGreenUpdatePolicy or a "
                               "RollingUpdatePolicy, not both.")
    instances = instance_count(deployment)
    if blue_green:
        routing = blue_green["TrafficRoutingConfiguration"]
        kind = routing["Type"]
        for member, needed_by in (("CanarySize", "CANARY"), ("LinearStepSize", "LINEAR")):
            if kind == needed_by and not routing.get(member):
                raise validation_error(f"TrafficRoutingConfiguration of Type {kind} needs a "
                                       f"{member}.")
            if kind != needed_by and routing.get(member):
                raise validation_error(f"{member} applies only to TrafficRoutingConfiguration "
                                       f"Type {needed_by}, not {kind}; remove it.")
        shares = blue_green_shares(blue_green, instances)
        if kind == "CANARY" and shares[0] > 0.5:
            raise validation_error(
                f"CanarySize must be at most 50% of the new fleet's capacity ({instances} "
                f"instance(s)); {routing['CanarySize']['Value']} "
                f"{routing['CanarySize']['Type']} is {shares[0]:.0%}.")
        if kind == "LINEAR" and not 0.1 - 1e-9 <= shares[0] <= 0.5 + 1e-9:
            raise validation_error(
                f"LinearStepSize must be 10-50% of the new fleet's capacity ({instances} "
                f"instance(s)); {routing['LinearStepSize']['Value']} "
                f"{routing['LinearStepSize']['Type']} is {shares[0]:.0%}.")
        waits = (routing["WaitIntervalInSeconds"] * len(shares)
                 + blue_green.get("TerminationWaitInSeconds", 0))
        _check_timeout(blue_green, waits, "BlueGreenUpdatePolicy")
    if rolling:
        batch = _size_share(rolling["MaximumBatchSize"], instances, "MaximumBatchSize")
        if not 0.05 - 1e-9 <= batch <= 0.5 + 1e-9:
            raise validation_error(
                f"MaximumBatchSize must be 5-50% of the endpoint's {instances} instance(s); "
                f"{rolling['MaximumBatchSize']['Value']} {rolling['MaximumBatchSize']['Type']} "
                f"is {batch:.0%}.")
        if rolling.get("RollbackMaximumBatchSize"):
            _size_share(rolling["RollbackMaximumBatchSize"], instances,
                        "RollbackMaximumBatchSize")
        steps = math.ceil(instances / batch_instances(rolling["MaximumBatchSize"], instances))
        _check_timeout(rolling, rolling["WaitIntervalInSeconds"] * steps,
                       "RollingUpdatePolicy")
    alarms = [item.get("AlarmName") for item in
              (config.get("AutoRollbackConfiguration") or {}).get("Alarms", [])]
    if any(not name for name in alarms):
        raise validation_error("Each alarm of AutoRollbackConfiguration.Alarms needs an "
                               "AlarmName.")
    missing = [name for name in alarms if alarm_store.get(platform, name) is None]
    if missing:
        raise validation_error(
            f"The CloudWatch alarm(s) {', '.join(missing)} of AutoRollbackConfiguration do not "
            "exist in this account and region. Create them with PutMetricAlarm, or remove them.")


def _check_timeout(policy: dict[str, Any], waits: int, member: str) -> None:
    limit = policy.get("MaximumExecutionTimeoutInSeconds")
    if limit is not None and limit <= waits:
        raise validation_error(
            f"{member}.MaximumExecutionTimeoutInSeconds ({limit}) must be greater than the "
            f"sum of the deployment's wait times ({waits} seconds).")


def batch_instances(size: dict[str, Any], instances: int) -> int:
    """How many instances one rolling batch of ``size`` is (at least one)."""
    if size["Type"] == "INSTANCE_COUNT":
        return max(1, min(int(size["Value"]), instances))
    return max(1, math.ceil(instances * int(size["Value"]) / 100.0))
