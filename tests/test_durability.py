"""Kill -9 the server while clients write; after a restart every acknowledged write is whole."""

from __future__ import annotations

import hashlib
import threading
import time

import botocore.exceptions
import urllib3.exceptions

from server_process import ServerProcess

CLIENT_ERRORS = (
    botocore.exceptions.BotoCoreError,
    botocore.exceptions.ClientError,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    OSError,
)


def payload(key: str, size: int) -> bytes:
    seed = hashlib.sha256(key.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def test_sigkill_during_writes_loses_nothing_acknowledged(tmp_path):
    server = ServerProcess.start(tmp_path)
    s3 = server.client("s3")
    logs = server.client("logs")
    s3.create_bucket(Bucket="durable")
    logs.create_log_group(logGroupName="/durable")
    logs.create_log_stream(logGroupName="/durable", logStreamName="writer")

    acknowledged_objects: dict[str, int] = {}
    acknowledged_events: list[str] = []
    stop = threading.Event()

    def write_objects(worker: int) -> None:
        client = server.client("s3")
        sizes = [1_000, 70_000, 1_500_000]
        number = 0
        while not stop.is_set():
            key = f"w{worker}/object-{number}"
            size = sizes[number % len(sizes)]
            try:
                client.put_object(Bucket="durable", Key=key, Body=payload(key, size))
            except CLIENT_ERRORS:
                return
            acknowledged_objects[key] = size
            number += 1

    def write_events() -> None:
        client = server.client("logs")
        batch = 0
        while not stop.is_set():
            messages = [f"batch {batch} line {line}" for line in range(20)]
            now_ms = int(time.time() * 1000)
            try:
                client.put_log_events(
                    logGroupName="/durable", logStreamName="writer",
                    logEvents=[{"timestamp": now_ms, "message": text} for text in messages])
            except CLIENT_ERRORS:
                return
            acknowledged_events.extend(messages)
            batch += 1

    threads = [threading.Thread(target=write_objects, args=(worker,)) for worker in range(3)]
    threads.append(threading.Thread(target=write_events))
    for thread in threads:
        thread.start()
    # Kill once enough writes are acknowledged (not after a fixed time: the machine's
    # speed must not decide whether the test has anything to check).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
            len(acknowledged_objects) > 10 and len(acknowledged_events) > 100):
        time.sleep(0.05)
    time.sleep(0.2)  # writes are in flight when the kill lands
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(acknowledged_objects) > 10 and len(acknowledged_events) > 100

    restarted = ServerProcess.start(tmp_path, port=server.port)
    try:
        s3 = restarted.client("s3")
        for key, size in acknowledged_objects.items():
            body = s3.get_object(Bucket="durable", Key=key)["Body"].read()
            assert body == payload(key, size), f"{key} is damaged after the restart"
        # Objects whose PUT was cut off may exist or not, but never half-written.
        listed = s3.get_paginator("list_objects_v2").paginate(Bucket="durable")
        for page in listed:
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket="durable", Key=item["Key"])["Body"].read()
                assert len(body) == item["Size"]
                assert body == payload(item["Key"], item["Size"])

        logs = restarted.client("logs")
        stored, token = [], None
        while True:
            kwargs = {"nextToken": token} if token else {}
            page = logs.get_log_events(logGroupName="/durable", logStreamName="writer",
                                       startFromHead=True, **kwargs)
            stored += [event["message"] for event in page["events"]]
            if page["nextForwardToken"] == token:
                break
            token = page["nextForwardToken"]
        missing = set(acknowledged_events) - set(stored)
        assert not missing, f"{len(missing)} acknowledged log events lost, e.g. {sorted(missing)[:3]}"
    finally:
        restarted.stop()
