"""The S3 operation table: every handler, wrapped in the checks S3 makes first.

``BODY_PRECHECKS`` run before the codec reads an upload's body.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError
from .s3_encryption import refuse_customer_keys, requested_encryption

from . import s3, s3_multipart
from .s3 import (
    Handler,
    Request,
    _copy_source,
    _store,
)


# --- checks before a body is accepted ---------------------------------------------------


def _bucket_exists(ctx: RequestContext, request: Request) -> Any:
    _store(ctx).head_bucket(request["Bucket"])
    requested_encryption(ctx, request)  # refuses contradictory encryption headers


def _upload_exists(ctx: RequestContext, request: Request) -> Any:
    _store(ctx).list_parts(request["Bucket"], request["Key"], request["UploadId"], max_parts=0)


# Run before the codec reads an upload's body, so a request that is bound to fail is
# refused before the client sends (and we store) gigabytes.
BODY_PRECHECKS: dict[str, Callable[[RequestContext, Request], Any]] = {
    "PutObject": lambda ctx, request: _checks_bucket_owner(_bucket_exists)(ctx, request),
    "UploadPart": lambda ctx, request: _checks_bucket_owner(_upload_exists)(ctx, request),
}


# --- registry ---------------------------------------------------------------------------


def _checks_bucket_owner(handler: Handler) -> Handler:
    """S3 answers 403 when x-amz-expected-bucket-owner names another account; SSE-C
    headers are refused before anything else."""

    @functools.wraps(handler)
    def checked(ctx: RequestContext, request: Request) -> dict[str, Any]:
        refuse_customer_keys(ctx, request)
        expected = request.get("ExpectedBucketOwner")
        if expected is not None and "Bucket" in request:
            _require_owner(ctx, request["Bucket"], expected)
        expected_source = request.get("ExpectedSourceBucketOwner")
        if expected_source is not None and "CopySource" in request:
            _require_owner(ctx, _copy_source(request["CopySource"])[0], expected_source)
        return handler(ctx, request)

    return checked


def _require_owner(ctx: RequestContext, bucket: str, expected: str) -> None:
    if _store(ctx).head_bucket(bucket).owner != expected:
        raise AwsError("AccessDenied", f"The bucket '{bucket}' is not owned by account "
                       f"{expected} (x-amz-expected-bucket-owner).", 403, BucketName=bucket)


OPERATIONS: dict[str, Handler] = {
    name: _checks_bucket_owner(handler)
    for name, handler in {
        "ListBuckets": s3.list_buckets,
        "CreateBucket": s3.create_bucket,
        "HeadBucket": s3.head_bucket,
        "DeleteBucket": s3.delete_bucket,
        "GetBucketLocation": s3.get_bucket_location,
        "ListObjects": s3.list_objects,
        "ListObjectsV2": s3.list_objects_v2,
        "PutObject": s3.put_object,
        "GetObject": s3.get_object,
        "HeadObject": s3.head_object,
        "DeleteObject": s3.delete_object,
        "DeleteObjects": s3.delete_objects,
        "CopyObject": s3.copy_object,
        "CreateMultipartUpload": s3_multipart.create_multipart_upload,
        "UploadPart": s3_multipart.upload_part,
        "UploadPartCopy": s3_multipart.upload_part_copy,
        "CompleteMultipartUpload": s3_multipart.complete_multipart_upload,
        "AbortMultipartUpload": s3_multipart.abort_multipart_upload,
        "ListParts": s3_multipart.list_parts,
        "ListMultipartUploads": s3_multipart.list_multipart_uploads,
    }.items()
}
