"""S3 multipart uploads: create, upload parts (or copy them), complete, abort, list."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from ..api.context import RequestContext
from ..api.errors import AwsError
from ..store.objects import (
    DEFAULT_CONTENT_TYPE,
    CompletedPart,
)
from .s3_encryption import encryption_headers, requested_encryption

from .s3 import (
    Request,
    _check_copy_source_conditions,
    _copy_source,
    _encoder,
    _owner,
    _quoted,
    _store,
    _system_metadata,
)


def create_multipart_upload(ctx: RequestContext, request: Request) -> dict[str, Any]:
    upload = _store(ctx).create_multipart_upload(
        request["Bucket"], request["Key"], owner=ctx.account_id, now=ctx.now,
        content_type=request.get("ContentType") or DEFAULT_CONTENT_TYPE,
        metadata=request.get("Metadata"),
        system_metadata={**_system_metadata(request), **requested_encryption(ctx, request)})
    return {"Bucket": upload.bucket, "Key": upload.key, "UploadId": upload.upload_id,
            **encryption_headers(upload.system_metadata)}


def upload_part(ctx: RequestContext, request: Request) -> dict[str, Any]:
    encryption = _upload_encryption(ctx, request)
    part = _store(ctx).upload_part(request["Bucket"], request["Key"], request["UploadId"],
                                   request["PartNumber"], request["Body"], now=ctx.now)
    return {"ETag": _quoted(part.etag), **encryption}


def _upload_encryption(ctx: RequestContext, request: Request) -> dict[str, Any]:
    """The encryption headers of a multipart upload, which S3 repeats on every part."""
    upload = _store(ctx).list_parts(request["Bucket"], request["Key"], request["UploadId"],
                                    max_parts=0).upload
    return encryption_headers(upload.system_metadata, with_context=False)


_COPY_RANGE = re.compile(r"bytes=(\d+)-(\d+)")


def upload_part_copy(ctx: RequestContext, request: Request) -> dict[str, Any]:
    source_bucket, source_key = _copy_source(request["CopySource"])
    source = _store(ctx).get_object_info(source_bucket, source_key)
    _check_copy_source_conditions(source, request)
    byte_range = None
    if request.get("CopySourceRange"):
        match = _COPY_RANGE.fullmatch(request["CopySourceRange"].strip())
        if match is None or int(match[2]) < int(match[1]):
            raise AwsError("InvalidArgument", "x-amz-copy-source-range must look like "
                           "'bytes=first-last' with first <= last (zero-based, inclusive).")
        byte_range = (int(match[1]), int(match[2]))
        if byte_range[1] >= source.size:
            raise AwsError("InvalidRange", f"The copy range {request['CopySourceRange']} is "
                           f"outside '{source_key}', which is {source.size} bytes long.", 416)
    encryption = _upload_encryption(ctx, request)
    part = _store(ctx).upload_part_copy(
        request["Bucket"], request["Key"], request["UploadId"], request["PartNumber"],
        source_bucket=source_bucket, source_key=source_key, byte_range=byte_range, now=ctx.now)
    return {"CopyPartResult": {"ETag": _quoted(part.etag), "LastModified": part.last_modified},
            **encryption}


def complete_multipart_upload(ctx: RequestContext, request: Request) -> dict[str, Any]:
    listed = (request.get("MultipartUpload") or {}).get("Parts") or []
    parts = []
    for entry in listed:
        if "PartNumber" not in entry or "ETag" not in entry:
            raise AwsError("MalformedXML", "Every <Part> of CompleteMultipartUpload needs a "
                           "<PartNumber> and an <ETag>.")
        parts.append(CompletedPart(entry["PartNumber"], entry["ETag"]))
    info = _store(ctx).complete_multipart_upload(request["Bucket"], request["Key"],
                                                 request["UploadId"], parts, now=ctx.now)
    return {
        "Location": f"{ctx.settings.endpoint_url}/{info.bucket}/{quote(info.key)}",
        "Bucket": info.bucket, "Key": info.key, "ETag": _quoted(info.etag),
        **encryption_headers(info.system_metadata, with_context=False),
    }


def abort_multipart_upload(ctx: RequestContext, request: Request) -> dict[str, Any]:
    _store(ctx).abort_multipart_upload(request["Bucket"], request["Key"], request["UploadId"])
    return {}


def list_parts(ctx: RequestContext, request: Request) -> dict[str, Any]:
    max_parts = min(max(request.get("MaxParts", 1000), 0), 1000)
    marker = int(request.get("PartNumberMarker") or 0)
    page = _store(ctx).list_parts(request["Bucket"], request["Key"], request["UploadId"],
                                  after_part=marker, max_parts=max_parts)
    return {
        "Bucket": request["Bucket"], "Key": request["Key"], "UploadId": request["UploadId"],
        "PartNumberMarker": marker, "NextPartNumberMarker": page.next_part_number_marker,
        "MaxParts": max_parts, "IsTruncated": page.is_truncated,
        "Parts": [{"PartNumber": p.part_number, "LastModified": p.last_modified,
                   "ETag": _quoted(p.etag), "Size": p.size} for p in page.parts],
        "Initiator": _owner(ctx), "Owner": _owner(ctx), "StorageClass": "STANDARD",
    }


def list_multipart_uploads(ctx: RequestContext, request: Request) -> dict[str, Any]:
    max_uploads = min(max(request.get("MaxUploads", 1000), 0), 1000)
    page = _store(ctx).list_multipart_uploads(
        request["Bucket"], prefix=request.get("Prefix") or "",
        delimiter=request.get("Delimiter") or "", key_marker=request.get("KeyMarker"),
        upload_id_marker=request.get("UploadIdMarker"), max_uploads=max_uploads)
    encode = _encoder(request)
    return {
        "Bucket": request["Bucket"], "KeyMarker": encode(request.get("KeyMarker") or ""),
        "UploadIdMarker": request.get("UploadIdMarker") or "",
        "NextKeyMarker": encode(page.next_key_marker),
        "NextUploadIdMarker": page.next_upload_id_marker,
        "Prefix": encode(request.get("Prefix") or ""),
        "Delimiter": encode(request.get("Delimiter")),
        "MaxUploads": max_uploads, "IsTruncated": page.is_truncated,
        "Uploads": [{"UploadId": u.upload_id, "Key": encode(u.key), "Initiated": u.initiated,
                     "StorageClass": "STANDARD", "Owner": _owner(ctx),
                     "Initiator": _owner(ctx)} for u in page.uploads],
        "CommonPrefixes": [{"Prefix": encode(p)} for p in page.common_prefixes],
        "EncodingType": request.get("EncodingType"),
    }
