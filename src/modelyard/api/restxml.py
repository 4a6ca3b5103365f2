"""The S3 wire protocol (rest-xml): route, decode and check a request, encode the answer.

The gateway has already verified the SigV4 signature and split bucket and key out of the
path or Host. From here on the botocore model drives everything: which operation a
request is (method + URI shape + the query parameters and headers it must carry), where
each input member lives, and how each output member goes on the wire. Handlers in
``services/s3*.py`` see plain dicts; request bodies arrive as ``SpooledBody`` files whose
digests were checked before the handler runs.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import logging
import re
import zlib
from collections.abc import Mapping
from typing import Any

from botocore.model import OperationModel, Shape
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from ..store.spool import CHECKSUM_ALGORITHMS, SpooledBody, entity_too_large, spool_stream
from .context import RequestContext
from .errors import AwsError, not_implemented
from .shapes import operation_model, parse_input, service_model
from .xmlshapes import (
    element_name,
    format_header,
    malformed_xml,
    parse_header,
    parse_xml_payload,
    serialize_scalar_root,
    serialize_xml,
    error_document,
)

log = logging.getLogger(__name__)

# The model names no root element for outputs that are not a payload member.
_XML_ROOTS = {
    "ListBuckets": "ListAllMyBucketsResult",
    "ListObjects": "ListBucketResult",
    "ListObjectsV2": "ListBucketResult",
    "ListObjectVersions": "ListVersionsResult",
    "GetBucketLocation": "LocationConstraint",
    "CreateMultipartUpload": "InitiateMultipartUploadResult",
    "CompleteMultipartUpload": "CompleteMultipartUploadResult",
    "ListParts": "ListPartsResult",
    "ListMultipartUploads": "ListMultipartUploadsResult",
    "DeleteObjects": "DeleteResult",
    "GetBucketVersioning": "VersioningConfiguration",
    "GetBucketTagging": "Tagging",
    "GetObjectTagging": "Tagging",
    "GetBucketAcl": "AccessControlPolicy",
    "GetObjectAcl": "AccessControlPolicy",
}

_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_HEADER_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CHECKSUM_HEADER = "x-amz-checksum-"


# --- entry points -----------------------------------------------------------------------


async def handle_s3_request(request: Request, ctx: RequestContext, bucket: str | None,
                            key: str | None, claimed_payload_sha256: str) -> Response:
    head = request.method == "HEAD"
    resource = request.url.path
    body: SpooledBody | None = None
    body_unread = _declares_body(request.headers)
    try:
        operation = route(request.method, bucket, key or None, request.query_params,
                          request.headers)
        ctx = dataclasses.replace(ctx, operation=operation.name)
        request.state.operation = operation.name  # for the gateway's access log
        # The domain side, imported late: services import the platform, which imports us.
        from ..services import find_handler
        from ..services.s3_operations import BODY_PRECHECKS

        handler = find_handler("s3", operation.name)
        if handler is None:
            raise not_implemented("s3", operation.name)
        params = await _read_input(request, ctx, operation, bucket, key or None,
                                   claimed_payload_sha256)
        streaming = _streaming_payload(operation)
        if streaming is not None:
            precheck = BODY_PRECHECKS.get(operation.name)
            if precheck is not None:
                await run_in_threadpool(precheck, ctx, params)
            body = await _spool_body(request, ctx, claimed_payload_sha256)
            params[streaming] = body
        body_unread = False
        result = await run_in_threadpool(handler, ctx, params)
        return render_s3_response(operation, result or {}, ctx.request_id, head=head)
    except AwsError as error:
        response = render_s3_error(error, ctx.request_id, head=head, resource=resource)
    except ClientDisconnect:
        log.info("client went away during S3 %s %s; nothing was stored", request.method,
                 resource)
        response = Response(b"", 400, {"x-amz-request-id": ctx.request_id})
    except Exception:
        log.exception("S3 request %s %s failed", request.method, resource)
        error = AwsError("InternalError", "modelyard failed to process this request; the "
                         "server log has the details. Retry, and report it if it persists.",
                         500)
        response = render_s3_error(error, ctx.request_id, head=head, resource=resource)
    finally:
        if body is not None:
            await run_in_threadpool(body.discard)
    if body_unread:
        # We answered before reading the body (a client that sent Expect: 100-continue
        # never sends it). The connection cannot carry another request: close it.
        response.headers["connection"] = "close"
    return response


def _declares_body(headers: Mapping[str, str]) -> bool:
    return headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers


def render_s3_error(error: AwsError, request_id: str, *, head: bool = False,
                    resource: str = "") -> Response:
    """S3's error shape; HEAD responses and 304 carry no body, only the status."""
    headers = {"x-amz-request-id": request_id}
    if head or error.status == 304:
        return Response(b"", error.status, headers)
    fields = [(name, value) for name, value in error.fields.items() if value is not None]
    if resource and not any(name == "Resource" for name, _ in fields):
        fields.append(("Resource", resource))
    fields.append(("RequestId", request_id))
    document = error_document(error.code, error.message, fields)
    return Response(document, error.status, headers, media_type="application/xml")


# --- routing ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Route:
    operation: str
    literals: tuple[tuple[str, str | None], ...]  # query parameters the URI template fixes
    query: tuple[str, ...]  # required members bound to query parameters
    headers: tuple[str, ...]  # required members bound to headers (lower-case)
    deprecated: bool


@functools.lru_cache(maxsize=1)
def _route_table() -> dict[tuple[str, str], list[_Route]]:
    model = service_model("s3")
    table: dict[tuple[str, str], list[_Route]] = {}
    for name in model.operation_names:
        op = model.operation_model(name)
        path, _, query = op.http["requestUri"].partition("?")
        target = {"/": "root", "/{Bucket}": "bucket", "/{Bucket}/{Key+}": "object"}.get(path)
        if target is None:
            continue
        literals = []
        for part in filter(None, query.split("&")):
            parameter, has_value, value = part.partition("=")
            if parameter != "x-id":  # a client-side disambiguator, not a routing key
                literals.append((parameter, value if has_value else None))
        required_query, required_headers = [], []
        shape = op.input_shape
        for member_name in shape.required_members if shape is not None else ():
            serialization = shape.members[member_name].serialization
            if serialization.get("location") == "querystring":
                required_query.append(serialization["name"])
            elif serialization.get("location") == "header":
                required_headers.append(serialization["name"].lower())
        table.setdefault((op.http["method"], target), []).append(_Route(
            name, tuple(literals), tuple(required_query), tuple(required_headers),
            bool(op.deprecated)))
    return table


def route(method: str, bucket: str | None, key: str | None, query: Mapping[str, str],
          headers: Mapping[str, str]) -> OperationModel:
    """Pick the operation whose URI template and required parameters fit best.

    S3 overloads one path with many operations (PutObject, CopyObject, UploadPart and
    UploadPartCopy are all ``PUT /{Bucket}/{Key+}``); the most specific match wins.
    """
    target = "root" if bucket is None else "bucket" if key is None else "object"
    best: tuple[int, bool, str] | None = None
    for candidate in _route_table().get((method, target), []):
        if not all(name in query and (value is None or query[name] == value)
                   for name, value in candidate.literals):
            continue
        if not all(name in query for name in candidate.query):
            continue
        if not all(name in headers for name in candidate.headers):
            continue
        score = len(candidate.literals) + len(candidate.query) + len(candidate.headers)
        rank = (-score, candidate.deprecated, candidate.operation)
        if best is None or rank < best:
            best = rank
    if best is None:
        raise AwsError("MethodNotAllowed", f"The {method} method is not allowed against this "
                       "resource in S3's API.", 405, Method=method,
                       ResourceType={"root": "SERVICE", "bucket": "BUCKET"}.get(target, "OBJECT"))
    model = operation_model("s3", best[2])
    assert model is not None
    return model


# --- input ------------------------------------------------------------------------------


async def _read_input(request: Request, ctx: RequestContext, operation: OperationModel,
                      bucket: str | None, key: str | None,
                      claimed_sha256: str) -> dict[str, Any]:
    """Every input member except a streaming body, read from where the model puts it."""
    shape = operation.input_shape
    if shape is None:
        return {}
    raw: dict[str, Any] = {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if location == "uri":
            value = {"Bucket": bucket, "Key": key}.get(wire_name)
        elif location == "querystring":
            value = _query_value(member, request, wire_name)
        elif location == "header":
            text = request.headers.get(wire_name)
            value = parse_header(member, text) if text is not None else None
        elif location == "headers":
            prefix = wire_name.lower()
            value = {header[len(prefix):]: text for header, text in request.headers.items()
                     if header.startswith(prefix)} or None
        else:
            continue
        if value is not None:
            raw[name] = value
    if "ContentEncoding" in raw:
        raw["ContentEncoding"] = _without_aws_chunked(raw["ContentEncoding"])

    payload_name = shape.serialization.get("payload")
    payload = shape.members.get(payload_name) if payload_name else None
    if _streaming_payload(operation) is None:
        data = await _read_small_body(request, ctx.settings.max_api_request_bytes)
        _check_digests(request.headers, claimed_sha256, _digests_of(data))
        if payload is not None and data:
            if payload.type_name == "structure":
                raw[payload_name] = parse_xml_payload(payload, data)
            else:
                raw[payload_name] = data.decode("utf-8", "replace")
        elif payload is not None and payload_name in shape.required_members:
            raise malformed_xml(f"the request has no body, but {operation.name} needs a "
                                f"<{element_name(payload, payload_name)}> document")
    try:
        return parse_input(shape, raw, strings=True)
    except AwsError as error:
        raise AwsError("InvalidArgument", error.message) from None


def _streaming_payload(operation: OperationModel) -> str | None:
    """The member a streaming request body binds to (PutObject's and UploadPart's Body)."""
    shape = operation.input_shape
    name = shape.serialization.get("payload") if shape is not None else None
    if name and shape.members[name].serialization.get("streaming"):
        return name
    return None


def _query_value(member: Shape, request: Request, wire_name: str) -> Any:
    if member.type_name == "list":
        return request.query_params.getlist(wire_name) or None
    text = request.query_params.get(wire_name)
    return parse_header(member, text) if text is not None else None


def _without_aws_chunked(encoding: str) -> str | None:
    kept = [token.strip() for token in encoding.split(",")
            if token.strip() and token.strip().lower() != "aws-chunked"]
    return ", ".join(kept) or None


async def _spool_body(request: Request, ctx: RequestContext, claimed_sha256: str) -> SpooledBody:
    headers = request.headers
    limit = ctx.settings.max_object_bytes
    encoding = headers.get("content-encoding", "").lower()
    aws_chunked = claimed_sha256.startswith("STREAMING-") or "aws-chunked" in encoding
    declared = _int_header(headers, "x-amz-decoded-content-length" if aws_chunked
                           else "content-length")
    if declared is not None and declared > limit:
        raise entity_too_large(declared, limit)
    algorithms = {name for name in CHECKSUM_ALGORITHMS if _CHECKSUM_HEADER + name in headers}
    trailer = headers.get("x-amz-trailer", "").lower()
    algorithms.update(name for name in CHECKSUM_ALGORITHMS if _CHECKSUM_HEADER + name in trailer)
    spooled = await spool_stream(
        request.stream(), ctx.platform.objects.spool_dir, limit,
        aws_chunked=aws_chunked, decoded_length=declared if aws_chunked else None,
        sha256=bool(_HEX_SHA256.fullmatch(claimed_sha256)), checksums=algorithms)
    try:
        _check_digests(headers, claimed_sha256, _Digests(
            spooled.md5_hex, spooled.sha256_hex, spooled.checksums), spooled.trailers)
    except BaseException:
        spooled.discard()
        raise
    return spooled


async def _read_small_body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise AwsError("MaxMessageLengthExceeded", f"The request body exceeds {limit} "
                           "bytes, the limit for this kind of request.")
        chunks.append(chunk)
    return b"".join(chunks)


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    text = headers.get(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise AwsError("InvalidArgument", f"The {name} header must be an integer, got "
                       f"'{text[:40]}'.") from None


# --- digests ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Digests:
    md5_hex: str
    sha256_hex: str | None
    checksums: dict[str, str]  # algorithm -> base64 digest


def _digests_of(data: bytes) -> _Digests:
    sha256 = hashlib.sha256(data).digest()
    return _Digests(
        hashlib.md5(data).hexdigest(), sha256.hex(),
        {"crc32": base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode(),
         "sha1": base64.b64encode(hashlib.sha1(data).digest()).decode(),
         "sha256": base64.b64encode(sha256).decode()})


def _check_digests(headers: Mapping[str, str], claimed_sha256: str, digests: _Digests,
                   trailers: Mapping[str, str] | None = None) -> None:
    """Refuse a body whose content differs from what the client said it sent."""
    if _HEX_SHA256.fullmatch(claimed_sha256) and digests.sha256_hex != claimed_sha256.lower():
        raise AwsError("XAmzContentSHA256Mismatch", "The x-amz-content-sha256 header does not "
                       "match the SHA-256 of the body that arrived; nothing was stored. Resend "
                       "the request unchanged.", ClientComputedContentSHA256=claimed_sha256,
                       S3ComputedContentSHA256=digests.sha256_hex or "")
    content_md5 = headers.get("content-md5")
    if content_md5 is not None:
        try:
            expected = base64.b64decode(content_md5, validate=True)
        except (binascii.Error, ValueError):
            expected = b""
        if len(expected) != 16:
            raise AwsError("InvalidDigest", "The Content-MD5 header is not the base64 encoding "
                           "of a 16-byte MD5 digest.")
        if expected.hex() != digests.md5_hex:
            raise AwsError("BadDigest", "The Content-MD5 you specified did not match the MD5 "
                           "of the body that arrived; nothing was stored. Resend the request.")
    for algorithm, computed in digests.checksums.items():
        claimed = headers.get(_CHECKSUM_HEADER + algorithm)
        if claimed is None and trailers:
            claimed = trailers.get(_CHECKSUM_HEADER + algorithm)
        if claimed is not None and claimed.strip() != computed:
            raise AwsError("BadDigest", f"The {algorithm.upper()} checksum you specified did not "
                           "match the checksum of the body that arrived; nothing was stored. "
                           "Resend the request.")


# --- output -----------------------------------------------------------------------------


def render_s3_response(operation: OperationModel, result: Mapping[str, Any], request_id: str,
                       *, head: bool = False) -> Response:
    """Shape a handler's result into headers, status and body, as the output model says."""
    shape = operation.output_shape
    status = int(operation.http.get("responseCode", 200))
    headers = {"x-amz-request-id": request_id}
    if shape is None:
        return Response(b"", status, headers)
    payload_name = shape.serialization.get("payload")
    body_members = []
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        value = result.get(name)
        if location == "header" and value is not None:
            headers[member.serialization["name"]] = _header_safe(format_header(member, value))
        elif location == "headers" and value:
            prefix = member.serialization["name"]
            for suffix, text in value.items():
                headers[prefix + suffix] = _header_safe(str(text))
        elif location == "statusCode" and value is not None:
            status = int(value)
        elif location is None and name != payload_name:
            body_members.append(name)
    if "Content-Range" in headers and status == 200:
        status = 206  # partial content, whatever the operation
    if head:
        return Response(b"", status, headers)
    if payload_name:
        member = shape.members[payload_name]
        value = result.get(payload_name)
        if value is None:
            return Response(b"", status, headers)
        if member.type_name == "structure":
            document = serialize_xml(member, value, element_name(member, payload_name))
            return Response(document, status, headers, media_type="application/xml")
        if hasattr(value, "iter_chunks"):
            return StreamingResponse(value.iter_chunks(), status, headers)
        data = value.encode() if isinstance(value, str) else bytes(value)
        return Response(data, status, headers)
    if not body_members:
        return Response(b"", status, headers)
    root = _XML_ROOTS.get(operation.name, f"{operation.name}Result")
    only = shape.members[body_members[0]] if len(body_members) == 1 else None
    if only is not None and element_name(only, body_members[0]) == root:
        document = serialize_scalar_root(only, result.get(body_members[0]), root)
    else:
        document = serialize_xml(shape, result, root)
    return Response(document, status, headers, media_type="application/xml")


def _header_safe(text: str) -> str:
    """Header values go out as latin-1 and must not break the header line: control
    characters (which HTTP forbids in a value, except tab) become spaces."""
    text = _HEADER_UNSAFE.sub(" ", text)
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        text = text.encode("utf-8").decode("latin-1")  # the UTF-8 bytes, unchanged
    return text
