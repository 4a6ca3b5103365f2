"""Monitoring a text model: the ticket classifier's traffic through a record preprocessor.

The classifier takes JSON text, which Model Monitor cannot profile as it is; the example
``record_preprocessor_script`` (examples/ticket_classifier/monitor_preprocessor.py) turns
each captured request and answer into rows of features (text length, predicted category,
top probability). A baseline is suggested from the validation set's predictions (capture
records, through the same preprocessor), then an hour of traffic in which one category's
share grows from 8% to 18% is checked by a monitoring schedule: the execution flags
``baseline_drift_check`` on ``predicted_category`` and publishes the drift to CloudWatch.

To stay fast, capture files are written to S3 in SageMaker's capture format rather than
served one request at a time; the endpoint only carries the DataCaptureConfig.
"""

from __future__ import annotations

import base64
import json
import random
import time
import uuid
from types import SimpleNamespace

import pytest

from endpoint_helpers import create_model, variant, wait_in_service
from jobs_helpers import sdk_session

CATEGORIES = ("network", "printer", "screen", "email", "vpn", "billing", "account",
              "hardware", "software", "security")
SHIFTED = "billing"
TICKETS = 4500  # per window: 8% is 360 tickets, 18% is 810
WORDS = "please help my the is not working since today again after update error".split()
TIMEOUT = 240


def shares(shifted_share: float) -> dict[str, int]:
    """Ticket counts per predicted category: ``SHIFTED`` has its share, the rest split evenly."""
    count = round(TICKETS * shifted_share)
    rest = (TICKETS - count) // (len(CATEGORIES) - 1)
    counts = {category: rest for category in CATEGORIES if category != SHIFTED}
    counts[SHIFTED] = TICKETS - rest * (len(CATEGORIES) - 1)
    return counts


def capture_lines(counts: dict[str, int], seed: int, moment: float) -> list[str]:
    """Capture records of the classifier: {"instances": [...]} in, its answers out; every
    fourth request carries two tickets (one row each after preprocessing)."""
    rng = random.Random(seed)
    tickets = [category for category, count in counts.items() for _ in range(count)]
    rng.shuffle(tickets)
    lines, index = [], 0
    while index < len(tickets):
        batch = tickets[index:index + (2 if index % 4 == 0 else 1)]
        index += len(batch)
        texts = [" ".join([category, *rng.choices(WORDS, k=rng.randint(4, 40))])
                 for category in batch]
        answers = [{"label": [f"__label__{category}"], "prob": [round(rng.uniform(0.4, 1.0), 4)]}
                   for category in batch]
        lines.append(json.dumps({
            "captureData": {
                "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                  "data": json.dumps({"instances": texts}), "encoding": "JSON"},
                "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                   "data": json.dumps(answers), "encoding": "JSON"}},
            "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment + len(lines) * 0.01))},
            "eventVersion": "0"}, separators=(",", ":")))
    return lines


def write_capture_window(s3, destination: str, endpoint: str, moment: float,
                         lines: list[str]) -> str:
    """One capture file where the endpoint would have written it; its key."""
    bucket, _, prefix = destination.removeprefix("s3://").partition("/")
    stamp = time.gmtime(moment)
    key = "/".join([prefix, endpoint, "AllTraffic", time.strftime("%Y/%m/%d/%H", stamp),
                    f"{time.strftime('%M-%S', stamp)}-000-{uuid.uuid4()}.jsonl"])
    s3.put_object(Bucket=bucket, Key=key, Body=("\n".join(lines) + "\n").encode())
    return key


def wait_for(condition, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def test_preprocessor_turns_each_ticket_of_a_record_into_a_row():
    from modelyard.examples.ticket_classifier import monitor_preprocessor as pre

    def side(data: str, encoding: str = "JSON") -> SimpleNamespace:
        return SimpleNamespace(data=data, encoding=encoding,
                               observed_content_type="application/json")

    answers = [{"label": ["__label__vpn"], "prob": [0.91]},
               {"label": ["__label__email", "__label__vpn"], "prob": [0.55, 0.3]}]
    record = SimpleNamespace(
        endpoint_input=side(json.dumps({"instances": ["vpn drops every hour", "no mail"]})),
        endpoint_output=side(json.dumps(answers)))
    assert pre.preprocess_handler(record) == [
        {"text_length": 4, "predicted_category": "vpn", "top_probability": 0.91},
        {"text_length": 2, "predicted_category": "email", "top_probability": 0.55}]
    # One ticket gives one dict; BASE64 capture (no CaptureContentTypeHeader) and JSON lines.
    encoded = SimpleNamespace(
        endpoint_input=side(base64.b64encode(b'{"source": "printer jams"}\n').decode(), "BASE64"),
        endpoint_output=side(base64.b64encode(b'{"label": ["__label__printer"], "prob": [0.8]}')
                             .decode(), "BASE64"))
    assert pre.preprocess_handler(encoded) == {
        "text_length": 2, "predicted_category": "printer", "top_probability": 0.8}
    assert pre.features("a b c", answers[0]) == {
        "text_length": 3, "predicted_category": "vpn", "top_probability": 0.91}
    # A record whose request and answer disagree in size is skipped, not guessed at.
    assert pre.preprocess_handler(SimpleNamespace(
        endpoint_input=side(json.dumps({"instances": ["one"]})),
        endpoint_output=side(json.dumps(answers)))) == []


@pytest.fixture()
def capturing_endpoint(server, unique_name):
    sagemaker, s3 = server.client("sagemaker"), server.client("s3")
    bucket = sdk_session().default_bucket()
    create_model(sagemaker, s3, bucket, unique_name, 1.0)
    destination = f"s3://{bucket}/{unique_name}/capture"
    sagemaker.create_endpoint_config(
        EndpointConfigName=unique_name, ProductionVariants=[variant("AllTraffic", unique_name, 1.0)],
        DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 100,
                           "DestinationS3Uri": destination,
                           "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                           "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]}})
    sagemaker.create_endpoint(EndpointName=unique_name, EndpointConfigName=unique_name)
    wait_in_service(sagemaker, unique_name)
    yield unique_name, bucket, destination
    for schedule in sagemaker.list_monitoring_schedules(EndpointName=unique_name)[
            "MonitoringScheduleSummaries"]:
        sagemaker.delete_monitoring_schedule(MonitoringScheduleName=schedule["MonitoringScheduleName"])
    sagemaker.delete_endpoint(EndpointName=unique_name)


def test_category_mix_shift_is_flagged_as_drift_and_published(server, capturing_endpoint):
    import sagemaker
    from sagemaker.model_monitor import CronExpressionGenerator, DatasetFormat, DefaultModelMonitor

    from modelyard.examples.ticket_classifier import monitor_preprocessor

    endpoint, bucket, destination = capturing_endpoint
    s3, client = server.client("s3"), server.client("sagemaker")
    session = sdk_session()
    script = monitor_preprocessor.__file__

    # Baseline: the validation set's predictions (8% billing), through the same preprocessor.
    validation = f"{endpoint}/validation/predictions.jsonl"
    s3.put_object(Bucket=bucket, Key=validation, Body=("\n".join(
        capture_lines(shares(0.08), seed=1, moment=time.time() - 86400)) + "\n").encode())
    monitor = DefaultModelMonitor(role=sagemaker.get_execution_role(), instance_count=1,
                                  instance_type="ml.m5.xlarge", sagemaker_session=session,
                                  max_runtime_in_seconds=600)
    monitor.suggest_baseline(
        baseline_dataset=f"s3://{bucket}/{validation}",
        dataset_format=DatasetFormat.sagemaker_capture_json(),
        record_preprocessor_script=script,
        output_s3_uri=f"s3://{bucket}/{endpoint}/baseline", wait=False, logs=False)
    job = monitor.latest_baselining_job.job_name
    described = wait_for(lambda: (lambda d: d if d["ProcessingJobStatus"] != "InProgress" else None)(
        client.describe_processing_job(ProcessingJobName=job)), "the baselining job")
    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")

    statistics = monitor.baseline_statistics().body_dict
    assert statistics["dataset"]["item_count"] == TICKETS  # one row per ticket, not per request
    features = {feature["name"]: feature for feature in statistics["features"]}
    assert set(features) == {"text_length", "predicted_category", "top_probability"}
    assert features["text_length"]["inferred_type"] == "Integral"
    assert features["top_probability"]["inferred_type"] == "Fractional"
    category = features["predicted_category"]
    assert category["inferred_type"] == "String"
    buckets = {b["value"]: b["count"] for b in
               category["string_statistics"]["distribution"]["categorical"]["buckets"]}
    assert buckets == shares(0.08)

    # The team watches the predicted category closely: drift above 5 points is a violation.
    constraints = monitor.suggested_constraints()
    distribution = constraints.body_dict["monitoring_config"]["distribution_constraints"]
    distribution["categorical_comparison_threshold"] = 0.05
    constraints.save()

    # An hour of traffic in which billing tickets grew from 8% to 18% of predictions.
    moment = time.time() - 600
    write_capture_window(s3, destination, endpoint, moment,
                         capture_lines(shares(0.18), seed=2, moment=moment))
    schedule = f"{endpoint}-drift"
    monitor.create_monitoring_schedule(
        monitor_schedule_name=schedule, endpoint_input=endpoint,
        record_preprocessor_script=script, output_s3_uri=f"s3://{bucket}/{endpoint}/reports",
        statistics=monitor.baseline_statistics(), constraints=constraints,
        schedule_cron_expression=CronExpressionGenerator.now(),
        data_analysis_start_time="-PT1H", data_analysis_end_time="-PT0H",
        enable_cloudwatch_metrics=True)

    def finished():
        found = client.list_monitoring_executions(MonitoringScheduleName=schedule)[
            "MonitoringExecutionSummaries"]
        done = [e for e in found if e["MonitoringExecutionStatus"] not in
                ("Pending", "InProgress", "Stopping")]
        return done[0] if done else None

    execution = wait_for(finished, "the monitoring execution")
    assert execution["MonitoringExecutionStatus"] == "CompletedWithViolations", execution
    violations = monitor.latest_monitoring_constraint_violations().body_dict["violations"]
    drift = [v for v in violations if v["constraint_check_type"] == "baseline_drift_check"]
    assert [v["feature_name"] for v in drift] == ["predicted_category"], violations
    # Text length and probabilities did not move, and no category is new.
    assert not [v for v in violations if v["feature_name"] != "predicted_category"], violations

    cloudwatch = server.client("cloudwatch")
    dimensions = [{"Name": "Endpoint", "Value": endpoint},
                  {"Name": "MonitoringSchedule", "Value": schedule}]
    metric = "feature_baseline_drift_predicted_category"
    listed = cloudwatch.list_metrics(Namespace="aws/sagemaker/Endpoints/data-metrics",
                                     MetricName=metric, Dimensions=dimensions)["Metrics"]
    assert listed, "the drift metric was not published"
    datapoints = cloudwatch.get_metric_statistics(
        Namespace="aws/sagemaker/Endpoints/data-metrics", MetricName=metric,
        Dimensions=dimensions, StartTime=time.time() - 3 * 3600, EndTime=time.time() + 600,
        Period=60, Statistics=["Maximum"])["Datapoints"]
    assert datapoints and max(point["Maximum"] for point in datapoints) > 0.05
