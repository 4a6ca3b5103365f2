"""Deployment guardrails (issue 11): UpdateEndpoint with a DeploymentConfig -- blue/green
canary and linear traffic shifting with bakes, rolling updates, rollback on a CloudWatch
alarm -- against a real server whose clock the tests move, while a client keeps invoking."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from collections import Counter

import pytest
from botocore.exceptions import ClientError

from alarm_helpers import start_server
from endpoint_helpers import create_endpoint, create_model, delete_endpoint, variant, \
    wait_in_service
from jobs_helpers import SKLEARN_IMAGE
from sns_subscriber import Subscriber

BUCKET = "guardrails-tests"
ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"
PHASE_CALLS = 500
STOPPING = "modelyard: stopping the model server (SIGTERM)"

# Multiplies its input by MODEL_FACTOR; fails (HTTP 500) on a FAIL_SHARE of the requests.
FLAKY_PY = '''
import os
import random


def model_fn(model_dir):
    return float(os.environ.get("MODEL_FACTOR", "1"))


def predict_fn(data, factor):
    if random.random() < float(os.environ.get("FAIL_SHARE", "0")):
        raise RuntimeError("deliberately broken model version")
    return data * factor
'''


class ServerClockMover:
    """Moves the module server's clock forward by seconds (relative to where it is)."""

    def __init__(self, clock) -> None:  # noqa: ANN001 - alarm_helpers.ServerClock
        self.clock = clock

    def advance(self, seconds: float) -> None:
        self.clock._write(self.clock.offset + seconds)

    def set_to(self, moment: float) -> None:
        """Put the server's time at ``moment`` (forward or back)."""
        self.clock._write(moment - time.time())


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    server, clock = start_server(tmp_path_factory.mktemp("guardrails"))
    sagemaker = server.client("sagemaker")
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    create_model(sagemaker, s3, BUCKET, "gr-times-one", 1)
    create_model(sagemaker, s3, BUCKET, "gr-times-two", 2)
    _flaky_model(sagemaker, s3, "gr-broken", factor=3, fail_share=0.5)
    yield server, ServerClockMover(clock), sagemaker
    server.stop()


def _flaky_model(sagemaker, s3, name: str, factor: float, fail_share: float) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        source = FLAKY_PY.encode()
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(source)
        archive.addfile(info, io.BytesIO(source))
    s3.put_object(Bucket=BUCKET, Key=f"{name}/model.tar.gz", Body=buffer.getvalue())
    sagemaker.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/{name}/model.tar.gz",
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                        "MODEL_FACTOR": str(factor), "FAIL_SHARE": str(fail_share)}})


class Caller:
    """A client invoking the endpoint in a loop; ``answers`` holds the factor of the model
    that answered each call, or the error code."""

    def __init__(self, server, endpoint: str) -> None:  # noqa: ANN001
        self.runtime = server.client("sagemaker-runtime")
        self.endpoint = endpoint
        self.answers: list[float | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = self.runtime.invoke_endpoint(
                    EndpointName=self.endpoint, Body=json.dumps([1.0]),
                    ContentType="application/json", Accept="application/json")
                self.answers.append(float(json.loads(response["Body"].read())[0]))
            except ClientError as error:
                self.answers.append(error.response["Error"]["Code"])

    def mark(self) -> int:
        """Index from which calls surely went out after now (one call may be in flight)."""
        return len(self.answers) + 1

    def take(self, start: int, count: int = PHASE_CALLS, timeout: float = 300) -> list:
        deadline = time.monotonic() + timeout
        while len(self.answers) < start + count:
            assert time.monotonic() < deadline, f"only {len(self.answers) - start} calls made"
            time.sleep(0.05)
        return self.answers[start:start + count]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def pending(sagemaker, name: str) -> dict | None:
    variants = (sagemaker.describe_endpoint(EndpointName=name).get("PendingDeploymentSummary")
                or {}).get("ProductionVariants")
    return variants[0] if variants else None


def wait_pending(sagemaker, name: str, status: str, weight: float | None = None,
                 message: str = "", timeout: float = 120) -> dict:
    """Wait until the new fleet's VariantStatus is ``status`` (at ``weight``)."""
    deadline = time.monotonic() + timeout
    while True:
        summary = pending(sagemaker, name)
        if summary is not None:
            state = summary["VariantStatus"][0]
            if state["Status"] == status and message in state.get("StatusMessage", "") and (
                    weight is None or abs(summary["CurrentWeight"] - weight) < 1e-6):
                return summary
        assert time.monotonic() < deadline, f"{name}: no {status} at {weight}: {summary}"
        time.sleep(0.1)


def stream_lines(server, endpoint: str) -> dict[str, list[str]]:
    logs = server.client("logs")
    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    return {stream["logStreamName"]: [event["message"] for event in logs.get_log_events(
        logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True)["events"]]
        for stream in logs.describe_log_streams(logGroupName=group)["logStreams"]}


def share_of(answers: list, factor: float) -> float:
    return sum(1 for answer in answers if answer == factor) / len(answers)


def config(sagemaker, name: str, model: str, count: int = 1) -> str:
    sagemaker.create_endpoint_config(EndpointConfigName=name,
                                     ProductionVariants=[variant("AllTraffic", model, 1.0, count)])
    return name


def error_of(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def test_canary_shifts_ten_percent_then_all_and_stops_the_old_fleet(env):
    server, clock, sagemaker = env
    name = "gr-canary"
    create_endpoint(sagemaker, name, [variant("AllTraffic", "gr-times-one", 1.0)])
    old_streams = set(stream_lines(server, name))
    new_config = config(sagemaker, "gr-canary-v2", "gr-times-two")
    deployment = {"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 600,
                                        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}},
        "TerminationWaitInSeconds": 300, "MaximumExecutionTimeoutInSeconds": 3600}}
    caller = Caller(server, name)
    try:
        before = caller.take(caller.mark())
        assert share_of(before, 1.0) == 1.0
        sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=new_config,
                                  DeploymentConfig=deployment)
        canary = wait_pending(sagemaker, name, "Baking", 0.1)
        assert canary["DesiredWeight"] == 1.0
        described = sagemaker.describe_endpoint(EndpointName=name)
        assert described["EndpointStatus"] == "Updating"
        assert described["PendingDeploymentSummary"]["EndpointConfigName"] == new_config
        # While a deployment runs, weights and capacities cannot change.
        code, message = error_of(sagemaker.update_endpoint_weights_and_capacities,
                                 EndpointName=name, DesiredWeightsAndCapacities=[
                                     {"VariantName": "AllTraffic", "DesiredInstanceCount": 2}])
        assert code == "ValidationException" and "in-progress" in message
        during = caller.take(caller.mark())
        assert abs(share_of(during, 2.0) - 0.10) <= 0.05, Counter(during)
        assert share_of(during, 1.0) + share_of(during, 2.0) == 1.0, Counter(during)

        clock.advance(601)  # the canary's bake is over: all traffic to the new fleet
        wait_pending(sagemaker, name, "Baking", 1.0, "WaitIntervalInSeconds")
        after = caller.take(caller.mark())
        assert share_of(after, 2.0) == 1.0, Counter(after)

        clock.advance(601)  # the final bake is over: TerminationWaitInSeconds begins
        wait_pending(sagemaker, name, "Baking", 1.0, "TerminationWaitInSeconds")
        lines = stream_lines(server, name)
        assert not any(STOPPING in lines[stream] for stream in old_streams), \
            "the old fleet stopped before TerminationWaitInSeconds"
        clock.advance(301)
        described = wait_in_service(sagemaker, name, timeout=120)
    finally:
        caller.stop()
    assert described["EndpointConfigName"] == new_config
    assert "PendingDeploymentSummary" not in described and "FailureReason" not in described
    assert described["LastDeploymentConfig"] == deployment
    lines = stream_lines(server, name)
    assert all(STOPPING in lines[stream] for stream in old_streams)
    assert not [answer for answer in caller.answers if isinstance(answer, str)], \
        Counter(caller.answers)
    delete_endpoint(sagemaker, name)


def test_linear_quarter_steps_shift_in_order(env):
    server, clock, sagemaker = env
    name = "gr-linear"
    create_endpoint(sagemaker, name, [variant("AllTraffic", "gr-times-one", 1.0)])
    new_config = config(sagemaker, "gr-linear-v2", "gr-times-two")
    caller = Caller(server, name)
    try:
        sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=new_config,
                                  DeploymentConfig={"BlueGreenUpdatePolicy": {
                                      "TrafficRoutingConfiguration": {
                                          "Type": "LINEAR", "WaitIntervalInSeconds": 300,
                                          "LinearStepSize": {"Type": "CAPACITY_PERCENT",
                                                             "Value": 25}}}})
        seen = []
        for step in (0.25, 0.5, 0.75, 1.0):
            wait_pending(sagemaker, name, "Baking", step, "WaitIntervalInSeconds")
            seen.append(step)
            answers = caller.take(caller.mark(), 200)
            assert abs(share_of(answers, 2.0) - step) <= 0.15, (step, Counter(answers))
            clock.advance(301)
        assert seen == [0.25, 0.5, 0.75, 1.0]
        described = wait_in_service(sagemaker, name, timeout=120)
    finally:
        caller.stop()
    assert described["EndpointConfigName"] == new_config
    assert not [answer for answer in caller.answers if isinstance(answer, str)]
    delete_endpoint(sagemaker, name)


def test_alarm_on_5xx_rolls_a_broken_version_back(env):
    server, clock, sagemaker = env
    name = "gr-rollback"
    # The runtime stamps its metrics with real time: the server's clock goes back to it
    # (other tests of the module moved it ahead).
    clock.set_to(time.time())
    cloudwatch = server.client("cloudwatch")
    alarm = "gr-rollback-5xx"
    cloudwatch.put_metric_alarm(
        AlarmName=alarm, Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors",
        Dimensions=[{"Name": "EndpointName", "Value": name},
                    {"Name": "VariantName", "Value": "AllTraffic"}],
        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=0,
        ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching")
    create_endpoint(sagemaker, name, [variant("AllTraffic", "gr-times-one", 1.0)])
    broken = config(sagemaker, "gr-rollback-broken", "gr-broken")
    subscriber = Subscriber().__enter__()
    _deployment_events_to(server, subscriber, name)
    sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=broken, DeploymentConfig={
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
            "Type": "CANARY", "WaitIntervalInSeconds": 3600,
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50}}},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm}]}})
    wait_pending(sagemaker, name, "Baking", 0.5)
    caller = Caller(server, name)
    try:
        caller.take(caller.mark(), 100)
        assert "ModelError" in caller.answers  # the broken version fails some calls
        # The runtime writes the per-minute metrics every 10 s (stamped with real time);
        # once the errors are there, put the server's clock just after their minute so the
        # alarm evaluates it now rather than at the next real minute.
        minute = _first_error_minute(cloudwatch, name)
        clock.set_to(minute + 61)
        # Generous: should the evaluator have passed that minute already (a slow flush),
        # the errors of the minutes since trip the alarm at the next minute boundary.
        deadline = time.monotonic() + 180
        while sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating":
            assert time.monotonic() < deadline, "no rollback"
            time.sleep(0.1)
        described = wait_in_service(sagemaker, name, timeout=120)
        assert described["EndpointConfigName"] == name
        assert alarm in described["FailureReason"], described["FailureReason"]
        assert "PendingDeploymentSummary" not in described
        assert cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0][
            "StateValue"] == "ALARM"
        answers = caller.take(caller.mark(), 100)
        assert share_of(answers, 1.0) == 1.0, Counter(answers)

        def deployment_events() -> list[dict]:
            return [json.loads(item.json["Message"])
                    for item in subscriber.of_type("Notification")]

        deadline = time.monotonic() + 60
        while not any(event["detail"]["EndpointStatus"] == "IN_SERVICE"
                      for event in deployment_events()):
            assert time.monotonic() < deadline, deployment_events()
            time.sleep(0.1)
        events = deployment_events()
        assert {event["detail-type"] for event in events} == {
            "SageMaker Endpoint Deployment State Change"}
        assert all(event["resources"] == [described["EndpointArn"]] for event in events)
        baking = [event for event in events
                  if event["detail"]["EndpointStatus"] == "UPDATING"
                  and event["detail"]["PendingDeploymentSummary"]["ProductionVariants"][0][
                      "VariantStatus"][0]["Status"] == "Baking"]
        assert baking and baking[0]["detail"]["PendingDeploymentSummary"][
            "EndpointConfigName"] == broken
        assert any(event["detail"]["EndpointStatus"] == "ROLLING_BACK" for event in events)
    finally:
        caller.stop()
        subscriber.__exit__(None, None, None)
    delete_endpoint(sagemaker, name)


def _deployment_events_to(server, subscriber: Subscriber, endpoint: str) -> None:
    sns = server.client("sns")
    topic = sns.create_topic(Name=f"{endpoint}-deployments")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=subscriber.url)
    (confirmation,) = subscriber.wait_for("SubscriptionConfirmation")
    sns.confirm_subscription(TopicArn=topic, Token=confirmation.json["Token"])
    events = server.client("events")
    events.put_rule(Name=f"{endpoint}-deployments", EventPattern=json.dumps({
        "source": ["aws.sagemaker"], "detail-type": ["SageMaker Endpoint Deployment State Change"],
        "detail": {"EndpointName": [endpoint]}}))
    events.put_targets(Rule=f"{endpoint}-deployments", Targets=[{"Id": "topic", "Arn": topic}])


def _first_error_minute(cloudwatch, endpoint: str, timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while True:
        now = time.time()
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors",
            Dimensions=[{"Name": "EndpointName", "Value": endpoint},
                        {"Name": "VariantName", "Value": "AllTraffic"}],
            StartTime=now - 600, EndTime=now + 120, Period=60, Statistics=["Sum"])["Datapoints"]
        erroring = [point["Timestamp"].timestamp() for point in points if point["Sum"] > 0]
        if erroring:
            return max(erroring)
        assert time.monotonic() < deadline, "no Invocation5XXErrors datapoint"
        time.sleep(0.5)


def test_rolling_update_keeps_capacity_and_answers_every_call(env):
    server, clock, sagemaker = env
    name = "gr-rolling"
    create_endpoint(sagemaker, name, [variant("AllTraffic", "gr-times-one", 1.0, count=3)])
    new_config = config(sagemaker, "gr-rolling-v2", "gr-times-two", count=3)
    caller = Caller(server, name)
    capacities = []
    try:
        sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=new_config,
                                  DeploymentConfig={"RollingUpdatePolicy": {
                                      "MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
                                      "WaitIntervalInSeconds": 0,
                                      "MaximumExecutionTimeoutInSeconds": 600}})
        deadline = time.monotonic() + 600
        while True:
            described = sagemaker.describe_endpoint(EndpointName=name)
            if described["EndpointStatus"] != "Updating":
                break
            old = sum(item.get("CurrentInstanceCount", 0)
                      for item in described["ProductionVariants"])
            new = sum(item.get("CurrentInstanceCount", 0) for item in
                      (described.get("PendingDeploymentSummary") or {}).get(
                          "ProductionVariants", []))
            capacities.append((old, new))
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert described["EndpointStatus"] == "InService", described.get("FailureReason")
        final = caller.take(caller.mark(), 100)
    finally:
        caller.stop()
    assert described["EndpointConfigName"] == new_config
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 3
    assert capacities and min(old + new for old, new in capacities) >= 2, capacities
    assert {new for _, new in capacities} >= {1, 2}, capacities  # one batch at a time
    assert share_of(final, 2.0) == 1.0
    assert not [answer for answer in caller.answers if isinstance(answer, str)], \
        Counter(caller.answers)
    assert 1.0 in caller.answers and 2.0 in caller.answers
    delete_endpoint(sagemaker, name)


def test_bad_deployment_configs_get_aws_errors(env):
    server, _, sagemaker = env
    name = "gr-bad"
    cloudwatch = server.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName="gr-bad-latency", Namespace="AWS/SageMaker", MetricName="ModelLatency",
        Dimensions=[{"Name": "EndpointName", "Value": name},
                    {"Name": "VariantName", "Value": "AllTraffic"}],
        Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=1e6,
        ComparisonOperator="GreaterThanThreshold")
    kept = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
        "Type": "CANARY", "WaitIntervalInSeconds": 60,
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}}},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "gr-bad-latency"}]}}
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        variant("AllTraffic", "gr-times-one", 1.0)])
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name,
                              DeploymentConfig=kept)
    assert wait_in_service(sagemaker, name)["LastDeploymentConfig"] == kept
    target = config(sagemaker, "gr-bad-v2", "gr-times-two")
    # RetainDeploymentConfig reuses the endpoint's last config, checked again: its alarm
    # is gone now.
    cloudwatch.delete_alarms(AlarmNames=["gr-bad-latency"])
    code, message = error_of(sagemaker.update_endpoint, EndpointName=name,
                             EndpointConfigName=target, RetainDeploymentConfig=True)
    assert code == "ValidationException" and "gr-bad-latency" in message, message

    def routing(kind: str, wait: int = 60, **sizes) -> dict:
        return {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
            "Type": kind, "WaitIntervalInSeconds": wait, **sizes}}}

    percent = lambda value: {"Type": "CAPACITY_PERCENT", "Value": value}  # noqa: E731
    cases = [
        (routing("CANARY", CanarySize=percent(60)), "50%"),
        (routing("CANARY", CanarySize={"Type": "INSTANCE_COUNT", "Value": 1}), "50%"),
        (routing("CANARY"), "CanarySize"),
        (routing("LINEAR", LinearStepSize=percent(5)), "10-50%"),
        (routing("LINEAR", LinearStepSize=percent(60)), "10-50%"),
        (routing("ALL_AT_ONCE", CanarySize=percent(10)), "CanarySize"),
        ({"BlueGreenUpdatePolicy": {**routing("CANARY", 300, CanarySize=percent(10))[
            "BlueGreenUpdatePolicy"], "TerminationWaitInSeconds": 100,
            "MaximumExecutionTimeoutInSeconds": 700}}, "MaximumExecutionTimeoutInSeconds"),
        ({**routing("ALL_AT_ONCE"), "RollingUpdatePolicy": {
            "MaximumBatchSize": percent(10), "WaitIntervalInSeconds": 0}}, "not both"),
        ({"RollingUpdatePolicy": {"MaximumBatchSize": percent(60), "WaitIntervalInSeconds": 0}},
         "5-50%"),
        ({**routing("ALL_AT_ONCE"), "AutoRollbackConfiguration": {
            "Alarms": [{"AlarmName": "gr-no-such-alarm"}]}}, "gr-no-such-alarm"),
    ]
    for deployment, words in cases:
        code, message = error_of(sagemaker.update_endpoint, EndpointName=name,
                                 EndpointConfigName=target, DeploymentConfig=deployment)
        assert code == "ValidationException" and words in message, (deployment, message)
    # Bounds of the botocore model, checked by the server too (the client's checks off).
    unchecked = server.client("sagemaker", parameter_validation=False)
    for deployment in (routing("ALL_AT_ONCE", wait=3601),
                       {"BlueGreenUpdatePolicy": {**routing("ALL_AT_ONCE")["BlueGreenUpdatePolicy"],
                                                  "MaximumExecutionTimeoutInSeconds": 599}},
                       routing("CANARY", CanarySize=percent(0))):
        code, _ = error_of(unchecked.update_endpoint, EndpointName=name,
                           EndpointConfigName=target, DeploymentConfig=deployment)
        assert code == "ValidationException", deployment
    code, message = error_of(sagemaker.create_endpoint, EndpointName="gr-bad-create",
                             EndpointConfigName=target, DeploymentConfig={
                                 **routing("ALL_AT_ONCE"), "AutoRollbackConfiguration": {
                                     "Alarms": [{"AlarmName": "gr-missing"}]}})
    assert code == "ValidationException" and "gr-missing" in message
    described = sagemaker.describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == name
    delete_endpoint(sagemaker, name)

