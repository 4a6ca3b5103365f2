"""Data capture: sampled request/response records in SageMaker's JSON-lines format.

An endpoint with ``DataCaptureConfig.EnableCapture`` samples ``CurrentSamplingPercentage``
(else ``InitialSamplingPercentage``) of its invocations. Each sampled one becomes one line::

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "1,2,3", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                                        "data": "0.7", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<InferenceId, if given>",
                       "inferenceTime": "2026-12-01T08:40:12Z"},
     "eventVersion": "0"}

A shadow variant's copy of a request (hosting/shadow.py) is recorded the same way under
``<endpoint>/<shadow variant>/``, with ``"invocationSource": "ShadowExperiment"`` in its
``eventMetadata`` -- the mark Model Monitor's preprocessing uses to leave shadow traffic out
(monitor/merge.py does too).

``CaptureOptions`` choose which of ``endpointInput`` / ``endpointOutput`` appear. The data
is text with encoding ``CSV`` or ``JSON`` when its content type (parameters ignored) is
listed in ``CaptureContentTypeHeader.CsvContentTypes`` / ``JsonContentTypes``, else base64
(``BASE64``); without a ``CaptureContentTypeHeader`` nothing is text.

Files: ``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<MM-SS-mmm>-<uuid>.jsonl``
(UTC; the hour and the name's time are those of the file's first record), one file per
endpoint, variant and hour for each flush. The request path only puts a tuple on a bounded
queue (a full queue drops the record: capture never slows an invocation); a writer thread
encodes and writes, at least every ``flush_interval`` seconds and on ``close``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import queue
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..store.objects import ObjectStore

FLUSH_INTERVAL_SECONDS = 5.0
MAX_QUEUED_RECORDS = 10_000

log = logging.getLogger("modelyard.hosting")


@dataclass(frozen=True)
class CapturePolicy:
    """An endpoint's DataCaptureConfig, read once per invocation."""

    sampling_percentage: float
    destination: str  # s3://bucket/prefix
    capture_input: bool
    capture_output: bool
    csv_types: frozenset[str]
    json_types: frozenset[str]

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> "CapturePolicy | None":
        """None when capture is off. ``config`` is the endpoint config's DataCaptureConfig,
        optionally with DescribeEndpoint's ``CurrentSamplingPercentage``."""
        if not config or not config.get("EnableCapture", True) or not config.get(
                "DestinationS3Uri"):
            return None
        if str(config.get("CaptureStatus", "Started")) == "Stopped":
            return None
        percentage = config.get("CurrentSamplingPercentage",
                                config.get("InitialSamplingPercentage", 100))
        modes = {str(option.get("CaptureMode", "")).lower()
                 for option in config.get("CaptureOptions") or []}
        if not modes:
            modes = {"input", "output"}
        if "inputandoutput" in modes:
            modes |= {"input", "output"}
        header = config.get("CaptureContentTypeHeader") or {}
        return cls(
            sampling_percentage=float(percentage),
            destination=str(config["DestinationS3Uri"]).rstrip("/"),
            capture_input="input" in modes,
            capture_output="output" in modes,
            csv_types=frozenset(_base_type(t) for t in header.get("CsvContentTypes") or []),
            json_types=frozenset(_base_type(t) for t in header.get("JsonContentTypes") or []),
        )

    def sampled(self) -> bool:
        return self.sampling_percentage >= 100 or random.random() * 100 < self.sampling_percentage


@dataclass(frozen=True)
class _Event:
    policy: CapturePolicy
    endpoint: str
    variant: str
    timestamp: float
    inference_id: str | None
    input_type: str
    input_data: bytes
    output_type: str
    output_data: bytes
    invocation_source: str | None = None  # "ShadowExperiment" for a shadow variant's copy


def _base_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _payload(policy: CapturePolicy, content_type: str, data: bytes, mode: str) -> dict[str, str]:
    base = _base_type(content_type)
    encoding = "CSV" if base in policy.csv_types else "JSON" if base in policy.json_types \
        else "BASE64"
    if encoding != "BASE64":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:  # declared text but is not: keep the bytes exactly
            encoding, text = "BASE64", ""
    if encoding == "BASE64":
        text = base64.b64encode(data).decode("ascii")
    return {"observedContentType": content_type, "mode": mode, "data": text,
            "encoding": encoding}


def capture_record(event: _Event, event_id: str | None = None) -> dict[str, Any]:
    """The JSON object of one captured invocation."""
    data: dict[str, Any] = {}
    if event.policy.capture_input:
        data["endpointInput"] = _payload(event.policy, event.input_type, event.input_data,
                                         "INPUT")
    if event.policy.capture_output:
        data["endpointOutput"] = _payload(event.policy, event.output_type, event.output_data,
                                          "OUTPUT")
    metadata = {"eventId": event_id or str(uuid.uuid4())}
    if event.inference_id:
        metadata["inferenceId"] = event.inference_id
    if event.invocation_source:
        metadata["invocationSource"] = event.invocation_source
    metadata["inferenceTime"] = datetime.fromtimestamp(event.timestamp, timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"captureData": data, "eventMetadata": metadata, "eventVersion": "0"}


class CaptureWriter:
    """The queue and thread that turn captured invocations into objects."""

    def __init__(self, objects: ObjectStore, flush_interval: float = FLUSH_INTERVAL_SECONDS,
                 max_queued: int = MAX_QUEUED_RECORDS) -> None:
        self.objects = objects
        self.flush_interval = flush_interval
        self._queue: queue.Queue[_Event | None] = queue.Queue(max_queued)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.dropped = 0

    def submit(self, policy: CapturePolicy, endpoint: str, variant: str, *,
               inference_id: str | None, input_type: str, input_data: bytes,
               output_type: str, output_data: bytes,
               invocation_source: str | None = None) -> None:
        """Queue one invocation that passed sampling; never blocks. ``invocation_source``
        marks a shadow variant's copy (``ShadowExperiment``, in ``eventMetadata``)."""
        self._ensure_started()
        event = _Event(policy, endpoint, variant, time.time(), inference_id, input_type,
                       input_data, output_type, output_data, invocation_source)
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("data capture is behind: %d records dropped so far", self.dropped)

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=60)

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="data-capture",
                                                    daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        pending: dict[tuple[str, str, str, str], list[_Event]] = {}
        deadline = time.monotonic() + self.flush_interval
        stopping = False
        while not stopping:
            try:
                event = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                event = ...  # type: ignore[assignment] - the flush deadline passed
            if event is None:
                stopping = True
            elif event is not ...:
                hour = time.strftime("%Y/%m/%d/%H", time.gmtime(event.timestamp))
                key = (event.policy.destination, event.endpoint, event.variant, hour)
                pending.setdefault(key, []).append(event)
            if stopping or time.monotonic() >= deadline:
                for group in pending.values():
                    self._write(group)
                pending.clear()
                deadline = time.monotonic() + self.flush_interval

    def _write(self, events: list[_Event]) -> None:
        first = events[0]
        bucket, _, prefix = first.policy.destination.removeprefix("s3://").partition("/")
        stamp = time.gmtime(first.timestamp)
        millis = int((first.timestamp % 1) * 1000)
        name = f"{time.strftime('%M-%S', stamp)}-{millis:03d}-{uuid.uuid4()}.jsonl"
        parts = [p for p in (prefix.strip("/"), first.endpoint, first.variant,
                             time.strftime("%Y/%m/%d/%H", stamp), name) if p]
        key = "/".join(parts)
        lines = "".join(json.dumps(capture_record(e), separators=(",", ":")) + "\n"
                        for e in events)
        path = self.objects.spool_dir / f"capture-{uuid.uuid4().hex}.jsonl"
        try:
            path.write_text(lines, encoding="utf-8")
            self.objects.put_file(bucket, key, path, now=time.time(),
                                  content_type="application/octet-stream")
        except Exception as error:  # noqa: BLE001 - a missing bucket must not stop capture
            log.warning("data capture of endpoint %s could not write s3://%s/%s (%d records): "
                        "%s", first.endpoint, bucket, key, len(events), error)
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass
