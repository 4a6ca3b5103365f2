"""Invoking a Lambda function from inside the server (the Invoke API, SNS, EventBridge,
pipelines' LambdaStep).

``invoke`` runs the function now and returns Invoke's output members. ``invoke_async``
promises an ``Event`` invocation in the durable outbox (kind ``lambda-invoke``): it runs
on the delivery worker, survives a restart, and a function error is retried twice, one
and then two minutes later (by the server's clock), as Lambda does.
"""

from __future__ import annotations

import base64
import threading
import uuid
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from . import functions

if TYPE_CHECKING:
    from ..platform import Platform
    from ..store.outbox import Delivery
    from .runtime import LambdaRuntime

DELIVERY_KIND = "lambda-invoke"
ASYNC_ATTEMPTS = 3  # the first try and Lambda's two retries
ASYNC_BACKOFF = (60.0, 120.0)
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 256 * 1024

_runtime_lock = threading.Lock()


def runtime(platform: "Platform") -> "LambdaRuntime":
    """The platform's warm-worker runtime, made on first use."""
    found = getattr(platform, "lambda_runtime", None)
    if found is None:
        with _runtime_lock:
            found = getattr(platform, "lambda_runtime", None)
            if found is None:
                from .runtime import LambdaRuntime

                found = LambdaRuntime(platform)
                platform.lambda_runtime = found  # type: ignore[attr-defined]
    return found


def too_large(limit: int) -> AwsError:
    return AwsError("RequestEntityTooLargeException",
                    f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
                    status=413)


def invoke(platform: "Platform", function: str, payload: bytes, *,
           log_type: str | None = None, qualifier: str | None = None,
           request_id: str | None = None, client_context: Any = None) -> dict[str, Any]:
    """Run ``function`` synchronously; return Invoke's output members."""
    resource = functions.find(platform, function, qualifier)
    _, qualifier = functions.parse_reference(platform, function, qualifier)
    if len(payload) > MAX_SYNC_PAYLOAD:
        raise too_large(MAX_SYNC_PAYLOAD)
    config = functions.configuration(resource, qualifier)
    code = (resource.document if qualifier in (None, functions.LATEST)
            else resource.document["_versions"][qualifier])["_code"]
    invoked = config["FunctionArn"] + (f":{qualifier}" if qualifier else "")
    return runtime(platform).run(config, code, payload, request_id or str(uuid.uuid4()),
                                 tail=log_type == "Tail", invoked_arn=invoked,
                                 client_context=client_context)


def invoke_async(platform: "Platform", function: str, payload: bytes, *,
                 key: str | None = None, qualifier: str | None = None,
                 request_id: str | None = None) -> str:
    """Queue an Event invocation durably (retried twice, as AWS does); return its request id.

    ``key`` makes the promise idempotent (the same key queues once, e.g. an SNS message
    id per subscription); the request id of the first promise is returned again.
    """
    resource = functions.find(platform, function, qualifier)
    _, qualifier = functions.parse_reference(platform, function, qualifier)
    if len(payload) > MAX_ASYNC_PAYLOAD:
        raise too_large(MAX_ASYNC_PAYLOAD)
    request_id = request_id or str(uuid.uuid4())
    # Outbox keys are unique across kinds: a caller's own delivery key (an EventBridge
    # target's, an SNS subscription's) must not collide with this promise.
    key = f"{DELIVERY_KIND}:{key or request_id}"
    reference = resource.arn + (f":{qualifier}" if qualifier else "")
    added = platform.deliveries.enqueue(DELIVERY_KIND, key, {
        "function": reference, "payload": base64.b64encode(payload).decode(),
        "request_id": request_id,
    })
    if not added:
        from ..store.outbox import Outbox

        existing = Outbox(platform.db).get(key)
        if existing is not None:
            return existing.payload.get("request_id", request_id)
    return request_id


def deliver(platform: "Platform", delivery: "Delivery") -> None:
    """The outbox handler: run the queued invocation; a function error is retried."""
    from ..engine.deliveries import DeliveryFailed

    payload = delivery.payload
    try:
        result = invoke(platform, payload["function"], base64.b64decode(payload["payload"]),
                        request_id=payload["request_id"])
    except AwsError as error:
        if error.code in ("ResourceNotFoundException", "AccessDeniedException"):
            raise DeliveryFailed(f"{error.code}: {error.message}") from None
        raise
    if result.get("FunctionError"):
        body = bytes(result.get("Payload") or b"").decode("utf-8", errors="replace")
        raise RuntimeError(f"the function returned an error: {body[:1000]}")
