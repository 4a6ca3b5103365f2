"""The console's Model Monitor and Alarms pages in a real browser (the system's Chromium
through Playwright, as tests/test_console.py drives it), on a server whose clock the test
moves: a monitoring schedule whose execution found violations, an hourly schedule stopped
and started from its page, an alarm driven to ALARM by its metric, and the endpoint page
that links them; plus the session and CSRF guards over plain HTTP."""

from __future__ import annotations

import json
import math
import re

import pytest
import requests

from alarm_helpers import NAMESPACE, put, start_server, wait_state
from monitor_helpers import (
    HOUR, ROLE, capture_endpoint, wait_executions, wait_status, write_capture,
)
from test_console import (  # noqa: F401 - fixtures
    SCRIPT, browser_page, check_no_session, csrf_of, screenshots, shot, signed_in,
)

BUCKET = "console-monitoring"
ENDPOINT = "console-watched"
IMAGE = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"
NOW_SCHEDULE, HOURLY_SCHEDULE = "drift-now", "hourly-watch"
LOUD, QUIET = "queue-too-deep", f"quiet {SCRIPT}"
# Captured traffic: model output 0.5 first, then amount and channel (SageMaker's order).
ROWS = [([1.0 + i % 7, "a" if i % 2 else "b"], 0.5) for i in range(40)]
# A baseline the traffic breaks twice: `score` should be integral, `channel` only "a".
CONSTRAINTS = {"version": 0.0, "features": [
    {"name": "score", "inferred_type": "Integral", "completeness": 1.0},
    {"name": "amount", "inferred_type": "Fractional", "completeness": 1.0},
    {"name": "channel", "inferred_type": "String", "completeness": 1.0,
     "string_constraints": {"domains": ["a"]}}]}
STATISTICS = {"version": 0.0, "dataset": {"item_count": 40}, "features": []}
EXPECTED = {("score", "data_type_check"), ("channel", "categorical_values_check")}
PAGES = ["/console/monitoring", f"/console/monitoring/{HOURLY_SCHEDULE}", "/console/alarms",
         f"/console/alarms/{LOUD}"]
ACTIONS = [f"/console/monitoring/{HOURLY_SCHEDULE}/stop",
           f"/console/monitoring/{HOURLY_SCHEDULE}/start"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    server, clock = start_server(tmp_path_factory.mktemp("console-monitoring"))
    yield server, clock
    server.stop()


@pytest.fixture(scope="module")
def server(env):
    """This module's server (with a movable clock) for test_console's browser fixture."""
    return env[0]


def _job_parts(prefix: str) -> dict:
    return {
        "input": {"EndpointInput": {"EndpointName": ENDPOINT,
                                    "LocalPath": "/opt/ml/processing/input/endpoint"}},
        "output": {"MonitoringOutputs": [{"S3Output": {
            "S3Uri": f"s3://{BUCKET}/{prefix}", "LocalPath": "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob"}}]},
        "resources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                        "VolumeSizeInGB": 20}},
        "baseline": {"ConstraintsResource": {"S3Uri": f"s3://{BUCKET}/baseline/constraints.json"},
                     "StatisticsResource": {"S3Uri": f"s3://{BUCKET}/baseline/statistics.json"}}}


@pytest.fixture(scope="module")
def world(env):
    """Two schedules (one ran and found violations), two alarms (one in ALARM)."""
    server, clock = env
    sagemaker, s3, cloudwatch = (server.client(s) for s in ("sagemaker", "s3", "cloudwatch"))
    s3.create_bucket(Bucket=BUCKET)
    destination = capture_endpoint(sagemaker, s3, BUCKET, ENDPOINT)
    s3.put_object(Bucket=BUCKET, Key="baseline/constraints.json",
                  Body=json.dumps(CONSTRAINTS).encode())
    s3.put_object(Bucket=BUCKET, Key="baseline/statistics.json",
                  Body=json.dumps(STATISTICS).encode())
    write_capture(s3, destination, ENDPOINT, math.floor(clock.now() / HOUR) * HOUR - 3 * HOUR,
                  ROWS)
    parts = _job_parts("now-reports")
    sagemaker.create_monitoring_schedule(
        MonitoringScheduleName=NOW_SCHEDULE,
        MonitoringScheduleConfig={
            "ScheduleConfig": {"ScheduleExpression": "NOW", "DataAnalysisStartTime": "-PT4H",
                               "DataAnalysisEndTime": "-PT2H"},
            "MonitoringJobDefinition": {
                "BaselineConfig": parts["baseline"], "MonitoringInputs": [parts["input"]],
                "MonitoringOutputConfig": parts["output"],
                "MonitoringResources": parts["resources"],
                "MonitoringAppSpecification": {"ImageUri": IMAGE},
                "Environment": {"publish_cloudwatch_metrics": "Disabled"}, "RoleArn": ROLE}})
    parts = _job_parts("hourly-reports")
    sagemaker.create_data_quality_job_definition(
        JobDefinitionName="dq-hourly-watch", DataQualityAppSpecification={"ImageUri": IMAGE},
        DataQualityBaselineConfig=parts["baseline"], DataQualityJobInput=parts["input"],
        DataQualityJobOutputConfig=parts["output"], JobResources=parts["resources"],
        RoleArn=ROLE)
    sagemaker.create_monitoring_schedule(
        MonitoringScheduleName=HOURLY_SCHEDULE,
        MonitoringScheduleConfig={"ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
                                  "MonitoringJobDefinitionName": "dq-hourly-watch",
                                  "MonitoringType": "DataQuality"})

    # Alarms while the monitoring job runs: three minutes of a queue depth on the endpoint.
    topic = server.client("sns").create_topic(Name="console-alarms")["TopicArn"]
    dimensions = [{"Name": "EndpointName", "Value": ENDPOINT}]
    base = clock.fresh_boundary()
    for minute, value in ((-2, 3.0), (-1, 6.0), (0, 42.0)):
        put(cloudwatch, "QueueDepth", base + minute * 60 + 10, value, dimensions=dimensions)
    cloudwatch.put_metric_alarm(
        AlarmName=LOUD, AlarmDescription=SCRIPT, Namespace=NAMESPACE, MetricName="QueueDepth",
        Dimensions=dimensions, Statistic="Maximum", Period=60, EvaluationPeriods=1,
        Threshold=10.0, ComparisonOperator="GreaterThanThreshold", AlarmActions=[topic],
        TreatMissingData="ignore")  # stays in ALARM while the minutes after pass
    cloudwatch.put_metric_alarm(
        AlarmName=QUIET, Namespace=NAMESPACE, MetricName="NeverSent", Statistic="Sum",
        Period=60, EvaluationPeriods=1, Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold")
    clock.goto(base + 62)
    wait_state(cloudwatch, LOUD, "ALARM")

    [execution] = wait_executions(sagemaker, NOW_SCHEDULE, 1)
    assert execution["MonitoringExecutionStatus"] == "CompletedWithViolations", execution
    wait_status(sagemaker, HOURLY_SCHEDULE, "Scheduled")
    return {"topic": topic, "job": execution["ProcessingJobArn"].rsplit("/", 1)[-1]}


def _schedule_status(server, name: str) -> str:
    return server.client("sagemaker").describe_monitoring_schedule(
        MonitoringScheduleName=name)["MonitoringScheduleStatus"]


def test_pages_need_a_session_and_actions_the_csrf_token(server, world):
    check_no_session(server, PAGES, ACTIONS)
    session = signed_in(server)
    page = session.get(f"{server.endpoint_url}/console/monitoring/{HOURLY_SCHEDULE}")
    assert page.status_code == 200 and "Stop schedule" in page.text
    for data in ({}, {"csrf": "forged"}):
        answer = session.post(f"{server.endpoint_url}{ACTIONS[0]}", data=data,
                              allow_redirects=False)
        assert answer.status_code == 403
    assert _schedule_status(server, HOURLY_SCHEDULE) == "Scheduled"
    # The quiet alarm's name holds HTML (and a "/"): its page shows it as text.
    alarms = session.get(f"{server.endpoint_url}/console/alarms").text
    assert SCRIPT not in alarms and "quiet &lt;script&gt;alert(1)&lt;/script&gt;" in alarms
    missing = session.get(f"{server.endpoint_url}/console/monitoring/ghost")
    assert missing.status_code == 404 and "ghost" in missing.text
    # With the token, the action runs the operation, whose error comes back to the page.
    answer = session.post(f"{server.endpoint_url}/console/monitoring/ghost/stop",
                          allow_redirects=False,
                          data={"csrf": csrf_of(page.text), "back": "/console/monitoring"})
    assert answer.status_code == 303
    assert "ResourceNotFound" in requests.utils.unquote(answer.headers["location"])


def test_monitoring_pages_show_violations_and_stop_start(server, world, browser_page,
                                                         screenshots):
    page, base = browser_page, server.endpoint_url
    page.goto(f"{base}/console/monitoring")
    rows = {row.locator("td").first.inner_text(): row.inner_text()
            for row in page.locator("#schedules tbody tr").all()}
    assert set(rows) == {NOW_SCHEDULE, HOURLY_SCHEDULE}
    assert "CompletedWithViolations" in rows[NOW_SCHEDULE] and "NOW" in rows[NOW_SCHEDULE]
    assert "Data quality" in rows[NOW_SCHEDULE] and ENDPOINT in rows[NOW_SCHEDULE]
    assert "cron(0 * ? * * *)" in rows[HOURLY_SCHEDULE] and "Scheduled" in rows[HOURLY_SCHEDULE]
    shot(page, screenshots, "monitoring-schedules")

    page.get_by_role("link", name=NOW_SCHEDULE, exact=True).click()
    page.wait_for_selector("#violations")
    found = {(cells[0], cells[1]) for cells in (
        [cell.inner_text() for cell in row.locator("td").all()]
        for row in page.locator("#violations tbody tr").all())}
    assert found == EXPECTED
    assert "Data type match requirement is not met" in page.inner_text("#violations")
    constraints = page.get_by_role("link", name=f"s3://{BUCKET}/baseline/constraints.json")
    assert constraints.get_attribute("href") == \
        f"/console/objects/{BUCKET}/object?key=baseline%2Fconstraints.json"
    assert page.get_by_role("link", name=f"s3://{BUCKET}/baseline/statistics.json").count() == 1
    executions = page.inner_text("#executions")
    assert "CompletedWithViolations" in executions and world["job"] in executions
    shot(page, screenshots, "monitoring-schedule")
    page.locator("#executions").get_by_role("link", name=world["job"]).click()
    page.wait_for_url(re.compile(f".*/console/jobs/processing/{world['job']}$"))

    # Stop and start the hourly schedule from its page: DescribeMonitoringSchedule follows.
    page.goto(f"{base}/console/monitoring/{HOURLY_SCHEDULE}")
    assert "none" not in page.inner_text("dl.facts")  # both baseline files are named
    page.get_by_role("button", name="Stop schedule").click()
    page.wait_for_selector(".notice.ok")
    assert _schedule_status(server, HOURLY_SCHEDULE) == "Stopped"
    assert page.locator("#schedule-live").get_attribute("data-status") == "Stopped"
    shot(page, screenshots, "monitoring-schedule-stopped")
    page.get_by_role("button", name="Start schedule").click()
    page.wait_for_selector(".notice.ok")
    assert _schedule_status(server, HOURLY_SCHEDULE) in ("Pending", "Scheduled")
    wait_status(server.client("sagemaker"), HOURLY_SCHEDULE, "Scheduled")


def test_alarm_pages_show_state_history_chart_and_the_endpoint_links(server, world,
                                                                     browser_page, screenshots):
    page, base = browser_page, server.endpoint_url
    page.goto(f"{base}/console/alarms")
    assert page.locator("#alarms tbody tr").count() == 2
    loud = page.locator("#alarms tbody tr", has_text=LOUD)
    assert loud.locator(".badge").inner_text() == "ALARM"
    assert "st-ALARM" in loud.locator(".badge").get_attribute("class")
    assert page.eval_on_selector("#alarms tbody tr .st-ALARM",
                                 "node => getComputedStyle(node).color") == "rgb(185, 28, 28)"
    assert "Maximum > 10 for 1 of 1 × 60 s" in loud.inner_text()
    assert NAMESPACE in loud.inner_text() and "QueueDepth" in loud.inner_text()
    shot(page, screenshots, "alarms")
    page.get_by_label("State").select_option("ALARM")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*state=ALARM"))
    assert [row.locator("td").first.inner_text()
            for row in page.locator("#alarms tbody tr").all()] == [LOUD]
    page.goto(f"{base}/console/alarms?state=INSUFFICIENT_DATA")
    assert [row.locator("td").first.inner_text()
            for row in page.locator("#alarms tbody tr").all()] == [QUIET]
    page.get_by_role("link", name=QUIET).click()  # a name with "/" and HTML opens too
    assert page.locator("main h1").inner_text() == QUIET

    page.goto(f"{base}/console/alarms")
    page.get_by_role("link", name=LOUD).click()
    assert page.locator("#alarm-state").get_attribute("data-state") == "ALARM"
    history = page.inner_text("#history")
    assert re.search(r"StateUpdate\s+Alarm updated from \w+ to ALARM", history), history
    assert "ConfigurationUpdate" in history
    assert world["topic"] in page.inner_text("#actions")
    chart = page.locator(f"figure[data-metric='{NAMESPACE} QueueDepth']")
    assert chart.locator("circle").count() >= 3 + 2  # three minutes and the threshold's ends
    assert "last 42" in chart.inner_text()
    assert SCRIPT in page.inner_text("main")  # the description, as text
    shot(page, screenshots, "alarm")
    chart.scroll_into_view_if_needed()
    shot(page, screenshots, "alarm-chart")

    # The endpoint page: the alarm on its dimension, and its monitoring schedules.
    page.goto(f"{base}/console/endpoints/{ENDPOINT}")
    watching = page.locator("#endpoint-alarms tbody tr")
    assert watching.count() == 1 and LOUD in watching.inner_text()
    assert "ALARM" in watching.inner_text()
    shot(page, screenshots, "endpoint-alarms")
    page.get_by_role("link", name="Monitoring schedules", exact=True).click()
    page.wait_for_url(re.compile(f".*/console/monitoring\\?endpoint={ENDPOINT}$"))
    assert page.locator("#schedules tbody tr").count() == 2


def test_metric_math_and_composite_alarm_pages(server, world):
    cloudwatch = server.client("cloudwatch")
    dimensions = [{"Name": "EndpointName", "Value": ENDPOINT}]
    cloudwatch.put_metric_alarm(
        AlarmName="doubled-depth", EvaluationPeriods=1, Threshold=100.0,
        ComparisonOperator="GreaterThanThreshold", Metrics=[
            {"Id": "m1", "ReturnData": False, "MetricStat": {
                "Metric": {"Namespace": NAMESPACE, "MetricName": "QueueDepth",
                           "Dimensions": dimensions}, "Period": 60, "Stat": "Maximum"}},
            {"Id": "e1", "Expression": "m1 * 2", "Label": "doubled", "ReturnData": True}])
    cloudwatch.put_composite_alarm(AlarmName="any-trouble", AlarmRule=f'ALARM("{LOUD}")')
    session = signed_in(server)
    math_page = session.get(f"{server.endpoint_url}/console/alarms/doubled-depth")
    assert math_page.status_code == 200
    assert "metric math: m1 * 2" in math_page.text
    assert f"data-metric=\"{NAMESPACE} QueueDepth\"" in math_page.text
    composite = session.get(f"{server.endpoint_url}/console/alarms/any-trouble")
    assert composite.status_code == 200 and "ALARM(&quot;queue-too-deep&quot;)" in composite.text
    assert "has no metric of its own" in composite.text
    listed = session.get(f"{server.endpoint_url}/console/alarms").text
    assert "any-trouble" in listed and "doubled-depth" in listed
    # The endpoint page finds a metric-math alarm by its metrics' dimensions too.
    endpoint = session.get(f"{server.endpoint_url}/console/endpoints/{ENDPOINT}").text
    watching = endpoint.split('id="endpoint-alarms"', 1)[1].split("</table>", 1)[0]
    assert LOUD in watching and "doubled-depth" in watching and "any-trouble" not in watching
    assert session.get(f"{server.endpoint_url}/console/alarms/ghost").status_code == 404


def test_a_batch_transform_schedule_shows_its_capture_location(server, world):
    sagemaker = server.client("sagemaker")
    parts = _job_parts("batch-reports")
    sagemaker.create_model_quality_job_definition(
        JobDefinitionName="mq-batch", ModelQualityAppSpecification={
            "ImageUri": IMAGE, "ProblemType": "BinaryClassification"},
        ModelQualityJobInput={
            "BatchTransformInput": {
                "DataCapturedDestinationS3Uri": f"s3://{BUCKET}/batch-capture",
                "DatasetFormat": {"Csv": {"Header": False}},
                "LocalPath": "/opt/ml/processing/input", "InferenceAttribute": "0"},
            "GroundTruthS3Input": {"S3Uri": f"s3://{BUCKET}/ground-truth"}},
        ModelQualityJobOutputConfig=parts["output"], JobResources=parts["resources"],
        RoleArn=ROLE)
    sagemaker.create_monitoring_schedule(
        MonitoringScheduleName="batch-quality",
        MonitoringScheduleConfig={"ScheduleConfig": {"ScheduleExpression": "cron(0 3 ? * * *)"},
                                  "MonitoringJobDefinitionName": "mq-batch",
                                  "MonitoringType": "ModelQuality"})
    session = signed_in(server)
    listed = session.get(f"{server.endpoint_url}/console/monitoring",
                         params={"name": "batch"}).text
    row = listed.split('id="schedules"', 1)[1]
    assert "batch-quality" in row and "Model quality" in row and NOW_SCHEDULE not in row
    assert f"Batch transform <a href=\"/console/objects/{BUCKET}?prefix=batch-capture%2F\"" \
        in row
    detail = session.get(f"{server.endpoint_url}/console/monitoring/batch-quality").text
    assert "mq-batch" in detail and "cron(0 3 ? * * *)" in detail
    assert "No execution has completed yet." in detail
