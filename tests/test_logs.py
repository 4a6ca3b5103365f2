"""CloudWatch Logs through boto3 and the SageMaker SDK, against a real server."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError
from server_process import ServerProcess

TRAINING_GROUP = "/aws/sagemaker/TrainingJobs"


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture()
def logs(server):
    return server.client("logs")


@pytest.fixture()
def group(logs, unique_name) -> str:
    name = f"/modelyard/tests/{unique_name}"
    logs.create_log_group(logGroupName=name)
    return name


def put(logs, group: str, stream: str, messages: list[str], start: int | None = None) -> dict:
    start = now_ms() if start is None else start
    events = [{"timestamp": start + i, "message": m} for i, m in enumerate(messages)]
    return logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


def read_all(logs, group: str, stream: str) -> list[str]:
    response = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)
    return [event["message"] for event in response["events"]]


def error_code(info: pytest.ExceptionInfo) -> str:
    return info.value.response["Error"]["Code"]


def test_create_describe_put_get_round_trip(logs, group, server):
    logs.create_log_stream(logGroupName=group, logStreamName="app")
    start = now_ms()
    response = put(logs, group, "app", ["starting", "ready", "serving ünïcode"], start)
    assert "rejectedLogEventsInfo" not in response

    [described] = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert described["logGroupName"] == group
    assert described["logGroupArn"].startswith("arn:aws:logs:us-east-1:")
    assert described["logGroupArn"].endswith(f":log-group:{group}")
    assert described["arn"] == described["logGroupArn"] + ":*"
    assert described["creationTime"] > 0

    [stream] = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert stream["logStreamName"] == "app"
    assert stream["arn"] == f"{described['logGroupArn']}:log-stream:app"
    assert (stream["firstEventTimestamp"], stream["lastEventTimestamp"]) == (start, start + 2)
    assert stream["lastIngestionTime"] >= stream["creationTime"]
    assert stream["storedBytes"] == len("startingreadyserving ünïcode".encode())

    events = logs.get_log_events(logGroupName=group, logStreamName="app", startFromHead=True)
    assert [e["message"] for e in events["events"]] == ["starting", "ready", "serving ünïcode"]
    assert [e["timestamp"] for e in events["events"]] == [start, start + 1, start + 2]
    assert all(e["ingestionTime"] >= start for e in events["events"])
    # Without startFromHead the newest events come back, still oldest first.
    tail = logs.get_log_events(logGroupName=group, logStreamName="app", limit=2)
    assert [e["message"] for e in tail["events"]] == ["ready", "serving ünïcode"]
    # The time window: startTime inclusive, endTime exclusive.
    window = logs.get_log_events(
        logGroupName=group, logStreamName="app", startTime=start + 1, endTime=start + 2,
        startFromHead=True,
    )
    assert [e["message"] for e in window["events"]] == ["ready"]
    # Describing by ARN (logGroupArn: identifiers may not end in ":*") works as by name.
    by_arn = logs.describe_log_streams(logGroupIdentifier=described["logGroupArn"])["logStreams"]
    assert [s["logStreamName"] for s in by_arn] == ["app"]


def test_get_log_events_pages_forward_and_backward(logs, group):
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    start = now_ms()
    put(logs, group, "s", [f"line {i}" for i in range(25)], start)

    pages, token = [], None
    while True:
        extra = {"nextToken": token} if token else {}
        page = logs.get_log_events(
            logGroupName=group, logStreamName="s", startFromHead=True, limit=10, **extra
        )
        if not page["events"]:
            # Caught up: the forward token comes back unchanged, which ends SDK tailers.
            assert page["nextForwardToken"] == token
            break
        pages.append([e["message"] for e in page["events"]])
        token = page["nextForwardToken"]
    assert [len(p) for p in pages] == [10, 10, 5]
    assert sum(pages, []) == [f"line {i}" for i in range(25)]

    # CloudWatch Logs orders a stream by each event's own timestamp, not by arrival.
    # Events arriving later with later timestamps are picked up by the token the
    # caught-up reader holds.
    put(logs, group, "s", ["late 1", "late 2"], start + 100)
    newer = logs.get_log_events(logGroupName=group, logStreamName="s", nextToken=token)
    assert [e["message"] for e in newer["events"]] == ["late 1", "late 2"]

    backward, page = [], logs.get_log_events(logGroupName=group, logStreamName="s", limit=10)
    while page["events"]:
        backward.insert(0, [e["message"] for e in page["events"]])
        previous = page["nextBackwardToken"]
        page = logs.get_log_events(
            logGroupName=group, logStreamName="s", limit=10, nextToken=previous
        )
    assert page["nextBackwardToken"] == previous
    assert [len(p) for p in backward] == [7, 10, 10]
    assert sum(backward, []) == [f"line {i}" for i in range(25)] + ["late 1", "late 2"]


def test_get_log_events_orders_by_event_timestamp_not_arrival(logs, group):
    """An event that arrives late but is stamped earlier sorts into its place by time."""
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    start = now_ms()
    put(logs, group, "s", ["first", "third"], start)
    logs.put_log_events(
        logGroupName=group, logStreamName="s",
        logEvents=[{"timestamp": start + 1, "message": "fourth"}],
    )
    head = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True)
    token = head["nextForwardToken"]
    # A batch stamped before what a reader has already seen lands in timestamp order...
    logs.put_log_events(
        logGroupName=group, logStreamName="s",
        logEvents=[{"timestamp": start, "message": "second"}],
    )
    again = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True)
    assert [e["message"] for e in again["events"]] == ["first", "second", "third", "fourth"]
    assert [e["timestamp"] for e in again["events"]] == [start, start, start + 1, start + 1]
    # ...behind the forward token of a reader already past that time: it is not re-read.
    newer = logs.get_log_events(logGroupName=group, logStreamName="s", nextToken=token)
    assert newer["events"] == []


def test_filter_log_events_terms_phrases_and_pages(logs, group):
    for stream in ("web", "worker"):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    start = now_ms()
    web = ["INFO GET /", "ERROR timeout talking to db", "INFO GET /health"]
    put(logs, group, "web", web, start)
    put(logs, group, "worker", ["ERROR disk full", "WARN slow job", "error lower case"], start + 10)

    def messages(**kwargs) -> list[str]:
        paginator = logs.get_paginator("filter_log_events")
        return [
            event["message"]
            for page in paginator.paginate(logGroupName=group, **kwargs)
            for event in page["events"]
        ]

    assert messages(filterPattern="ERROR") == ["ERROR timeout talking to db", "ERROR disk full"]
    assert messages(filterPattern='"timeout talking"') == ["ERROR timeout talking to db"]
    assert messages(filterPattern="ERROR -disk") == ["ERROR timeout talking to db"]
    assert messages(filterPattern="?WARN ?full") == ["ERROR disk full", "WARN slow job"]
    assert messages(filterPattern="ERROR", logStreamNames=["worker"]) == ["ERROR disk full"]
    assert messages(logStreamNamePrefix="wo", filterPattern="") == [
        "ERROR disk full", "WARN slow job", "error lower case"
    ]
    # Paging one event at a time visits everything once, interleaved by timestamp.
    assert len(messages(PaginationConfig={"PageSize": 1})) == 6

    response = logs.filter_log_events(logGroupName=group, filterPattern="ERROR", limit=1)
    [event] = response["events"]
    assert event["logStreamName"] == "web" and event["timestamp"] == start + 1
    assert event["eventId"]
    assert "nextToken" in response
    assert {s["logStreamName"] for s in response["searchedLogStreams"]} == {"web", "worker"}


def test_describe_log_streams_order_and_pages(logs, group):
    start = now_ms()
    for index, name in enumerate(["b", "a", "c"]):
        logs.create_log_stream(logGroupName=group, logStreamName=name)
        put(logs, group, name, [f"from {name}"], start + index)

    first = logs.describe_log_streams(logGroupName=group, limit=2)
    assert [s["logStreamName"] for s in first["logStreams"]] == ["a", "b"]
    rest = logs.describe_log_streams(logGroupName=group, limit=2, nextToken=first["nextToken"])
    assert [s["logStreamName"] for s in rest["logStreams"]] == ["c"]
    assert "nextToken" not in rest

    latest = logs.describe_log_streams(
        logGroupName=group, orderBy="LastEventTime", descending=True
    )["logStreams"]
    assert [s["logStreamName"] for s in latest] == ["c", "a", "b"]
    with pytest.raises(ClientError) as info:
        logs.describe_log_streams(
            logGroupName=group, orderBy="LastEventTime", logStreamNamePrefix="a"
        )
    assert error_code(info) == "InvalidParameterException"


def test_describe_log_groups_prefix_pattern_and_pages(logs, unique_name):
    names = [f"/modelyard/pages/{unique_name}/{suffix}" for suffix in ("one", "two", "three")]
    for name in names:
        logs.create_log_group(logGroupName=name)
    prefix = f"/modelyard/pages/{unique_name}/"
    first = logs.describe_log_groups(logGroupNamePrefix=prefix, limit=2)
    rest = logs.describe_log_groups(
        logGroupNamePrefix=prefix, limit=2, nextToken=first["nextToken"]
    )
    found = [g["logGroupName"] for g in first["logGroups"] + rest["logGroups"]]
    assert found == sorted(names)
    pattern = logs.describe_log_groups(logGroupNamePattern=f"{unique_name}/tw")["logGroups"]
    assert [g["logGroupName"] for g in pattern] == [names[1]]
    assert logs.describe_log_groups(logGroupNamePattern=f"{unique_name}/TW")["logGroups"] == []


def test_sagemaker_sdk_tails_training_job_logs(logs, unique_name, capsys):
    """The SDK's own log reader (Session.logs_for_job's loop) against our API."""
    from sagemaker import logs as sm_logs
    from sagemaker.session import _flush_log_streams

    try:
        logs.create_log_group(logGroupName=TRAINING_GROUP)
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    job = unique_name
    stream = f"{job}/algo-1-{int(time.time())}"
    logs.create_log_stream(logGroupName=TRAINING_GROUP, logStreamName=stream)
    # 10,500 events (more than one GetLogEvents page), 50 per millisecond, so the SDK's
    # (timestamp, skip) positions have to count events sharing a timestamp.
    start = now_ms() - 60_000
    first = [f"epoch {i // 100} step {i}" for i in range(10_500)]
    for offset in range(0, len(first), 5_000):
        batch = first[offset:offset + 5_000]
        logs.put_log_events(
            logGroupName=TRAINING_GROUP, logStreamName=stream,
            logEvents=[{"timestamp": start + (offset + i) // 50, "message": m}
                       for i, m in enumerate(batch)],
        )

    def flush(positions: dict) -> list[str]:
        capsys.readouterr()  # drop what importing the SDK printed
        _flush_log_streams(
            [], 1, logs, TRAINING_GROUP, job, positions, False, sm_logs.ColorWrap(force=False)
        )
        return capsys.readouterr().out.splitlines()

    calls: list[dict] = []
    logs.meta.events.register(
        "before-call.cloudwatch-logs.GetLogEvents", lambda params, **_: calls.append(params)
    )
    positions: dict = {}
    assert flush(positions) == first
    assert len(calls) == 3  # a full page, the last 500 events, and an empty "caught up" page
    assert positions[stream] == sm_logs.Position(timestamp=start + 10_499 // 50, skip=50)

    # More output arrives (some at the last timestamp already read): the next flush
    # continues exactly where the first stopped.
    last = start + 10_499 // 50
    second = ["tail a", "tail b", "Training seconds: 12"]
    logs.put_log_events(
        logGroupName=TRAINING_GROUP, logStreamName=stream,
        logEvents=[{"timestamp": last, "message": "tail a"},
                   {"timestamp": last + 5, "message": "tail b"},
                   {"timestamp": last + 6, "message": "Training seconds: 12"}],
    )
    assert flush(positions) == second
    assert flush(positions) == []

    # The lower-level iterator the SDK builds on, from the beginning.
    replay = sm_logs.multi_stream_iter(
        logs, TRAINING_GROUP, [stream], {stream: sm_logs.Position(timestamp=0, skip=0)}
    )
    assert [event["message"] for _, event in replay] == first + second


def test_error_paths_leave_state_unchanged(logs, group):
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    start = now_ms()
    put(logs, group, "s", ["kept 1", "kept 2"], start)
    before = logs.describe_log_streams(logGroupName=group)["logStreams"]

    def fails(code: str, call, **kwargs) -> str:
        with pytest.raises(ClientError) as info:
            call(**kwargs)
        assert error_code(info) == code, info.value.response
        return info.value.response["Error"]["Message"]

    message = fails("ResourceNotFoundException", logs.get_log_events,
                    logGroupName=group + "-missing", logStreamName="s")
    assert "log group does not exist" in message and group + "-missing" in message
    message = fails("ResourceNotFoundException", logs.put_log_events, logGroupName=group,
                    logStreamName="nope", logEvents=[{"timestamp": start, "message": "x"}])
    assert "log stream does not exist" in message and "nope" in message
    fails("ResourceNotFoundException", logs.describe_log_streams, logGroupName=group + "-x")
    fails("ResourceNotFoundException", logs.delete_log_group, logGroupName=group + "-x")
    fails("ResourceNotFoundException", logs.create_log_stream,
          logGroupName=group + "-x", logStreamName="s")
    fails("ResourceAlreadyExistsException", logs.create_log_group, logGroupName=group)
    fails("ResourceAlreadyExistsException", logs.create_log_stream,
          logGroupName=group, logStreamName="s")
    message = fails("InvalidParameterException", logs.put_log_events, logGroupName=group,
                    logStreamName="s", logEvents=[{"timestamp": start + 10, "message": "b"},
                                                  {"timestamp": start + 5, "message": "a"}])
    assert "chronological" in message
    fails("InvalidParameterException", logs.put_log_events, logGroupName=group,
          logStreamName="s", logEvents=[{"timestamp": start, "message": "x" * 1_048_551}])
    fails("InvalidParameterException", logs.get_log_events, logGroupName=group,
          logStreamName="s", nextToken="f/not-a-token")
    fails("InvalidParameterException", logs.filter_log_events, logGroupName=group,
          logStreamNames=["s"], logStreamNamePrefix="s")
    assert read_all(logs, group, "s") == ["kept 1", "kept 2"]
    assert logs.describe_log_streams(logGroupName=group)["logStreams"] == before

    # Events outside [now - 14 days, now + 2 hours] are reported, the rest stored.
    day = 24 * 3600 * 1000
    response = logs.put_log_events(
        logGroupName=group, logStreamName="s",
        logEvents=[
            {"timestamp": start - 15 * day, "message": "too old 1"},
            {"timestamp": start - 14 * day - 1000, "message": "too old 2"},
            {"timestamp": start + 100, "message": "fresh"},
            {"timestamp": start + 3 * 3600 * 1000, "message": "too new"},
        ],
    )
    assert response["rejectedLogEventsInfo"] == {
        "tooOldLogEventEndIndex": 2, "tooNewLogEventStartIndex": 3
    }
    assert read_all(logs, group, "s") == ["kept 1", "kept 2", "fresh"]

    # Deleting removes the stream, then the group, with their events.
    logs.delete_log_stream(logGroupName=group, logStreamName="s")
    fails("ResourceNotFoundException", logs.get_log_events, logGroupName=group, logStreamName="s")
    logs.delete_log_group(logGroupName=group)
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"] == []


def test_acknowledged_events_survive_sigkill(tmp_path):
    server = ServerProcess.start(tmp_path)
    try:
        logs = server.client("logs")
        logs.create_log_group(logGroupName="/durable")
        logs.create_log_stream(logGroupName="/durable", logStreamName="s")
        start = now_ms()
        acknowledged = []
        for batch in range(10):
            messages = [f"batch {batch} event {i}" for i in range(100)]
            put(logs, "/durable", "s", messages, start + batch * 100)
            acknowledged += messages
        server.kill()
        server = ServerProcess.start(tmp_path)
        logs = server.client("logs")
        assert read_all(logs, "/durable", "s") == acknowledged
        [stream] = logs.describe_log_streams(logGroupName="/durable")["logStreams"]
        assert stream["lastEventTimestamp"] == start + 999
    finally:
        server.stop()
