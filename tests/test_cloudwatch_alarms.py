"""CloudWatch alarms against a real server whose clock the tests move period by period.

The server runs with MODELYARD_CLOCK_OFFSET_FILE; each test takes a fresh minute
boundary B ahead of the server's time, puts metric data with explicit timestamps in the
periods after B, and jumps the clock to a few seconds past the period boundary it wants
evaluated. Nothing sleeps for minutes: the evaluator looks at the clock every 0.25 s and
the tests poll DescribeAlarms with a generous real timeout.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from alarm_helpers import (
    NAMESPACE, ServerClock, alarm, put, simple_alarm, start_server, state_updates, wait_state,
)


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


def test_threshold_crossing_goes_to_alarm_and_back_to_ok(cw, clock, metric):
    base = clock.fresh_boundary()
    name = f"crossing-{metric}"
    simple_alarm(cw, name, metric, AlarmDescription="too high")
    created = alarm(cw, name)
    assert created["StateValue"] == "INSUFFICIENT_DATA"
    assert created["StateReason"] == "Unchecked: Initial alarm creation"

    put(cw, metric, base + 10, 42.0)
    clock.goto(base + 62)
    raised = wait_state(cw, name, "ALARM")
    assert raised["StateReason"].startswith("Threshold Crossed: 1 datapoint [42.0 (")
    assert "was greater than the threshold (10.0)" in raised["StateReason"]
    data = json.loads(raised["StateReasonData"])
    assert data["version"] == "1.0" and data["statistic"] == "Maximum"
    assert data["period"] == 60 and data["threshold"] == 10.0
    assert data["recentDatapoints"] == [42.0]
    assert data["evaluatedDatapoints"][0]["value"] == 42.0
    assert data["evaluatedDatapoints"][0]["timestamp"].endswith(":00.000+0000")
    assert {"queryDate", "startDate"} <= set(data)

    put(cw, metric, base + 70, 3.0)
    clock.goto(base + 122)
    lowered = wait_state(cw, name, "OK")
    assert "was not greater than the threshold (10.0)" in lowered["StateReason"]
    updates = state_updates(cw, name)
    assert [(u["oldState"]["stateValue"], u["newState"]["stateValue"]) for u in updates] == [
        ("INSUFFICIENT_DATA", "ALARM"), ("ALARM", "OK")]


def test_m_out_of_n_needs_m_breaching_datapoints(cw, clock, metric):
    base = clock.fresh_boundary()
    name = f"m-of-n-{metric}"
    for offset, value in ((10, 20.0), (70, 5.0), (130, 20.0)):
        put(cw, metric, base + offset, value)
    simple_alarm(cw, name, metric, EvaluationPeriods=3, DatapointsToAlarm=2)
    clock.goto(base + 62)  # [20]: one breaching point, too recent to decide
    wait_state(cw, name, "INSUFFICIENT_DATA")
    clock.goto(base + 122)  # [20, 5]: a non-breaching point and not 2 breaching -> OK
    wait_state(cw, name, "OK")
    clock.goto(base + 182)  # [20, 5, 20]: 2 of 3 breaching
    raised = wait_state(cw, name, "ALARM")
    assert raised["StateReason"].startswith("Threshold Crossed: 2 out of the last 3 datapoints")
    assert "(minimum 2 datapoints for OK -> ALARM transition)" in raised["StateReason"]
    assert raised["DatapointsToAlarm"] == 2


def test_treat_missing_data_modes(cw, clock, metric):
    base = clock.fresh_boundary()
    # Names sort so the `ignore` alarm is evaluated first in each pass of the evaluator.
    modes = ["ignore", "breaching", "missing", "notBreaching"]
    names = {mode: f"missing-{metric}-{index}-{mode}" for index, mode in enumerate(modes)}
    put(cw, metric, base + 10, 50.0)
    for mode, name in names.items():
        simple_alarm(cw, name, metric, TreatMissingData=mode)
    clock.goto(base + 62)
    for name in names.values():
        wait_state(cw, name, "ALARM")
    # Three empty periods later the evaluation range holds no data at all.
    clock.goto(base + 242)
    wait_state(cw, names["missing"], "INSUFFICIENT_DATA")
    wait_state(cw, names["notBreaching"], "OK")
    assert alarm(cw, names["breaching"])["StateValue"] == "ALARM"
    assert alarm(cw, names["ignore"])["StateValue"] == "ALARM"
    assert len(state_updates(cw, names["ignore"])) == 1
    reason = alarm(cw, names["notBreaching"])["StateReason"]
    assert "missing datapoint was treated as [NonBreaching]" in reason


def test_percentile_alarm_and_low_sample_count(cw, clock, metric):
    base = clock.fresh_boundary()
    evaluated, ignored = f"p90-{metric}", f"p99-ignore-{metric}"
    put(cw, metric, base + 10, values=[float(v) for v in range(1, 101)])
    common = dict(Namespace=NAMESPACE, MetricName=metric, Period=60, EvaluationPeriods=1,
                  Threshold=80.0, ComparisonOperator="GreaterThanOrEqualToThreshold")
    cw.put_metric_alarm(AlarmName=evaluated, ExtendedStatistic="p90",
                        EvaluateLowSampleCountPercentile="evaluate", **common)
    # p99 wants 10 / (1 - 0.99) = 1000 samples; with 100 it is not evaluated at all.
    cw.put_metric_alarm(AlarmName=ignored, ExtendedStatistic="p99",
                        EvaluateLowSampleCountPercentile="ignore", **common)
    clock.goto(base + 62)
    raised = wait_state(cw, evaluated, "ALARM")
    value = json.loads(raised["StateReasonData"])["evaluatedDatapoints"][0]["value"]
    assert 85.0 <= value <= 95.0
    assert json.loads(raised["StateReasonData"])["extendedStatistic"] == "p90"
    time.sleep(1.0)  # both were due in the same pass
    assert alarm(cw, ignored)["StateValue"] == "INSUFFICIENT_DATA"


def test_metric_math_alarm(cw, clock, metric):
    base = clock.fresh_boundary()
    errors, requests = f"{metric}-errors", f"{metric}-requests"
    put(cw, errors, base + 10, 5.0)
    put(cw, requests, base + 10, 20.0)
    put(cw, errors, base + 70, 1.0)
    put(cw, requests, base + 70, 50.0)
    name = f"math-{metric}"

    def stat(metric_name: str) -> dict:
        return {"Metric": {"Namespace": NAMESPACE, "MetricName": metric_name},
                "Period": 60, "Stat": "Sum"}

    cw.put_metric_alarm(
        AlarmName=name, EvaluationPeriods=1, Threshold=10.0,
        ComparisonOperator="GreaterThanThreshold",
        Metrics=[{"Id": "e", "MetricStat": stat(errors), "ReturnData": False},
                 {"Id": "r", "MetricStat": stat(requests), "ReturnData": False},
                 {"Id": "rate", "Expression": "100 * e / r", "Label": "error rate"}])
    clock.goto(base + 62)
    raised = wait_state(cw, name, "ALARM")  # 25 % errors
    assert "[25.0 (" in raised["StateReason"]
    assert [query["Id"] for query in raised["Metrics"]] == ["e", "r", "rate"]
    clock.goto(base + 122)
    wait_state(cw, name, "OK")  # 2 %


def test_composite_alarm_follows_its_children(cw, clock, metric):
    clock.fresh_boundary()
    # Children with no data that ignore missing data keep whatever SetAlarmState gives them.
    first, second = f"child-a-{metric}", f"child-b-{metric}"
    for name in (first, second):
        simple_alarm(cw, name, metric, TreatMissingData="ignore")
    parent = f"parent-{metric}"
    cw.put_composite_alarm(AlarmName=parent,
                           AlarmRule=f'ALARM("{first}") AND (ALARM({second}) OR FALSE)')
    quorum = f"quorum-{metric}"
    cw.put_composite_alarm(AlarmName=quorum,
                           AlarmRule=f'AT_LEAST(50%, ALARM, ("{first}", {second}))')
    wait_state(cw, parent, "OK", "CompositeAlarm")
    wait_state(cw, quorum, "OK", "CompositeAlarm")
    cw.set_alarm_state(AlarmName=first, StateValue="ALARM", StateReason="test")
    wait_state(cw, quorum, "ALARM", "CompositeAlarm")  # one of two is 50 %
    assert alarm(cw, parent, "CompositeAlarm")["StateValue"] == "OK"
    cw.set_alarm_state(AlarmName=second, StateValue="ALARM", StateReason="test")
    raised = wait_state(cw, parent, "ALARM", "CompositeAlarm")
    triggering = json.loads(raised["StateReasonData"])["triggeringAlarms"]
    assert {item["arn"].rsplit(":", 1)[1] for item in triggering} == {first, second}
    cw.set_alarm_state(AlarmName=first, StateValue="OK", StateReason="test")
    wait_state(cw, parent, "OK", "CompositeAlarm")

    children = cw.describe_alarms(ChildrenOfAlarmName=parent)
    assert sorted(a["AlarmName"] for a in children["MetricAlarms"]) == [first, second]
    parents = cw.describe_alarms(ParentsOfAlarmName=first)
    assert [a["AlarmName"] for a in parents["CompositeAlarms"]] == [parent, quorum]
    cw.delete_alarms(AlarmNames=[quorum])
    with pytest.raises(ClientError) as used:
        cw.delete_alarms(AlarmNames=[first])
    assert used.value.response["Error"]["Code"] == "ValidationError"
    assert parent in used.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as missing_child:
        cw.put_composite_alarm(AlarmName=f"other-{metric}", AlarmRule='ALARM("no-such-alarm")')
    assert "[no-such-alarm]" in missing_child.value.response["Error"]["Message"]
    cw.delete_alarms(AlarmNames=[parent, first])
    assert cw.describe_alarms(AlarmNames=[first])["MetricAlarms"] == []


def test_set_alarm_state_lasts_until_the_next_evaluation(cw, clock, metric):
    base = clock.fresh_boundary()
    name = f"set-state-{metric}"
    put(cw, metric, base + 10, 1.0)
    simple_alarm(cw, name, metric)
    clock.goto(base + 62)
    wait_state(cw, name, "OK")
    cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="testing the pager",
                       StateReasonData='{"source": "test"}')
    forced = alarm(cw, name)
    assert (forced["StateValue"], forced["StateReason"]) == ("ALARM", "testing the pager")
    assert json.loads(forced["StateReasonData"]) == {"source": "test"}
    put(cw, metric, base + 70, 2.0)
    clock.goto(base + 122)
    wait_state(cw, name, "OK")
    assert [u["newState"]["stateValue"] for u in state_updates(cw, name)] == [
        "OK", "ALARM", "OK"]


def test_describe_filters_history_pages_and_tags(cw, clock, metric):
    clock.fresh_boundary()
    names = [f"list-{metric}-{index}" for index in range(3)]
    for name in names:
        simple_alarm(cw, name, metric, TreatMissingData="ignore",
                     Dimensions=[{"Name": "Host", "Value": "a"}],
                     Tags=[{"Key": "team", "Value": "ml"}])
    cw.set_alarm_state(AlarmName=names[1], StateValue="ALARM", StateReason="x")
    page = cw.describe_alarms(AlarmNamePrefix=f"list-{metric}", MaxRecords=2)
    assert [a["AlarmName"] for a in page["MetricAlarms"]] == names[:2]
    rest = cw.describe_alarms(AlarmNamePrefix=f"list-{metric}", NextToken=page["NextToken"])
    assert [a["AlarmName"] for a in rest["MetricAlarms"]] == names[2:]
    assert "NextToken" not in rest
    in_alarm = cw.describe_alarms(AlarmNamePrefix=f"list-{metric}", StateValue="ALARM")
    assert [a["AlarmName"] for a in in_alarm["MetricAlarms"]] == [names[1]]
    for_metric = cw.describe_alarms_for_metric(Namespace=NAMESPACE, MetricName=metric,
                                               Dimensions=[{"Name": "Host", "Value": "a"}])
    assert sorted(a["AlarmName"] for a in for_metric["MetricAlarms"]) == names
    assert cw.describe_alarms_for_metric(Namespace=NAMESPACE, MetricName=metric,
                                         Dimensions=[])["MetricAlarms"] == []

    history = cw.describe_alarm_history(AlarmName=names[1], MaxRecords=1)
    assert history["AlarmHistoryItems"][0]["HistoryItemType"] == "StateUpdate"
    older = cw.describe_alarm_history(AlarmName=names[1], MaxRecords=1,
                                      NextToken=history["NextToken"])
    assert older["AlarmHistoryItems"][0]["HistorySummary"] == f'Alarm "{names[1]}" created'
    with pytest.raises(ClientError) as bad_token:
        cw.describe_alarm_history(AlarmName=names[1], NextToken="garbage")
    assert bad_token.value.response["Error"]["Code"] == "InvalidNextToken"

    arn = alarm(cw, names[0])["AlarmArn"]
    cw.tag_resource(ResourceARN=arn, Tags=[{"Key": "env", "Value": "prod"}])
    cw.untag_resource(ResourceARN=arn, TagKeys=["team"])
    assert cw.list_tags_for_resource(ResourceARN=arn)["Tags"] == [
        {"Key": "env", "Value": "prod"}]

    cw.delete_alarms(AlarmNames=names + ["never-existed"])
    assert cw.describe_alarms(AlarmNamePrefix=f"list-{metric}")["MetricAlarms"] == []
    deleted = cw.describe_alarm_history(AlarmName=names[0], HistoryItemType="ConfigurationUpdate")
    assert deleted["AlarmHistoryItems"][0]["HistorySummary"] == f'Alarm "{names[0]}" deleted'


@pytest.mark.parametrize("change, code, words", [
    ({"Period": 45}, "ValidationError", "10, 30 or a multiple of 60"),
    ({"Statistic": None}, "MissingParameter", "Statistic"),
    ({"ExtendedStatistic": "p99"}, "InvalidParameterCombination", "not both"),
    ({"DatapointsToAlarm": 3}, "ValidationError", "must not exceed EvaluationPeriods"),
    ({"TreatMissingData": "sometimes"}, "ValidationError", "TreatMissingData"),
    ({"ComparisonOperator": "GreaterThanUpperThreshold"}, "ValidationError", "Anomaly"),
    ({"AlarmActions": ["arn:aws:automate:us-east-1:ec2:stop"]}, "ValidationError",
     "SNS topic ARNs"),
    ({"Metrics": [{"Id": "a", "Expression": "1"}]}, "InvalidParameterCombination",
     "Metrics cannot be combined"),
    ({"EvaluateLowSampleCountPercentile": "ignore"}, "InvalidParameterCombination",
     "percentile"),
])
def test_bad_metric_alarms_are_refused(cw, change, code, words):
    request = dict(AlarmName="bad-alarm", Namespace=NAMESPACE, MetricName="m",
                   Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=1.0,
                   ComparisonOperator="GreaterThanThreshold")
    request.update(change)
    request = {key: value for key, value in request.items() if value is not None}
    with pytest.raises(ClientError) as refused:
        cw.put_metric_alarm(**request)
    assert refused.value.response["Error"]["Code"] == code
    assert words in refused.value.response["Error"]["Message"]
    assert cw.describe_alarms(AlarmNames=["bad-alarm"])["MetricAlarms"] == []


def test_bad_rules_math_and_states_are_refused(cw):
    for rule, words in (('ALARM("x") AND', "ends where an expression is expected"),
                        ("ALARM(x) XOR OK(y)", "unexpected 'XOR'"),
                        ('(ALARM("x")', "to close a parenthesis")):
        with pytest.raises(ClientError) as refused:
            cw.put_composite_alarm(AlarmName="bad-composite", AlarmRule=rule)
        assert refused.value.response["Error"]["Code"] == "ValidationError"
        assert words in refused.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as two_returning:
        cw.put_metric_alarm(
            AlarmName="bad-math", EvaluationPeriods=1, Threshold=1.0,
            ComparisonOperator="GreaterThanThreshold",
            Metrics=[{"Id": "a", "MetricStat": {"Metric": {"Namespace": NAMESPACE,
                                                           "MetricName": "m"},
                                                "Period": 60, "Stat": "Sum"}},
                     {"Id": "b", "Expression": "a * 2"}])
    assert "Exactly one element of the metrics list should return data" in \
        two_returning.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as bad_expression:
        cw.put_metric_alarm(
            AlarmName="bad-math", EvaluationPeriods=1, Threshold=1.0,
            ComparisonOperator="GreaterThanThreshold",
            Metrics=[{"Id": "a", "MetricStat": {"Metric": {"Namespace": NAMESPACE,
                                                           "MetricName": "m"},
                                                "Period": 60, "Stat": "Sum"},
                      "ReturnData": False},
                     {"Id": "b", "Expression": "missing_id * 2"}])
    assert bad_expression.value.response["Error"]["Code"] == "ValidationError"
    assert "missing_id" in bad_expression.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as missing:
        cw.set_alarm_state(AlarmName="no-such-alarm", StateValue="OK", StateReason="x")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFound"
    simple_alarm(cw, "json-check", "m")
    with pytest.raises(ClientError) as not_json:
        cw.set_alarm_state(AlarmName="json-check", StateValue="OK", StateReason="x",
                           StateReasonData="{not json")
    assert not_json.value.response["Error"]["Code"] == "InvalidFormat"
    cw.delete_alarms(AlarmNames=["json-check"])


def actions_run(cw, name: str) -> list[str]:
    items = cw.describe_alarm_history(AlarmName=name, HistoryItemType="Action",
                                      ScanBy="TimestampAscending")["AlarmHistoryItems"]
    return [item["HistorySummary"] for item in items]


def test_actions_suppressor_holds_back_a_composite_alarms_actions(alarm_server, cw, clock, metric):
    """ActionsSuppressor: a composite alarm's actions wait ActionsSuppressorWaitPeriod for
    the suppressor, are suppressed while it is in ALARM, wait the extension period after it
    leaves ALARM, and then run (recorded as a state update to the same state)."""
    server = alarm_server[0]
    topic = server.client("sns").create_topic(Name=f"suppressed-{metric}")["TopicArn"]
    child, suppressor, parent = f"child-{metric}", f"maintenance-{metric}", f"parent-{metric}"
    for name in (child, suppressor):
        simple_alarm(cw, name, metric, TreatMissingData="ignore")
    cw.set_alarm_state(AlarmName=child, StateValue="OK", StateReason="test")
    cw.set_alarm_state(AlarmName=suppressor, StateValue="OK", StateReason="test")
    for bad, words in (({"ActionsSuppressor": suppressor, "ActionsSuppressorWaitPeriod": 60},
                        "ActionsSuppressorExtensionPeriod must be set"),
                       ({"ActionsSuppressor": "no-such-alarm", "ActionsSuppressorWaitPeriod": 60,
                         "ActionsSuppressorExtensionPeriod": 60}, "'no-such-alarm' of composite"),
                       ({"ActionsSuppressorWaitPeriod": 60}, "can only be set with")):
        with pytest.raises(ClientError) as refused:
            cw.put_composite_alarm(AlarmName=parent, AlarmRule=f"ALARM({child})", **bad)
        assert refused.value.response["Error"]["Code"] == "ValidationError"
        assert words in refused.value.response["Error"]["Message"]
    assert cw.describe_alarms(AlarmNames=[parent], AlarmTypes=["CompositeAlarm"])["CompositeAlarms"] == []

    start = clock.fresh_boundary()
    cw.put_composite_alarm(AlarmName=parent, AlarmRule=f"ALARM({child})", AlarmActions=[topic],
                           ActionsSuppressor=suppressor, ActionsSuppressorWaitPeriod=120,
                           ActionsSuppressorExtensionPeriod=180)
    wait_state(cw, parent, "OK", "CompositeAlarm")

    # 1. No suppressor ALARM within the wait period: the actions run when it ends.
    cw.set_alarm_state(AlarmName=child, StateValue="ALARM", StateReason="test")
    raised = wait_state(cw, parent, "ALARM", "CompositeAlarm")
    assert (raised["ActionsSuppressedBy"], raised["ActionsSuppressedReason"]) == (
        "WaitPeriod", "Actions suppressed by WaitPeriod")
    assert "SuppressionEnds" not in raised
    clock.goto(start + 100)
    time.sleep(1.0)  # four evaluator polls
    assert actions_run(cw, parent) == []
    clock.goto(start + 140)
    wait_until_true(lambda: actions_run(cw, parent) == [f"Successfully executed action {topic}"])
    released = alarm(cw, parent, "CompositeAlarm")
    assert released["StateValue"] == "ALARM" and "ActionsSuppressedBy" not in released
    last = state_updates(cw, parent)[-1]
    assert (last["oldState"]["stateValue"], last["newState"]["stateValue"]) == ("ALARM", "ALARM")

    # 2. The suppressor goes into ALARM during the wait: the actions are suppressed...
    cw.set_alarm_state(AlarmName=child, StateValue="OK", StateReason="test")
    wait_state(cw, parent, "OK", "CompositeAlarm")
    cw.set_alarm_state(AlarmName=child, StateValue="ALARM", StateReason="test")
    assert wait_state(cw, parent, "ALARM", "CompositeAlarm")["ActionsSuppressedBy"] == "WaitPeriod"
    cw.set_alarm_state(AlarmName=suppressor, StateValue="ALARM", StateReason="maintenance")
    wait_until_true(lambda: alarm(cw, parent, "CompositeAlarm").get("ActionsSuppressedBy") == "Alarm")
    clock.goto(start + 400)
    time.sleep(1.0)
    assert len(actions_run(cw, parent)) == 1
    # ...and after it leaves ALARM they wait the extension period, then run.
    cw.set_alarm_state(AlarmName=suppressor, StateValue="OK", StateReason="done")
    wait_until_true(lambda: alarm(cw, parent, "CompositeAlarm").get("ActionsSuppressedBy")
                    == "ExtensionPeriod")
    clock.goto(start + 520)
    time.sleep(1.0)
    assert len(actions_run(cw, parent)) == 1
    clock.goto(start + 600)
    wait_until_true(lambda: len(actions_run(cw, parent)) == 2)
    assert "ActionsSuppressedBy" not in alarm(cw, parent, "CompositeAlarm")
    cw.delete_alarms(AlarmNames=[parent, child, suppressor])


def wait_until_true(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
