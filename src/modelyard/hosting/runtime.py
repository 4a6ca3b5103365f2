"""SageMaker Runtime: ``InvokeEndpoint`` routed to the model servers of a live endpoint.

``POST /endpoints/{EndpointName}/invocations`` (botocore service ``sagemaker-runtime``,
REST-JSON, signed for ``sagemaker``). Per request, on the gateway's event loop:

1. read the headers botocore's model defines (``Content-Type``, ``Accept``,
   ``X-Amzn-SageMaker-Custom-Attributes``, ``-Target-Variant``, ``-Inference-Id``; the
   multi-model, multi-container, explainer, inference-component and session headers are
   refused with a ValidationError naming them) and check the 6 MB body limit;
2. look the endpoint up in ``platform.live_endpoints`` (published by the controller);
3. choose a variant at random by current weight (weight 0 gets nothing) unless
   ``TargetVariant`` names one, then its least-busy instance (``Instance.in_flight``);
4. forward to the instance's ``/invocations`` over a pooled keep-alive connection
   (``hosting.upstream``); an instance that refuses the connection is skipped for the
   next one of the variant;
5. answer with the model's body and ``Content-Type``, ``x-Amzn-Invoked-Production-Variant``
   and the model's ``X-Amzn-SageMaker-Custom-Attributes``; a model answering 4xx/5xx
   becomes ``ModelError`` (424) with ``OriginalStatusCode``, ``OriginalMessage`` and
   ``LogStreamArn``.

Then, off the request path: per-minute metrics (``hosting.metrics``), sampled data
capture (``hosting.capture``) and, when the endpoint has a shadow variant, a copy of the
request queued for it (``hosting.shadow``; one attribute test when it has none).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from starlette.responses import Response

from ..api.errors import AwsError
from ..platform import Platform
from .capture import CapturePolicy, CaptureWriter
from .live import Instance, LiveEndpoint, LiveVariant
from .metrics import InvocationMetrics
from .shadow import ShadowCopier
from .upstream import UpstreamPool, UpstreamUnavailable

# botocore's sagemaker-runtime model: InvokeEndpointInput.Body max (6 MB = 6 * 1024 * 1024).
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# SageMaker's limit for a real-time container to answer an invocation.
INVOCATION_TIMEOUT_SECONDS = 60.0
MAX_ORIGINAL_MESSAGE = 2048
ENDPOINT_KIND = "Endpoint"

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
# Headers of InvokeEndpoint that need features modelyard lacks -> what to say.
_REFUSED_HEADERS = {
    "x-amzn-sagemaker-target-model": (
        "TargetModel", "multi-model endpoints are not supported by modelyard; invoke a "
        "single-model endpoint without TargetModel"),
    "x-amzn-sagemaker-target-container-hostname": (
        "TargetContainerHostname", "multi-container endpoints with direct invocation are not "
        "supported by modelyard; omit TargetContainerHostname"),
    "x-amzn-sagemaker-enable-explanations": (
        "EnableExplanations", "online explainability (ClarifyExplainerConfig) is not "
        "supported by modelyard; omit EnableExplanations"),
    "x-amzn-sagemaker-inference-component": (
        "InferenceComponentName", "inference components are not supported by modelyard; "
        "invoke the endpoint without InferenceComponentName"),
    "x-amzn-sagemaker-session-id": (
        "SessionId", "stateful sessions are not supported by modelyard; omit SessionId"),
}


def validation(message: str) -> AwsError:
    return AwsError("ValidationError", message, status=400)


class SageMakerRuntime:
    """The data plane of endpoints. One per server; ``close`` flushes metrics and capture."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.pool = UpstreamPool()
        self.metrics = InvocationMetrics(platform.db)
        self.capture = CaptureWriter(platform.objects)
        self.timeout = INVOCATION_TIMEOUT_SECONDS
        self.shadows = ShadowCopier(self)
        self._started = False

    def close(self) -> None:
        self.capture.close()
        self.metrics.close()

    async def handle(self, method: str, raw_path: str, path: str, headers: Mapping[str, str],
                     body: bytes, request_id: str) -> Response:
        """Answer one request under ``/endpoints/``; raises AwsError for the gateway.

        ``raw_path`` is the path as sent (percent-encoded), ``path`` the decoded one (for
        messages); ``headers`` has lower-case names (a Starlette ``Headers`` or a dict)."""
        started = time.perf_counter()
        if not self._started:
            self._started = True
            self.metrics.start()
        name, action = _route(method, raw_path, path)
        if action == "async-invocations":
            raise _not_implemented("InvokeEndpointAsync")
        if action == "invocations-response-stream":
            raise _not_implemented("InvokeEndpointWithResponseStream")
        if action != "invocations" or method != "POST":
            raise AwsError("UnknownOperationException", f"{method} {path} "
                           "is not a SageMaker Runtime operation; InvokeEndpoint is POST "
                           "/endpoints/{EndpointName}/invocations.")
        _check_headers(name, headers, len(body))
        endpoint = self._live(name)
        variant = _choose_variant(endpoint, headers.get("x-amzn-sagemaker-target-variant"))
        content_type = headers.get("content-type") or "application/octet-stream"
        forward = {"Content-Type": content_type}
        accept = headers.get("accept")
        if accept:
            forward["Accept"] = accept
        custom = headers.get("x-amzn-sagemaker-custom-attributes")
        if custom:
            forward["X-Amzn-SageMaker-Custom-Attributes"] = custom
        inference_id = headers.get("x-amzn-sagemaker-inference-id")
        if inference_id:
            forward["X-Amzn-SageMaker-Inference-Id"] = inference_id

        status, model_us, upstream, instance = 503, None, None, None
        try:
            upstream, instance, model_us = await self._forward(endpoint, variant, forward, body)
            status = upstream.status
            if status >= 400:
                raise _model_error(endpoint, variant, instance, upstream.status, upstream.body,
                                   self.platform.settings.account_id)
        except TimeoutError:
            status = 504
            raise AwsError("ModelError", f"Your invocation timed out while waiting for a "
                           f"response from the model of variant {variant.name} of endpoint "
                           f"{endpoint.name} (limit {self.timeout:.0f} s). See the log group "
                           f"/aws/sagemaker/Endpoints/{endpoint.name}.", status=424,
                           **({"LogStreamArn": instance.log_stream_arn} if instance else {})
                           ) from None
        finally:
            overhead_us = (time.perf_counter() - started) * 1e6 - (model_us or 0.0)
            self.metrics.record(endpoint.name, variant.name, status=status,
                                instances=len(variant.instances), model_us=model_us,
                                overhead_us=max(overhead_us, 0.0),
                                now=self.platform.clock.now())
            if endpoint.shadows:  # after the production answer; only queues the copy
                self.shadows.submit(endpoint, forward, body, content_type, inference_id)
        assert upstream is not None
        out_type = upstream.headers.get("content-type") or "application/octet-stream"
        policy = CapturePolicy.from_config(endpoint.data_capture)
        if policy is not None and policy.sampled():
            self.capture.submit(policy, endpoint.name, variant.name, inference_id=inference_id,
                                input_type=content_type, input_data=body,
                                output_type=out_type, output_data=upstream.body)
        return _InvocationResponse(upstream.body, out_type, variant.name, request_id,
                                   upstream.headers.get("x-amzn-sagemaker-custom-attributes"))

    def _live(self, name: str) -> LiveEndpoint:
        endpoint = self.platform.live_endpoints.get(name)
        if endpoint is not None:
            return endpoint
        account = self.platform.settings.account_id
        resource = self.platform.resources.get(ENDPOINT_KIND, name)
        status = (resource.document or {}).get("EndpointStatus") if resource else None
        if resource is None or status is None or status == "Deleting":
            raise validation(f"Endpoint {name} of account {account} not found.")
        raise validation(f"Endpoint {resource.name} of account {account} is not in service "
                         f"(status {status}); wait until DescribeEndpoint reports InService "
                         "(the SDK's endpoint_in_service waiter) before invoking it.")

    async def _forward(self, endpoint: LiveEndpoint, variant: LiveVariant,
                       headers: dict[str, str], body: bytes) -> tuple[Any, Instance, float]:
        """Send to the least-busy instance; one that refuses the connection is skipped."""
        tried: set[str] = set()
        last_error = "the variant has no instance"
        while True:
            candidates = [i for i in variant.instances if i.instance_id not in tried]
            if not candidates:
                raise AwsError("ServiceUnavailable", f"No healthy instance of variant "
                               f"{variant.name} of endpoint {endpoint.name} can take the "
                               f"request ({last_error}); retry later.", status=503)
            instance = _least_busy(candidates)
            tried.add(instance.instance_id)
            instance.in_flight += 1
            model_started = time.perf_counter()
            try:
                upstream = await self.pool.post(instance.url, "/invocations", headers, body,
                                                self.timeout)
            except UpstreamUnavailable as error:
                last_error = str(error)
                continue
            finally:
                instance.in_flight -= 1
            return upstream, instance, (time.perf_counter() - model_started) * 1e6


class _InvocationResponse(Response):
    """InvokeEndpoint's answer: the model's body and ``Content-Type``, the invoked variant,
    the request id and the model's custom attributes. The same headers, in the same order,
    as ``Response(body, headers=..., media_type=...)`` gives, built directly: Starlette's
    ``init_headers`` re-encodes and re-scans a mapping, on every request of the data plane."""

    def __init__(self, body: bytes, content_type: str, variant: str, request_id: str,
                 attributes: str | None) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.media_type = content_type
        if content_type.startswith("text/") and "charset=" not in content_type.lower():
            content_type += "; charset=" + self.charset
        raw = [(b"x-amzn-invoked-production-variant", variant.encode("latin-1")),
               (b"x-amzn-requestid", request_id.encode("latin-1"))]
        if attributes:
            raw.append((b"x-amzn-sagemaker-custom-attributes", attributes.encode("latin-1")))
        raw.append((b"content-length", b"%d" % len(body)))
        raw.append((b"content-type", content_type.encode("latin-1")))
        self.raw_headers = raw


def _route(method: str, raw_path: str, url_path: str) -> tuple[str, str]:
    path = unquote(raw_path or url_path)
    parts = path.split("/")
    # "", "endpoints", name, action
    if len(parts) != 4 or parts[1] != "endpoints":
        raise AwsError("UnknownOperationException", f"{method} {path} is not a "
                       "SageMaker Runtime operation; InvokeEndpoint is POST "
                       "/endpoints/{EndpointName}/invocations.")
    return parts[2], parts[3]


def _check_headers(name: str, headers: Any, size: int) -> None:
    if not _NAME.match(name) or len(name) > 63:
        raise validation(f"1 validation error detected: Value '{name}' at 'endpointName' "
                         "failed to satisfy constraint: Member must satisfy regular expression "
                         "pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])* and have length <= 63.")
    if size > MAX_PAYLOAD_BYTES:
        raise validation(f"Received a request payload of {size} bytes, over InvokeEndpoint's "
                         f"limit of {MAX_PAYLOAD_BYTES} bytes (6 MB). Send smaller requests, "
                         "or use batch transform for large inputs.")
    for header, (member, reason) in _REFUSED_HEADERS.items():
        if header in headers:
            raise validation(f"{member} was given, but {reason}.")
    for header, member, limit in (("content-type", "ContentType", 1024),
                                  ("accept", "Accept", 1024),
                                  ("x-amzn-sagemaker-custom-attributes", "CustomAttributes", 1024),
                                  ("x-amzn-sagemaker-inference-id", "InferenceId", 64)):
        value = headers.get(header)
        if value is not None and (len(value) > limit or not value.isascii()):
            raise validation(f"{member} must be at most {limit} ASCII characters.")
    inference_id = headers.get("x-amzn-sagemaker-inference-id")
    if inference_id is not None and (not inference_id or inference_id[0].isspace()
                                     or not inference_id.isprintable()):
        raise validation("InferenceId must be 1 to 64 printable characters, not starting "
                         "with a space.")


def _choose_variant(endpoint: LiveEndpoint, target: str | None) -> LiveVariant:
    if target is not None:
        variant = endpoint.variant(target) or next(
            (v for v in endpoint.variants if v.name.lower() == target.lower()), None)
        if variant is None:
            names = ", ".join(v.name for v in endpoint.variants)
            raise validation(f"TargetVariant {target} is not a production variant of endpoint "
                             f"{endpoint.name}; its variants are: {names}.")
        return variant
    weighted = [v for v in endpoint.variants if v.weight > 0]
    if not weighted:
        raise validation(f"Every production variant of endpoint {endpoint.name} has weight 0, "
                         "so no variant takes traffic; pass TargetVariant or raise a weight "
                         "with UpdateEndpointWeightsAndCapacities.")
    if len(weighted) == 1:
        return weighted[0]
    return random.choices(weighted, weights=[v.weight for v in weighted])[0]


def _least_busy(instances: list[Instance]) -> Instance:
    if len(instances) == 1:
        return instances[0]
    lowest = min(i.in_flight for i in instances)
    return random.choice([i for i in instances if i.in_flight == lowest])


def _model_error(endpoint: LiveEndpoint, variant: LiveVariant, instance: Instance, status: int,
                 body: bytes, account: str) -> AwsError:
    text = body.decode("utf-8", errors="replace")
    if len(text) > MAX_ORIGINAL_MESSAGE:
        text = text[: MAX_ORIGINAL_MESSAGE - 3] + "..."
    kind = "client" if status < 500 else "server"
    message = (f"Received {kind} error ({status}) from model with message \"{text}\". See "
               f"the log stream {instance.log_stream_arn.rsplit(':', 1)[-1] or 'of the instance'}"
               f" in log group /aws/sagemaker/Endpoints/{endpoint.name} in account {account} "
               "for more information.")
    return AwsError("ModelError", message, status=424, OriginalStatusCode=status,  # type: ignore[arg-type]
                    OriginalMessage=text, LogStreamArn=instance.log_stream_arn)


def _not_implemented(operation: str) -> AwsError:
    return AwsError("NotImplemented", f"modelyard does not implement sagemaker-runtime "
                    f"operation {operation}; use InvokeEndpoint (real-time, synchronous).",
                    status=501)

