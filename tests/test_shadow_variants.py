"""Shadow variants: copies of live requests to a model that never answers the caller.

One production variant (a model that doubles its input) and one shadow (a model that
triples it, or one that hangs and then dies): the caller's answers all come from
production, the shadow's latency and errors are in CloudWatch under its VariantName, data
capture records its outputs marked ``invocationSource: ShadowExperiment``, and a crashing,
slow shadow neither slows nor fails a call, its surplus copies dropped, not queued.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from datetime import datetime, timedelta, timezone

import botocore.config
import pytest
from botocore.exceptions import ClientError

from endpoint_helpers import (
    SKLEARN_IMAGE, create_model, delete_endpoint, variant, wait_in_service,
)

BUCKET = "shadow-variant-tests"
ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"
PAYLOAD = json.dumps([[1.0, 2.0]])
TIMEOUT = 90  # metrics flush every 10 s, capture every 5 s; generous for a loaded machine
GOOD_CALLS = 30
TROUBLED_CALLS = 80  # the first 40 must go out within CRASH_AFTER s (0.5 s on 2 cores)
# Long enough that, on a loaded machine, the first 40 calls go out before the shadow crashes
# and a slow call (< CRASH_AFTER / 2) is told apart from one held by the shadow.
CRASH_AFTER = 6.0

# Holds each request CRASH_AFTER seconds, then kills its own model server.
CRASHING_PY = '''
import os
import time


def model_fn(model_dir):
    return None


def predict_fn(data, model):
    time.sleep(float(os.environ["CRASH_AFTER"]))
    os._exit(3)
'''


@pytest.fixture(scope="module")
def clients(server):
    sagemaker, s3 = server.client("sagemaker"), server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    return sagemaker, s3, server.client("sagemaker-runtime"), server.client("cloudwatch")


@pytest.fixture(scope="module")
def models(clients):
    sagemaker, s3, _, _ = clients
    suffix = uuid.uuid4().hex[:6]
    production = create_model(sagemaker, s3, BUCKET, f"shadow-prod-{suffix}", 2)
    candidate = create_model(sagemaker, s3, BUCKET, f"shadow-cand-{suffix}", 3)
    crashing = f"shadow-crash-{suffix}"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(CRASHING_PY)
        archive.addfile(info, io.BytesIO(CRASHING_PY.encode()))
    s3.put_object(Bucket=BUCKET, Key=f"{crashing}/model.tar.gz", Body=buffer.getvalue())
    sagemaker.create_model(ModelName=crashing, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/{crashing}/model.tar.gz",
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "CRASH_AFTER": str(CRASH_AFTER),
                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}})
    return {"production": production, "candidate": candidate, "crashing": crashing}


@pytest.fixture(scope="module")
def endpoints(clients, models):
    """Both endpoints are created first so their model servers start together."""
    sagemaker = clients[0]
    suffix = uuid.uuid4().hex[:6]
    good, troubled = f"shadow-good-{suffix}", f"shadow-troubled-{suffix}"
    sagemaker.create_endpoint_config(
        EndpointConfigName=good,
        ProductionVariants=[variant("Production", models["production"], 1.0)],
        ShadowProductionVariants=[variant("Shadow", models["candidate"], 1.0)],
        DataCaptureConfig={
            "EnableCapture": True, "InitialSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{BUCKET}/capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]}})
    sagemaker.create_endpoint_config(
        EndpointConfigName=troubled,
        ProductionVariants=[variant("Production", models["production"], 1.0)],
        ShadowProductionVariants=[variant("Troubled", models["crashing"], 1.0)])
    for name in (good, troubled):
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    for name in (good, troubled):
        wait_in_service(sagemaker, name)
    yield good, troubled
    for name in (good, troubled):
        delete_endpoint(sagemaker, name)


def invoke(runtime, endpoint: str) -> tuple[str, list]:
    response = runtime.invoke_endpoint(EndpointName=endpoint, Body=PAYLOAD,
                                       ContentType="application/json",
                                       Accept="application/json")
    return response["InvokedProductionVariant"], json.loads(response["Body"].read())


def metric_sum(cloudwatch, endpoint: str, variant_name: str, metric: str,
               statistic: str = "Sum") -> float:
    now = datetime.now(timezone.utc)
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/SageMaker", MetricName=metric, Period=60, Statistics=[statistic],
        StartTime=now - timedelta(hours=1), EndTime=now + timedelta(hours=1),
        Dimensions=[{"Name": "EndpointName", "Value": endpoint},
                    {"Name": "VariantName", "Value": variant_name}])["Datapoints"]
    return sum(point[statistic] for point in points)


def wait_for(condition, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def traffic(clients, endpoints) -> dict:
    """Calls to both endpoints, first (their metrics and capture then flush together)."""
    runtime = clients[2]
    good, troubled = endpoints
    answers = [invoke(runtime, good) for _ in range(GOOD_CALLS)]
    answers.append(invoke(runtime, troubled))  # a model server's first answer is slow
    slowest = 0.0
    for _ in range(TROUBLED_CALLS):
        started = time.monotonic()
        answers.append(invoke(runtime, troubled))
        slowest = max(slowest, time.monotonic() - started)
    return {"answers": answers, "slowest": slowest}


def test_the_caller_gets_only_production_answers(clients, endpoints, traffic):
    sagemaker, _, runtime, _ = clients
    good, _ = endpoints
    # Never the shadow's x3, nor an error from the crashing shadow.
    assert set(map(repr, traffic["answers"])) == {repr(("Production", [[2.0, 4.0]]))}
    description = sagemaker.describe_endpoint(EndpointName=good)
    assert [v["VariantName"] for v in description["ProductionVariants"]] == ["Production"]
    shadow = description["ShadowProductionVariants"]
    assert [(v["VariantName"], v["CurrentInstanceCount"], v["CurrentWeight"])
            for v in shadow] == [("Shadow", 1, 1.0)]
    config = sagemaker.describe_endpoint_config(EndpointConfigName=good)
    assert config["ShadowProductionVariants"][0]["VariantName"] == "Shadow"
    # A shadow cannot be targeted: it is not a production variant.
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName=good, Body=PAYLOAD, ContentType="application/json",
                                TargetVariant="Shadow")
    assert "not a production variant" in caught.value.response["Error"]["Message"]


def test_shadow_metrics_and_capture(clients, endpoints, traffic):
    _, s3, _, cloudwatch = clients
    good, _ = endpoints
    # Every request was copied (equal weights): the shadow's invocations and latency are
    # in CloudWatch under its own VariantName, next to production's.
    wait_for(lambda: metric_sum(cloudwatch, good, "Shadow", "Invocations") >= GOOD_CALLS,
             "the shadow's Invocations")
    assert metric_sum(cloudwatch, good, "Shadow", "Invocation5XXErrors") == 0
    assert metric_sum(cloudwatch, good, "Shadow", "ModelLatency", "SampleCount") >= GOOD_CALLS
    assert metric_sum(cloudwatch, good, "Production", "Invocations") >= GOOD_CALLS

    # Data capture: the shadow's outputs, marked, under the shadow's variant name.
    def shadow_records() -> list[dict]:
        records = []
        page = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"capture/{good}/Shadow/")
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read().decode()
            records += [json.loads(line) for line in body.splitlines()]
        return records if len(records) >= GOOD_CALLS else []

    records = wait_for(shadow_records, "the shadow's capture records")
    for record in records:
        assert record["eventMetadata"]["invocationSource"] == "ShadowExperiment"
        assert json.loads(record["captureData"]["endpointOutput"]["data"]) == [[3.0, 6.0]]
        assert record["captureData"]["endpointInput"]["data"] == PAYLOAD
    production = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"capture/{good}/Production/")
    body = s3.get_object(Bucket=BUCKET, Key=production["Contents"][0]["Key"])["Body"].read()
    first = json.loads(body.decode().splitlines()[0])
    assert "invocationSource" not in first["eventMetadata"]
    assert json.loads(first["captureData"]["endpointOutput"]["data"]) == [[2.0, 4.0]]


def test_a_slow_crashing_shadow_never_affects_the_caller(clients, endpoints, traffic, server):
    cloudwatch = clients[3]
    _, troubled = endpoints
    # Each copy holds the shadow for seconds, then kills it: had a copy been on the request
    # path, calls would take that long or fail. (Generous bound for a loaded machine.)
    assert traffic["slowest"] < CRASH_AFTER / 2, traffic["slowest"]
    # The copies beyond its small queue were dropped, not piled up ...
    wait_for(lambda: f"shadow variant Troubled of endpoint {troubled} is behind"
             in server.log_path.read_text(errors="replace"), "the dropped-copies log line")
    # ... and its failures (the two it was answering, then the queued ones finding it
    # dead) are its 5XX errors; production had none.
    wait_for(lambda: metric_sum(cloudwatch, troubled, "Troubled",
                                "Invocation5XXErrors") >= 2, "the shadow's 5XX errors")
    # (each of the TROUBLED_CALLS + 1 requests was copied or dropped)
    assert metric_sum(cloudwatch, troubled, "Troubled", "Invocations") <= TROUBLED_CALLS
    assert metric_sum(cloudwatch, troubled, "Production", "Invocation5XXErrors") == 0


def test_bad_shadow_configs_get_sagemakers_errors(clients, models):
    sagemaker = clients[0]
    raw = boto3_client_without_validation(sagemaker)
    name = f"shadow-bad-{uuid.uuid4().hex[:6]}"
    production = variant("Production", models["production"], 1.0)
    cases = {
        "two shadows": dict(ProductionVariants=[production], ShadowProductionVariants=[
            variant("S1", models["candidate"], 1.0), variant("S2", models["candidate"], 1.0)]),
        "two production variants": dict(
            ProductionVariants=[production, variant("Other", models["production"], 1.0)],
            ShadowProductionVariants=[variant("S1", models["candidate"], 1.0)]),
        "shadow without production": dict(
            ProductionVariants=[],
            ShadowProductionVariants=[variant("S1", models["candidate"], 1.0)]),
        "repeated name": dict(ProductionVariants=[production], ShadowProductionVariants=[
            variant("Production", models["candidate"], 1.0)]),
        "missing model": dict(ProductionVariants=[production], ShadowProductionVariants=[
            variant("S1", "no-such-model", 1.0)]),
    }
    messages = {}
    for case, members in cases.items():
        with pytest.raises(ClientError) as caught:
            raw.create_endpoint_config(EndpointConfigName=name, **members)
        error = caught.value.response["Error"]
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400, case
        assert error["Code"] == "ValidationException", (case, error)
        messages[case] = error["Message"]
    assert "at most one shadow variant" in messages["two shadows"]
    assert "exactly one production variant" in messages["two production variants"]
    assert "productionvariants" in messages["shadow without production"].lower()
    assert "unique" in messages["repeated name"]
    assert "no-such-model" in messages["missing model"]
    with pytest.raises(ClientError):
        sagemaker.describe_endpoint_config(EndpointConfigName=name)  # nothing was created


def boto3_client_without_validation(client):
    """The same client, but sending what botocore would refuse locally (empty lists)."""
    import boto3

    return boto3.session.Session().client(
        "sagemaker", endpoint_url=client.meta.endpoint_url,
        region_name=client.meta.region_name,
        aws_access_key_id=client._request_signer._credentials.access_key,
        aws_secret_access_key=client._request_signer._credentials.secret_key,
        config=botocore.config.Config(parameter_validation=False,
                                      retries={"max_attempts": 1}))
