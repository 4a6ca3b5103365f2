"""The retraining loop of issue 9, with the client code a team runs against AWS, unchanged.

A drift alarm on a custom metric goes to ALARM; an EventBridge rule matching AWS's "CloudWatch
Alarm State Change" event starts a Python Lambda with a constant input; the Lambda starts the
retraining pipeline with its parameters and publishes to an SNS topic, whose message reaches a
local HTTP subscriber and the email outbox.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from server_process import ServerProcess

ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"
ALARM = "ticket-classifier-prod-data-drift-feature-baseline"

HANDLER = '''
import json
import boto3


def handler(event, context):
    sagemaker = boto3.client("sagemaker")
    execution = sagemaker.start_pipeline_execution(
        PipelineName=event["pipeline"],
        PipelineParameters=[{"Name": "RetrainReason", "Value": event["reason"]}],
    )
    boto3.client("sns").publish(
        TopicArn=event["topic"], Subject="Retraining started",
        Message=json.dumps({"reason": event["reason"],
                            "execution": execution["PipelineExecutionArn"]}),
    )
    return {"execution": execution["PipelineExecutionArn"]}
'''

# The retraining pipeline: its parameter carries the Lambda's reason; a callback step keeps
# the execution visibly running, as a long training step would.
PIPELINE = {
    "Version": "2020-12-01",
    "Parameters": [{"Name": "RetrainReason", "Type": "String", "DefaultValue": "schedule"}],
    "Steps": [{"Name": "Retrain", "Type": "Callback",
               "Arguments": {"reason": {"Get": "Parameters.RetrainReason"}},
               "SqsQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/retrain",
               "OutputParameters": []}],
}


class Subscriber(BaseHTTPRequestHandler):
    """An HTTP endpoint subscribed to the topic: confirms, then keeps what it is sent."""

    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("Type") == "SubscriptionConfirmation":
            requests.get(body["SubscribeURL"], timeout=10)
        else:
            type(self).received.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def automation_server(tmp_path: Path):
    clock_file = tmp_path / "clock-offset"
    server = ServerProcess.start(tmp_path / "data", MODELYARD_CLOCK_OFFSET_FILE=str(clock_file))
    server.clock_file = clock_file
    yield server
    server.stop()


def move_clock(server: ServerProcess, seconds: float) -> None:
    current = float(server.clock_file.read_text()) if server.clock_file.exists() else 0.0
    temporary = server.clock_file.with_suffix(".tmp")
    temporary.write_text(str(current + seconds))
    os.replace(temporary, server.clock_file)


def server_now(server: ServerProcess) -> float:
    offset = float(server.clock_file.read_text()) if server.clock_file.exists() else 0.0
    return time.time() + offset


def function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("retrain.py", HANDLER)
    return buffer.getvalue()


def outbox(server: ServerProcess) -> list[dict]:
    """The email outbox, as `modelyard outbox --json` shows it to a user."""
    listing = subprocess.run(
        [sys.executable, "-m", "modelyard", "outbox", "--json", "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, check=True, env={**os.environ, **server.extra_env})
    return [json.loads(line) for line in listing.stdout.splitlines() if line.strip()]


def wait_until(check, timeout: float = 180, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_drift_alarm_starts_retraining_and_notifies(automation_server):
    server = automation_server
    sagemaker, sns = server.client("sagemaker"), server.client("sns")
    events, lambdas = server.client("events"), server.client("lambda")
    cloudwatch = server.client("cloudwatch")

    pipeline = "ticket-classifier-retrain"
    sagemaker.create_pipeline(PipelineName=pipeline, RoleArn=ROLE,
                              PipelineDefinition=json.dumps(PIPELINE))

    http = ThreadingHTTPServer(("127.0.0.1", 0), Subscriber)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    Subscriber.received = []
    try:
        topic = sns.create_topic(Name="ticket-classifier-retraining")["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="http",
                      Endpoint=f"http://127.0.0.1:{http.server_port}/notify")
        sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="ml-team@example.com")
        # The confirmation request waits in the outbox; the team confirms with its token.
        confirmation = wait_until(lambda: next(
            (m for m in outbox(server) if m["Type"] == "SubscriptionConfirmation"), None),
            what="the email confirmation request")
        token = re.search(r"Token[= ]([0-9a-f]+)", confirmation["Body"]).group(1)
        sns.confirm_subscription(TopicArn=topic, Token=token)

        function = lambdas.create_function(
            FunctionName="start-retraining", Runtime="python3.11", Role=ROLE,
            Handler="retrain.handler", Code={"ZipFile": function_zip()}, Timeout=60,
        )["FunctionArn"]
        events.put_rule(Name="retrain-on-drift", EventPattern=json.dumps({
            "source": ["aws.cloudwatch"],
            "detail-type": ["CloudWatch Alarm State Change"],
            "detail": {"alarmName": [{"prefix": "ticket-classifier-prod-data-drift"}],
                       "state": {"value": ["ALARM"]}},
        }))
        constant = {"pipeline": pipeline, "topic": topic, "reason": "data-drift"}
        result = events.put_targets(Rule="retrain-on-drift", Targets=[
            {"Id": "retrain", "Arn": function, "Input": json.dumps(constant)}])
        assert result["FailedEntryCount"] == 0

        cloudwatch.put_metric_alarm(
            AlarmName=ALARM, Namespace="TicketClassifier", MetricName="FeatureDrift",
            Dimensions=[{"Name": "Endpoint", "Value": "ticket-classifier-prod"}],
            Statistic="Maximum", Period=60, EvaluationPeriods=1, Threshold=0.2,
            ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching",
            AlarmActions=[topic],
        )
        # The drift measured in this minute is past the threshold...
        cloudwatch.put_metric_data(Namespace="TicketClassifier", MetricData=[{
            "MetricName": "FeatureDrift", "Value": 0.35, "Timestamp": server_now(server),
            "Dimensions": [{"Name": "Endpoint", "Value": "ticket-classifier-prod"}]}])
        assert not sagemaker.list_pipeline_executions(
            PipelineName=pipeline)["PipelineExecutionSummaries"]
        # ...and once the minute is over, the alarm evaluates it.
        move_clock(server, 90)

        alarm = wait_until(lambda: next(
            (a for a in cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"]
             if a["StateValue"] == "ALARM"), None), what="the alarm to fire")
        assert "0.35" in alarm["StateReason"]

        executions = wait_until(lambda: sagemaker.list_pipeline_executions(
            PipelineName=pipeline)["PipelineExecutionSummaries"], what="the pipeline to start")
        assert len(executions) == 1
        parameters = sagemaker.list_pipeline_parameters_for_execution(
            PipelineExecutionArn=executions[0]["PipelineExecutionArn"])["PipelineParameters"]
        assert {"Name": "RetrainReason", "Value": "data-drift"} in parameters

        # The HTTP subscriber gets the Lambda's message and the alarm's own notification.
        messages = wait_until(lambda: len(Subscriber.received) >= 2 and Subscriber.received,
                              what="both notifications over HTTP")
        by_subject = {message.get("Subject"): message for message in messages}
        lambda_message = json.loads(by_subject["Retraining started"]["Message"])
        assert lambda_message == {"reason": "data-drift",
                                  "execution": executions[0]["PipelineExecutionArn"]}
        alarm_message = next(json.loads(m["Message"]) for m in messages
                             if m.get("Subject", "").startswith("ALARM"))
        assert alarm_message["AlarmName"] == ALARM
        assert alarm_message["NewStateValue"] == "ALARM"
        emails = wait_until(lambda: [m for m in outbox(server)
                                     if m.get("Subject") == "Retraining started"],
                            what="the email in the outbox")
        assert emails[0]["Endpoint"] == "ml-team@example.com"
        assert "data-drift" in emails[0]["Body"]
    finally:
        http.shutdown()
