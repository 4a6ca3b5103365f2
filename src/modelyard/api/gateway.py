"""One port, many AWS protocols: authenticate each request, pick its codec, run its handler.

The SigV4 credential scope names the service a client meant (s3, sagemaker, sts, ...);
the request's shape then picks the protocol: ``X-Amz-Target`` for JSON 1.1, a form with
``Action`` for query, ``/endpoints/...`` for the SageMaker runtime, anything else for S3.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import random
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from ..hosting.runtime import SageMakerRuntime
from ..platform import Platform
from ..services import find_handler
from . import cborproto, jsonproto, query, restjson, restxml, sigv4
from .context import RequestContext
from .errors import AwsError, not_implemented
from .shapes import operation_model, parse_input, service_model

log = logging.getLogger("modelyard.gateway")

S3_AUTH_ERROR_CODES = {
    "missing": "AccessDenied",
    "unknown-key": "InvalidAccessKeyId",
    "mismatch": "SignatureDoesNotMatch",
    "expired": "AccessDenied",
    "skewed": "RequestTimeTooSkewed",
    "malformed": "AuthorizationHeaderMalformed",
}
# Host names that address the server itself; "<bucket>.<one of these>" is virtual-hosted S3.
SERVER_HOST_SUFFIXES = ("localhost", "s3.amazonaws.com")
# Services whose every operation is REST-JSON, routed by method and path (Lambda).
REST_JSON_SERVICES = ("lambda",)
# Characters in an ASGI path that make Starlette's request.url.path differ from it.
_URL_REWRITES = re.compile(r"[?#\\\t\r\n]")


class Gateway:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.settings = platform.settings
        # The SageMaker Runtime (InvokeEndpoint); flushes its metrics and capture at exit.
        self.runtime = SageMakerRuntime(platform)
        atexit.register(self.runtime.close)
        # Per-request constants, computed once (the data plane asks for them thousands of
        # times a second): the host suffixes of virtual-hosted S3, the key -> secret lookup.
        suffixes = (*SERVER_HOST_SUFFIXES, f"s3.{self.settings.region}.amazonaws.com")
        if self.settings.host not in ("127.0.0.1", "0.0.0.0", "::", "::1"):
            suffixes = (*suffixes, self.settings.host.lower())
        self._host_suffixes = tuple("." + suffix for suffix in suffixes)
        credentials = self.settings.credentials
        known = {credentials.access_key_id: credentials.secret_access_key}
        self._secret_for = known.get

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "region": self.settings.region})

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        protocol, service, operation = "s3", "s3", "-"
        try:
            protocol = _guess_protocol(request)
            bucket = self._virtual_host_bucket(request.headers.get("host", ""))
            if bucket is not None:
                protocol = "s3"
            raw_query = request.scope.get("query_string", b"").decode("latin-1")
            query_params = dict(parse_qsl(raw_query, keep_blank_values=True))
            auth = sigv4.read_authorization(request.headers, query_params)
            service = auth.service
            if service == "s3" or bucket is not None:
                protocol = "s3"
                response = await self._handle_s3(request, request_id, auth, bucket, raw_query)
            elif service in REST_JSON_SERVICES:
                protocol = "rest-json"
                operation, response = await self._handle_rest_json(
                    request, request_id, auth, raw_query)
            elif protocol == "cbor":
                operation, response = await self._handle_cbor(
                    request, request_id, auth, raw_query)
            elif protocol == "json":
                service, operation, response = await self._handle_json(
                    request, request_id, auth, raw_query
                )
            elif protocol == "query" or service in query.QUERY_SERVICES:
                protocol = "query"
                service, operation, response = await self._handle_query(
                    request, request_id, auth, raw_query
                )
            else:
                response = await self._handle_other(request, request_id, auth, raw_query, protocol)
        except AwsError as error:
            response = _render_error(protocol, error, request_id, request)
        except Exception:  # noqa: BLE001 - the client gets an AWS-shaped 500, the log the trace
            log.exception("internal error in %s %s (request %s)", service, operation, request_id)
            error = AwsError(
                "InternalFailure",
                f"modelyard hit an internal error (request id {request_id}); the server log "
                "has the details.",
                status=500,
            )
            response = _render_error(protocol, error, request_id, request)
        if response.status_code >= 400 and _declared_a_body(request):
            # The body may be unread (an early error, or a client that sent
            # "Expect: 100-continue" and now waits): a kept-alive connection would hang.
            response.headers["connection"] = "close"
        if operation == "-":
            operation = getattr(request.state, "operation", "-")
        elapsed = (time.perf_counter() - started) * 1000
        # Data-plane traffic (InvokeEndpoint) is logged only when it fails: a log line costs
        # as much as routing the call, and the endpoint's metrics count the successes.
        level = logging.DEBUG if (operation == "InvokeEndpoint"
                                  and response.status_code < 400) else logging.INFO
        log.log(level, "%s %s %s %d %.1fms", service, operation, request_id[:8],
                response.status_code, elapsed)
        return response

    async def handle_invocation(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """InvokeEndpoint straight from ASGI, for ``POST /endpoints/...`` (the data plane).

        The same steps as ``handle`` -> ``_handle_other`` -> the runtime, without building
        Starlette's Request or scanning its header list again at every lookup: at thousands
        of invocations a second that bookkeeping costs as much as the routing itself.
        Returns False, having read nothing, for any request that ``handle`` would not send
        to the SageMaker Runtime (another protocol's markers, a virtual-hosted bucket, an
        unreadable signature, another signing service); the app then passes it to ``handle``,
        which routes (or refuses) it as always.
        """
        headers = _header_map(scope["headers"])
        if ("x-amz-target" in headers or headers.get("smithy-protocol") == "rpc-v2-cbor"
                or headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
                or self._virtual_host_bucket(headers.get("host", "")) is not None):
            return False
        path = scope["path"]
        if _URL_REWRITES.search(path):  # characters Starlette's URL escapes or drops
            path = URL(scope=scope).path  # what request.url.path would say
        if not path.startswith("/endpoints/"):
            return False
        raw_query = scope.get("query_string", b"").decode("latin-1")
        try:
            auth = sigv4.read_authorization(
                headers, dict(parse_qsl(raw_query, keep_blank_values=True)) if raw_query else {})
        except AwsError:
            return False
        if (auth.service == "s3" or auth.service in REST_JSON_SERVICES
                or auth.service in query.QUERY_SERVICES):
            return False
        started = time.perf_counter()
        # uuid4().hex's format; Python's generator (seeded from os.urandom) instead of a
        # getrandom system call per request: a request id needs to be unique, not secret.
        request_id = f"{random.getrandbits(128):032x}"
        raw_path = scope.get("raw_path", b"/").decode("latin-1")
        try:
            body = await _receive_bounded_body(receive, headers,
                                               self.settings.max_api_request_bytes)
            self._verify_parts("POST", raw_path or "/", headers, auth, raw_query,
                               _payload_hash_of(headers, body))
            response = await self.runtime.handle("POST", raw_path, path, headers, body,
                                                 request_id)
        except AwsError as error:
            response = _render_error("rest-json", error, request_id, None)
        except Exception:  # noqa: BLE001 - as in handle: an AWS-shaped 500, the trace logged
            log.exception("internal error in %s InvokeEndpoint (request %s)", auth.service,
                          request_id)
            response = _render_error("rest-json", AwsError(
                "InternalFailure",
                f"modelyard hit an internal error (request id {request_id}); the server log "
                "has the details.",
                status=500,
            ), request_id, None)
        if response.status_code >= 400 and _declares_a_body(headers):
            response.headers["connection"] = "close"
        if response.status_code >= 400 or log.isEnabledFor(logging.DEBUG):
            log.log(logging.DEBUG if response.status_code < 400 else logging.INFO,
                    "%s %s %s %d %.1fms", auth.service, "InvokeEndpoint", request_id[:8],
                    response.status_code, (time.perf_counter() - started) * 1000)
        await response(scope, receive, send)
        return True

    # --- per protocol ----------------------------------------------------------------

    async def _handle_s3(
        self, request: Request, request_id: str, auth: sigv4.Authorization,
        bucket: str | None, raw_query: str,
    ) -> Response:
        payload_hash = (
            sigv4.UNSIGNED_PAYLOAD if auth.presigned
            else request.headers.get("x-amz-content-sha256", "")
        )
        if not payload_hash:
            raise sigv4.AuthFailure(
                "malformed", "S3 requests must carry x-amz-content-sha256 (SigV4)."
            )
        raw_path = request.scope.get("raw_path", b"/").decode("latin-1")
        resource_path = raw_path if bucket is None else f"/{bucket}{raw_path}"
        self._verify(request, auth, raw_query, payload_hash, resource_path=resource_path)
        path = unquote(raw_path)
        if bucket is None:
            bucket, _, key = path.lstrip("/").partition("/")
            bucket = bucket or None
        else:
            key = path[1:] if path.startswith("/") else path
        ctx = self._context(request_id, "s3", "", auth)
        return await restxml.handle_s3_request(request, ctx, bucket, key or None, payload_hash)

    async def _handle_json(
        self, request: Request, request_id: str, auth: sigv4.Authorization, raw_query: str
    ) -> tuple[str, str, Response]:
        body = await self._read_bounded_body(request)
        self._verify(request, auth, raw_query, _payload_hash(request, body))
        body = _decompressed(request, body, self.settings.max_api_request_bytes)
        service, operation = jsonproto.read_target(request.headers["x-amz-target"])
        params = jsonproto.read_body(body)
        result, output_shape = await self._invoke(request_id, auth, service, operation, params)
        return service, operation, jsonproto.render_result(output_shape, result, request_id)

    async def _handle_query(
        self, request: Request, request_id: str, auth: sigv4.Authorization, raw_query: str
    ) -> tuple[str, str, Response]:
        body = await self._read_bounded_body(request)
        self._verify(request, auth, raw_query, _payload_hash(request, body))
        body = _decompressed(request, body, self.settings.max_api_request_bytes)
        form = {**dict(parse_qsl(raw_query)), **query.read_form(body)}
        operation = form.get("Action", "")
        service = _service_name(auth.service)
        service = service if service in query.QUERY_SERVICES else "sts"
        model = operation_model(service, operation)
        params = query.unflatten(model.input_shape, form) if model else {}
        result, output_shape = await self._invoke(
            request_id, auth, service, operation, params, strings=True
        )
        namespace = service_model(service).metadata.get("xmlNamespace", "")
        return service, operation, query.render_result(
            operation, output_shape, result, namespace, request_id
        )

    async def _handle_cbor(
        self, request: Request, request_id: str, auth: sigv4.Authorization, raw_query: str
    ) -> tuple[str, Response]:
        body = await self._read_bounded_body(request)
        self._verify(request, auth, raw_query, _payload_hash(request, body))
        body = _decompressed(request, body, self.settings.max_api_request_bytes)
        operation = cborproto.read_path(request.url.path)
        params = cborproto.read_body(body)
        result, output_shape = await self._invoke(request_id, auth, _service_name(auth.service),
                                                  operation, params)
        return operation, cborproto.render_result(output_shape, result, request_id)

    async def _handle_rest_json(
        self, request: Request, request_id: str, auth: sigv4.Authorization, raw_query: str
    ) -> tuple[str, Response]:
        body = await self._read_bounded_body(request)
        self._verify(request, auth, raw_query, _payload_hash(request, body))
        raw_path = request.scope.get("raw_path", b"/").decode("latin-1") or "/"
        operation, labels = restjson.find_operation(auth.service, request.method, raw_path)
        model = operation_model(auth.service, operation)
        params = restjson.read_request(model, labels, raw_query, request.headers, body)
        result, _ = await self._invoke(request_id, auth, auth.service, operation, params)
        return operation, restjson.render_result(model, result, request_id)

    async def _handle_other(
        self, request: Request, request_id: str, auth: sigv4.Authorization, raw_query: str,
        protocol: str,
    ) -> Response:
        body = await self._read_bounded_body(request)
        self._verify(request, auth, raw_query, _payload_hash(request, body))
        if protocol == "rest-json" and request.url.path.startswith("/endpoints/"):
            # POSTs get here only when handle_invocation (the fast path) declined them;
            # a change to the steps above must be made there too.
            request.state.operation = "InvokeEndpoint"
            return await self.runtime.handle(
                request.method, request.scope.get("raw_path", b"").decode("latin-1"),
                request.url.path, request.headers, body, request_id)
        raise AwsError(
            "UnknownOperationException",
            f"modelyard cannot tell which {auth.service} operation {request.method} "
            f"{request.url.path} is; check the client's endpoint and service.",
        )

    # --- shared steps ----------------------------------------------------------------

    async def _invoke(
        self, request_id: str, auth: sigv4.Authorization, service: str, operation: str,
        raw_params: dict[str, Any], *, strings: bool = False,
    ) -> tuple[dict[str, Any], Any]:
        model = operation_model(service, operation)
        if model is None:
            raise AwsError(
                "UnknownOperationException" if service != "sts" else "InvalidAction",
                f"{operation!r} is not an operation of {service}.",
            )
        params = parse_input(model.input_shape, raw_params, strings=strings)
        handler = find_handler(service, operation)
        if handler is None:
            raise not_implemented(service, operation)
        ctx = self._context(request_id, service, operation, auth)
        result = await run_in_threadpool(handler, ctx, params)
        return result, model.output_shape

    def _verify(
        self, request: Request, auth: sigv4.Authorization, raw_query: str, payload_hash: str,
        *, resource_path: str | None = None,
    ) -> None:
        self._verify_parts(request.method,
                           request.scope.get("raw_path", b"/").decode("latin-1") or "/",
                           request.headers, auth, raw_query, payload_hash,
                           resource_path=resource_path)

    def _verify_parts(
        self, method: str, raw_path: str, headers: Any, auth: sigv4.Authorization,
        raw_query: str, payload_hash: str, *, resource_path: str | None = None,
    ) -> None:
        sigv4.verify(
            auth,
            method=method,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=headers,
            payload_hash=payload_hash,
            secret_for=self._secret_for,
            now=time.time(),  # signatures are checked against the real time
            max_skew_seconds=self.settings.max_clock_skew_seconds,
            resource_path=resource_path,
        )

    def _context(
        self, request_id: str, service: str, operation: str, auth: sigv4.Authorization
    ) -> RequestContext:
        return RequestContext(self.platform, request_id, service, operation, auth.access_key_id)

    async def _read_bounded_body(self, request: Request) -> bytes:
        limit = self.settings.max_api_request_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    def _virtual_host_bucket(self, host_header: str) -> str | None:
        host = host_header.rsplit(":", 1)[0] if not host_header.startswith("[") else ""
        host = host.lower()
        for suffix in self._host_suffixes:
            if host.endswith(suffix):
                return host[: -len(suffix)] or None
        return None


def _guess_protocol(request: Request) -> str:
    headers = request.headers
    if "x-amz-target" in headers:
        return "json"
    if headers.get("smithy-protocol") == "rpc-v2-cbor":
        return "cbor"
    content_type = headers.get("content-type", "")
    if request.method == "POST" and content_type.startswith("application/x-www-form-urlencoded"):
        return "query"
    if request.url.path.startswith(("/endpoints/", "/inference-components/", "/2015-03-31/")):
        return "rest-json"  # the SageMaker Runtime; Lambda's API version prefix
    return "s3"


def _declared_a_body(request: Request) -> bool:
    return _declares_a_body(request.headers)


def _declares_a_body(headers: Any) -> bool:
    length = headers.get("content-length", "0")
    return "transfer-encoding" in headers or (length.isdigit() and int(length) > 0)


def _header_map(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI headers as a dict; a repeated name keeps its first value, as Starlette's
    ``Headers.get`` answers."""
    headers: dict[str, str] = {}
    for key, value in raw:
        name = key.decode("latin-1")
        if name not in headers:
            headers[name] = value.decode("latin-1")
    return headers


async def _receive_bounded_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """``Gateway._read_bounded_body`` on raw ASGI messages."""
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _payload_hash(request: Request, body: bytes) -> str:
    return _payload_hash_of(request.headers, body)


def _payload_hash_of(headers: Any, body: bytes) -> str:
    actual = hashlib.sha256(body).hexdigest()
    claimed = headers.get("x-amz-content-sha256")
    if claimed and claimed != sigv4.UNSIGNED_PAYLOAD and claimed != actual:
        raise AwsError(
            "InvalidSignatureException",
            "x-amz-content-sha256 does not match the body that arrived.",
            status=400,
        )
    return claimed or actual


# Signing names (credential scope) that differ from botocore's service names.
_SIGNING_NAMES = {"monitoring": "cloudwatch"}


def _service_name(signing_name: str) -> str:
    return _SIGNING_NAMES.get(signing_name, signing_name)


def _decompressed(request: Request, body: bytes, limit: int) -> bytes:
    """The body without its ``Content-Encoding: gzip`` (botocore compresses large
    PutMetricData requests); signatures cover the compressed bytes, so call after _verify."""
    if "gzip" not in request.headers.get("content-encoding", "").lower():
        return body
    import zlib

    decoder = zlib.decompressobj(wbits=31)
    try:
        data = decoder.decompress(body, limit + 1)
    except zlib.error:
        raise AwsError("SerializationException", "The request body says Content-Encoding: "
                       "gzip but is not valid gzip data.") from None
    if len(data) > limit or decoder.unconsumed_tail:
        raise _too_large(limit)
    return data


def _too_large(limit: int) -> AwsError:
    return AwsError(
        "RequestEntityTooLarge",
        f"The request body is over modelyard's limit of {limit // (1024 * 1024)} MiB for API "
        "calls; put large data in S3 and pass its URI.",
        status=413,
    )


def _render_error(protocol: str, error: AwsError, request_id: str,
                  request: Request | None) -> Response:
    if isinstance(error, sigv4.AuthFailure):
        codes = {
            "json": jsonproto.AUTH_ERROR_CODES,
            "rest-json": jsonproto.AUTH_ERROR_CODES,
            "cbor": jsonproto.AUTH_ERROR_CODES,
            "query": query.AUTH_ERROR_CODES,
        }.get(protocol, S3_AUTH_ERROR_CODES)
        error = AwsError(codes[error.kind], error.message, status=403)
    if protocol == "query":
        return query.render_error(error, request_id)
    if protocol in ("json", "rest-json"):
        return jsonproto.render_error(error, request_id)
    if protocol == "cbor":
        return cborproto.render_error(error, request_id)
    assert request is not None  # only InvokeEndpoint's fast path passes None (rest-json)
    return restxml.render_s3_error(
        error, request_id, head=request.method == "HEAD", resource=request.url.path
    )
