"""EventBridge on the default bus: rules, targets, PutEvents, schedules, SageMaker's events.

Targets are observed where a user would see them: a pipeline target's executions (with
the parameters the target gave), an SNS target's messages at a local HTTP subscriber.
Schedules run on a server whose clock the test moves (MODELYARD_CLOCK_OFFSET_FILE).
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from jobs_helpers import SKLEARN_IMAGE
from server_process import ServerProcess
from sns_subscriber import Subscriber

ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"


def error_of(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def wait_until(condition, timeout: float = 60, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def tiny_pipeline(sagemaker, name: str) -> str:
    """A one-step pipeline (a Fail step showing its Msg parameter); returns its ARN."""
    definition = {"Version": "2020-12-01", "Metadata": {},
                  "Parameters": [{"Name": "Msg", "Type": "String", "DefaultValue": "none"}],
                  "Steps": [{"Name": "Stop", "Type": "Fail",
                             "Arguments": {"ErrorMessage": {"Get": "Parameters.Msg"}}}]}
    return sagemaker.create_pipeline(PipelineName=name, RoleArn=ROLE,
                                     PipelineDefinition=json.dumps(definition))["PipelineArn"]


def executions(sagemaker, name: str) -> list[dict]:
    return sagemaker.list_pipeline_executions(PipelineName=name, MaxResults=100)[
        "PipelineExecutionSummaries"]


def parameters_of(sagemaker, execution_arn: str) -> dict[str, str]:
    listed = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=execution_arn)
    return {item["Name"]: item["Value"] for item in listed["PipelineParameters"]}


@pytest.fixture()
def events(server):
    return server.client("events")


# --- rules and targets ---------------------------------------------------------------------


def test_rule_lifecycle(events, unique_name):
    pattern = json.dumps({"source": ["my.app"]})
    arn = events.put_rule(Name=unique_name, EventPattern=pattern, Description="first",
                          Tags=[{"Key": "team", "Value": "ml"}])["RuleArn"]
    assert arn.startswith("arn:aws:events:us-east-1:") and arn.endswith(f":rule/{unique_name}")
    described = events.describe_rule(Name=unique_name)
    assert (described["State"], described["EventPattern"], described["Description"],
            described["EventBusName"]) == ("ENABLED", pattern, "first", "default")
    # PutRule again replaces the rule; arguments left out are not kept.
    events.put_rule(Name=unique_name, ScheduleExpression="rate(5 minutes)", State="DISABLED")
    described = events.describe_rule(Name=unique_name)
    assert described["State"] == "DISABLED" and "EventPattern" not in described
    assert described["ScheduleExpression"] == "rate(5 minutes)" and "Description" not in described
    events.enable_rule(Name=unique_name)
    assert events.describe_rule(Name=unique_name)["State"] == "ENABLED"
    events.disable_rule(Name=unique_name)
    assert events.describe_rule(Name=unique_name)["State"] == "DISABLED"
    assert events.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]
    events.tag_resource(ResourceARN=arn, Tags=[{"Key": "stage", "Value": "prod"}])
    events.untag_resource(ResourceARN=arn, TagKeys=["team"])
    assert events.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "stage", "Value": "prod"}]

    topic = f"arn:aws:sns:us-east-1:123456789012:{unique_name}"
    events.put_targets(Rule=unique_name, Targets=[{"Id": "notify", "Arn": topic}])
    assert events.list_rule_names_by_target(TargetArn=topic)["RuleNames"] == [unique_name]
    code, message = error_of(events.delete_rule, Name=unique_name)
    assert code == "ValidationException" and "has targets" in message
    events.delete_rule(Name=unique_name, Force=True)
    code, _ = error_of(events.describe_rule, Name=unique_name)
    assert code == "ResourceNotFoundException"


def test_list_rules_by_prefix_with_pages(events, unique_name):
    for index in range(5):
        events.put_rule(Name=f"{unique_name}-{index}", EventPattern='{"source": ["x"]}')
    events.put_rule(Name=f"other-{unique_name}", EventPattern='{"source": ["x"]}')
    names, token = [], None
    while True:
        page = events.list_rules(NamePrefix=unique_name, Limit=2,
                                 **({"NextToken": token} if token else {}))
        assert len(page["Rules"]) <= 2
        names += [rule["Name"] for rule in page["Rules"]]
        token = page.get("NextToken")
        if not token:
            break
    assert names == [f"{unique_name}-{index}" for index in range(5)]


def test_put_targets_reports_each_refused_target(events, unique_name):
    events.put_rule(Name=unique_name, EventPattern='{"source": ["my.app"]}')
    topic = "arn:aws:sns:us-east-1:123456789012:alerts"
    result = events.put_targets(Rule=unique_name, Targets=[
        {"Id": "ok", "Arn": topic, "InputTransformer": {
            "InputPathsMap": {"state": "$.detail.state"}, "InputTemplate": '{"s": <state>}'}},
        {"Id": "queue", "Arn": "arn:aws:sqs:us-east-1:123456789012:q"},
        {"Id": "both", "Arn": topic, "Input": "{}", "InputPath": "$.detail"},
        {"Id": "notjson", "Arn": topic, "Input": "{not json"},
        {"Id": "badpath", "Arn": topic, "InputTransformer": {
            "InputPathsMap": {"x": "detail.state"}, "InputTemplate": "<x>"}},
    ])
    failed = {entry["TargetId"]: entry for entry in result["FailedEntries"]}
    assert result["FailedEntryCount"] == 4 and set(failed) == {"queue", "both", "notjson", "badpath"}
    assert "SageMaker pipelines" in failed["queue"]["ErrorMessage"]
    assert "only one of Input" in failed["both"]["ErrorMessage"]
    targets = events.list_targets_by_rule(Rule=unique_name)["Targets"]
    assert [target["Id"] for target in targets] == ["ok"]
    assert targets[0]["InputTransformer"]["InputPathsMap"] == {"state": "$.detail.state"}
    code, message = error_of(events.put_targets, Rule=unique_name, Targets=[
        {"Id": f"t{index}", "Arn": topic} for index in range(5)])
    assert code == "LimitExceededException" and "at most 5" in message
    events.remove_targets(Rule=unique_name, Ids=["ok", "never-added"])
    assert events.list_targets_by_rule(Rule=unique_name)["Targets"] == []
    events.delete_rule(Name=unique_name)


def test_bad_input_gets_eventbridge_errors(events, unique_name):
    code, message = error_of(events.put_rule, Name=unique_name,
                             EventPattern='{"detail": {"n": [{"numeric": [">", "x"]}]}}')
    assert code == "InvalidEventPatternException" and message.startswith("Event pattern is not valid.")
    for expression in ("cron(0 2 * * SUN *)", "cron(0 2 ? * SUN)", "rate(1 minutes)",
                       "rate(0 hours)", "cron(0 25 ? * * *)", "cron(0 2 ? * 1/2 *)"):
        code, message = error_of(events.put_rule, Name=unique_name, ScheduleExpression=expression)
        assert (code, message) == ("ValidationException",
                                   "Parameter ScheduleExpression is not valid."), expression
    code, message = error_of(events.put_rule, Name=unique_name)
    assert code == "ValidationException" and "EventPattern or ScheduleExpression" in message
    code, message = error_of(events.put_rule, Name=unique_name, EventPattern='{"source": ["a"]}',
                             EventBusName="custom-bus")
    assert code == "ResourceNotFoundException" and "only the default event bus" in message
    for call, kwargs in ((events.describe_rule, {"Name": "no-such-rule"}),
                         (events.enable_rule, {"Name": "no-such-rule"}),
                         (events.list_targets_by_rule, {"Rule": "no-such-rule"}),
                         (events.put_targets, {"Rule": "no-such-rule", "Targets": [
                             {"Id": "a", "Arn": "arn:aws:sns:us-east-1:123456789012:t"}]})):
        code, message = error_of(call, **kwargs)
        assert code == "ResourceNotFoundException" and "no-such-rule" in message
    assert events.describe_event_bus()["Name"] == "default"


def test_put_events_reports_each_refused_entry(events):
    result = events.put_events(Entries=[
        {"Source": "my.app", "DetailType": "ok", "Detail": '{"a": 1}'},
        {"Source": "aws.sagemaker", "DetailType": "forged", "Detail": "{}"},
        {"Source": "my.app", "DetailType": "bad", "Detail": "{nope"},
        {"Source": "my.app", "Detail": "{}"},
    ])
    assert result["FailedEntryCount"] == 3
    ok, forged, malformed, missing = result["Entries"]
    assert set(ok) == {"EventId"}
    assert forged["ErrorCode"] == "NotAuthorizedForSourceException"
    assert malformed["ErrorCode"] == "MalformedDetail"
    assert missing["ErrorCode"] == "InvalidArgument" and "DetailType" in missing["ErrorMessage"]
    code, message = error_of(events.put_events, Entries=[
        {"Source": "my.app", "DetailType": "big", "Detail": json.dumps({"x": "y" * 270_000})}])
    assert code == "ValidationException" and "over the limit" in message


# --- targets receive events ----------------------------------------------------------------


def test_put_events_starts_a_pipeline_target_with_its_parameters(server, events, unique_name):
    sagemaker = server.client("sagemaker")
    pipeline_arn = tiny_pipeline(sagemaker, unique_name)
    events.put_rule(Name=unique_name, EventPattern=json.dumps(
        {"source": ["com.example.tickets"], "detail": {"count": [{"numeric": [">=", 100]}]}}))
    result = events.put_targets(Rule=unique_name, Targets=[{
        "Id": "retrain", "Arn": pipeline_arn, "RoleArn": ROLE,
        "SageMakerPipelineParameters": {"PipelineParameterList": [
            {"Name": "Msg", "Value": "retrain-now"}]}}])
    assert result["FailedEntryCount"] == 0
    # Not matched: too few tickets. Matched: one start, with the target's parameters.
    events.put_events(Entries=[{"Source": "com.example.tickets", "DetailType": "batch",
                                "Detail": json.dumps({"count": 5})}])
    events.put_events(Entries=[{"Source": "com.example.tickets", "DetailType": "batch",
                                "Detail": json.dumps({"count": 250})}])
    (started,) = wait_until(lambda: executions(sagemaker, unique_name), message="a start")
    assert parameters_of(sagemaker, started["PipelineExecutionArn"]) == {"Msg": "retrain-now"}
    time.sleep(1.0)
    assert len(executions(sagemaker, unique_name)) == 1


def test_put_events_invokes_a_lambda_target_with_the_event(server, events, unique_name):
    from lambda_helpers import create_function

    s3 = server.client("s3")
    s3.create_bucket(Bucket=unique_name)
    function = create_function(server.client("lambda"), unique_name, f"""
        import json, boto3

        def handler(event, context):
            boto3.client("s3").put_object(Bucket="{unique_name}", Key="received.json",
                                          Body=json.dumps(event).encode())
    """)["FunctionArn"]
    events.put_rule(Name=unique_name, EventPattern='{"source": ["com.example.tickets"]}')
    events.put_targets(Rule=unique_name, Targets=[{"Id": "fn", "Arn": function}])
    event_id = events.put_events(Entries=[{
        "Source": "com.example.tickets", "DetailType": "Ticket Created",
        "Detail": json.dumps({"ticket": "T-9"})}])["Entries"][0]["EventId"]

    def received() -> dict | None:
        try:
            return json.loads(s3.get_object(Bucket=unique_name, Key="received.json")["Body"].read())
        except ClientError:
            return None

    event = wait_until(received, timeout=90, message="the function's invocation")
    assert event["id"] == event_id and event["detail"] == {"ticket": "T-9"}
    assert event["detail-type"] == "Ticket Created" and event["source"] == "com.example.tickets"


def _subscribed(server, topic_name: str, endpoint: Subscriber) -> str:
    sns = server.client("sns")
    topic = sns.create_topic(Name=topic_name)["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=endpoint.url)
    (confirmation,) = endpoint.wait_for("SubscriptionConfirmation")
    sns.confirm_subscription(TopicArn=topic, Token=confirmation.json["Token"])
    return topic


def test_put_events_reaches_an_sns_target_through_an_input_transformer(server, events,
                                                                       unique_name):
    with Subscriber() as endpoint:
        topic = _subscribed(server, unique_name, endpoint)
        events.put_rule(Name=unique_name, EventPattern=json.dumps(
            {"source": ["com.example.tickets"], "detail-type": ["Ticket Escalated"],
             "detail": {"priority": [{"anything-but": "low"}]}}))
        events.put_targets(Rule=unique_name, Targets=[
            {"Id": "transformed", "Arn": topic, "InputTransformer": {
                "InputPathsMap": {"ticket": "$.detail.ticket", "tags": "$.detail.tags",
                                  "absent": "$.detail.nope"},
                "InputTemplate": '{"ticket": <ticket>, "tags": <tags>, "missing": <absent>, '
                                 '"text": "ticket <ticket> by rule <aws.events.rule-name>", '
                                 '"rule": <aws.events.rule-arn>, "event": <aws.events.event>}'}},
            {"Id": "path", "Arn": topic, "InputPath": "$.detail"},
        ])
        events.put_events(Entries=[
            {"Source": "com.example.tickets", "DetailType": "Ticket Escalated",
             "Detail": json.dumps({"ticket": "T-1", "priority": "low", "tags": []})},
            {"Source": "com.example.tickets", "DetailType": "Ticket Escalated",
             "Detail": json.dumps({"ticket": "T-2", "priority": "high", "tags": ["gpu", "prod"]}),
             "Resources": ["arn:aws:example:ticket/T-2"]},
        ])
        notifications = endpoint.wait_for("Notification", count=2)
        messages = sorted((json.loads(item.json["Message"]) for item in notifications),
                          key=lambda message: "text" in message)
        assert messages[0] == {"ticket": "T-2", "priority": "high", "tags": ["gpu", "prod"]}
        transformed = messages[1]
        assert transformed["ticket"] == "T-2" and transformed["tags"] == ["gpu", "prod"]
        assert transformed["missing"] is None
        assert transformed["text"] == f"ticket T-2 by rule {unique_name}"
        assert transformed["rule"].endswith(f":rule/{unique_name}")
        assert transformed["event"]["resources"] == ["arn:aws:example:ticket/T-2"]
        assert "detail" not in transformed["event"]
        time.sleep(0.5)
        assert len(endpoint.of_type("Notification")) == 2  # the low-priority one matched nothing


def test_a_pipeline_execution_status_change_reaches_its_targets(server, events, unique_name):
    sagemaker = server.client("sagemaker")
    watched_arn = tiny_pipeline(sagemaker, f"{unique_name}-a")
    follower_arn = tiny_pipeline(sagemaker, f"{unique_name}-b")
    with Subscriber() as endpoint:
        topic = _subscribed(server, unique_name, endpoint)
        events.put_rule(Name=unique_name, EventPattern=json.dumps({
            "source": ["aws.sagemaker"],
            "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
            "detail": {"pipelineArn": [watched_arn], "currentPipelineExecutionStatus": ["Failed"]}}))
        events.put_targets(Rule=unique_name, Targets=[
            {"Id": "topic", "Arn": topic},
            {"Id": "follow", "Arn": follower_arn, "SageMakerPipelineParameters": {
                "PipelineParameterList": [{"Name": "Msg", "Value": "after-a"}]}}])
        events.put_rule(Name=f"{unique_name}-steps", EventPattern=json.dumps({
            "source": ["aws.sagemaker"],
            "detail-type": ["SageMaker Model Building Pipeline Execution Step Status Change"],
            "detail": {"pipelineArn": [watched_arn]}}))
        events.put_targets(Rule=f"{unique_name}-steps", Targets=[{"Id": "topic", "Arn": topic}])

        execution_arn = sagemaker.start_pipeline_execution(
            PipelineName=f"{unique_name}-a", ClientRequestToken="a" * 40)["PipelineExecutionArn"]
        (followed,) = wait_until(lambda: executions(sagemaker, f"{unique_name}-b"),
                                 message="the follower pipeline's start")
        assert parameters_of(sagemaker, followed["PipelineExecutionArn"]) == {"Msg": "after-a"}

        def delivered() -> list[dict]:
            return [json.loads(item.json["Message"]) for item in endpoint.of_type("Notification")]

        def by_type(kind: str) -> list[dict]:
            return [event for event in delivered() if event["detail-type"] == kind]

        status = "SageMaker Model Building Pipeline Execution Status Change"
        (changed,) = wait_until(lambda: by_type(status), message="the status event")
        assert changed["source"] == "aws.sagemaker" and changed["account"]
        assert changed["resources"] == [watched_arn, execution_arn]
        detail = changed["detail"]
        assert (detail["currentPipelineExecutionStatus"], detail["previousPipelineExecutionStatus"]) \
            == ("Failed", "Executing")
        assert detail["pipelineExecutionArn"] == execution_arn
        assert detail["pipelineArn"] == watched_arn
        assert detail["executionStartTime"].endswith("Z") and "executionEndTime" in detail
        steps = wait_until(lambda: [event for event in by_type(
            "SageMaker Model Building Pipeline Execution Step Status Change")
            if event["detail"].get("currentStepStatus") == "Failed"], message="the step event")
        assert steps[0]["detail"]["stepName"] == "Stop"
        assert steps[0]["detail"]["stepType"] == "Fail"
        assert steps[0]["detail"]["pipelineExecutionArn"] == execution_arn
    # The follower's own failure matched nothing (the rule names the watched pipeline).
    time.sleep(1.0)
    assert len(executions(sagemaker, f"{unique_name}-b")) == 1


def test_a_model_package_approval_emits_a_state_change(server, events, unique_name):
    sagemaker = server.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=unique_name)
    with Subscriber() as endpoint:
        topic = _subscribed(server, unique_name, endpoint)
        events.put_rule(Name=unique_name, EventPattern=json.dumps({
            "source": ["aws.sagemaker"], "detail-type": ["SageMaker Model Package State Change"],
            "detail": {"ModelPackageGroupName": [unique_name],
                       "ModelApprovalStatus": ["Approved"]}}))
        events.put_targets(Rule=unique_name, Targets=[{"Id": "topic", "Arn": topic}])
        package = sagemaker.create_model_package(
            ModelPackageGroupName=unique_name, ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1",
                                "ModelDataUrl": "s3://bucket/model.tar.gz"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"]})["ModelPackageArn"]
        time.sleep(0.5)
        assert endpoint.of_type("Notification") == []  # pending: the rule asks for Approved
        sagemaker.update_model_package(ModelPackageArn=package, ModelApprovalStatus="Approved")
        (notification,) = endpoint.wait_for("Notification")
        event = json.loads(notification.json["Message"])
        assert event["resources"] == [package]
        detail = event["detail"]
        assert (detail["ModelPackageArn"], detail["ModelPackageVersion"],
                detail["ModelApprovalStatus"]) == (package, 1, "Approved")
        assert detail["CreationTime"].endswith("Z")
        assert not any(key.startswith("_") for key in detail)


def test_a_failed_processing_job_emits_its_state_change(server, events, unique_name):
    sagemaker = server.client("sagemaker")
    server.client("s3").create_bucket(Bucket=unique_name)
    with Subscriber() as endpoint:
        topic = _subscribed(server, unique_name, endpoint)
        events.put_rule(Name=unique_name, EventPattern=json.dumps({
            "source": ["aws.sagemaker"], "detail-type": ["SageMaker Processing Job State Change"],
            "detail": {"ProcessingJobName": [unique_name],
                       "ProcessingJobStatus": ["Failed", "Completed", "Stopped"]}}))
        events.put_targets(Rule=unique_name, Targets=[{"Id": "topic", "Arn": topic}])
        arn = sagemaker.create_processing_job(
            ProcessingJobName=unique_name, RoleArn=ROLE,
            AppSpecification={"ImageUri": SKLEARN_IMAGE,
                              "ContainerEntrypoint": ["python3", "-c",
                                                      "raise ValueError('no tickets')"]},
            ProcessingResources={"ClusterConfig": {
                "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}},
        )["ProcessingJobArn"]
        (notification,) = endpoint.wait_for("Notification", timeout=120)
        event = json.loads(notification.json["Message"])
        assert event["resources"] == [arn] and event["source"] == "aws.sagemaker"
        detail = event["detail"]
        assert (detail["ProcessingJobName"], detail["ProcessingJobArn"],
                detail["ProcessingJobStatus"]) == (unique_name, arn, "Failed")
        assert "ValueError: no tickets" in detail["FailureReason"]
        assert isinstance(detail["CreationTime"], int) and detail["CreationTime"] > 1e12  # ms
        assert not any(key.startswith("_") for key in detail)


# --- schedules and restarts ----------------------------------------------------------------


def move_clock(path: Path, offset: float) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(repr(offset))
    os.replace(temporary, path)


def next_sunday_2am(after: datetime) -> datetime:
    day = after.replace(hour=2, minute=0, second=0, microsecond=0)
    day += timedelta(days=(6 - day.weekday()) % 7)
    return day if day > after else day + timedelta(days=7)


def test_rate_and_cron_rules_fire_when_the_clock_says_so(tmp_path):
    clock = tmp_path / "clock-offset"
    move_clock(clock, 0.0)
    server = ServerProcess.start(tmp_path / "data", MODELYARD_CLOCK_OFFSET_FILE=str(clock))
    try:
        sagemaker, events = server.client("sagemaker"), server.client("events")
        minutely, weekly = tiny_pipeline(sagemaker, "minutely"), tiny_pipeline(sagemaker, "weekly")
        # A rate counts from the rule's creation: every jump below lands half a period past
        # one of its firing times, so neither a slow PutRule nor a slow restart (a loaded
        # machine) brings the next firing into the window while we look.
        period = 600
        anchor = time.time()
        events.put_rule(Name="every-minute", ScheduleExpression="rate(10 minutes)")
        events.put_targets(Rule="every-minute", Targets=[{"Id": "p", "Arn": minutely}])
        events.put_rule(Name="sunday-retrain", ScheduleExpression="cron(0 2 ? * SUN *)")
        events.put_targets(Rule="sunday-retrain", Targets=[{"Id": "p", "Arn": weekly}])

        def counts() -> tuple[int, int]:
            return len(executions(sagemaker, "minutely")), len(executions(sagemaker, "weekly"))

        def settle(expected: tuple[int, int]) -> None:
            wait_until(lambda: counts() == expected, message=f"executions {expected}")
            time.sleep(1.5)  # a few scheduler checks: nothing more fires
            assert counts() == expected

        time.sleep(1.0)
        assert counts() == (0, 0)
        move_clock(clock, anchor + 1.5 * period - time.time())  # the rate rule fires
        settle((1, 0))
        # Jump to Sunday just after 02:00 (days later): the cron rule fires once, the rate
        # rule fires once, not once per missed period.
        sunday = next_sunday_2am(datetime.now(timezone.utc) + timedelta(minutes=30)).timestamp()
        target = anchor + period / 2 + period * ((sunday - anchor) // period + 1)  # 02:05-02:15
        move_clock(clock, target - time.time())
        settle((2, 1))
        (weekly_start,) = executions(sagemaker, "weekly")
        assert weekly_start["StartTime"].astimezone(timezone.utc).weekday() == 6
        # A restart keeps each rule's next firing time: nothing fires on start ...
        server.stop()
        server = ServerProcess.start(tmp_path / "data", port=server.port,
                                     MODELYARD_CLOCK_OFFSET_FILE=str(clock))
        sagemaker, events = server.client("sagemaker"), server.client("events")
        time.sleep(1.0)
        assert counts() == (2, 1)
        # ... and a week later each fires once more.
        move_clock(clock, target + 7 * 86400 - time.time())
        settle((3, 2))
        # A disabled rule does not fire.
        events.disable_rule(Name="every-minute")
        move_clock(clock, target + 7 * 86400 + period - time.time())
        time.sleep(1.5)
        assert counts() == (3, 2)
    finally:
        server.stop()


def test_start_pipeline_execution_honours_its_client_request_token(sagemaker_client, unique_name):
    tiny_pipeline(sagemaker_client, unique_name)
    token = "retry-" + "x" * 40
    first, again = (sagemaker_client.start_pipeline_execution(
        PipelineName=unique_name, ClientRequestToken=token)["PipelineExecutionArn"]
        for _ in range(2))
    assert first == again and len(executions(sagemaker_client, unique_name)) == 1


def test_a_pipeline_target_starts_once_when_the_server_is_killed(tmp_path):
    server = ServerProcess.start(tmp_path / "data")
    sagemaker, events = server.client("sagemaker"), server.client("events")
    target = tiny_pipeline(sagemaker, "durable")
    events.put_rule(Name="on-ticket", EventPattern='{"source": ["com.example.tickets"]}')
    events.put_targets(Rule="on-ticket", Targets=[{"Id": "p", "Arn": target}])
    sent = 0
    for batch in range(3):
        result = events.put_events(Entries=[
            {"Source": "com.example.tickets", "DetailType": "ticket",
             "Detail": json.dumps({"n": batch * 10 + index})} for index in range(10)])
        assert result["FailedEntryCount"] == 0
        sent += 10
    server.kill()  # deliveries promised, some not yet run (or cut off while running)
    restarted_at = datetime.now(timezone.utc)
    server = ServerProcess.start(tmp_path / "data", port=server.port)
    try:
        sagemaker = server.client("sagemaker")
        wait_until(lambda: len(executions(sagemaker, "durable")) >= sent, timeout=120,
                   message=f"{sent} pipeline starts")
        time.sleep(2.0)
        started = executions(sagemaker, "durable")
        assert len(started) == sent, f"{len(started)} starts for {sent} events"
        # Some of them were delivered by the restarted server: the kill came in between.
        assert any(item["StartTime"] >= restarted_at - timedelta(seconds=1) for item in started)
    finally:
        server.stop()
