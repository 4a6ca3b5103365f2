"""Lambda through boto3: real zips, real sandboxed workers calling back into modelyard."""

from __future__ import annotations

import base64
import json
import os
import time

import botocore.exceptions
import pytest

from lambda_helpers import ROLE, create_function, make_zip
from server_process import ServerProcess

CALLS_BACK = """
    import logging
    import os
    import uuid
    import boto3

    CALLS = 0
    ENVIRONMENT = uuid.uuid4().hex  # one per execution environment

    def handler(event, context):
        global CALLS
        CALLS += 1
        print("handling", event["ticket"], "in", context.function_name)
        logging.getLogger().warning("ticket %s", event["ticket"])
        pipelines = boto3.client("sagemaker").list_pipelines()["PipelineSummaries"]
        buckets = [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
        return {
            "ticket": event["ticket"], "calls": CALLS, "environment": ENVIRONMENT,
            "pipelines": len(pipelines), "bucket_seen": event["bucket"] in buckets,
            "colour": os.environ.get("COLOUR"), "request_id": context.aws_request_id,
            "memory": context.memory_limit_in_mb, "remaining": context.get_remaining_time_in_millis(),
            "group": context.log_group_name, "region": os.environ["AWS_REGION"],
            "sees_server_data": os.path.exists(event["server_data"]),
            "task_root": os.environ["LAMBDA_TASK_ROOT"], "cwd": os.getcwd(),
        }
"""


@pytest.fixture()
def lam(server):
    return server.client("lambda", read_timeout=120)


def wait_for(predicate, timeout: float = 120.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def call(lam, name: str, event: dict, **options) -> tuple[dict, object]:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode(), **options)
    return response, json.loads(response["Payload"].read() or b"null")


def test_function_calls_back_into_modelyard_with_tail_logs_and_warm_reuse(lam, server, s3, unique_name):
    s3.create_bucket(Bucket=unique_name)
    created = create_function(lam, unique_name, CALLS_BACK, MemorySize=256,
                              Environment={"Variables": {"COLOUR": "teal"}})
    assert created["State"] == "Active" and created["LastUpdateStatus"] == "Successful"
    assert created["Version"] == "$LATEST" and created["Timeout"] == 3

    identity = str(server.data_dir.resolve() / "identity.json")
    assert os.path.exists(identity)
    response, body = call(lam, unique_name, {"ticket": "T-1", "bucket": unique_name,
                                             "server_data": identity}, LogType="Tail")
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert body["ticket"] == "T-1" and body["bucket_seen"] is True
    assert body["colour"] == "teal" and body["memory"] == "256" and body["region"] == "us-east-1"
    assert body["group"] == f"/aws/lambda/{unique_name}" and 0 < body["remaining"] <= 3000
    # The job sandbox: the server's data directory (credentials, metadata) is out of sight.
    assert body["sees_server_data"] is False and body["cwd"] == body["task_root"]
    tail = base64.b64decode(response["LogResult"]).decode()
    assert f"START RequestId: {body['request_id']} Version: $LATEST" in tail
    assert "handling T-1 in " + unique_name in tail
    assert f"END RequestId: {body['request_id']}" in tail
    assert f"REPORT RequestId: {body['request_id']}\tDuration: " in tail
    assert "Memory Size: 256 MB" in tail
    assert "[WARNING]\t" in tail and f"\t{body['request_id']}\tticket T-1" in tail

    # Warm: the same process answers, its module state kept.
    _, second = call(lam, unique_name, {"ticket": "T-2", "bucket": unique_name,
                                        "server_data": identity})
    _, third = call(lam, unique_name, {"ticket": "T-3", "bucket": unique_name,
                                       "server_data": identity})
    assert (second["calls"], third["calls"]) == (2, 3)
    assert body["environment"] == second["environment"] == third["environment"]

    logs = server.client("logs")

    def logged() -> list[str]:
        try:
            events = logs.filter_log_events(logGroupName=f"/aws/lambda/{unique_name}")["events"]
        except logs.exceptions.ResourceNotFoundException:
            return []  # the group appears with the first flush, within half a second
        return [event["message"] for event in events]

    def three_reports() -> list[str] | None:
        found = logged()
        return found if sum(m.startswith("REPORT RequestId:") for m in found) >= 3 else None

    messages = wait_for(three_reports)
    assert any(m.startswith(f"handling T-1 in {unique_name}") for m in messages)
    assert any(m.startswith("handling T-3") for m in messages)
    assert sum(m.startswith("START RequestId:") for m in messages) == 3
    streams = logs.describe_log_streams(logGroupName=f"/aws/lambda/{unique_name}")["logStreams"]
    assert streams and "[$LATEST]" in streams[0]["logStreamName"]


def test_handler_errors_come_back_in_aws_shape(lam, unique_name):
    create_function(lam, unique_name, """
        def handler(event, context):
            if event.get("fail"):
                raise ValueError("ticket " + event["fail"] + " is malformed")
            return {"ok": True}
    """)
    response, body = call(lam, unique_name, {"fail": "T-9"})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "ticket T-9 is malformed"
    assert isinstance(body["stackTrace"], list) and "app.py" in body["stackTrace"][-1]
    assert body["requestId"]
    # The worker survives a handled exception and serves the next call.
    response, body = call(lam, unique_name, {})
    assert "FunctionError" not in response and body == {"ok": True}

    missing_module = unique_name + "-m"
    create_function(lam, missing_module, "def handler(e, c):\n    return 1\n", handler="nope.handler")
    response, body = call(lam, missing_module, {})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'nope'" in body["errorMessage"]

    missing_function = unique_name + "-f"
    create_function(lam, missing_function, "def handler(e, c):\n    return 1\n", handler="app.other")
    response, body = call(lam, missing_function, {})
    assert body["errorType"] == "Runtime.HandlerNotFound"
    assert body["errorMessage"] == "Handler 'other' missing on module 'app'"


def test_timeout_kills_and_replaces_the_worker(lam, unique_name):
    create_function(lam, unique_name, """
        import time
        import uuid

        ENVIRONMENT = uuid.uuid4().hex

        def handler(event, context):
            time.sleep(event.get("sleep", 0))
            return {"environment": ENVIRONMENT}
    """, Timeout=1)
    _, first = call(lam, unique_name, {})
    response, body = call(lam, unique_name, {"sleep": 30}, LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in body["errorMessage"]
    assert "Task timed out after 1.00 seconds" in base64.b64decode(response["LogResult"]).decode()
    response, after = call(lam, unique_name, {})
    assert "FunctionError" not in response
    assert after["environment"] != first["environment"]  # the timed-out worker was replaced


def test_bad_packages_and_runtimes_are_refused(lam, s3, unique_name):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        lam.create_function(FunctionName=unique_name, Runtime="python3.12", Role=ROLE,
                            Handler="app.handler", Code={"ZipFile": b"this is not a zip"})
    error = raised.value.response["Error"]
    assert error["Code"] == "InvalidParameterValueException"
    assert error["Message"] == ("Could not unzip uploaded file. Please check your file, then "
                                "try to upload again.")
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        create_function(lam, unique_name, "def handler(e, c):\n    return 1\n", runtime="nodejs20.x")
    error = raised.value.response["Error"]
    assert error["Code"] == "InvalidParameterValueException"
    assert "python3.10, python3.11, python3.12, python3.13" in error["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        create_function(lam, unique_name, "def handler(e, c):\n    return 1\n",
                        Environment={"Variables": {"AWS_REGION": "eu-west-1"}})
    assert "Reserved keys used in this request: AWS_REGION" in raised.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        create_function(lam, unique_name, "def handler(e, c):\n    return 1\n")
        lam.invoke(FunctionName=unique_name, Payload=b"{not json")
    assert raised.value.response["Error"]["Code"] == "InvalidRequestContentException"
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        lam.invoke(FunctionName=unique_name + "-absent", Payload=b"{}")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_crud_from_s3_code_updates_permissions_and_payload_limits(lam, s3, unique_name):
    s3.create_bucket(Bucket=unique_name)
    s3.put_object(Bucket=unique_name, Key="code/v1.zip", Body=make_zip(
        {"app.py": "import os\ndef handler(e, c):\n    return {'v': 1, 'mode': os.environ.get('MODE')}\n"}))
    created = lam.create_function(FunctionName=unique_name, Runtime="python3.11", Role=ROLE,
                                  Handler="app.handler", Description="first",
                                  Code={"S3Bucket": unique_name, "S3Key": "code/v1.zip"},
                                  Tags={"team": "ml"})
    arn = created["FunctionArn"]
    assert arn.endswith(f":function:{unique_name}")
    fetched = lam.get_function(FunctionName=arn)
    assert fetched["Configuration"]["Description"] == "first"
    assert fetched["Tags"] == {"team": "ml"}
    lam.tag_resource(Resource=arn, Tags={"stage": "prod"})
    lam.untag_resource(Resource=arn, TagKeys=["team"])
    assert lam.list_tags(Resource=arn)["Tags"] == {"stage": "prod"}
    assert fetched["Code"]["RepositoryType"] == "S3" and fetched["Code"]["Location"].startswith("http")
    partial = arn.split(":", 4)[4]  # 123456789012:function:name
    assert lam.get_function_configuration(FunctionName=partial)["CodeSha256"] == created["CodeSha256"]
    assert call(lam, f"{unique_name}:$LATEST", {})[1] == {"v": 1, "mode": None}

    updated = lam.update_function_code(FunctionName=unique_name, ZipFile=make_zip(
        {"app.py": "import os\ndef handler(e, c):\n    return {'v': 2, 'mode': os.environ.get('MODE')}\n"}))
    assert updated["CodeSha256"] != created["CodeSha256"]
    assert call(lam, unique_name, {})[1] == {"v": 2, "mode": None}
    lam.update_function_configuration(FunctionName=unique_name, Timeout=30,
                                      Environment={"Variables": {"MODE": "batch"}})
    assert call(lam, unique_name, {})[1] == {"v": 2, "mode": "batch"}
    assert lam.get_function_configuration(FunctionName=unique_name)["Timeout"] == 30

    lam.add_permission(FunctionName=unique_name, StatementId="events", Action="lambda:InvokeFunction",
                       Principal="events.amazonaws.com",
                       SourceArn="arn:aws:events:us-east-1:123456789012:rule/drift")
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        lam.add_permission(FunctionName=unique_name, StatementId="events",
                           Action="lambda:InvokeFunction", Principal="sns.amazonaws.com")
    assert raised.value.response["Error"]["Code"] == "ResourceConflictException"
    policy = json.loads(lam.get_policy(FunctionName=unique_name)["Policy"])
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Resource"] == arn
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"].endswith(":rule/drift")
    lam.remove_permission(FunctionName=unique_name, StatementId="events")
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        lam.get_policy(FunctionName=unique_name)
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"

    assert lam.invoke(FunctionName=unique_name, InvocationType="DryRun")["StatusCode"] == 204
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        lam.invoke(FunctionName=unique_name, Payload=b'"' + b"x" * (6 * 1024 * 1024) + b'"')
    assert raised.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        lam.invoke(FunctionName=unique_name, InvocationType="Event",
                   Payload=b'"' + b"x" * (256 * 1024) + b'"')
    assert raised.value.response["Error"]["Code"] == "RequestEntityTooLargeException"

    others = [f"{unique_name}-{index}" for index in range(3)]
    for other in others:
        create_function(lam, other, "def handler(e, c):\n    return 1\n")
    names, marker = [], None
    while True:
        page = lam.list_functions(MaxItems=2, **({"Marker": marker} if marker else {}))
        assert len(page["Functions"]) <= 2
        names += [item["FunctionName"] for item in page["Functions"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert {unique_name, *others} <= set(names)
    lam.delete_function(FunctionName=unique_name)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        lam.get_function(FunctionName=unique_name)
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


WRITES_OBJECT = """
    import json
    import time
    import boto3

    def handler(event, context):
        time.sleep(event.get("sleep", 0))
        key = event["key"] + "/" + context.aws_request_id + "/" + str(time.time())
        boto3.client("s3").put_object(Bucket=event["bucket"], Key=key, Body=json.dumps(event))
        if event.get("fail"):
            raise RuntimeError("failing on purpose")
        return "written"
"""


def test_event_invoke_is_delivered(lam, s3, unique_name):
    s3.create_bucket(Bucket=unique_name)
    create_function(lam, unique_name, WRITES_OBJECT)
    response = lam.invoke(FunctionName=unique_name, InvocationType="Event",
                          Payload=json.dumps({"bucket": unique_name, "key": "event"}).encode())
    assert response["StatusCode"] == 202
    assert response["Payload"].read() == b""
    listed = wait_for(lambda: s3.list_objects_v2(Bucket=unique_name, Prefix="event/").get("Contents"))
    assert len(listed) == 1


def test_event_invoke_survives_kill_9_and_failures_are_retried_twice(tmp_path):
    offset_file = tmp_path / "clock-offset"
    offset_file.write_text("0")
    server = ServerProcess.start(tmp_path / "data", MODELYARD_CLOCK_OFFSET_FILE=str(offset_file))
    try:
        lam, s3 = server.client("lambda"), server.client("s3")
        s3.create_bucket(Bucket="events")
        create_function(lam, "writer", WRITES_OBJECT, Timeout=30)
        # The handler waits two seconds before its effect: the kill comes first.
        lam.invoke(FunctionName="writer", InvocationType="Event",
                   Payload=json.dumps({"bucket": "events", "key": "survived", "sleep": 2}).encode())
        server.kill()
        server = ServerProcess.start(tmp_path / "data", port=server.port,
                                     MODELYARD_CLOCK_OFFSET_FILE=str(offset_file))
        s3, lam = server.client("s3"), server.client("lambda")
        assert wait_for(lambda: s3.list_objects_v2(Bucket="events", Prefix="survived/").get("Contents"))

        lam.invoke(FunctionName="writer", InvocationType="Event",
                   Payload=json.dumps({"bucket": "events", "key": "failing", "fail": True}).encode())

        def attempts() -> int:
            return len(s3.list_objects_v2(Bucket="events", Prefix="failing/").get("Contents", []))

        wait_for(lambda: attempts() == 1)
        time.sleep(1.0)
        assert attempts() == 1  # the retry waits a minute of the server's clock
        for offset, expected in ((61, 2), (200, 3)):
            # The object shows an attempt before its failure is recorded; a loaded server
            # may record it after the jump, scheduling the retry a backoff (<= 120 s) past
            # the new time: then a second jump brings that retry due.
            for jump in (offset, offset + 130):
                partial = offset_file.with_suffix(".tmp")
                partial.write_text(str(jump))
                os.replace(partial, offset_file)
                try:
                    wait_for(lambda: attempts() == expected, timeout=30)
                    break
                except AssertionError:
                    if jump != offset:
                        raise
        partial = offset_file.with_suffix(".tmp")
        partial.write_text("1000")
        os.replace(partial, offset_file)
        time.sleep(1.5)
        assert attempts() == 3  # the first try and two retries, as Lambda does
        request_ids = {item["Key"].split("/")[1] for item in
                       s3.list_objects_v2(Bucket="events", Prefix="failing/")["Contents"]}
        assert len(request_ids) == 1  # every retry is the same invocation
    finally:
        server.stop()


def test_unknown_qualifier_and_foreign_account(lam, unique_name):
    create_function(lam, unique_name, "def handler(e, c):\n    return 'ok'\n", Publish=True)
    assert call(lam, unique_name, {}, Qualifier="1")[1] == "ok"
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        lam.invoke(FunctionName=unique_name, Qualifier="7", Payload=b"{}")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_concurrent_calls_get_their_own_workers(lam, unique_name):
    import threading

    create_function(lam, unique_name, """
        import time
        import uuid

        ENVIRONMENT = uuid.uuid4().hex

        def handler(event, context):
            time.sleep(event.get("sleep", 0))
            return ENVIRONMENT
    """, Timeout=60)
    call(lam, unique_name, {})  # one warm worker
    answers: list[str] = []

    def slow_call() -> None:
        answers.append(call(lam, unique_name, {"sleep": 2})[1])

    threads = [threading.Thread(target=slow_call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(answers) == 2 and answers[0] != answers[1]  # the busy worker was not shared
    # Both stay warm: later calls land on one of them.
    assert call(lam, unique_name, {})[1] in answers


def test_memory_size_is_enforced(lam, unique_name):
    from modelyard.engine.cgroups import memory_controller_problem

    problem = memory_controller_problem()
    if problem:
        pytest.skip(f"no memory cgroups here: {problem}")
    create_function(lam, unique_name, """
        def handler(event, context):
            hoard = bytearray(event["mb"] * 1024 * 1024)
            for index in range(0, len(hoard), 4096):
                hoard[index] = 1  # touch every page
            return len(hoard) // (1024 * 1024)
    """, MemorySize=128, Timeout=60)
    assert call(lam, unique_name, {"mb": 16})[1] == 16
    response, body = call(lam, unique_name, {"mb": 400}, LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.OutOfMemory"
    assert "Runtime exited with error: signal: killed" in body["errorMessage"]
    assert "Max Memory Used: 128 MB" in base64.b64decode(response["LogResult"]).decode()
    assert call(lam, unique_name, {"mb": 16})[1] == 16  # a fresh worker takes over
