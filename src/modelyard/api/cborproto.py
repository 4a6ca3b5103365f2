"""Smithy RPC v2 CBOR (CloudWatch): ``POST /service/<Service>/operation/<Op>``, CBOR bodies.

Routed so that clients get AWS-shaped answers; no operation is implemented yet, but a
body is still decoded first, so a malformed one is a 400 ``SerializationException``, as
AWS answers, rather than an operation error.
"""

from __future__ import annotations

from typing import Any

import cbor2
from starlette.responses import Response

from .errors import AwsError
from .jsonproto import check_nesting

CONTENT_TYPE = "application/cbor"


def read_body(body: bytes) -> dict[str, Any]:
    """The request's CBOR map (empty body: no members)."""
    if not body:
        return {}
    try:
        value = cbor2.loads(body)
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as error:
        # ValueError includes integers too long to convert (bignums of thousands of digits).
        raise AwsError("SerializationException", f"The request body is not valid CBOR: "
                       f"{str(error)[:300]}") from None
    if not isinstance(value, dict):
        raise AwsError("SerializationException", "The request body must be a CBOR map.")
    check_nesting(value)
    return value


def render_error(error: AwsError, request_id: str) -> Response:
    return Response(
        cbor2.dumps({"__type": error.code, "message": error.message}),
        status_code=error.status,
        media_type=CONTENT_TYPE,
        headers={"smithy-protocol": "rpc-v2-cbor", "x-amzn-RequestId": request_id},
    )
