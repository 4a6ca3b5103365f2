"""Data quality monitoring end to end through the SageMaker SDK, on a server whose clock the
test moves: suggest_baseline, an hourly schedule, clean and drifted hours of captured
traffic, the SDK's readers of the results, CloudWatch metrics and an alarm, Stop/Start."""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import pandas as pd
import pytest

from alarm_helpers import start_server, wait_state
from monitor_helpers import (
    HOUR, capture_endpoint, wait_executions, wait_for, wait_status, write_capture,
)

ENDPOINT = "sdk-monitored"
SCHEDULE = "sdk-hourly"
N = 300


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    server, clock = start_server(tmp_path_factory.mktemp("monitor-sdk"))
    saved = dict(os.environ)
    os.environ.update(server.client_env())
    try:
        import sagemaker

        session = sagemaker.Session()
        yield server, clock, session
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def traffic(rng: np.random.Generator, shift: float = 0.0) -> pd.DataFrame:
    """Model output first, then the features: SageMaker's column order for capture."""
    return pd.DataFrame({
        "score": np.round(rng.random(N), 4),
        "amount": np.round(rng.normal(50.0, 5.0, N) + shift, 3),
        "channel": rng.choice(["web", "store", "phone"], N, p=[0.5, 0.3, 0.2]),
    })


def rows_of(frame: pd.DataFrame) -> list[tuple[list, float]]:
    return [([row.amount, row.channel], row.score) for row in frame.itertuples()]


def test_default_model_monitor_hourly_schedule(env, tmp_path):
    import sagemaker
    from sagemaker.model_monitor import CronExpressionGenerator, DatasetFormat, DefaultModelMonitor

    server, clock, session = env
    bucket = session.default_bucket()
    sm, s3, cloudwatch = (server.client(s) for s in ("sagemaker", "s3", "cloudwatch"))
    destination = capture_endpoint(sm, s3, bucket, ENDPOINT)
    baseline = traffic(np.random.default_rng(1))
    baseline_csv = tmp_path / "baseline.csv"
    baseline.to_csv(baseline_csv, index=False)

    monitor = DefaultModelMonitor(role=sagemaker.get_execution_role(session), instance_count=1,
                                  instance_type="ml.m5.xlarge", sagemaker_session=session)
    monitor.suggest_baseline(baseline_dataset=str(baseline_csv),
                             dataset_format=DatasetFormat.csv(header=True),
                             output_s3_uri=f"s3://{bucket}/baseline", wait=True, logs=False)
    statistics = monitor.baseline_statistics().body_dict
    assert statistics["dataset"]["item_count"] == N
    constraints = monitor.suggested_constraints().body_dict
    assert {f["name"] for f in constraints["features"]} == {"score", "amount", "channel"}

    # A fresh hour on the server's clock: no hour boundary passes before `first` by itself.
    first = (math.floor(clock.now() / HOUR) + 2) * HOUR
    clock.goto(first - HOUR + 60)
    monitor.create_monitoring_schedule(
        monitor_schedule_name=SCHEDULE, endpoint_input=ENDPOINT,
        output_s3_uri=f"s3://{bucket}/reports",
        statistics=monitor.baseline_statistics(), constraints=monitor.suggested_constraints(),
        schedule_cron_expression=CronExpressionGenerator.hourly(),
        enable_cloudwatch_metrics=True)
    described = wait_status(sm, SCHEDULE, "Scheduled")
    assert described["MonitoringType"] == "DataQuality"
    assert described["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"] == \
        "cron(0 * ? * * *)"
    assert monitor.list_executions() == []

    # Hour 1: the baseline's own traffic, clean. Hour 2: `amount` shifted by 3 sd.
    write_capture(s3, destination, ENDPOINT, first - HOUR, rows_of(baseline))
    clock.goto(first + 2)
    [clean] = wait_executions(sm, SCHEDULE, 1, timeout=240)
    assert clean["MonitoringExecutionStatus"] == "Completed", clean
    executions = monitor.list_executions()
    assert len(executions) == 1
    assert executions[0].output.destination == f"s3://{bucket}/reports/{ENDPOINT}/{SCHEDULE}/" + \
        time.strftime("%Y/%m/%d/%H", time.gmtime(first))
    latest = monitor.latest_monitoring_statistics().body_dict
    assert latest["dataset"]["item_count"] == N
    violations = monitor.latest_monitoring_constraint_violations()
    assert violations is None or violations.body_dict["violations"] == []

    drifted = traffic(np.random.default_rng(2), shift=15.0)
    write_capture(s3, destination, ENDPOINT, first, rows_of(drifted))
    clock.goto(first + HOUR + 2)
    found = wait_executions(sm, SCHEDULE, 2, timeout=240)
    assert found[1]["MonitoringExecutionStatus"] == "CompletedWithViolations", found[1]
    assert len(monitor.list_executions()) == 2
    violations = monitor.latest_monitoring_constraint_violations().body_dict["violations"]
    assert {(v["feature_name"], v["constraint_check_type"]) for v in violations} >= \
        {("amount", "baseline_drift_check")}
    assert monitor.latest_monitoring_statistics().body_dict["dataset"]["item_count"] == N
    last = monitor.describe_schedule()["LastMonitoringExecutionSummary"]
    assert last["MonitoringExecutionStatus"] == "CompletedWithViolations"
    assert last["ScheduledTime"].timestamp() == first + HOUR

    # The drift metric is in CloudWatch, and an alarm on it goes to ALARM.
    dimensions = [{"Name": "Endpoint", "Value": ENDPOINT},
                  {"Name": "MonitoringSchedule", "Value": SCHEDULE}]
    stats = cloudwatch.get_metric_statistics(
        Namespace="aws/sagemaker/Endpoints/data-metrics",
        MetricName="feature_baseline_drift_amount", Dimensions=dimensions,
        StartTime=first - 2 * HOUR, EndTime=first + 2 * HOUR, Period=60,
        Statistics=["Maximum"])["Datapoints"]
    by_time = {p["Timestamp"].timestamp(): p["Maximum"] for p in stats}
    # Stamped at each window's start (the job's metric_time, as SageMaker sets it).
    assert set(by_time) == {first - HOUR, first}, by_time
    assert by_time[first - HOUR] < 0.1 < 0.5 < by_time[first]
    cloudwatch.put_metric_alarm(
        AlarmName="amount-drift", Namespace="aws/sagemaker/Endpoints/data-metrics",
        MetricName="feature_baseline_drift_amount", Dimensions=dimensions, Statistic="Maximum",
        Period=3600, EvaluationPeriods=1, Threshold=0.1,
        ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching")
    wait_state(cloudwatch, "amount-drift", "ALARM")

    # A monitor attached by schedule name (as another script would) reads the same results.
    attached = DefaultModelMonitor.attach(SCHEDULE, sagemaker_session=session)
    assert len(attached.list_executions()) == 2
    assert attached.latest_monitoring_constraint_violations().body_dict["violations"] == \
        violations

    # Stopped, the next hour passes by; started again, the hour after runs.
    monitor.stop_monitoring_schedule()
    assert monitor.describe_schedule()["MonitoringScheduleStatus"] == "Stopped"
    clock.goto(first + 2 * HOUR + 2)
    time.sleep(1.5)
    assert len(monitor.list_executions()) == 2
    monitor.start_monitoring_schedule()
    wait_status(sm, SCHEDULE, "Scheduled")
    write_capture(s3, destination, ENDPOINT, first + 2 * HOUR, rows_of(baseline))
    clock.goto(first + 3 * HOUR + 2)
    found = wait_executions(sm, SCHEDULE, 3, timeout=240)
    assert found[2]["MonitoringExecutionStatus"] == "Completed"
    monitor.delete_monitoring_schedule()
    wait_for(lambda: not sm.list_monitoring_schedules(
        NameContains=SCHEDULE)["MonitoringScheduleSummaries"], "the schedule to go")
    assert sm.list_data_quality_job_definitions(EndpointName=ENDPOINT)[
        "JobDefinitionSummaries"] == []


def test_a_one_time_schedule_and_bad_input(env, tmp_path):
    import sagemaker
    from botocore.exceptions import ClientError
    from sagemaker.model_monitor import CronExpressionGenerator, DefaultModelMonitor

    server, clock, session = env
    bucket = session.default_bucket()
    sm, s3 = server.client("sagemaker"), server.client("s3")
    endpoint = "sdk-once"
    destination = capture_endpoint(sm, s3, bucket, endpoint)
    now = clock.now()
    write_capture(s3, destination, endpoint, math.floor(now / HOUR) * HOUR - HOUR,
                  rows_of(traffic(np.random.default_rng(3))))
    role = sagemaker.get_execution_role(session)

    # A baseline file that is not there (the SDK checks URIs it is given, boto3 does not):
    # the execution fails and says which file.
    image = sagemaker.image_uris.retrieve("model-monitor", session.boto_region_name)
    sm.create_data_quality_job_definition(
        JobDefinitionName="sdk-missing-baseline",
        DataQualityBaselineConfig={
            "StatisticsResource": {"S3Uri": f"s3://{bucket}/nowhere/statistics.json"},
            "ConstraintsResource": {"S3Uri": f"s3://{bucket}/nowhere/constraints.json"}},
        DataQualityAppSpecification={"ImageUri": image},
        DataQualityJobInput={"EndpointInput": {
            "EndpointName": endpoint, "LocalPath": "/opt/ml/processing/input/endpoint"}},
        DataQualityJobOutputConfig={"MonitoringOutputs": [{"S3Output": {
            "S3Uri": f"s3://{bucket}/reports", "LocalPath": "/opt/ml/processing/output"}}]},
        JobResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                        "VolumeSizeInGB": 20}},
        RoleArn=role)
    sm.create_monitoring_schedule(
        MonitoringScheduleName="sdk-missing-baseline",
        MonitoringScheduleConfig={
            "ScheduleConfig": {"ScheduleExpression": "NOW", "DataAnalysisStartTime": "-PT2H",
                               "DataAnalysisEndTime": "-PT0H"},
            "MonitoringJobDefinitionName": "sdk-missing-baseline",
            "MonitoringType": "DataQuality"})
    [failed] = wait_executions(sm, "sdk-missing-baseline", 1)
    assert failed["MonitoringExecutionStatus"] == "Failed"
    assert f"s3://{bucket}/nowhere/statistics.json" in failed["FailureReason"]
    assert "ProcessingJobArn" not in failed

    # Statistics only (no constraints): the window's data is profiled, nothing compared.
    once = DefaultModelMonitor(role=role, instance_count=1, instance_type="ml.m5.xlarge",
                               sagemaker_session=session)
    once.create_monitoring_schedule(
        monitor_schedule_name="sdk-once", endpoint_input=endpoint,
        output_s3_uri=f"s3://{bucket}/reports",
        schedule_cron_expression=CronExpressionGenerator.now(),
        data_analysis_start_time="-PT2H", data_analysis_end_time="-PT0H",
        enable_cloudwatch_metrics=False)
    [execution] = wait_executions(sm, "sdk-once", 1, timeout=240)
    assert execution["MonitoringExecutionStatus"] == "Completed", execution
    assert once.latest_monitoring_statistics().body_dict["dataset"]["item_count"] == N

    # Updated to every 6 hours: a new job definition replaces the old one, as the SDK does it.
    old_definition = once.job_definition_name
    once.update_monitoring_schedule(
        schedule_cron_expression=CronExpressionGenerator.daily_every_x_hours(6),
        instance_type="ml.m5.2xlarge")
    described = once.describe_schedule()
    assert described["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"] == \
        "cron(0 0/6 ? * * *)"
    assert described["MonitoringScheduleStatus"] == "Scheduled"
    new_definition = described["MonitoringScheduleConfig"]["MonitoringJobDefinitionName"]
    assert new_definition != old_definition
    assert sm.describe_data_quality_job_definition(JobDefinitionName=new_definition)[
        "JobResources"]["ClusterConfig"]["InstanceType"] == "ml.m5.2xlarge"

    bad = DefaultModelMonitor(role=role, instance_count=1, instance_type="ml.m5.xlarge",
                              sagemaker_session=session)
    with pytest.raises(ClientError) as raised:
        bad.create_monitoring_schedule(
            monitor_schedule_name="sdk-bad-cron", endpoint_input=endpoint,
            output_s3_uri=f"s3://{bucket}/reports",
            schedule_cron_expression="cron(*/5 * ? * * *)")
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "cron(*/5 * ? * * *)" in raised.value.response["Error"]["Message"]
    # The SDK removed the job definition it made for the refused schedule.
    definitions = {d["MonitoringJobDefinitionName"] for d in sm.list_data_quality_job_definitions(
        EndpointName=endpoint)["JobDefinitionSummaries"]}
    used = {s["MonitoringJobDefinitionName"] for s in sm.list_monitoring_schedules(
        EndpointName=endpoint)["MonitoringScheduleSummaries"]}
    assert definitions - {old_definition} == used and len(used) == 2  # the SDK keeps the old


def test_a_batch_transform_input_is_monitored(env, tmp_path):
    """BatchTransformInput: a capture manifest under <destination>/input/yyyy/mm/dd/hh naming
    the transform's input objects, as a transform job with a DataCaptureConfig writes it
    (written here; tests/test_monitor_batch_capture.py has a real transform job do it)."""
    import sagemaker
    from sagemaker.model_monitor import (
        BatchTransformInput, CronExpressionGenerator, DatasetFormat, DefaultModelMonitor,
    )
    from sagemaker.model_monitor.dataset_format import MonitoringDatasetFormat

    server, clock, session = env
    bucket = session.default_bucket()
    sm, s3 = server.client("sagemaker"), server.client("s3")
    baseline = traffic(np.random.default_rng(4))[["amount", "channel"]]
    baseline_csv = tmp_path / "batch-baseline.csv"
    baseline.to_csv(baseline_csv, index=False, header=False)
    monitor = DefaultModelMonitor(role=sagemaker.get_execution_role(session), instance_count=1,
                                  instance_type="ml.m5.xlarge", sagemaker_session=session)
    monitor.suggest_baseline(baseline_dataset=str(baseline_csv),
                             dataset_format=DatasetFormat.csv(header=False), wait=True,
                             logs=False)
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(clock.now() - HOUR))
    drifted = traffic(np.random.default_rng(5), shift=15.0)[["amount", "channel"]]
    s3.put_object(Bucket=bucket, Key="batch-data/part-0.csv",
                  Body=drifted.to_csv(index=False, header=False).encode())
    s3.put_object(Bucket=bucket, Key=f"batch-capture/input/{hour}/manifest-0.json",
                  Body=json.dumps([{"prefix": f"s3://{bucket}/batch-data/"}, "part-0.csv"]))
    monitor.create_monitoring_schedule(
        monitor_schedule_name="sdk-batch",
        batch_transform_input=BatchTransformInput(
            data_captured_destination_s3_uri=f"s3://{bucket}/batch-capture",
            destination="/opt/ml/processing/input",
            dataset_format=MonitoringDatasetFormat.csv(header=False)),
        output_s3_uri=f"s3://{bucket}/batch-reports",
        statistics=monitor.baseline_statistics(), constraints=monitor.suggested_constraints(),
        schedule_cron_expression=CronExpressionGenerator.now(),
        data_analysis_start_time="-PT2H", data_analysis_end_time="-PT0H")
    [execution] = wait_executions(sm, "sdk-batch", 1, timeout=240)
    assert execution["MonitoringExecutionStatus"] == "CompletedWithViolations", execution
    assert "EndpointName" not in execution
    job = sm.describe_processing_job(ProcessingJobName=execution["ProcessingJobArn"].split("/")[-1])
    assert job["Environment"]["monitoring_input_type"] == "BATCH_TRANSFORM_INPUT"
    assert "sagemaker_endpoint_name" not in job["Environment"]
    violations = monitor.latest_monitoring_constraint_violations().body_dict["violations"]
    assert ("_c0", "baseline_drift_check") in {
        (v["feature_name"], v["constraint_check_type"]) for v in violations}
    assert monitor.latest_monitoring_statistics().body_dict["dataset"]["item_count"] == N
