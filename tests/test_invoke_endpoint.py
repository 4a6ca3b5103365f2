"""SageMaker Runtime InvokeEndpoint against live endpoints: routing, errors, the SDK Predictor."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from botocore.exceptions import ClientError

from endpoint_helpers import create_endpoint, create_model, delete_endpoint, variant

PAYLOAD = json.dumps([[1.0, 2.0]])


@pytest.fixture(scope="module")
def clients(server):
    return server.client("sagemaker"), server.client("s3"), server.client("sagemaker-runtime")


@pytest.fixture(scope="module")
def weighted_endpoint(clients):
    """Variants Big (weight 4, model x2), Small (weight 1, model x3), Drained (weight 0, x5)."""
    sagemaker, s3, _ = clients
    bucket = "invoke-endpoint-tests"
    s3.create_bucket(Bucket=bucket)
    create_model(sagemaker, s3, bucket, "invoke-times-two", 2)
    create_model(sagemaker, s3, bucket, "invoke-times-three", 3)
    create_model(sagemaker, s3, bucket, "invoke-times-five", 5)
    name = "invoke-weighted"
    create_endpoint(sagemaker, name, [variant("Big", "invoke-times-two", 4.0),
                                      variant("Small", "invoke-times-three", 1.0),
                                      variant("Drained", "invoke-times-five", 0.0)])
    yield name
    delete_endpoint(sagemaker, name)


def invoke(runtime, endpoint: str, body: str | bytes = PAYLOAD, **extra):
    response = runtime.invoke_endpoint(EndpointName=endpoint, Body=body,
                                       ContentType="application/json",
                                       Accept="application/json", **extra)
    return response, json.loads(response["Body"].read())


def test_weights_split_traffic_and_weight_zero_gets_none(clients, weighted_endpoint):
    _, _, runtime = clients
    seen: Counter[str] = Counter()
    factors = {"Big": 2.0, "Small": 3.0}
    for _ in range(1000):
        response, answer = invoke(runtime, weighted_endpoint)
        chosen = response["InvokedProductionVariant"]
        seen[chosen] += 1
        # The variant header names the model that really answered.
        assert answer == [[1.0 * factors[chosen], 2.0 * factors[chosen]]]
    assert set(seen) == {"Big", "Small"}, seen
    assert abs(seen["Small"] / 1000 - 0.2) <= 0.05, seen


def test_target_variant_reaches_the_named_variant_even_at_weight_zero(clients, weighted_endpoint):
    _, _, runtime = clients
    for name, factor in (("Drained", 5.0), ("Small", 3.0)):
        for _ in range(5):
            response, answer = invoke(runtime, weighted_endpoint, TargetVariant=name)
            assert response["InvokedProductionVariant"] == name
            assert answer == [[factor, 2 * factor]]
    with pytest.raises(ClientError) as caught:
        invoke(runtime, weighted_endpoint, TargetVariant="Missing")
    error = caught.value.response
    assert error["Error"]["Code"] == "ValidationError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Missing" in error["Error"]["Message"] and "Drained" in error["Error"]["Message"]


def test_sdk_predictor_with_custom_attributes_and_inference_id(clients, weighted_endpoint):
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import JSONSerializer

    predictor = Predictor(weighted_endpoint, serializer=JSONSerializer(),
                          deserializer=JSONDeserializer())
    answer = predictor.predict([[1, 2], [3, 4]], target_variant="Small",
                               custom_attributes="trace=abc", inference_id="req-1")
    assert answer == [[3.0, 6.0], [9.0, 12.0]]


def test_a_model_that_raises_is_a_424_model_error_naming_the_cause(clients, weighted_endpoint):
    _, _, runtime = clients
    with pytest.raises(ClientError) as caught:
        invoke(runtime, weighted_endpoint, body=json.dumps([[-1.0, 2.0]]), TargetVariant="Big")
    error = caught.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 500
    assert "the model refuses negative inputs" in error["OriginalMessage"]
    assert "the model refuses negative inputs" in error["Error"]["Message"]
    assert error["LogStreamArn"].startswith("arn:aws:logs:")
    assert f"/aws/sagemaker/Endpoints/{weighted_endpoint}" in error["LogStreamArn"]
    assert ":log-stream:Big/" in error["LogStreamArn"]


def test_a_malformed_payload_is_a_clear_4xx(clients, weighted_endpoint):
    _, _, runtime = clients
    with pytest.raises(ClientError) as caught:
        invoke(runtime, weighted_endpoint, body=b"[[1, 2", TargetVariant="Big")
    error = caught.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 400
    assert "could not be read" in error["OriginalMessage"]
    # The endpoint keeps serving after errors.
    response, answer = invoke(runtime, weighted_endpoint, TargetVariant="Big")
    assert answer == [[2.0, 4.0]]


def test_a_body_over_6_mb_is_refused(clients, weighted_endpoint):
    _, _, runtime = clients
    with pytest.raises(ClientError) as caught:
        invoke(runtime, weighted_endpoint, body=b"1" * (7 * 1024 * 1024))
    error = caught.value.response
    assert error["Error"]["Code"] == "ValidationError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "6291456" in error["Error"]["Message"]


def test_unknown_endpoint_and_unsupported_options(clients, server):
    _, _, runtime = clients
    with pytest.raises(ClientError) as caught:
        invoke(runtime, "no-such-endpoint")
    error = caught.value.response
    assert error["Error"]["Code"] == "ValidationError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Message"].startswith("Endpoint no-such-endpoint of account ")
    assert error["Error"]["Message"].endswith(" not found.")
    with pytest.raises(ClientError) as caught:
        invoke(runtime, "no-such-endpoint", TargetModel="m.tar.gz")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "multi-model" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint_async(EndpointName="no-such-endpoint",
                                      InputLocation="s3://b/k")
    assert caught.value.response["Error"]["Code"] == "NotImplemented"
    assert "InvokeEndpointAsync" in caught.value.response["Error"]["Message"]


def test_invocation_metrics_are_stored_per_minute_with_their_dimensions(clients, server,
                                                                        weighted_endpoint):
    """Read from the server's metric store (the CloudWatch API comes in a later issue)."""
    import time

    from modelyard.hosting.metrics import NAMESPACE
    from modelyard.store.cloudwatch_metrics import CloudWatchMetricStore
    from modelyard.store.db import Database

    _, _, runtime = clients
    started = time.time() - 60
    for _ in range(3):
        invoke(runtime, weighted_endpoint, TargetVariant="Drained")
    for body in (json.dumps([[-1.0, 1.0]]), b"[[1"):
        with pytest.raises(ClientError):
            invoke(runtime, weighted_endpoint, body=body, TargetVariant="Drained")
    url = server.extra_env.get("MODELYARD_DATABASE_URL") or \
        f"sqlite:///{server.data_dir / 'metadata.sqlite3'}"
    database = Database(url)
    store = CloudWatchMetricStore(database)
    dimensions = {"EndpointName": weighted_endpoint, "VariantName": "Drained"}

    def total(metric: str) -> tuple[float, float]:
        sets = store.query(NAMESPACE, metric, dimensions, start=started)
        return sum(s.sum for s in sets), sum(s.sample_count for s in sets)

    try:
        deadline = time.monotonic() + 90  # flushed every 10 s
        # Earlier tests' calls to this variant may be flushed already: wait for this
        # test's errors too, not only for a count.
        while (total("Invocations")[0] < 5 or total("Invocation5XXErrors")[0] < 1
               or total("Invocation4XXErrors")[0] < 1) and time.monotonic() < deadline:
            time.sleep(0.5)
        invocations, _ = total("Invocations")
        assert invocations >= 5
        assert total("Invocation5XXErrors")[0] >= 1  # the model raised: 500
        assert total("Invocation4XXErrors")[0] >= 1  # the malformed payload: 400
        latency = store.query(NAMESPACE, "ModelLatency", dimensions, start=started)
        assert latency and all(s.unit == "Microseconds" for s in latency)
        assert all(0 < s.minimum <= s.maximum < 60e6 for s in latency)
        overhead = store.query(NAMESPACE, "OverheadLatency", dimensions, start=started)
        assert overhead and overhead[0].unit == "Microseconds"
        assert all(s.timestamp % 60 == 0 for s in latency + overhead)
        per_instance, count = total("InvocationsPerInstance")
        assert per_instance == count  # one instance: each invocation counts 1
        # The controller recorded how long the variant's instance took to pass /ping.
        setup = store.query(NAMESPACE, "ModelSetupTime", dimensions, start=0)
        assert setup and all(0 < s.minimum < 600e6 and s.unit == "Microseconds" for s in setup)
    finally:
        database.close()


def test_the_metric_store_keeps_statistic_sets(tmp_path):
    from modelyard.store.cloudwatch_metrics import CloudWatchMetricStore, MetricDatum
    from modelyard.store.db import Database

    database = Database(f"sqlite:///{tmp_path / 'metrics.sqlite3'}")
    database.upgrade_schema()
    try:
        store = CloudWatchMetricStore(database)
        store.put([
            MetricDatum("AWS/SageMaker", "ModelLatency", (("EndpointName", "e"),
                        ("VariantName", "v")), 120.0, 3, 30.0, 5.0, 15.0, "Microseconds"),
            MetricDatum.single("AWS/SageMaker", "ModelLatency",
                               {"VariantName": "v", "EndpointName": "e"}, 180.0, 7.0,
                               "Microseconds"),
            MetricDatum.single("AWS/SageMaker", "ModelLatency",
                               {"VariantName": "other", "EndpointName": "e"}, 180.0, 9.0),
        ])
        found = store.query("AWS/SageMaker", "ModelLatency",
                            {"EndpointName": "e", "VariantName": "v"})
        assert [(d.timestamp, d.sample_count, d.sum, d.minimum, d.maximum) for d in found] == \
            [(120.0, 3, 30.0, 5.0, 15.0), (180.0, 1, 7.0, 7.0, 7.0)]
        assert found[0].average == 10.0 and found[0].unit == "Microseconds"
        assert store.query("AWS/SageMaker", "ModelLatency",
                           {"EndpointName": "e", "VariantName": "v"}, start=150.0)[0].sum == 7.0
        assert store.query("AWS/SageMaker", "ModelLatency", {"EndpointName": "e"}) == []
    finally:
        database.close()
