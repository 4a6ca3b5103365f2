"""S3 server-side encryption headers: what a write asks for, what an object reports.

modelyard encrypts nothing itself; like S3 since January 2023 every object reports SSE-S3
(``AES256``) unless its write named SSE-KMS, whose key id (and bucket-key flag) is stored
with the object's system metadata and reported back, not enforced. SSE-C, which needs
the server to encrypt with the client's own key, is refused.
"""

from __future__ import annotations

from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError
from ..api.shapes import operation_model
from ..store.objects import DEFAULT_ENCRYPTION

Request = dict[str, Any]


def requested_encryption(ctx: RequestContext, request: Request) -> dict[str, str]:
    """The encryption a write asks for, as stored: SSE-S3 unless it names SSE-KMS.

    Nothing is encrypted with a KMS key (modelyard has no KMS): the key id is stored with
    the object and reported back, as S3 reports it.
    """
    algorithm = request.get("ServerSideEncryption")
    key_id = request.get("SSEKMSKeyId")
    if algorithm == "aws:fsx":
        raise AwsError("InvalidArgument", "x-amz-server-side-encryption 'aws:fsx' is only for "
                       "FSx access points; use AES256, aws:kms or aws:kms:dsse.",
                       ArgumentName="x-amz-server-side-encryption", ArgumentValue=algorithm)
    if not (algorithm or DEFAULT_ENCRYPTION).startswith("aws:kms"):
        for member in ("SSEKMSKeyId", "SSEKMSEncryptionContext"):
            if request.get(member) is not None:
                header = _header_name(ctx, member)
                raise AwsError("InvalidArgument", f"{header} requires the header "
                               "x-amz-server-side-encryption: aws:kms (or aws:kms:dsse).",
                               ArgumentName=header)
        return {"ServerSideEncryption": algorithm or DEFAULT_ENCRYPTION}
    stored = {"ServerSideEncryption": algorithm,
              # Without a key, S3 uses the account's AWS managed key for S3.
              "SSEKMSKeyId": key_id or f"arn:aws:kms:{ctx.region}:{ctx.account_id}:alias/aws/s3"}
    if request.get("SSEKMSEncryptionContext") is not None:
        stored["SSEKMSEncryptionContext"] = request["SSEKMSEncryptionContext"]
    if request.get("BucketKeyEnabled") is not None:
        stored["BucketKeyEnabled"] = "true" if request["BucketKeyEnabled"] else "false"
    return stored


def encryption_headers(system_metadata: dict[str, str], *,
                        with_context: bool = True) -> dict[str, Any]:
    """An object's (or upload's) encryption as output members; AES256 if none was stored."""
    headers: dict[str, Any] = {
        "ServerSideEncryption": system_metadata.get("ServerSideEncryption", DEFAULT_ENCRYPTION)}
    if "SSEKMSKeyId" in system_metadata:
        headers["SSEKMSKeyId"] = system_metadata["SSEKMSKeyId"]
    if with_context and "SSEKMSEncryptionContext" in system_metadata:
        headers["SSEKMSEncryptionContext"] = system_metadata["SSEKMSEncryptionContext"]
    if "BucketKeyEnabled" in system_metadata:
        headers["BucketKeyEnabled"] = system_metadata["BucketKeyEnabled"] == "true"
    return headers


_SSE_C_MEMBERS = ("SSECustomerAlgorithm", "SSECustomerKey", "SSECustomerKeyMD5",
                  "CopySourceSSECustomerAlgorithm", "CopySourceSSECustomerKey",
                  "CopySourceSSECustomerKeyMD5")


def refuse_customer_keys(ctx: RequestContext, request: Request) -> None:
    """SSE-C needs the server to encrypt with the client's key; modelyard does not."""
    for member in _SSE_C_MEMBERS:
        if request.get(member) is not None:
            header = _header_name(ctx, member)
            raise AwsError("InvalidArgument", f"modelyard does not support server-side "
                           f"encryption with customer-provided keys (SSE-C): remove the "
                           f"{header} header (and the other x-amz-server-side-encryption-"
                           "customer-* headers). Objects are reported as SSE-S3 (AES256); "
                           "SSE-KMS key ids are accepted and stored.", ArgumentName=header)


def _header_name(ctx: RequestContext, member: str) -> str:
    model = operation_model("s3", ctx.operation)
    shape = model.input_shape.members.get(member) if model and model.input_shape else None
    return shape.serialization.get("name", member) if shape is not None else member
