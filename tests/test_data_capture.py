"""Data capture of endpoints: SageMaker's JSON-lines records, paths, encodings and sampling."""

from __future__ import annotations

import base64
import io
import json
import re
import time
import uuid
from datetime import datetime, timezone

import numpy as np
import pytest

from endpoint_helpers import (
    SKLEARN_IMAGE, create_endpoint, create_model, delete_endpoint, model_tarball, variant,
    wait_in_service,
)

BUCKET = "data-capture-tests"
ROLE = "arn:aws:iam::123456789012:role/ModelyardExecutionRole"
# Flushes happen at least every 10 s; generous for a loaded machine.
CAPTURE_TIMEOUT = 90


@pytest.fixture(scope="module")
def clients(server):
    sagemaker, s3 = server.client("sagemaker"), server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    return sagemaker, s3, server.client("sagemaker-runtime")


def capture_keys(s3, prefix: str) -> list[str]:
    keys, token = [], None
    while True:
        page = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix,
                                  **({"ContinuationToken": token} if token else {}))
        keys += [item["Key"] for item in page.get("Contents", [])]
        token = page.get("NextContinuationToken")
        if not token:
            return keys


def read_records(s3, prefix: str) -> list[dict]:
    records = []
    for key in capture_keys(s3, prefix):
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
        records += [json.loads(line) for line in body.splitlines()]
    return records


def wait_for_records(s3, prefix: str, count: int) -> list[dict]:
    deadline = time.monotonic() + CAPTURE_TIMEOUT
    while True:
        records = read_records(s3, prefix)
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


MARKER = "1000000"  # the first CSV field of the marker invocations below


def is_marker(record: dict) -> bool:
    return record["captureData"]["endpointInput"]["data"].split(",")[0] == MARKER


def records_before_a_marker(s3, prefix: str, send_marker) -> list[dict]:
    """For sampled capture, whose count is unknown: send marker invocations one at a time
    (each may be sampled out) until one is captured. Capture is written first in, first out,
    so by then every earlier invocation's record is in S3, however slow the machine.
    Returns the records without the markers'."""
    deadline = time.monotonic() + CAPTURE_TIMEOUT
    while True:
        send_marker()
        retry = time.monotonic() + 8.0  # over one flush interval (5 s): sampled out, likely
        while time.monotonic() < retry:
            records = read_records(s3, prefix)
            if any(is_marker(record) for record in records):
                return [record for record in records if not is_marker(record)]
            assert time.monotonic() < deadline, "no marker invocation was ever captured"
            time.sleep(0.5)


KEY = re.compile(r"^capture/full/{endpoint}/AllTraffic/(\d{{4}})/(\d{{2}})/(\d{{2}})/(\d{{2}})/"
                 r"\d{{2}}-\d{{2}}-\d{{3}}-[0-9a-f-]{{36}}\.jsonl$")


def test_capture_at_100_percent_writes_every_invocation_in_sagemakers_format(clients):
    sagemaker, s3, runtime = clients
    model = create_model(sagemaker, s3, BUCKET, f"capture-full-{uuid.uuid4().hex[:6]}", 2)
    name = f"capture-full-{uuid.uuid4().hex[:6]}"
    capture = {
        "EnableCapture": True, "InitialSamplingPercentage": 100,
        "DestinationS3Uri": f"s3://{BUCKET}/capture/full",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"],
                                     "JsonContentTypes": ["application/json"]},
    }
    description = create_endpoint(sagemaker, name, [variant("AllTraffic", model, 1.0)], capture)
    try:
        summary = description["DataCaptureConfig"]
        assert summary["EnableCapture"] is True
        assert summary["CurrentSamplingPercentage"] == 100
        assert summary["DestinationS3Uri"] == f"s3://{BUCKET}/capture/full"
        started = datetime.now(timezone.utc).replace(microsecond=0)
        sent = []
        for index in range(20):
            body = json.dumps([[index, 1]])
            runtime.invoke_endpoint(EndpointName=name, Body=body, ContentType="application/json",
                                    Accept="application/json", InferenceId=f"inference-{index}")
            sent.append(("application/json", body, f"inference-{index}"))
        runtime.invoke_endpoint(EndpointName=name, Body="4,5\n", ContentType="text/csv",
                                Accept="application/json")
        sent.append(("text/csv", "4,5\n", None))
        buffer = io.BytesIO()
        np.save(buffer, np.array([[7.0, 8.0]], dtype=np.float32))
        npy = buffer.getvalue()
        runtime.invoke_endpoint(EndpointName=name, Body=npy, ContentType="application/x-npy",
                                Accept="application/json")
        sent.append(("application/x-npy", npy, None))

        prefix = f"capture/full/{name}/"
        records = wait_for_records(s3, prefix, len(sent))
        assert len(records) == len(sent)
        pattern = re.compile(KEY.pattern.format(endpoint=name))
        for key in capture_keys(s3, prefix):
            match = pattern.match(key)
            assert match, key
            hour = datetime(*map(int, match.groups()), tzinfo=timezone.utc)
            assert abs((hour - started.replace(minute=0, second=0)).total_seconds()) <= 3600

        by_input = {record["captureData"]["endpointInput"]["data"]: record for record in records}
        event_ids = set()
        for content_type, body, inference_id in sent:
            if content_type == "application/x-npy":
                record = by_input[base64.b64encode(body).decode()]
                assert record["captureData"]["endpointInput"]["encoding"] == "BASE64"
            else:
                record = by_input[body]
                encoding = "CSV" if content_type == "text/csv" else "JSON"
                assert record["captureData"]["endpointInput"]["encoding"] == encoding
            assert set(record) == {"captureData", "eventMetadata", "eventVersion"}
            assert record["eventVersion"] == "0"
            data = record["captureData"]
            assert set(data) == {"endpointInput", "endpointOutput"}
            assert data["endpointInput"]["observedContentType"] == content_type
            assert data["endpointInput"]["mode"] == "INPUT"
            output = data["endpointOutput"]
            assert output["mode"] == "OUTPUT"
            assert output["observedContentType"] == "application/json"
            assert output["encoding"] == "JSON"
            assert json.loads(output["data"])[0][1] == {"text/csv": 10.0, "application/json": 2.0,
                                                        "application/x-npy": 16.0}[content_type]
            metadata = record["eventMetadata"]
            assert set(metadata) == ({"eventId", "inferenceTime", "inferenceId"} if inference_id
                                     else {"eventId", "inferenceTime"})
            if inference_id:
                assert metadata["inferenceId"] == inference_id
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", metadata["inferenceTime"])
            when = datetime.strptime(metadata["inferenceTime"], "%Y-%m-%dT%H:%M:%SZ") \
                .replace(tzinfo=timezone.utc)
            assert started <= when <= datetime.now(timezone.utc)
            uuid.UUID(metadata["eventId"])
            event_ids.add(metadata["eventId"])
        assert len(event_ids) == len(sent)
    finally:
        delete_endpoint(sagemaker, name)


def test_capture_at_50_percent_through_the_sdk_input_only(clients):
    """Deployed by the SDK's Model with its DataCaptureConfig; read back with its S3Downloader."""
    from sagemaker.model import Model
    from sagemaker.model_monitor import DataCaptureConfig
    from sagemaker.predictor import Predictor
    from sagemaker.s3 import S3Downloader
    from sagemaker.serializers import CSVSerializer

    sagemaker, s3, _ = clients
    name = f"capture-half-{uuid.uuid4().hex[:6]}"
    s3.put_object(Bucket=BUCKET, Key=f"{name}/model.tar.gz", Body=model_tarball())
    destination = f"s3://{BUCKET}/capture/half"
    model = Model(image_uri=SKLEARN_IMAGE, model_data=f"s3://{BUCKET}/{name}/model.tar.gz",
                  role=ROLE, env={"SAGEMAKER_PROGRAM": "inference.py",
                                  "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                                  "MODEL_FACTOR": "1"}, name=name)
    model.deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=name,
                 wait=False, data_capture_config=DataCaptureConfig(
                     True, sampling_percentage=50, destination_s3_uri=destination,
                     capture_options=["REQUEST"]))
    try:
        description = wait_in_service(sagemaker, name)
        assert description["DataCaptureConfig"]["CurrentSamplingPercentage"] == 50
        predictor = Predictor(name, serializer=CSVSerializer())
        calls = 400
        for index in range(calls):
            predictor.predict([index, 1])
        records = records_before_a_marker(s3, f"capture/half/{name}/",
                                          lambda: predictor.predict([int(MARKER), 1]))
        # Binomial(400, 0.5): mean 200, sd 10; +-60 is six standard deviations.
        assert 140 <= len(records) <= 260, len(records)
        for record in records:
            assert set(record["captureData"]) == {"endpointInput"}  # Input only
            assert record["captureData"]["endpointInput"]["encoding"] == "CSV"
        seen = {record["captureData"]["endpointInput"]["data"] for record in records}
        assert len(seen) == len(records)  # distinct invocations, none written twice
        # The SDK's own S3 helpers list and read the files.
        uris = S3Downloader.list(f"{destination}/{name}/AllTraffic")
        assert uris and all(uri.endswith(".jsonl") for uri in uris)
        lines = [line for uri in uris for line in S3Downloader.read_file(uri).splitlines()
                 if not is_marker(json.loads(line))]
        assert len(lines) == len(records)
        assert all(json.loads(line)["eventVersion"] == "0" for line in lines)
    finally:
        delete_endpoint(sagemaker, name)


def test_capture_and_metrics_are_flushed_when_the_server_stops(tmp_path):
    """Records younger than a flush interval are written on a clean stop (SIGTERM)."""
    from server_process import ServerProcess

    from modelyard.hosting.metrics import NAMESPACE
    from modelyard.store.cloudwatch_metrics import CloudWatchMetricStore
    from modelyard.store.db import Database

    own = ServerProcess.start(tmp_path / "data")
    try:
        sagemaker, s3 = own.client("sagemaker"), own.client("s3")
        runtime = own.client("sagemaker-runtime")
        s3.create_bucket(Bucket=BUCKET)
        create_model(sagemaker, s3, BUCKET, "stop-model", 2)
        create_endpoint(sagemaker, "stop-capture", [variant("AllTraffic", "stop-model", 1.0)], {
            "EnableCapture": True, "InitialSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{BUCKET}/stop",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]})
        for index in range(3):
            runtime.invoke_endpoint(EndpointName="stop-capture", Body=json.dumps([[index, 0]]),
                                    ContentType="application/json")
    finally:
        own.stop()
    assert own.process.returncode == 0
    url = own.extra_env.get("MODELYARD_DATABASE_URL") or \
        f"sqlite:///{own.data_dir / 'metadata.sqlite3'}"
    database = Database(url)
    try:
        sets = CloudWatchMetricStore(database).query(
            NAMESPACE, "Invocations", {"EndpointName": "stop-capture", "VariantName": "AllTraffic"})
        assert sum(s.sum for s in sets) == 3
    finally:
        database.close()
    own = ServerProcess.start(tmp_path / "data")
    try:
        s3 = own.client("s3")
        records = [json.loads(line)
                   for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="stop/")["Contents"]
                   for line in s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
                   .decode().splitlines()]
        assert len(records) == 3
        # No CaptureContentTypeHeader: every payload is base64.
        assert {r["captureData"]["endpointInput"]["encoding"] for r in records} == {"BASE64"}
        decoded = sorted(base64.b64decode(r["captureData"]["endpointInput"]["data"]).decode()
                         for r in records)
        assert decoded == [json.dumps([[index, 0]]) for index in range(3)]
    finally:
        own.stop()
