"""Application Auto Scaling of SageMaker endpoint variants, against a real server whose clock
the tests move: target tracking on InvocationsPerInstance scales a real endpoint out under
driven load and back in when the load falls, with its managed CloudWatch alarms, cooldowns
and activities; step scaling from a user's alarm; scheduled actions; AWS's errors."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from alarm_helpers import start_server
from endpoint_helpers import create_endpoint, create_model, delete_endpoint, variant

NAMESPACE, DIMENSION = "sagemaker", "sagemaker:variant:DesiredInstanceCount"
WAIT = 120


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    server, clock = start_server(tmp_path_factory.mktemp("autoscaling"))
    clients = {name: server.client(name) for name in
               ("sagemaker", "s3", "sagemaker-runtime", "cloudwatch", "application-autoscaling")}
    clients["s3"].create_bucket(Bucket="autoscaling-tests")
    create_model(clients["sagemaker"], clients["s3"], "autoscaling-tests", "scaled-model", 2)
    yield server, clock, clients
    server.stop()


def resource(endpoint: str) -> str:
    return f"endpoint/{endpoint}/variant/AllTraffic"


def target_args(endpoint: str) -> dict:
    return {"ServiceNamespace": NAMESPACE, "ResourceId": resource(endpoint),
            "ScalableDimension": DIMENSION}


def invoke(runtime, endpoint: str, calls: int) -> None:
    for _ in range(calls):
        answer = runtime.invoke_endpoint(EndpointName=endpoint, Body=b"[1.0]",
                                         ContentType="application/json")
        assert answer["Body"].read()


def wait_for(what, check, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def counts(sagemaker, endpoint: str) -> tuple[str, int, int]:
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    summary = described["ProductionVariants"][0]
    return (described["EndpointStatus"], summary["DesiredInstanceCount"],
            summary.get("CurrentInstanceCount", 0))


def wait_instances(sagemaker, endpoint: str, count: int) -> None:
    wait_for(f"{endpoint} serving {count} instances",
             lambda: counts(sagemaker, endpoint) == ("InService", count, count))


def activities(autoscaling, endpoint: str, **extra) -> list[dict]:
    return autoscaling.describe_scaling_activities(**target_args(endpoint),
                                                   **extra)["ScalingActivities"]


def successful(autoscaling, endpoint: str, count: int) -> dict | None:
    for item in activities(autoscaling, endpoint):
        if item["Description"] == f"Setting desired instance count to {count}." and \
                item["StatusCode"] == "Successful":
            return item
    return None


def flushed(cloudwatch, endpoint: str, minute: float, calls: int) -> bool:
    """The runtime's per-minute metrics for ``minute`` are all in CloudWatch."""
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/SageMaker", MetricName="Invocations", StartTime=minute,
        EndTime=minute + 60, Period=60, Statistics=["Sum"],
        Dimensions=[{"Name": "EndpointName", "Value": endpoint},
                    {"Name": "VariantName", "Value": "AllTraffic"}])["Datapoints"]
    return bool(points) and points[0]["Sum"] >= calls


def test_target_tracking_scales_out_under_load_and_back_in(env):
    server, clock, c = env
    sagemaker, runtime, cw, aas = (c["sagemaker"], c["sagemaker-runtime"], c["cloudwatch"],
                                   c["application-autoscaling"])
    endpoint = "tracked"
    create_endpoint(sagemaker, endpoint, [variant("AllTraffic", "scaled-model", 1.0)])
    try:
        aas.register_scalable_target(**target_args(endpoint), MinCapacity=1, MaxCapacity=3)
        config = {"TargetValue": 10.0, "ScaleOutCooldown": 60, "ScaleInCooldown": 150,
                  "PredefinedMetricSpecification": {
                      "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}
        put = aas.put_scaling_policy(PolicyName="ten-per-instance", **target_args(endpoint),
                                     PolicyType="TargetTrackingScaling",
                                     TargetTrackingScalingPolicyConfiguration=config)
        policy_arn = put["PolicyARN"]
        assert policy_arn.startswith("arn:aws:autoscaling:us-east-1:")
        assert f":resource/sagemaker/{resource(endpoint)}:policyName/ten-per-instance" in \
            policy_arn
        prefix = f"TargetTracking-{resource(endpoint)}-Alarm"
        alarms = {item["AlarmName"]: item for item in
                  cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]}
        assert sorted(alarm["AlarmName"] for alarm in put["Alarms"]) == sorted(alarms)
        high = next(item for name, item in alarms.items() if "-AlarmHigh-" in name)
        low = next(item for name, item in alarms.items() if "-AlarmLow-" in name)
        for alarm, periods, threshold, operator in (
                (high, 3, 10.0, "GreaterThanThreshold"), (low, 15, 9.0, "LessThanThreshold")):
            assert (alarm["MetricName"], alarm["Namespace"], alarm["Statistic"]) == \
                ("InvocationsPerInstance", "AWS/SageMaker", "Sum")
            assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"],
                    alarm["Threshold"], alarm["ComparisonOperator"]) == \
                (60, periods, periods, threshold, operator)
            assert alarm["AlarmActions"] == [policy_arn]
        described = aas.describe_scaling_policies(ServiceNamespace=NAMESPACE,
                                                  ResourceId=resource(endpoint))
        assert described["ScalingPolicies"][0]["TargetTrackingScalingPolicyConfiguration"] \
            == config

        # Load: 35 calls a minute on 1 instance for 3 minutes (target 10): out to 3 (max).
        start = clock.fresh_boundary()
        for minute in range(3):
            clock.goto(start + 60 * minute + 5)
            invoke(runtime, endpoint, 35)
        wait_for("the load's metrics", lambda: flushed(cw, endpoint, start + 120, 35))
        clock.goto(start + 180 + 5)
        wait_instances(sagemaker, endpoint, 3)
        out = wait_for("the scale-out activity", lambda: successful(aas, endpoint, 3))
        assert out["Cause"] == (f"monitor alarm {high['AlarmName']} in state ALARM triggered "
                                "policy ten-per-instance")
        assert out["StatusMessage"] == ("Successfully set desired instance count to 3. Change "
                                        "successfully fulfilled by sagemaker.")
        assert out["EndTime"] >= out["StartTime"]

        # Light load: 15 calls a minute on 3 instances (5 each) for 15 minutes: AlarmLow,
        # in to ceil(3 * 5 / 10) = 2.
        # (The next minute boundary: scaling out took real time, which the server clock ran.)
        base = max(start + 240, (clock.now() // 60 + 1) * 60)
        for minute in range(15):
            clock.goto(base + 60 * minute + 5)
            invoke(runtime, endpoint, 15)
        wait_for("the light load's metrics", lambda: flushed(cw, endpoint, base + 840, 15))
        clock.goto(max(base + 900 + 5, clock.now()))
        wait_instances(sagemaker, endpoint, 2)
        first_in = wait_for("the first scale-in", lambda: successful(aas, endpoint, 2))
        assert first_in["Cause"] == (f"monitor alarm {low['AlarmName']} in state ALARM "
                                     "triggered policy ten-per-instance")

        # Lighter still: the next scale-in waits for ScaleInCooldown (150 s), then 2 -> 1.
        moment = base + 900 + 5
        while not successful(aas, endpoint, 1):
            assert moment - (base + 900 + 5) < 600, "never scaled in to 1"
            moment = max(moment, clock.now()) + 30
            clock.goto(moment)
            invoke(runtime, endpoint, 2)
            # The loops look at the clock every 0.25 s; a loaded server may lag behind: the
            # slower the clock runs (30 s per 1.5 s), the less a lag moves the scale-in time.
            time.sleep(1.5)
        second_in = successful(aas, endpoint, 1)
        gap = second_in["StartTime"].timestamp() - first_in["StartTime"].timestamp()
        # Alarms invoke their policy once a clock minute: the first try at or past 150 s.
        assert 150 <= gap <= 150 + 120, gap
        wait_instances(sagemaker, endpoint, 1)

        history = activities(aas, endpoint)
        assert [item["Description"] for item in history if item["StatusCode"] == "Successful"] \
            == [f"Setting desired instance count to {n}." for n in (1, 2, 3)]
        not_scaled = [item for item in activities(aas, endpoint,
                                                  IncludeNotScaledActivities=True)
                      if item.get("NotScaledReasons")]
        # At most capacity, AlarmHigh's once-a-minute invocations are "not scaled" activities,
        # listed only on request.
        assert all(item not in history for item in not_scaled)
        assert all(item["StatusCode"] == "Failed" and
                   item["NotScaledReasons"][0]["Code"] == "AlreadyAtMaxCapacity"
                   for item in not_scaled), not_scaled

        # Deleting the policy deletes its alarms.
        aas.delete_scaling_policy(PolicyName="ten-per-instance", **target_args(endpoint))
        assert cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"] == []
        assert aas.describe_scaling_policies(ServiceNamespace=NAMESPACE)["ScalingPolicies"] \
            == []
        aas.deregister_scalable_target(**target_args(endpoint))
    finally:
        delete_endpoint(sagemaker, endpoint)


def test_step_scaling_from_an_alarm_and_a_scheduled_action(env):
    server, clock, c = env
    sagemaker, cw, aas = c["sagemaker"], c["cloudwatch"], c["application-autoscaling"]
    endpoint = "stepped"
    create_endpoint(sagemaker, endpoint, [variant("AllTraffic", "scaled-model", 1.0)])
    try:
        aas.register_scalable_target(**target_args(endpoint), MinCapacity=1, MaxCapacity=3)
        # A scheduled action raises the floor to 2 at its time: the variant follows.
        at = clock.fresh_boundary() + 120
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at))
        aas.put_scheduled_action(ScheduledActionName="morning", **target_args(endpoint),
                                 Schedule=f"at({stamp})",
                                 ScalableTargetAction={"MinCapacity": 2, "MaxCapacity": 3})
        listed = aas.describe_scheduled_actions(ServiceNamespace=NAMESPACE)["ScheduledActions"]
        assert [item["Schedule"] for item in listed] == [f"at({stamp})"]
        time.sleep(0.6)
        assert counts(sagemaker, endpoint)[1] == 1  # not yet
        clock.goto(at + 1)
        wait_instances(sagemaker, endpoint, 2)
        scheduled = wait_for("the scheduled activity", lambda: successful(aas, endpoint, 2))
        assert scheduled["Cause"] == "scheduled action name morning was triggered"
        target = aas.describe_scalable_targets(ServiceNamespace=NAMESPACE,
                                               ResourceIds=[resource(endpoint)])
        assert target["ScalableTargets"][0]["MinCapacity"] == 2

        # Step scaling: +1 instance when the user's alarm breaches by 0 or more.
        policy_arn = aas.put_scaling_policy(
            PolicyName="plus-one", **target_args(endpoint), PolicyType="StepScaling",
            StepScalingPolicyConfiguration={
                "AdjustmentType": "ChangeInCapacity", "Cooldown": 60,
                "StepAdjustments": [{"MetricIntervalLowerBound": 0.0,
                                     "ScalingAdjustment": 1}]})["PolicyARN"]
        cw.put_metric_alarm(AlarmName="queue-deep", Namespace="Custom/Queue",
                            MetricName="Depth", Statistic="Maximum", Period=60,
                            EvaluationPeriods=1, Threshold=100.0,
                            ComparisonOperator="GreaterThanThreshold",
                            AlarmActions=[policy_arn])
        now = clock.now()
        cw.put_metric_data(Namespace="Custom/Queue", MetricData=[
            {"MetricName": "Depth", "Value": 250.0, "Timestamp": now}])
        clock.goto((now // 60 + 1) * 60 + 2)
        wait_instances(sagemaker, endpoint, 3)
        step = wait_for("the step activity", lambda: successful(aas, endpoint, 3))
        assert step["Cause"] == ("monitor alarm queue-deep in state ALARM triggered policy "
                                 "plus-one")
        policies = aas.describe_scaling_policies(ServiceNamespace=NAMESPACE,
                                                 ResourceId=resource(endpoint),
                                                 ScalableDimension=DIMENSION)
        assert policies["ScalingPolicies"][0]["Alarms"][0]["AlarmName"] == "queue-deep"

        # Target tracking on a customized metric, scale-in disabled: only the AlarmHigh.
        custom = aas.put_scaling_policy(
            PolicyName="latency", **target_args(endpoint), PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 200000.0, "DisableScaleIn": True,
                "CustomizedMetricSpecification": {
                    "MetricName": "ModelLatency", "Namespace": "AWS/SageMaker",
                    "Statistic": "Average", "Unit": "Microseconds", "Dimensions": [
                        {"Name": "EndpointName", "Value": endpoint},
                        {"Name": "VariantName", "Value": "AllTraffic"}]}})
        assert len(custom["Alarms"]) == 1 and "-AlarmHigh-" in custom["Alarms"][0]["AlarmName"]
        managed = cw.describe_alarms(AlarmNames=[custom["Alarms"][0]["AlarmName"]])
        managed = managed["MetricAlarms"][0]
        assert (managed["MetricName"], managed["Statistic"], managed["Unit"],
                managed["Threshold"], managed["AlarmActions"]) == \
            ("ModelLatency", "Average", "Microseconds", 200000.0, [custom["PolicyARN"]])
        aas.deregister_scalable_target(**target_args(endpoint))
        assert cw.describe_alarms(AlarmNames=[managed["AlarmName"]])["MetricAlarms"] == []
        assert aas.describe_scheduled_actions(ServiceNamespace=NAMESPACE)[
            "ScheduledActions"] == []
    finally:
        delete_endpoint(sagemaker, endpoint)


def error(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def test_bad_requests_get_aws_errors(env):
    server, clock, c = env
    sagemaker, aas = c["sagemaker"], c["application-autoscaling"]
    endpoint = "unscaled"
    sagemaker.create_endpoint_config(EndpointConfigName=endpoint, ProductionVariants=[
        variant("AllTraffic", "scaled-model", 1.0)])
    sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)
    try:
        tracking = {"TargetValue": 5.0, "PredefinedMetricSpecification": {
            "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}
        code, message = error(aas.put_scaling_policy, PolicyName="p", **target_args(endpoint),
                              PolicyType="TargetTrackingScaling",
                              TargetTrackingScalingPolicyConfiguration=tracking)
        assert code == "ObjectNotFoundException"
        assert f"resource ID: {resource(endpoint)}" in message
        assert error(aas.register_scalable_target, **target_args(endpoint), MinCapacity=3,
                     MaxCapacity=1)[0] == "ValidationException"
        assert error(aas.register_scalable_target, **target_args(endpoint), MinCapacity=0,
                     MaxCapacity=1)[0] == "ValidationException"
        assert error(aas.register_scalable_target, **target_args(endpoint))[0] == \
            "ValidationException"  # a new target needs both capacities
        code, message = error(aas.register_scalable_target, ServiceNamespace=NAMESPACE,
                              ResourceId=resource(endpoint), MinCapacity=1, MaxCapacity=2,
                              ScalableDimension="sagemaker:variant:DesiredProvisionedConcurrency")
        assert code == "ValidationException" and "scalable dimension" in message
        assert error(aas.register_scalable_target, ServiceNamespace="ecs",
                     ResourceId="service/default/web", ScalableDimension="ecs:service:"
                     "DesiredCount", MinCapacity=1, MaxCapacity=2)[0] == "ValidationException"
        assert error(aas.register_scalable_target, **target_args("no-such-endpoint"),
                     MinCapacity=1, MaxCapacity=2)[0] == "ValidationException"
        assert error(aas.register_scalable_target, ServiceNamespace=NAMESPACE,
                     ResourceId=f"endpoint/{endpoint}", ScalableDimension=DIMENSION,
                     MinCapacity=1, MaxCapacity=2)[0] == "ValidationException"

        aas.register_scalable_target(**target_args(endpoint), MinCapacity=1, MaxCapacity=2)
        for bad in ({"TargetValue": 5.0, "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "ECSServiceAverageCPUUtilization"}},
                    {"TargetValue": 5.0},
                    {"TargetValue": -1.0, **{k: v for k, v in tracking.items()
                                             if k != "TargetValue"}}):
            assert error(aas.put_scaling_policy, PolicyName="p", **target_args(endpoint),
                         PolicyType="TargetTrackingScaling",
                         TargetTrackingScalingPolicyConfiguration=bad)[0] == \
                "ValidationException"
        assert error(aas.put_scaling_policy, PolicyName="p", **target_args(endpoint),
                     PolicyType="StepScaling", StepScalingPolicyConfiguration={
                         "AdjustmentType": "ChangeInCapacity", "StepAdjustments": [
                             {"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1},
                             {"MetricIntervalLowerBound": 5.0, "ScalingAdjustment": 2}]}
                     )[0] == "ValidationException"  # overlapping steps
        assert error(aas.put_scheduled_action, ScheduledActionName="s",
                     **target_args(endpoint), Schedule="whenever",
                     ScalableTargetAction={"MinCapacity": 1})[0] == "ValidationException"
        assert error(aas.delete_scaling_policy, PolicyName="missing",
                     **target_args(endpoint))[0] == "ObjectNotFoundException"
        assert error(aas.delete_scheduled_action, ScheduledActionName="missing",
                     **target_args(endpoint))[0] == "ObjectNotFoundException"
        aas.deregister_scalable_target(**target_args(endpoint))
        assert error(aas.deregister_scalable_target,
                     **target_args(endpoint))[0] == "ObjectNotFoundException"
    finally:
        delete_endpoint(sagemaker, endpoint)
