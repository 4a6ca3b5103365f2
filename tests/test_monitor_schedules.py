"""Monitoring schedules through boto3: job definitions, schedule expressions, executions on
the server's clock (one per due window, no back-fill), Stop/Start, NOW, restarts."""

from __future__ import annotations

import json
import math
import time

import pytest
from botocore.exceptions import ClientError

from alarm_helpers import start_server
from monitor_helpers import (
    HOUR, ROLE, capture_endpoint, executions, wait_executions, wait_status, write_capture,
)

BUCKET = "monitor-schedule-tests"
IMAGE = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"
ROWS = [([1.0 + i % 7, "a" if i % 2 else "b"], 0.5) for i in range(40)]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    server, clock = start_server(tmp_path_factory.mktemp("monitor-schedules"))
    sagemaker, s3 = server.client("sagemaker"), server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    destination = capture_endpoint(sagemaker, s3, BUCKET, "monitored")
    yield server, clock, sagemaker, s3, destination
    server.stop()


def error(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def definition(name: str, endpoint: str = "monitored", **extra) -> dict:
    return {
        "JobDefinitionName": name,
        "DataQualityAppSpecification": {"ImageUri": IMAGE},
        "DataQualityJobInput": {"EndpointInput": {
            "EndpointName": endpoint, "LocalPath": "/opt/ml/processing/input/endpoint"}},
        "DataQualityJobOutputConfig": {"MonitoringOutputs": [{"S3Output": {
            "S3Uri": f"s3://{BUCKET}/reports", "LocalPath": "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob"}}]},
        "JobResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                           "VolumeSizeInGB": 20}},
        "RoleArn": ROLE, **extra}


def schedule(sagemaker, name: str, job: str, expression: str = "cron(0 * ? * * *)",
             **schedule_config) -> str:
    return sagemaker.create_monitoring_schedule(
        MonitoringScheduleName=name,
        MonitoringScheduleConfig={
            "ScheduleConfig": {"ScheduleExpression": expression, **schedule_config},
            "MonitoringJobDefinitionName": job, "MonitoringType": "DataQuality"},
    )["MonitoringScheduleArn"]


def next_hour(clock) -> float:
    return (math.floor(clock.now() / HOUR) + 1) * HOUR


def fresh_hour(clock) -> float:
    """Set the server clock one minute into a new hour; the end of that hour.

    A schedule created next has its first hour boundary almost an hour of real time away,
    whatever the wall clock's minute (no boundary slips in while the test looks).
    """
    fire = next_hour(clock) + HOUR
    clock.goto(fire - HOUR + 60)
    return fire


def test_job_definitions_create_describe_list_delete(env):
    _, _, sagemaker, _, _ = env
    arn = sagemaker.create_data_quality_job_definition(**definition("dq-crud"))["JobDefinitionArn"]
    assert arn.endswith(":data-quality-job-definition/dq-crud")
    described = sagemaker.describe_data_quality_job_definition(JobDefinitionName="dq-crud")
    assert described["DataQualityJobInput"]["EndpointInput"]["EndpointName"] == "monitored"
    listed = sagemaker.list_data_quality_job_definitions(EndpointName="monitored",
                                                         NameContains="crud")
    assert [s["MonitoringJobDefinitionName"] for s in listed["JobDefinitionSummaries"]] == \
        ["dq-crud"]
    assert error(sagemaker.create_data_quality_job_definition,
                 **definition("dq-crud"))[0] == "ResourceInUse"
    # Definitions of both kinds share their names.
    model_quality = {
        "JobDefinitionName": "dq-crud",
        "ModelQualityAppSpecification": {"ImageUri": IMAGE,
                                         "ProblemType": "BinaryClassification"},
        "ModelQualityJobInput": {
            "EndpointInput": {"EndpointName": "monitored", "LocalPath": "/opt/ml/processing/x",
                              "InferenceAttribute": "0"},
            "GroundTruthS3Input": {"S3Uri": f"s3://{BUCKET}/ground-truth"}},
        "ModelQualityJobOutputConfig": definition("x")["DataQualityJobOutputConfig"],
        "JobResources": definition("x")["JobResources"], "RoleArn": ROLE}
    assert error(sagemaker.create_model_quality_job_definition,
                 **model_quality)[0] == "ResourceInUse"
    sagemaker.create_model_quality_job_definition(**{**model_quality,
                                                     "JobDefinitionName": "mq-crud"})
    assert sagemaker.describe_model_quality_job_definition(JobDefinitionName="mq-crud")[
        "ModelQualityAppSpecification"]["ProblemType"] == "BinaryClassification"
    code, message = error(sagemaker.create_model_quality_job_definition, **{
        **model_quality, "JobDefinitionName": "mq-bad",
        "ModelQualityJobInput": {"EndpointInput": model_quality["ModelQualityJobInput"][
            "EndpointInput"], "GroundTruthS3Input": {}}})
    assert code == "ValidationException" and "GroundTruthS3Input" in message
    sagemaker.delete_data_quality_job_definition(JobDefinitionName="dq-crud")
    sagemaker.delete_model_quality_job_definition(JobDefinitionName="mq-crud")
    code, message = error(sagemaker.describe_data_quality_job_definition,
                          JobDefinitionName="dq-crud")
    assert code == "ResourceNotFound" and "dq-crud" in message
    code, _ = error(sagemaker.create_data_quality_job_definition, **definition(
        "dq-bad-baseline", DataQualityBaselineConfig={"BaseliningJobName": "no-such-job"}))
    assert code == "ValidationException"


@pytest.mark.parametrize("expression", [
    "cron(0 12 * * ? *)", "cron(30 * ? * * *)", "cron(0 24 ? * * *)", "cron(0 0/25 ? * * *)",
    "rate(1 hour)", "hourly", "cron(0 * ? * MON *)"])
def test_unsupported_schedule_expressions_are_refused(env, expression):
    _, _, sagemaker, _, _ = env
    sagemaker.create_data_quality_job_definition(**definition(f"dq-expr-{abs(hash(expression))}"))
    code, message = error(schedule, sagemaker=sagemaker, name="bad-expression",
                          job=f"dq-expr-{abs(hash(expression))}", expression=expression)
    assert code == "ValidationException"
    assert expression in message and "cron(0 * ? * * *)" in message


def test_schedule_requests_sagemaker_refuses(env):
    _, _, sagemaker, s3, _ = env
    sagemaker.create_data_quality_job_definition(**definition("dq-refuse"))
    code, message = error(schedule, sagemaker=sagemaker, name="s-now", job="dq-refuse",
                          expression="NOW")
    assert code == "ValidationException" and "DataAnalysisStartTime" in message
    code, message = error(schedule, sagemaker=sagemaker, name="s-long", job="dq-refuse",
                          expression="NOW", DataAnalysisStartTime="-P2D",
                          DataAnalysisEndTime="-PT1H")
    assert code == "ValidationException" and "24 hours" in message
    code, message = error(schedule, sagemaker=sagemaker, name="s-offset", job="dq-refuse",
                          expression="NOW", DataAnalysisStartTime="one hour ago",
                          DataAnalysisEndTime="-PT0H")
    assert code == "ValidationException" and "ISO 8601" in message
    code, message = error(schedule, sagemaker=sagemaker, name="s-missing", job="no-such-def")
    assert code == "ValidationException" and "no-such-def" in message
    code, message = error(sagemaker.create_monitoring_schedule, MonitoringScheduleName="s-type",
                          MonitoringScheduleConfig={"MonitoringJobDefinitionName": "dq-refuse"})
    assert code == "ValidationException" and "MonitoringType" in message
    sagemaker.create_data_quality_job_definition(**definition("dq-ghost", endpoint="ghost"))
    code, message = error(schedule, sagemaker=sagemaker, name="s-ghost", job="dq-ghost")
    assert code == "ValidationException" and "ghost" in message
    # An endpoint without data capture cannot be monitored.
    from endpoint_helpers import create_model, variant

    create_model(sagemaker, s3, BUCKET, "no-capture", 1.0)
    sagemaker.create_endpoint_config(EndpointConfigName="no-capture",
                                     ProductionVariants=[variant("AllTraffic", "no-capture", 1)])
    sagemaker.create_endpoint(EndpointName="no-capture", EndpointConfigName="no-capture")
    sagemaker.create_data_quality_job_definition(**definition("dq-nocap", endpoint="no-capture"))
    code, message = error(schedule, sagemaker=sagemaker, name="s-nocap", job="dq-nocap")
    assert code == "ValidationException" and "DataCaptureConfig" in message
    assert error(sagemaker.describe_monitoring_schedule,
                 MonitoringScheduleName="s-ghost")[0] == "ResourceNotFound"


def test_hourly_schedule_runs_each_hour_on_its_window(env):
    _, clock, sagemaker, s3, destination = env
    sagemaker.create_data_quality_job_definition(**definition("dq-hourly"))
    fire = fresh_hour(clock)
    arn = schedule(sagemaker, "hourly", "dq-hourly")
    described = wait_status(sagemaker, "hourly", "Scheduled")
    assert described["MonitoringScheduleArn"] == arn
    assert described["EndpointName"] == "monitored"
    assert "LastMonitoringExecutionSummary" not in described
    code, message = error(sagemaker.delete_data_quality_job_definition,
                          JobDefinitionName="dq-hourly")
    assert code == "ResourceInUse" and "hourly" in message

    write_capture(s3, destination, "monitored", fire - HOUR, ROWS)
    write_capture(s3, destination, "monitored", fire - 2 * HOUR, ROWS)  # outside the window
    clock.goto(fire - 30)
    time.sleep(1.5)
    assert executions(sagemaker, "hourly") == []
    clock.goto(fire + 2)
    [execution] = wait_executions(sagemaker, "hourly", 1)
    assert execution["ScheduledTime"].timestamp() == fire
    assert execution["MonitoringJobDefinitionName"] == "dq-hourly"
    assert execution["MonitoringType"] == "DataQuality"
    assert execution["EndpointName"] == "monitored"
    job_name = execution["ProcessingJobArn"].split("/")[-1]
    assert job_name.startswith("model-monitoring-" + time.strftime("%Y%m%d%H%M",
                                                                  time.gmtime(fire)))
    job = sagemaker.describe_processing_job(ProcessingJobName=job_name)
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(fire - HOUR))
    [data] = [i for i in job["ProcessingInputs"] if i["InputName"].startswith("input_")]
    assert data["S3Input"]["S3Uri"] == f"{destination}/monitored/AllTraffic/{hour}"
    assert data["S3Input"]["LocalPath"] == \
        f"/opt/ml/processing/input/endpoint/monitored/AllTraffic/{hour}"
    environment = job["Environment"]
    assert environment["start_time"] == time.strftime("%Y-%m-%dT%H:00:00Z",
                                                      time.gmtime(fire - HOUR))
    assert environment["end_time"] == time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(fire))
    assert json.loads(environment["dataset_format"]) == {"sagemakerCaptureJson": {
        "captureIndexNames": ["endpointInput", "endpointOutput"]}}
    assert environment["dataset_source"] == "/opt/ml/processing/input/endpoint"
    assert environment["sagemaker_endpoint_name"] == "monitored"
    assert environment["sagemaker_monitoring_schedule_name"] == "hourly"
    assert environment["publish_cloudwatch_metrics"] == "Enabled"
    [output] = job["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"] == f"s3://{BUCKET}/reports/monitored/hourly/" + \
        time.strftime("%Y/%m/%d/%H", time.gmtime(fire))
    # The execution's status follows its processing job.
    expected = {"Completed": {"Completed", "CompletedWithViolations"}, "Failed": {"Failed"}}
    assert execution["MonitoringExecutionStatus"] in expected[job["ProcessingJobStatus"]]
    last = sagemaker.describe_monitoring_schedule(MonitoringScheduleName="hourly")[
        "LastMonitoringExecutionSummary"]
    assert last["ProcessingJobArn"] == execution["ProcessingJobArn"]

    # Five hours later: one execution for the latest hour only (no back-fill); its window
    # has no captured data, so it fails as SageMaker's does, without a job.
    later = fire + 5 * HOUR
    clock.goto(later + 2)
    found = wait_executions(sagemaker, "hourly", 2)
    assert len(found) == 2
    assert found[1]["ScheduledTime"].timestamp() == later
    assert found[1]["MonitoringExecutionStatus"] == "Failed"
    assert found[1]["FailureReason"] == "Job inputs had no data"
    assert "ProcessingJobArn" not in found[1]
    time.sleep(1.5)
    assert len(executions(sagemaker, "hourly")) == 2
    filtered = sagemaker.list_monitoring_executions(
        MonitoringScheduleName="hourly", StatusEquals="Failed",
        ScheduledTimeAfter=later - 1)["MonitoringExecutionSummaries"]
    assert [e["ScheduledTime"].timestamp() for e in filtered] == [later]
    listed = sagemaker.list_monitoring_schedules(EndpointName="monitored",
                                                 MonitoringJobDefinitionName="dq-hourly")
    assert [s["MonitoringScheduleName"] for s in listed["MonitoringScheduleSummaries"]] == \
        ["hourly"]

    # Stopped: the next hour passes without an execution; started again: the one after runs.
    sagemaker.stop_monitoring_schedule(MonitoringScheduleName="hourly")
    assert sagemaker.describe_monitoring_schedule(
        MonitoringScheduleName="hourly")["MonitoringScheduleStatus"] == "Stopped"
    clock.goto(later + HOUR + 2)
    time.sleep(1.5)
    assert len(executions(sagemaker, "hourly")) == 2
    sagemaker.start_monitoring_schedule(MonitoringScheduleName="hourly")
    wait_status(sagemaker, "hourly", "Scheduled")
    time.sleep(1)
    assert len(executions(sagemaker, "hourly")) == 2
    clock.goto(later + 2 * HOUR + 2)
    assert wait_executions(sagemaker, "hourly", 3)[2]["ScheduledTime"].timestamp() == \
        later + 2 * HOUR
    sagemaker.delete_monitoring_schedule(MonitoringScheduleName="hourly")
    assert error(sagemaker.describe_monitoring_schedule,
                 MonitoringScheduleName="hourly")[0] == "ResourceNotFound"
    sagemaker.delete_data_quality_job_definition(JobDefinitionName="dq-hourly")


def test_daily_and_every_n_hours_fire_at_their_hours(env):
    _, clock, sagemaker, _, _ = env
    sagemaker.create_data_quality_job_definition(**definition("dq-daily"))
    # The next midnight UTC at least two hours ahead (earlier tests, or the time of day,
    # may have left the server clock late in its day).
    base = (math.floor((clock.now() + 2 * HOUR + 60) / 86400) + 1) * 86400
    clock.goto(base - 2 * HOUR + 5)
    schedule(sagemaker, "daily-3", "dq-daily", "cron(0 3 ? * * *)")
    schedule(sagemaker, "every-2", "dq-daily", "cron(0 1/2 ? * * *)")
    wait_status(sagemaker, "daily-3", "Scheduled")
    wait_status(sagemaker, "every-2", "Scheduled")
    clock.goto(base + HOUR + 5)  # 01:00:05 fires every-2 (hours 1, 3, 5, ...)
    assert wait_executions(sagemaker, "every-2", 1)[0]["ScheduledTime"].timestamp() == \
        base + HOUR
    clock.goto(base + 2 * HOUR + 5)
    time.sleep(1.5)
    assert executions(sagemaker, "daily-3") == []
    assert len(executions(sagemaker, "every-2")) == 1
    clock.goto(base + 3 * HOUR + 5)
    assert wait_executions(sagemaker, "daily-3", 1)[0]["ScheduledTime"].timestamp() == \
        base + 3 * HOUR
    assert wait_executions(sagemaker, "every-2", 2)[1]["ScheduledTime"].timestamp() == \
        base + 3 * HOUR
    for name in ("daily-3", "every-2"):
        sagemaker.delete_monitoring_schedule(MonitoringScheduleName=name)


def test_a_now_schedule_with_an_inline_job_runs_once_on_its_window(env):
    _, clock, sagemaker, s3, destination = env
    now = clock.now()
    write_capture(s3, destination, "monitored", math.floor(now / HOUR) * HOUR - 3 * HOUR, ROWS)
    job = definition("unused")
    sagemaker.create_monitoring_schedule(
        MonitoringScheduleName="once",
        MonitoringScheduleConfig={
            "ScheduleConfig": {"ScheduleExpression": "NOW", "DataAnalysisStartTime": "-PT4H",
                               "DataAnalysisEndTime": "-PT2H"},
            "MonitoringJobDefinition": {
                "MonitoringInputs": [job["DataQualityJobInput"]],
                "MonitoringOutputConfig": job["DataQualityJobOutputConfig"],
                "MonitoringResources": job["JobResources"],
                "MonitoringAppSpecification": {"ImageUri": IMAGE},
                "Environment": {"publish_cloudwatch_metrics": "Disabled"},
                "RoleArn": ROLE}})
    [execution] = wait_executions(sagemaker, "once", 1)
    assert now - 1 <= execution["ScheduledTime"].timestamp() <= clock.now()
    assert execution["MonitoringType"] == "DataQuality"
    assert "MonitoringJobDefinitionName" not in execution
    job_name = execution["ProcessingJobArn"].split("/")[-1]
    environment = sagemaker.describe_processing_job(ProcessingJobName=job_name)["Environment"]
    scheduled = execution["ScheduledTime"].timestamp()
    assert environment["start_time"] == time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                      time.gmtime(scheduled - 4 * HOUR))
    assert environment["end_time"] == time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                    time.gmtime(scheduled - 2 * HOUR))
    assert environment["publish_cloudwatch_metrics"] == "Disabled"
    [summary] = sagemaker.list_monitoring_schedules(NameContains="once")[
        "MonitoringScheduleSummaries"]
    assert summary["MonitoringType"] == "DataQuality" and summary["EndpointName"] == "monitored"
    assert "MonitoringJobDefinitionName" not in summary
    sagemaker.create_data_quality_job_definition(**definition("dq-paging"))
    schedule(sagemaker, "paging", "dq-paging")
    first = sagemaker.list_monitoring_schedules(MaxResults=1, SortBy="Name",
                                                SortOrder="Ascending")
    second = sagemaker.list_monitoring_schedules(MaxResults=1, SortBy="Name",
                                                 SortOrder="Ascending",
                                                 NextToken=first["NextToken"])
    assert [first["MonitoringScheduleSummaries"][0]["MonitoringScheduleName"],
            second["MonitoringScheduleSummaries"][0]["MonitoringScheduleName"]] == \
        ["once", "paging"]
    assert "NextToken" not in second
    sagemaker.delete_monitoring_schedule(MonitoringScheduleName="paging")
    clock.goto(clock.now() + 3 * HOUR)
    time.sleep(1.5)
    assert len(executions(sagemaker, "once")) == 1
    sagemaker.delete_monitoring_schedule(MonitoringScheduleName="once")


def test_schedules_and_executions_survive_a_restart(tmp_path):
    from server_process import ServerProcess

    server, clock = start_server(tmp_path / "data")
    try:
        sagemaker, s3 = server.client("sagemaker"), server.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        capture_endpoint(sagemaker, s3, BUCKET, "monitored")
        sagemaker.create_data_quality_job_definition(**definition("dq-restart"))
        fire = fresh_hour(clock)
        schedule(sagemaker, "durable", "dq-restart")
        wait_status(sagemaker, "durable", "Scheduled")
        clock.goto(fire + 2)
        wait_executions(sagemaker, "durable", 1)
        server.kill()
        server = ServerProcess.start(server.data_dir, port=server.port, **server.extra_env)
        sagemaker = server.client("sagemaker")
        assert sagemaker.describe_monitoring_schedule(
            MonitoringScheduleName="durable")["MonitoringScheduleStatus"] == "Scheduled"
        time.sleep(1.5)
        assert len(executions(sagemaker, "durable")) == 1  # not repeated
        clock.goto(fire + HOUR + 2)
        found = wait_executions(sagemaker, "durable", 2)
        assert [e["ScheduledTime"].timestamp() for e in found] == [fire, fire + HOUR]
    finally:
        server.stop()


def test_update_keeps_or_replaces_the_schedule_and_alerts_list_empty(env):
    _, clock, sagemaker, _, _ = env
    sagemaker.create_data_quality_job_definition(**definition("dq-update-a"))
    sagemaker.create_data_quality_job_definition(**definition("dq-update-b"))
    fire = fresh_hour(clock)
    schedule(sagemaker, "updated", "dq-update-a", "cron(0 5 ? * * *)")
    wait_status(sagemaker, "updated", "Scheduled")
    sagemaker.update_monitoring_schedule(
        MonitoringScheduleName="updated",
        MonitoringScheduleConfig={"MonitoringJobDefinitionName": "dq-update-b",
                                  "MonitoringType": "DataQuality"})
    described = wait_status(sagemaker, "updated", "Scheduled")
    config = described["MonitoringScheduleConfig"]
    assert config["MonitoringJobDefinitionName"] == "dq-update-b"
    assert config["ScheduleConfig"]["ScheduleExpression"] == "cron(0 5 ? * * *)"
    sagemaker.delete_data_quality_job_definition(JobDefinitionName="dq-update-a")
    code, message = error(sagemaker.update_monitoring_schedule, MonitoringScheduleName="updated",
                          MonitoringScheduleConfig={
                              "ScheduleConfig": {"ScheduleExpression": "cron(15 * ? * * *)"},
                              "MonitoringJobDefinitionName": "dq-update-b",
                              "MonitoringType": "DataQuality"})
    assert code == "ValidationException" and "cron(15 * ? * * *)" in message
    assert error(sagemaker.update_monitoring_schedule, MonitoringScheduleName="nope",
                 MonitoringScheduleConfig=config)[0] == "ResourceNotFound"
    # The hour of the new expression is the one that fires.
    sagemaker.update_monitoring_schedule(MonitoringScheduleName="updated",
                                         MonitoringScheduleConfig={
        "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
        "MonitoringJobDefinitionName": "dq-update-b", "MonitoringType": "DataQuality"})
    wait_status(sagemaker, "updated", "Scheduled")
    clock.goto(fire + 2)
    [execution] = wait_executions(sagemaker, "updated", 1)
    assert execution["MonitoringJobDefinitionName"] == "dq-update-b"
    assert sagemaker.list_monitoring_alerts(
        MonitoringScheduleName="updated")["MonitoringAlertSummaries"] == []
    assert sagemaker.list_monitoring_alert_history(
        MonitoringScheduleName="updated")["MonitoringAlertHistory"] == []
    assert error(sagemaker.list_monitoring_alerts,
                 MonitoringScheduleName="nope")[0] == "ResourceNotFound"
    sagemaker.delete_monitoring_schedule(MonitoringScheduleName="updated")
