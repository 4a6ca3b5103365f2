"""The demo's monitoring part: watch the ticket classifier's traffic with Model Monitor.

A text model's requests cannot be profiled as they are; the example record preprocessor
(examples/ticket_classifier/monitor_preprocessor.py) turns each captured request and answer
into features (text length, predicted category, top probability). The demo suggests a
baseline on the held-out predictions the serving part's batch transform already made (the
test split), writes an hour of traffic in SageMaker's capture format in which one
category's share is ten points higher, runs the analyzer over that hour as a monitoring
execution does, and reads the violation and the drift metric it published to CloudWatch.

The two jobs are made with boto3 exactly as ``DefaultModelMonitor.suggest_baseline`` and a
schedule's hourly execution make them: building SageMaker SDK objects costs seconds each
while the SDK validates its configuration file, and the demo keeps this part short.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

from .monitor.executions import CAPTURE_FORMAT

if TYPE_CHECKING:
    from .demo import Steps

ENDPOINT = "demo-ticket-classifier"
SCHEDULE = "demo-ticket-traffic"
PREFIX = "demo/monitoring"
LABEL = "__label__"
SHIFT = 0.10  # ten points more of one category in the traffic
CATEGORY_THRESHOLD = 0.05  # the team's drift threshold for the predicted category
NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
FEATURE = "predicted_category"
# What serve_ticket_classifier's batch transform reads and writes (demo_serving.py).
TRANSFORM_INPUT = "demo/transform/in/test.jsonl"
TRANSFORM_OUTPUT = "demo/transform/out/test.jsonl.out"
CONTAINER = "/opt/ml/processing"
ISO = "%Y-%m-%dT%H:%M:%SZ"


def monitor_ticket_classifier(steps: "Steps", bucket: str) -> None:
    """Baseline, shifted traffic, violation and CloudWatch metric.

    The baseline profiles the held-out predictions that ``serve_ticket_classifier``'s batch
    transform wrote (the test split), so no model runs again; call it after that."""
    pairs = _held_out_predictions(bucket)
    if not pairs:
        print("  (no batch transform predictions to monitor)")
        return
    script = _upload_preprocessor(bucket)
    baseline = steps.run("baseline on held-out predictions",
                         lambda: _baseline(bucket, script, pairs), _describe_baseline)
    steps.run("an hour of traffic, one category +10 points",
              lambda: _shifted_traffic(bucket, pairs), str)
    result = steps.run("monitoring execution over that hour",
                       lambda: _monitoring_execution(bucket, script, baseline),
                       _describe_violations)
    steps.run("drift metric in CloudWatch", lambda: _drift_metric(result), str)


# --- the baseline ----------------------------------------------------------------------------


def _held_out_predictions(bucket: str) -> list[tuple[str, dict]]:
    """(ticket text, the classifier's answer) from the serving demo's batch transform."""
    import boto3

    s3 = boto3.client("s3")
    try:
        requests = s3.get_object(Bucket=bucket, Key=TRANSFORM_INPUT)["Body"].read().decode()
        answers = s3.get_object(Bucket=bucket, Key=TRANSFORM_OUTPUT)["Body"].read().decode()
    except s3.exceptions.NoSuchKey:
        return []
    texts = [json.loads(line)["source"] for line in requests.splitlines() if line.strip()]
    predictions = [json.loads(line) for line in answers.splitlines() if line.strip()]
    return list(zip(texts, predictions)) if len(texts) == len(predictions) else []


def _upload_preprocessor(bucket: str) -> str:
    import boto3

    from .examples.ticket_classifier import monitor_preprocessor

    key = f"{PREFIX}/code/monitor_preprocessor.py"
    with open(monitor_preprocessor.__file__, "rb") as handle:
        boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=handle.read())
    return f"s3://{bucket}/{key}"


def _baseline(bucket: str, script: str, pairs: list[tuple[str, dict]]) -> dict[str, Any]:
    """suggest_baseline's job over the predictions as capture records, then the team's
    drift rule for the predicted category; the baseline's files and statistics."""
    import boto3

    key = f"{PREFIX}/held-out/predictions.jsonl"
    lines = [_capture_line(text, answer, time.time()) for text, answer in pairs]
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body="\n".join(lines).encode())
    output = f"s3://{bucket}/{PREFIX}/baseline"
    name = f"demo-baseline-{time.strftime('%Y-%m-%d-%H-%M-%S', time.gmtime())}"
    _create_job(name, inputs=[
        _input("baseline_dataset_input", f"s3://{bucket}/{key}",
               f"{CONTAINER}/input/baseline_dataset_input"),
        _input("record_preprocessor_script_input", script,
               f"{CONTAINER}/input/record_preprocessor_script_input"),
    ], output=output, environment={
        "dataset_format": json.dumps(CAPTURE_FORMAT),
        "dataset_source": f"{CONTAINER}/input/baseline_dataset_input",
        "output_path": f"{CONTAINER}/output",
        "publish_cloudwatch_metrics": "Disabled",
        "record_preprocessor_script":
            f"{CONTAINER}/input/record_preprocessor_script_input/monitor_preprocessor.py",
    })
    statistics = _read_json(f"{output}/statistics.json")
    constraints = _read_json(f"{output}/constraints.json")
    # The team flags a category whose share moves by more than CATEGORY_THRESHOLD: the
    # plain (Simple) L-infinity distance, not the Robust one, which at ~1,400 predictions
    # per window discounts differences below ~7 points as noise.
    constraints["monitoring_config"]["distribution_constraints"].update(
        comparison_method="Simple", categorical_comparison_threshold=CATEGORY_THRESHOLD)
    _write_json(f"{output}/constraints.json", constraints)
    return {"statistics": f"{output}/statistics.json",
            "constraints": f"{output}/constraints.json", "document": statistics}


def _describe_baseline(baseline: dict[str, Any]) -> str:
    document = baseline["document"]
    return (f"{document['dataset']['item_count']:,} predictions -> "
            + ", ".join(feature["name"] for feature in document["features"]))


# --- traffic ---------------------------------------------------------------------------------


def _category(answer: dict) -> str:
    return str(answer["label"][0]).removeprefix(LABEL)


def _capture_line(text: str, answer: dict, moment: float) -> str:
    """One invocation as SageMaker's data capture writes it (JSON request and answer)."""
    return json.dumps({
        "captureData": {
            "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                              "data": json.dumps({"instances": [text]}), "encoding": "JSON"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                               "data": json.dumps([answer]), "encoding": "JSON"}},
        "eventMetadata": {"eventId": str(uuid.uuid4()),
                          "inferenceTime": time.strftime(ISO, time.gmtime(moment))},
        "eventVersion": "0"}, separators=(",", ":"))


def _shifted_traffic(bucket: str, pairs: list[tuple[str, dict]]) -> str:
    """Capture files for the last hour: the held-out tickets resampled so that the category
    whose share is nearest 8% has ``SHIFT`` more of the predictions."""
    import boto3

    counts = Counter(_category(answer) for _, answer in pairs)
    total = len(pairs)
    chosen = min(sorted(counts), key=lambda category: abs(counts[category] / total - 0.08))
    before = counts[chosen] / total
    rng = random.Random(11)
    inside = [pair for pair in pairs if _category(pair[1]) == chosen]
    outside = [pair for pair in pairs if _category(pair[1]) != chosen]
    wanted = round(total * (before + SHIFT))
    traffic = rng.choices(inside, k=wanted) + rng.choices(outside, k=total - wanted)
    rng.shuffle(traffic)
    start = time.time() - 1800  # half an hour ago; the file sits in its first record's hour
    lines = [_capture_line(text, answer, start + index * 1500 / total)
             for index, (text, answer) in enumerate(traffic)]
    s3 = boto3.client("s3")
    earlier = s3.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/capture/").get("Contents")
    if earlier:  # an earlier run of the demo would share this hour
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": item["Key"]}
                                                             for item in earlier]})
    stamp = time.gmtime(start)
    key = "/".join([PREFIX, "capture", ENDPOINT, "AllTraffic", time.strftime("%Y/%m/%d/%H", stamp),
                    f"{time.strftime('%M-%S', stamp)}-000-{uuid.uuid4()}.jsonl"])
    s3.put_object(Bucket=bucket, Key=key, Body=("\n".join(lines) + "\n").encode())
    return f"{total:,} tickets, {chosen} {before:.0%} -> {wanted / total:.0%}"


# --- the monitoring execution ----------------------------------------------------------------


def _monitoring_execution(bucket: str, script: str, baseline: dict[str, Any]) -> dict[str, Any]:
    """The analyzer over the last hour of capture, with the inputs and environment a
    monitoring schedule's hourly execution gives it; its violations."""
    import boto3

    now = time.time()
    start, end = now - 3600, now
    capture = f"s3://{bucket}/{PREFIX}/capture/{ENDPOINT}/AllTraffic"
    s3 = boto3.client("s3")
    hours = sorted({time.strftime("%Y/%m/%d/%H", time.gmtime(moment)) for moment in (start, end)})
    inputs = [_input(f"input_{index}", f"{capture}/{hour}",
                     f"{CONTAINER}/input/endpoint/{ENDPOINT}/AllTraffic/{hour}")
              for index, hour in enumerate(hours, start=1)
              if s3.list_objects_v2(Bucket=bucket, MaxKeys=1,
                                    Prefix=f"{PREFIX}/capture/{ENDPOINT}/AllTraffic/{hour}/")
              .get("Contents")]
    inputs += [_input("baseline", baseline["statistics"], f"{CONTAINER}/baseline/stats"),
               _input("constraints", baseline["constraints"], f"{CONTAINER}/baseline/constraints"),
               _input("pre_processor_script_input", script, f"{CONTAINER}/code/preprocessing")]
    output = "/".join([f"s3://{bucket}/{PREFIX}/reports", ENDPOINT, SCHEDULE,
                       time.strftime("%Y/%m/%d/%H", time.gmtime(now))])
    stamp = time.strftime("%Y%m%d%H%M", time.gmtime(now))
    name = f"model-monitoring-{stamp}-{uuid.uuid4().hex[:8]}"
    description = _create_job(name, inputs=inputs, output=output, environment={
        "dataset_format": json.dumps(CAPTURE_FORMAT),
        "dataset_source": f"{CONTAINER}/input/endpoint",
        "output_path": f"{CONTAINER}/output",
        "publish_cloudwatch_metrics": "Enabled",
        "sagemaker_endpoint_name": ENDPOINT, "sagemaker_monitoring_schedule_name": SCHEDULE,
        "start_time": time.strftime(ISO, time.gmtime(start)),
        "end_time": time.strftime(ISO, time.gmtime(end)),
        "baseline_statistics": f"{CONTAINER}/baseline/stats/statistics.json",
        "baseline_constraints": f"{CONTAINER}/baseline/constraints/constraints.json",
        "record_preprocessor_script": f"{CONTAINER}/code/preprocessing/monitor_preprocessor.py",
    })
    report = _read_json(f"{output}/constraint_violations.json")
    return {"exit": description.get("ExitMessage", ""), "violations": report["violations"],
            "start": start, "end": end}


def _describe_violations(result: dict[str, Any]) -> str:
    drift = [violation for violation in result["violations"]
             if violation["constraint_check_type"] == "baseline_drift_check"]
    status = result["exit"].split(":", 1)[0] or "Completed"
    if not drift:
        return f"{status}, {len(result['violations'])} violations, no drift found"
    return f"{status}: baseline_drift_check on {', '.join(v['feature_name'] for v in drift)}"


def _drift_metric(result: dict[str, Any]) -> str:
    import boto3

    metric = f"feature_baseline_drift_{FEATURE}"
    # The execution's metrics are stamped within its window; the newest is this run's.
    points = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=NAMESPACE, MetricName=metric, StartTime=result["start"] - 60,
        EndTime=result["end"] + 60, Period=60, Statistics=["Maximum"],
        Dimensions=[{"Name": "Endpoint", "Value": ENDPOINT},
                    {"Name": "MonitoringSchedule", "Value": SCHEDULE}])["Datapoints"]
    if not points:
        return f"{metric}: no datapoint"
    newest = max(points, key=lambda point: point["Timestamp"])
    return f"{metric} = {newest['Maximum']:.3f} (threshold {CATEGORY_THRESHOLD})"


# --- jobs and files --------------------------------------------------------------------------


def _input(name: str, uri: str, local: str) -> dict[str, Any]:
    return {"InputName": name, "S3Input": {
        "S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix", "S3InputMode": "File",
        "S3DataDistributionType": "FullyReplicated"}}


def _create_job(name: str, *, inputs: list[dict], output: str,
                environment: dict[str, str]) -> dict[str, Any]:
    """A processing job of the Model Monitor analyzer image; its description once done."""
    import boto3
    from sagemaker import image_uris

    region = boto3.session.Session().region_name or "us-east-1"
    client = boto3.client("sagemaker")
    client.create_processing_job(
        ProcessingJobName=name, RoleArn=_role(), ProcessingInputs=inputs,
        ProcessingOutputConfig={"Outputs": [{"OutputName": "monitoring_output", "S3Output": {
            "S3Uri": output, "LocalPath": f"{CONTAINER}/output", "S3UploadMode": "EndOfJob"}}]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                               "VolumeSizeInGB": 20}},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        AppSpecification={"ImageUri": image_uris.retrieve("model-monitor", region)},
        Environment=environment)
    while True:
        description = client.describe_processing_job(ProcessingJobName=name)
        if description["ProcessingJobStatus"] in ("Completed", "Failed", "Stopped"):
            break
        time.sleep(0.2)
    if description["ProcessingJobStatus"] != "Completed":
        raise SystemExit(f"{name} ended {description['ProcessingJobStatus']}: "
                         f"{description.get('FailureReason')}")
    return description


def _role() -> str:
    """The execution role of the caller's session (sagemaker.get_execution_role's answer)."""
    import boto3

    arn = boto3.client("sts").get_caller_identity()["Arn"]
    if ":assumed-role/" in arn:
        account = arn.split(":")[4]
        return f"arn:aws:iam::{account}:role/{arn.split('/')[1]}"
    return arn


def _read_json(uri: str) -> dict[str, Any]:
    import boto3

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def _write_json(uri: str, document: dict[str, Any]) -> None:
    import boto3

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=json.dumps(document, indent=2))
