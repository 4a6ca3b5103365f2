"""What alarm transitions set off: SNS and Lambda actions (only while enabled), the
"CloudWatch Alarm State Change" event through an EventBridge rule, and durability across a
restart. Same clock-moving server as test_cloudwatch_alarms.py.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from alarm_helpers import (
    NAMESPACE, WAIT_SECONDS, ServerClock, alarm, put, simple_alarm, start_server,
    state_updates, wait_state,
)
from server_process import ServerProcess


@pytest.fixture(scope="module")
def alarm_server(tmp_path_factory):
    server, clock = start_server(tmp_path_factory.mktemp("alarms"))
    yield server, clock
    server.stop()


@pytest.fixture()
def cw(alarm_server):
    return alarm_server[0].client("cloudwatch")


@pytest.fixture()
def clock(alarm_server) -> ServerClock:
    return alarm_server[1]


@pytest.fixture()
def metric() -> str:
    return f"m-{uuid.uuid4().hex[:8]}"


def test_actions_run_only_while_enabled(cw, clock, metric, alarm_server):
    clock.fresh_boundary()
    sns = alarm_server[0].client("sns")
    topic = sns.create_topic(Name=f"alarms-{metric}")["TopicArn"]
    name = f"actions-{metric}"
    simple_alarm(cw, name, metric, TreatMissingData="ignore", AlarmActions=[topic])

    def actions() -> list[dict]:
        return cw.describe_alarm_history(AlarmName=name,
                                         HistoryItemType="Action")["AlarmHistoryItems"]

    cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="enabled")
    deadline = time.monotonic() + WAIT_SECONDS
    while not actions() and time.monotonic() < deadline:
        time.sleep(0.1)
    done = actions()
    assert [item["HistorySummary"] for item in done] == [f"Successfully executed action {topic}"]

    cw.disable_alarm_actions(AlarmNames=[name])
    assert alarm(cw, name)["ActionsEnabled"] is False
    cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="disabled")
    cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="disabled")
    time.sleep(1.5)
    assert len(actions()) == 1
    cw.enable_alarm_actions(AlarmNames=[name])
    assert alarm(cw, name)["ActionsEnabled"] is True


def test_state_and_history_survive_a_restart(tmp_path):
    server, clock = start_server(tmp_path / "restart")
    metric = f"restart-{uuid.uuid4().hex[:8]}"
    name = f"durable-{metric}"
    try:
        cw = server.client("cloudwatch")
        base = clock.fresh_boundary()
        put(cw, metric, base + 10, 99.0)
        put(cw, metric, base + 70, 99.0)
        simple_alarm(cw, name, metric)
        # A composite alarm whose actions wait for its suppressor when the server stops.
        topic = server.client("sns").create_topic(Name=f"held-{metric}")["TopicArn"]
        suppressor, composite = f"suppressor-{metric}", f"composite-{metric}"
        simple_alarm(cw, suppressor, f"other-{metric}", TreatMissingData="ignore")
        cw.set_alarm_state(AlarmName=suppressor, StateValue="OK", StateReason="test")
        clock.goto(base + 62)
        raised = wait_state(cw, name, "ALARM")
        cw.put_composite_alarm(AlarmName=composite, AlarmRule=f"ALARM({name})",
                               AlarmActions=[topic], ActionsSuppressor=suppressor,
                               ActionsSuppressorWaitPeriod=100, ActionsSuppressorExtensionPeriod=60)
        held = wait_state(cw, composite, "ALARM", "CompositeAlarm")
        assert held["ActionsSuppressedBy"] == "WaitPeriod"
        server.stop()
        server = ServerProcess.start(server.data_dir, port=server.port, **server.extra_env)
        cw = server.client("cloudwatch")
        again = alarm(cw, name)
        assert again["StateValue"] == "ALARM"
        assert again["StateReason"] == raised["StateReason"]
        assert again["StateUpdatedTimestamp"] == raised["StateUpdatedTimestamp"]
        clock.goto(base + 122)  # still breaching: evaluated again, no new transition
        time.sleep(1.5)
        assert [u["newState"]["stateValue"] for u in state_updates(cw, name)] == ["ALARM"]
        # The restarted server ends the composite's wait period and runs its actions.
        clock.goto(base + 180)
        deadline = time.monotonic() + WAIT_SECONDS

        def actions_run() -> list[str]:
            return [item["HistorySummary"] for item in cw.describe_alarm_history(
                AlarmName=composite, HistoryItemType="Action")["AlarmHistoryItems"]]

        while not actions_run():
            assert time.monotonic() < deadline, "the wait period did not end after the restart"
            time.sleep(0.1)
        assert actions_run() == [f"Successfully executed action {topic}"]
        assert "ActionsSuppressedBy" not in alarm(cw, composite, "CompositeAlarm")
    finally:
        server.stop()


def test_transition_notifies_sns_and_emits_the_state_change_event(cw, clock, metric,
                                                                  alarm_server):
    from sns_subscriber import Subscriber

    server = alarm_server[0]
    sns, events = server.client("sns"), server.client("events")
    name = f"ticket-classifier-prod-data-drift-{metric}"
    with Subscriber() as endpoint:
        topic = sns.create_topic(Name=f"drift-{metric}")["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=endpoint.url)
        (confirmation,) = endpoint.wait_for("SubscriptionConfirmation")
        sns.confirm_subscription(TopicArn=topic, Token=confirmation.json["Token"])
        rule = f"drift-rule-{metric}"
        events.put_rule(Name=rule, EventPattern=json.dumps({
            "source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
            "detail": {"alarmName": [{"prefix": "ticket-classifier-prod-data-drift"}],
                       "state": {"value": ["ALARM"]}}}))
        events.put_targets(Rule=rule, Targets=[{"Id": "topic", "Arn": topic}])

        base = clock.fresh_boundary()
        put(cw, metric, base + 10, 0.9)
        simple_alarm(cw, name, metric, Threshold=0.5, AlarmDescription="drift score",
                     AlarmActions=[topic])
        clock.goto(base + 62)
        wait_state(cw, name, "ALARM")
        notifications = endpoint.wait_for("Notification", count=2)
        by_subject = {item.json.get("Subject"): json.loads(item.json["Message"])
                      for item in notifications}
        notification = by_subject[f'ALARM: "{name}" in US East (N. Virginia)']
        assert notification["AlarmName"] == name
        assert notification["AlarmDescription"] == "drift score"
        assert (notification["OldStateValue"], notification["NewStateValue"]) == (
            "INSUFFICIENT_DATA", "ALARM")
        assert notification["Region"] == "US East (N. Virginia)"
        assert notification["Trigger"]["MetricName"] == metric
        assert notification["Trigger"]["Statistic"] == "MAXIMUM"
        assert notification["Trigger"]["Threshold"] == 0.5
        event = next(body for subject, body in by_subject.items() if subject !=
                     f'ALARM: "{name}" in US East (N. Virginia)')
        assert event["source"] == "aws.cloudwatch"
        assert event["detail-type"] == "CloudWatch Alarm State Change"
        assert event["resources"] == [alarm(cw, name)["AlarmArn"]]
        detail = event["detail"]
        assert detail["alarmName"] == name
        assert detail["state"]["value"] == "ALARM"
        assert detail["previousState"]["value"] == "INSUFFICIENT_DATA"
        assert json.loads(detail["state"]["reasonData"])["recentDatapoints"] == [0.9]
        assert detail["configuration"]["description"] == "drift score"
        assert detail["configuration"]["metrics"][0]["metricStat"]["metric"] == {
            "namespace": NAMESPACE, "name": metric, "dimensions": {}}

        # Back to OK: the OK event does not match the rule; no OK actions are set.
        put(cw, metric, base + 70, 0.1)
        clock.goto(base + 122)
        wait_state(cw, name, "OK")
        time.sleep(1.5)
        assert len([item for item in endpoint.received
                    if item.message_type == "Notification"]) == 2


def test_lambda_alarm_action_gets_aws_payload(cw, metric, alarm_server):
    from lambda_helpers import create_function

    server = alarm_server[0]
    lam, logs = server.client("lambda"), server.client("logs")
    function = f"on-alarm-{metric}"
    arn = create_function(lam, function, """
        import json

        def handler(event, context):
            print("ALARM-EVENT " + json.dumps(event))
    """)["FunctionArn"]
    name = f"lambda-action-{metric}"
    simple_alarm(cw, name, metric, TreatMissingData="ignore", AlarmActions=[arn])
    cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="page the lambda")
    deadline = time.monotonic() + 120  # a cold Lambda worker on a loaded machine
    payload = None
    while payload is None and time.monotonic() < deadline:
        try:
            found = logs.filter_log_events(logGroupName=f"/aws/lambda/{function}")["events"]
        except ClientError:
            found = []
        for item in found:
            if "ALARM-EVENT " in item["message"]:
                payload = json.loads(item["message"].split("ALARM-EVENT ", 1)[1])
        time.sleep(0.2)
    assert payload is not None, "the alarm's Lambda action never ran"
    assert payload["source"] == "aws.cloudwatch"
    assert payload["alarmArn"] == alarm(cw, name)["AlarmArn"]
    assert payload["region"] == "us-east-1"
    assert payload["alarmData"]["alarmName"] == name
    assert payload["alarmData"]["state"]["value"] == "ALARM"
    assert payload["alarmData"]["state"]["reason"] == "page the lambda"
    assert payload["alarmData"]["previousState"]["value"] == "INSUFFICIENT_DATA"
    actions = cw.describe_alarm_history(AlarmName=name, HistoryItemType="Action")
    assert actions["AlarmHistoryItems"][0]["HistorySummary"] == \
        f"Successfully executed action {arn}"
