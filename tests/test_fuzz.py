"""Malformed requests never get a 5xx: a seeded fuzz run over every implemented operation.

Requests are random but reproducible (``FUZZ_SEED``, ``FUZZ_REQUESTS``), built from
botocore's models in each operation's wire protocol, signed with botocore's SigV4 signer
so that they get past authentication into the codecs and handlers. The run has its own
server and data directory, deleted afterwards; requests that could start real work
(``Create*Job``, ``StartPipelineExecution``, ...) always fail validation.
"""

from __future__ import annotations

import http.client
import os
import random
import re
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from fuzz_requests import RequestMaker, WireRequest, service_model
from server_process import ACCESS_KEY, REGION, SECRET_KEY, ServerProcess

from modelyard.services import OPERATIONS

SEED = int(os.environ.get("FUZZ_SEED", "20261201"))
REQUESTS = int(os.environ.get("FUZZ_REQUESTS", "4000"))
_CREDENTIALS = Credentials(ACCESS_KEY, SECRET_KEY)
_NOT_IMPLEMENTED = re.compile(r"does not implement (\S+) operation (\w+)")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    # FUZZ_KEEP_DATA=<directory> keeps the data (and the server log) there for reading.
    kept = os.environ.get("FUZZ_KEEP_DATA")
    data_dir = Path(kept) if kept else tmp_path_factory.mktemp("fuzz-data")
    server = ServerProcess.start(data_dir)
    try:
        yield server
    finally:
        server.stop()
        if not kept:
            shutil.rmtree(data_dir, ignore_errors=True)


def _known_resources(server: ServerProcess) -> dict[str, list[str]]:
    """Real resources, so that some requests get past "not found" into the handlers."""
    s3 = server.client("s3")
    s3.create_bucket(Bucket="fuzz-bucket")
    s3.put_object(Bucket="fuzz-bucket", Key="in/data.csv", Body=b"a,b\n1,2\n")
    upload = s3.create_multipart_upload(Bucket="fuzz-bucket", Key="big")["UploadId"]
    logs = server.client("logs")
    logs.create_log_group(logGroupName="fuzz-1")
    logs.create_log_stream(logGroupName="fuzz-1", logStreamName="fuzz-2")
    sagemaker = server.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="fuzz-1")
    return {"Bucket": ["fuzz-bucket"], "Key": ["in/data.csv", "big"], "UploadId": [upload],
            "CopySource": ["fuzz-bucket/in/data.csv"], "logGroupName": ["fuzz-1"],
            "logStreamName": ["fuzz-2"], "ModelPackageGroupName": ["fuzz-1"],
            "RoleArn": ["arn:aws:iam::123456789012:role/fuzz-role"]}


def _targets() -> list[tuple[str, str]]:
    targets = []
    for service, handlers in sorted(OPERATIONS.items()):
        model = service_model(service)
        targets += [(service, name) for name in sorted(handlers)
                    if name in model.operation_names]
    return targets


class Sender:
    """Signs and sends ``WireRequest``s, one kept-alive connection per thread."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.local = threading.local()

    def send(self, request: WireRequest) -> tuple[int, bytes]:
        target = request.path + (f"?{request.query}" if request.query else "")
        signed = AWSRequest(method=request.method, url=self.server.endpoint_url + target,
                            data=request.body, headers=dict(request.headers))
        signer = S3SigV4Auth if request.protocol == "rest-xml" else SigV4Auth
        signer(_CREDENTIALS, request.signing_name, REGION).add_auth(signed)
        headers = dict(signed.headers.items())
        for attempt in range(2):
            connection = self._connection()
            try:
                connection.request(request.method, target, body=request.body, headers=headers)
                response = connection.getresponse()
                body = response.read()
            except (http.client.HTTPException, OSError) as error:
                self._drop()
                if attempt:  # the server dropped the connection twice: report it
                    return 0, f"no answer: {error!r}".encode()
                continue
            if response.getheader("connection", "").lower() == "close":
                self._drop()
            return response.status, body
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        if getattr(self.local, "connection", None) is None:
            self.local.connection = http.client.HTTPConnection("127.0.0.1", self.server.port,
                                                               timeout=60)
        return self.local.connection

    def _drop(self) -> None:
        connection = getattr(self.local, "connection", None)
        if connection is not None:
            connection.close()
        self.local.connection = None


def _allowed(request: WireRequest, status: int, body: bytes) -> bool:
    """Below 500, or NotImplemented (501) for an operation modelyard does not implement."""
    if 0 < status < 500:
        return True
    match = _NOT_IMPLEMENTED.search(body.decode("utf-8", "replace"))
    return status == 501 and match is not None and \
        match[2] not in OPERATIONS.get(match[1], {})


def test_malformed_requests_never_get_a_5xx_and_the_server_keeps_answering(fuzz_server):
    known = _known_resources(fuzz_server)
    rng = random.Random(SEED)
    maker = RequestMaker(rng, known)
    targets = _targets()
    requests = [maker.make(*rng.choice(targets)) for _ in range(REQUESTS)]
    # Every implemented operation at least once, whatever the seed.
    requests += [maker.make(service, name) for service, name in targets]
    sender = Sender(fuzz_server)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(sender.send, requests))
    elapsed = time.monotonic() - started

    failures = [(request, status, body[:300]) for request, (status, body)
                in zip(requests, answers) if not _allowed(request, status, body)]
    statuses = Counter(status for status, _ in answers)
    protocols = Counter(request.protocol for request in requests)
    summary = (f"{len(requests)} requests in {elapsed:.1f}s, statuses {dict(statuses)}, "
               f"protocols {dict(protocols)}")
    print(summary)
    assert not failures, summary + "\n" + "\n".join(
        f"{status} {request.service}.{request.operation} ({request.mutation}): {body!r}"
        for request, status, body in failures[:20])
    assert set(protocols) == {"json", "query", "rest-xml", "cbor", "rest-json"}, summary
    assert statuses[200] > 50, summary  # some requests were valid enough to succeed

    # Still serving: the health check and a real call of each protocol's kind.
    assert fuzz_server.wait_until_healthy(timeout=60) is None
    s3 = fuzz_server.client("s3")
    s3.create_bucket(Bucket="after-fuzz")
    s3.put_object(Bucket="after-fuzz", Key="after", Body=b"still here")
    assert s3.get_object(Bucket="after-fuzz", Key="after")["Body"].read() == b"still here"
    sagemaker = fuzz_server.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="after-fuzz")
    described = sagemaker.describe_model_package_group(ModelPackageGroupName="after-fuzz")
    assert described["ModelPackageGroupStatus"] == "Completed"
    assert fuzz_server.client("sts").get_caller_identity()["Account"]


# --- the cases the fuzzer found, one by one ---------------------------------------------


def _send(server: ServerProcess, request: WireRequest) -> tuple[int, bytes]:
    return Sender(server).send(request)


def _json_request(body: bytes, operation: str = "ListModelPackageGroups") -> WireRequest:
    return WireRequest("json", "sagemaker", operation, "sagemaker", "POST", "/",
                       headers={"Content-Type": "application/x-amz-json-1.1",
                                "X-Amz-Target": f"SageMaker.{operation}"}, body=body)


@pytest.mark.parametrize("body, detail", [
    (b'{"a":' * 5000, b"levels deep"),                            # truncated and deep
    (b"[" * 3000 + b"]" * 3000, b"levels deep"),                  # deep and valid
    (b'{"NameContains":' + b'{"x":' * 500 + b"1" + b"}" * 501, b"levels deep"),
    (b'{"MaxResults":' + b"9" * 5000 + b"}", b"not valid JSON"),  # too many digits
    (b'{"NameContains":"\\ud800"}', b"surrogate"),
    (b'{"NameContains":"\xed\xa0\x80"}', b"surrogate"),           # the same, as raw bytes
])
def test_malformed_json_is_a_serialization_exception(server, body, detail):
    status, answer = _send(server, _json_request(body))
    assert status == 400, answer
    assert b'"SerializationException"' in answer and detail in answer


@pytest.mark.parametrize("service, target, body", [
    # beyond any integer AWS holds (SQLite cannot hold it either)
    ("logs", "Logs_20140328.GetLogEvents",
     b'{"logGroupName":"g","logStreamName":"s","startTime":%d}' % 2**70),
    # a timestamp too large for a float, and one after the year 9999
    ("sagemaker", "SageMaker.ListModelPackageGroups", b'{"CreationTimeAfter":%d}' % 10**400),
    ("sagemaker", "SageMaker.ListModelPackageGroups", b'{"CreationTimeAfter":1e20}'),
])
def test_numbers_out_of_range_are_validation_errors(server, service, target, body):
    request = WireRequest("json", service, target.rpartition(".")[2], service, "POST", "/",
                          headers={"Content-Type": "application/x-amz-json-1.1",
                                   "X-Amz-Target": target}, body=body)
    status, answer = _send(server, request)
    assert status == 400 and b"ValidationException" in answer, answer


def test_malformed_cbor_is_a_serialization_exception(server):
    import cbor2

    # Too deep, bad UTF-8, truncated, not a map.
    for body in (b"\x81" * 5000 + b"\x01", b"\xa1\x63\xff\xfe\xfd\x01", b"\xa2\x61", b"\x81\x01"):
        request = WireRequest("cbor", "cloudwatch", "PutMetricData", "monitoring", "POST",
                              "/service/GraniteServiceVersion20100801/operation/PutMetricData",
                              headers={"smithy-protocol": "rpc-v2-cbor",
                                       "Content-Type": "application/cbor"}, body=body)
        status, answer = _send(server, request)
        assert status == 400, answer
        assert cbor2.loads(answer)["__type"] == "SerializationException"


def test_control_characters_never_reach_response_headers(server, s3, unique_name):
    s3.create_bucket(Bucket=unique_name)
    s3.put_object(Bucket=unique_name, Key="k", Body=b"x")
    request = WireRequest("rest-xml", "s3", "GetObject", "s3", "GET", f"/{unique_name}/k",
                          "response-content-type=text%2Fplain%0B%01x", {}, b"")
    status, answer = _send(server, request)
    assert (status, answer) == (200, b"x")


def test_long_query_lists_are_read_in_linear_time(server):
    form = "Action=GetCallerIdentity&Version=2011-06-15&" + "&".join(
        f"Tags.member.{index}.Key=k" for index in range(1, 20_000))
    request = WireRequest("query", "sts", "GetCallerIdentity", "sts", "POST", "/",
                          headers={"Content-Type": "application/x-www-form-urlencoded"},
                          body=form.encode())
    started = time.monotonic()
    status, answer = _send(server, request)
    assert status == 200, answer
    assert time.monotonic() - started < 10  # quadratic: minutes
