"""The demo's safe rollouts: deployment guardrails on the ticket classifier's endpoint.

Version 2 (the same classifier, as a new model) rolls out with ``UpdateEndpoint`` and a
blue/green ``CANARY`` policy -- 10 % of the traffic for a short bake, then all of it for
another -- while an alarm on the new variant's ``Invocation5XXErrors`` watches. Version 3
is deliberately broken (its entry point raises on every request); it rolls out the same
way and its alarm sends all traffic back to version 2 by itself. A client keeps classifying
tickets throughout, and each rollout prints its timeline: the deployment's phases as
DescribeEndpoint showed them and the share of the calls each version answered.

SageMaker publishes endpoint metrics per minute, stamped with the minute's start; the
alarms here use a 10-second period over six periods (one breaching datapoint is enough), so
the current minute's errors are evaluated within seconds of being written rather than when
the minute ends.
"""

from __future__ import annotations

import io
import tarfile
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .demo import Steps

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:latest"
# Version 3: answers every request with an error (HTTP 500), as a model that lost a file.
BROKEN_ENTRY_POINT = '''
def model_fn(model_dir):
    return None


def input_fn(body, content_type):
    return body


def predict_fn(data, model):
    raise RuntimeError("version 3 lost its vocabulary and cannot classify anything")
'''


def guarded_rollouts(steps: "Steps", session: Any, bucket: str, endpoint: str,
                     model_name: str, texts: list[str]) -> None:
    """Roll version 2 out behind a canary, then watch broken version 3 roll back."""
    client = session.sagemaker_client
    container = client.describe_model(ModelName=model_name)["PrimaryContainer"]
    good = _model(client, f"{model_name}-v2", {key: value for key, value in container.items()
                                               if key in ("Image", "ModelDataUrl",
                                                          "Environment")})
    broken = _model(client, f"{model_name}-v3", _broken_container(session, bucket))
    cloudwatch = session.boto_session.client("cloudwatch")
    steps.run("roll out version 2 behind a 10% canary",
              lambda: _rollout(session, cloudwatch, endpoint, good, "v2", texts), str)
    steps.run("roll out broken version 3 (alarm rolls it back)",
              lambda: _rollout(session, cloudwatch, endpoint, broken, "v3", texts), str)


def _model(client: Any, name: str, container: dict[str, Any]) -> str:
    import sagemaker

    client.create_model(ModelName=name, PrimaryContainer=container,
                        ExecutionRoleArn=sagemaker.get_execution_role())
    return name


def _broken_container(session: Any, bucket: str) -> dict[str, Any]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        source = BROKEN_ENTRY_POINT.encode()
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(source)
        archive.addfile(info, io.BytesIO(source))
    key = "demo/models/broken-v3/model.tar.gz"
    session.boto_session.client("s3").put_object(Bucket=bucket, Key=key,
                                                 Body=buffer.getvalue())
    return {"Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://{bucket}/{key}",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py",
                            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}}


def _rollout(session: Any, cloudwatch: Any, endpoint: str, model: str, version: str,
             texts: list[str]) -> str:
    client = session.sagemaker_client
    config = f"{endpoint}-{version}"
    client.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[{
        "VariantName": version, "ModelName": model, "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}])
    alarm = f"{endpoint}-{version}-5xx"
    cloudwatch.put_metric_alarm(
        AlarmName=alarm, Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors",
        Dimensions=[{"Name": "EndpointName", "Value": endpoint},
                    {"Name": "VariantName", "Value": version}],
        Statistic="Sum", Period=10, EvaluationPeriods=6, DatapointsToAlarm=1, Threshold=0,
        ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching")
    traffic = _Traffic(session, endpoint, texts)
    started = traffic.started
    try:
        client.update_endpoint(EndpointName=endpoint, EndpointConfigName=config,
                               DeploymentConfig={
                                   "BlueGreenUpdatePolicy": {
                                       "TrafficRoutingConfiguration": {
                                           "Type": "CANARY",
                                           "CanarySize": {"Type": "CAPACITY_PERCENT",
                                                          "Value": 10},
                                           # Long enough for the alarm to see version 3.
                                           "WaitIntervalInSeconds": 2 if version == "v2" else 90},
                                       "TerminationWaitInSeconds": 0,
                                       "MaximumExecutionTimeoutInSeconds": 600},
                                   "AutoRollbackConfiguration": {"Alarms": [
                                       {"AlarmName": alarm}]}})
        phases = _follow(client, endpoint, started)
    finally:
        traffic.stop()
        cloudwatch.delete_alarms(AlarmNames=[alarm])
    _print_timeline(phases, traffic.calls)
    described = client.describe_endpoint(EndpointName=endpoint)
    serving = described["ProductionVariants"][0]["VariantName"]
    outcome = f"{described['EndpointStatus']}, {serving} serves"
    if described.get("FailureReason"):
        outcome += f" ({alarm} rolled {version} back)"
    return outcome


def _follow(client: Any, endpoint: str, started: float) -> list[tuple[float, str]]:
    """(seconds since the update, phase) each time DescribeEndpoint shows a new phase; a
    deployment step's time is its VariantStatus StartTime (when the server took it)."""
    phases: list[tuple[float, str]] = []
    while True:
        described = client.describe_endpoint(EndpointName=endpoint)
        status = described["EndpointStatus"]
        pending = (described.get("PendingDeploymentSummary") or {}).get("ProductionVariants")
        moment = time.time()
        if pending:
            state = pending[0]["VariantStatus"][0]
            label = f"{status}: {pending[0]['VariantName']} {state['Status']}, " \
                    f"{pending[0].get('CurrentWeight', 0):.0%} of traffic"
            if state.get("StartTime"):
                moment = min(moment, state["StartTime"].timestamp())
        else:
            label = status
        if not phases or phases[-1][1] != label:
            phases.append((max(0.0, moment - started), label))
        if status in ("InService", "Failed", "UpdateRollbackFailed"):
            return phases
        time.sleep(0.1)


class _Traffic:
    """Classifies tickets in a loop; ``calls`` holds (time, answering variant or error)."""

    def __init__(self, session: Any, endpoint: str, texts: list[str]) -> None:
        import json

        self._runtime = session.sagemaker_runtime_client
        self._endpoint = endpoint
        self._bodies = [json.dumps({"instances": [text]}) for text in texts]
        self.started = time.time()
        self.calls: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from botocore.exceptions import ClientError

        index = 0
        while not self._stop.is_set():
            index += 1
            try:
                answer = self._runtime.invoke_endpoint(
                    EndpointName=self._endpoint, ContentType="application/json",
                    Body=self._bodies[index % len(self._bodies)])
                answer["Body"].read()
                outcome = answer["InvokedProductionVariant"]
            except ClientError as error:
                outcome = f"error ({error.response['Error']['Code']})"
            self.calls.append((time.time() - self.started, outcome))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _print_timeline(phases: list[tuple[float, str]], calls: list[tuple[float, str]]) -> None:
    """One line per phase: when it began, what it was, who answered the calls made in it."""
    bounds = [moment for moment, _ in phases[1:]] + [float("inf")]
    for (begin, label), end in zip(phases, bounds):
        answered = Counter(outcome for moment, outcome in calls if begin <= moment < end)
        total = sum(answered.values())
        shares = ", ".join(f"{name} {count / total:.0%}"
                           for name, count in sorted(answered.items())) if total else "-"
        print(f"      {begin:6.1f}s  {label:<52} {total:5d} calls: {shares}")
