"""S3 operations on buckets and objects, on ``ctx.platform.objects``.

Multipart uploads are in ``s3_multipart.py``; ``s3_operations.py`` is the table of all of
them, with the checks S3 makes before any handler runs.

Each handler takes the request as botocore's input shape describes it (already
validated; ``Body`` is a ``SpooledBody``) and returns a dict in the output shape. Values
that S3 quotes on the wire (ETags) are quoted here; everything else about the wire is the
codec's business.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

from ..api.context import RequestContext
from ..api.errors import AwsError
from ..store.objects import (
    DEFAULT_CONTENT_TYPE,
    ENCRYPTION_METADATA,
    SYSTEM_METADATA,
    ObjectInfo,
    ObjectStore,
    etag_matches,
    precondition_failed,
)
from .s3_encryption import encryption_headers, requested_encryption

Request = dict[str, Any]
Handler = Callable[[RequestContext, Request], dict[str, Any]]

MAX_KEYS = 1000
MAX_DELETE_KEYS = 1000
_TOKEN_PREFIX = "my1:"  # marks continuation tokens this server issued


def _store(ctx: RequestContext) -> ObjectStore:
    return ctx.platform.objects


def _quoted(etag: str) -> str:
    return f'"{etag}"'


def _owner(ctx: RequestContext) -> dict[str, str]:
    return {"ID": ctx.account_id, "DisplayName": "modelyard"}


# --- buckets ----------------------------------------------------------------------------


def list_buckets(ctx: RequestContext, request: Request) -> dict[str, Any]:
    buckets = _store(ctx).list_buckets()
    prefix = request.get("Prefix") or ""
    buckets = [b for b in buckets if b.name.startswith(prefix)]
    if request.get("BucketRegion"):
        buckets = [b for b in buckets if b.region == request["BucketRegion"]]
    if request.get("ContinuationToken"):
        after = _decode_token(request["ContinuationToken"])
        buckets = [b for b in buckets if b.name > after]
    limit = request.get("MaxBuckets")
    next_token = None
    if limit is not None and len(buckets) > limit:
        buckets = buckets[:limit]
        next_token = _encode_token(buckets[-1].name)
    return {
        "Buckets": [{"Name": b.name, "CreationDate": b.created, "BucketRegion": b.region}
                    for b in buckets],
        "Owner": _owner(ctx),
        "ContinuationToken": next_token,
        "Prefix": request.get("Prefix"),
    }


def create_bucket(ctx: RequestContext, request: Request) -> dict[str, Any]:
    name = request["Bucket"]
    constraint = (request.get("CreateBucketConfiguration") or {}).get("LocationConstraint")
    if constraint and constraint != ctx.region:
        raise AwsError("IllegalLocationConstraintException", f"This server is region "
                       f"{ctx.region}; it cannot create a bucket in {constraint}. Omit the "
                       "LocationConstraint or set it to the server's region.", BucketName=name)
    if not constraint and ctx.region != "us-east-1":
        raise AwsError("IllegalLocationConstraintException", f"This server is region "
                       f"{ctx.region}: pass CreateBucketConfiguration={{'LocationConstraint': "
                       f"'{ctx.region}'}}, as S3 requires outside us-east-1.", BucketName=name)
    try:
        _store(ctx).create_bucket(name, owner=ctx.account_id, region=ctx.region, now=ctx.now)
    except AwsError as error:
        # S3 in us-east-1 answers 200 to re-creating a bucket you own; elsewhere 409.
        if not (error.code == "BucketAlreadyOwnedByYou" and ctx.region == "us-east-1"):
            raise
    return {"Location": f"/{name}"}


def head_bucket(ctx: RequestContext, request: Request) -> dict[str, Any]:
    return {"BucketRegion": _store(ctx).head_bucket(request["Bucket"]).region}


def delete_bucket(ctx: RequestContext, request: Request) -> dict[str, Any]:
    _store(ctx).delete_bucket(request["Bucket"])
    return {}


def get_bucket_location(ctx: RequestContext, request: Request) -> dict[str, Any]:
    region = _store(ctx).head_bucket(request["Bucket"]).region
    return {"LocationConstraint": None if region == "us-east-1" else region}


# --- listing ----------------------------------------------------------------------------


def list_objects_v2(ctx: RequestContext, request: Request) -> dict[str, Any]:
    token = request.get("ContinuationToken")
    after = _decode_token(token) if token else request.get("StartAfter")
    page = _store(ctx).list_objects(
        request["Bucket"], prefix=request.get("Prefix") or "",
        delimiter=request.get("Delimiter") or "", after=after, max_keys=_max_keys(request))
    encode = _encoder(request)
    return {
        "Name": request["Bucket"],
        "Prefix": encode(request.get("Prefix") or ""),
        "Delimiter": encode(request.get("Delimiter")),
        "MaxKeys": _max_keys(request),
        "KeyCount": len(page.contents) + len(page.common_prefixes),
        "IsTruncated": page.is_truncated,
        "Contents": [_listed(ctx, info, encode, request.get("FetchOwner", False))
                     for info in page.contents],
        "CommonPrefixes": [{"Prefix": encode(p)} for p in page.common_prefixes],
        "ContinuationToken": token,
        "NextContinuationToken": _encode_token(page.next_marker)
        if page.is_truncated and page.next_marker else None,
        "StartAfter": encode(request.get("StartAfter")),
        "EncodingType": request.get("EncodingType"),
    }


def list_objects(ctx: RequestContext, request: Request) -> dict[str, Any]:
    delimiter = request.get("Delimiter") or ""
    page = _store(ctx).list_objects(
        request["Bucket"], prefix=request.get("Prefix") or "", delimiter=delimiter,
        after=request.get("Marker"), max_keys=_max_keys(request))
    encode = _encoder(request)
    return {
        "Name": request["Bucket"],
        "Prefix": encode(request.get("Prefix") or ""),
        "Marker": encode(request.get("Marker") or ""),
        "Delimiter": encode(request.get("Delimiter")),
        "MaxKeys": _max_keys(request),
        "IsTruncated": page.is_truncated,
        "Contents": [_listed(ctx, info, encode, True) for info in page.contents],
        "CommonPrefixes": [{"Prefix": encode(p)} for p in page.common_prefixes],
        # S3 returns NextMarker only with a delimiter; without one, clients use the last key.
        "NextMarker": encode(page.next_marker) if page.is_truncated and delimiter else None,
        "EncodingType": request.get("EncodingType"),
    }


def _listed(ctx: RequestContext, info: ObjectInfo, encode: Callable[[Any], Any],
            with_owner: bool) -> dict[str, Any]:
    entry = {"Key": encode(info.key), "LastModified": info.last_modified,
             "ETag": _quoted(info.etag), "Size": info.size, "StorageClass": "STANDARD"}
    if with_owner:
        entry["Owner"] = _owner(ctx)
    return entry


def _max_keys(request: Request) -> int:
    value = request.get("MaxKeys", MAX_KEYS)
    if value < 0:
        raise AwsError("InvalidArgument", "max-keys must be a non-negative integer (at most "
                       f"{MAX_KEYS} keys are returned per page).")
    return min(value, MAX_KEYS)


def _encoder(request: Request) -> Callable[[Any], Any]:
    """With encoding-type=url, S3 percent-encodes keys in listings (boto3 always asks)."""
    if request.get("EncodingType") != "url":
        return lambda value: value
    return lambda value: quote(value, safe="/") if isinstance(value, str) else value


def _encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode((_TOKEN_PREFIX + marker).encode()).decode()


def _decode_token(token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, ValueError):
        text = ""
    if not text.startswith(_TOKEN_PREFIX):
        raise AwsError("InvalidArgument", "The continuation token provided is incorrect. Pass "
                       "NextContinuationToken exactly as the previous page returned it.")
    return text[len(_TOKEN_PREFIX):]


# --- objects ----------------------------------------------------------------------------


def put_object(ctx: RequestContext, request: Request) -> dict[str, Any]:
    encryption = requested_encryption(ctx, request)
    info = _store(ctx).put_object(
        request["Bucket"], request["Key"], request["Body"], now=ctx.now,
        content_type=request.get("ContentType") or DEFAULT_CONTENT_TYPE,
        metadata=request.get("Metadata"),
        system_metadata={**_system_metadata(request), **encryption},
        if_match=request.get("IfMatch"), if_none_match=request.get("IfNoneMatch"))
    return {"ETag": _quoted(info.etag), **encryption_headers(info.system_metadata)}


def get_object(ctx: RequestContext, request: Request) -> dict[str, Any]:
    reader = _store(ctx).open_object(request["Bucket"], request["Key"])
    try:
        response = _read_response(reader.info, request)
        first, length = response.pop("_range")
        response["Body"] = reader.slice(first, length)
        return response
    except BaseException:
        reader.close()
        raise


def head_object(ctx: RequestContext, request: Request) -> dict[str, Any]:
    response = _read_response(_store(ctx).get_object_info(request["Bucket"], request["Key"]),
                              request)
    response.pop("_range")
    return response


def _read_response(info: ObjectInfo, request: Request) -> dict[str, Any]:
    """The headers GET and HEAD share, after the conditional and range headers."""
    _check_read_conditions(info, request)
    part = request.get("PartNumber")
    if part is not None and not (part == 1 and info.parts_count is None):
        raise AwsError("InvalidArgument", "modelyard serves parts of multipart objects by "
                       "byte range only: use the Range header instead of partNumber.",
                       Key=info.key)
    response: dict[str, Any] = {
        "ETag": _quoted(info.etag), "LastModified": info.last_modified,
        "ContentType": info.content_type, "ContentLength": info.size,
        "AcceptRanges": "bytes", "Metadata": info.metadata or None,
        **{name: value for name, value in info.system_metadata.items()
           if name not in ENCRYPTION_METADATA},
        **encryption_headers(info.system_metadata, with_context=False),
        "_range": (0, info.size),
    }
    byte_range = _byte_range(request.get("Range"), info.size, info.key)
    if byte_range is not None:
        first, last = byte_range
        response["ContentRange"] = f"bytes {first}-{last}/{info.size}"
        response["ContentLength"] = last - first + 1
        response["_range"] = (first, last - first + 1)
    for override in ("CacheControl", "ContentDisposition", "ContentEncoding",
                     "ContentLanguage", "ContentType", "Expires"):
        if request.get("Response" + override) is not None:
            response[override] = request["Response" + override]
    return response


def _check_read_conditions(info: ObjectInfo, request: Request) -> None:
    """RFC 7232 order, as S3 applies it: If-Match beats If-Unmodified-Since, and
    If-None-Match beats If-Modified-Since."""
    modified = int(info.last_modified)  # HTTP dates have whole seconds
    if_match, if_none_match = request.get("IfMatch"), request.get("IfNoneMatch")
    if if_match is not None and not etag_matches(if_match, info.etag):
        raise precondition_failed(info.bucket, info.key, "If-Match")
    since = request.get("IfUnmodifiedSince")
    if if_match is None and since is not None and modified > since:
        raise precondition_failed(info.bucket, info.key, "If-Unmodified-Since")
    if if_none_match is not None and etag_matches(if_none_match, info.etag):
        raise AwsError("NotModified", "Not Modified", 304)
    since = request.get("IfModifiedSince")
    if if_none_match is None and since is not None and modified <= since:
        raise AwsError("NotModified", "Not Modified", 304)


_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


def _byte_range(header: str | None, size: int, key: str) -> tuple[int, int] | None:
    """An inclusive (first, last) range, or None for the whole object.

    Like S3, a malformed or multi-range header is ignored; a range that starts past the
    end is InvalidRange (416).
    """
    match = _RANGE.fullmatch(header) if header else None
    if match is None or not (match[1] or match[2]):
        return None
    if match[1]:
        first = int(match[1])
        last = int(match[2]) if match[2] else size - 1
        if last < first:
            return None
        if first < size:
            return first, min(last, size - 1)
    elif int(match[2]) > 0 and size > 0:
        return max(0, size - int(match[2])), size - 1
    raise AwsError("InvalidRange", f"The range '{header}' is not satisfiable: '{key}' is "
                   f"{size} bytes long.", 416, ActualObjectSize=str(size),
                   RangeRequested=header or "", Key=key)


def delete_object(ctx: RequestContext, request: Request) -> dict[str, Any]:
    _store(ctx).delete_object(request["Bucket"], request["Key"])
    return {}


def delete_objects(ctx: RequestContext, request: Request) -> dict[str, Any]:
    spec = request["Delete"]
    objects = spec.get("Objects") or []
    if len(objects) > MAX_DELETE_KEYS:
        raise AwsError("MalformedXML", f"The request lists {len(objects)} keys; DeleteObjects "
                       f"takes at most {MAX_DELETE_KEYS}. Split it into several requests.")
    deleted, errors = [], []
    for entry in objects:
        try:
            _store(ctx).delete_object(request["Bucket"], entry["Key"])
        except AwsError as error:
            if error.code == "NoSuchBucket":
                raise
            errors.append({"Key": entry["Key"], "Code": error.code, "Message": error.message})
            continue
        if not spec.get("Quiet"):
            deleted.append({"Key": entry["Key"]})
    return {"Deleted": deleted, "Errors": errors}


def copy_object(ctx: RequestContext, request: Request) -> dict[str, Any]:
    source_bucket, source_key = _copy_source(request["CopySource"])
    directive = request.get("MetadataDirective", "COPY")
    if (source_bucket, source_key) == (request["Bucket"], request["Key"]) \
            and directive == "COPY" and not request.get("WebsiteRedirectLocation"):
        raise AwsError("InvalidRequest", "This copy request is illegal because it is trying to "
                       "copy an object to itself without changing the object's metadata. Pass "
                       "MetadataDirective=REPLACE with the new metadata.", Key=request["Key"])
    source = _store(ctx).get_object_info(source_bucket, source_key)
    _check_copy_source_conditions(source, request)
    info = _store(ctx).copy_object(
        source_bucket, source_key, request["Bucket"], request["Key"], now=ctx.now,
        replace_metadata=directive == "REPLACE", content_type=request.get("ContentType"),
        metadata=request.get("Metadata"), system_metadata=_system_metadata(request),
        encryption=requested_encryption(ctx, request))
    return {"CopyObjectResult": {"ETag": _quoted(info.etag),
                                 "LastModified": info.last_modified},
            **encryption_headers(info.system_metadata)}


def _copy_source(text: str) -> tuple[str, str]:
    path, _, version = text.partition("?versionId=")
    if version and version != "null":
        raise AwsError("InvalidArgument", "modelyard buckets are not versioned: the only "
                       "version ID a copy source may name is 'null'.")
    bucket, separator, key = unquote(path).lstrip("/").partition("/")
    if not (bucket and separator and key):
        raise AwsError("InvalidArgument", f"The copy source '{text[:200]}' must name a bucket "
                       "and a key: 'source-bucket/source-key' (URL-encoded).")
    return bucket, key


def _check_copy_source_conditions(source: ObjectInfo, request: Request) -> None:
    modified = int(source.last_modified)
    if_match = request.get("CopySourceIfMatch")
    if if_match is not None and not etag_matches(if_match, source.etag):
        raise precondition_failed(source.bucket, source.key, "x-amz-copy-source-if-match")
    if_none_match = request.get("CopySourceIfNoneMatch")
    if if_none_match is not None and etag_matches(if_none_match, source.etag):
        raise precondition_failed(source.bucket, source.key, "x-amz-copy-source-if-none-match")
    since = request.get("CopySourceIfUnmodifiedSince")
    if if_match is None and since is not None and modified > since:
        raise precondition_failed(source.bucket, source.key,
                                  "x-amz-copy-source-if-unmodified-since")
    since = request.get("CopySourceIfModifiedSince")
    if if_none_match is None and since is not None and modified <= since:
        raise precondition_failed(source.bucket, source.key,
                                  "x-amz-copy-source-if-modified-since")


def _system_metadata(request: Request) -> dict[str, str]:
    """Content-* and friends as stored: strings, with Expires kept as an HTTP date."""
    stored = {}
    for name in SYSTEM_METADATA:
        value = request.get(name)
        if value is None:
            continue
        stored[name] = email.utils.formatdate(value, usegmt=True) if name == "Expires" \
            else str(value)
    return stored
