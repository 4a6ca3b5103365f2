"""Smithy RPC v2 CBOR (CloudWatch): ``POST /service/<Service>/operation/<Op>``, CBOR bodies.

Requests are CBOR maps shaped by the operation's input; timestamps arrive as tag 1
(epoch seconds, decoded to datetimes) and blobs as byte strings. Responses are shaped by
the output shape the same way. CloudWatch is "query compatible": errors also carry
``x-amzn-query-error: <Code>;Sender``, from which botocore takes the error code.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

import cbor2
from botocore.model import Shape
from starlette.responses import Response

from .errors import AwsError
from .jsonproto import check_nesting
from .shapes import shape_output

CONTENT_TYPE = "application/cbor"


def read_path(path: str) -> str:
    """``/service/GraniteServiceVersion20100801/operation/PutMetricData`` -> the operation."""
    parts = path.strip("/").split("/")
    if len(parts) != 4 or parts[0] != "service" or parts[2] != "operation" or not parts[3]:
        raise AwsError("UnknownOperationException",
                       f"{path!r} is not an RPC v2 CBOR operation path; expected "
                       "/service/<Service>/operation/<Operation>.", status=404)
    return parts[3]


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


def render_result(output_shape: Shape | None, result: dict[str, Any] | None,
                  request_id: str) -> Response:
    shaped = (shape_output(output_shape, result or {}, timestamps="cbor")
              if output_shape is not None else {})
    return Response(
        cbor2.dumps(shaped or {}, datetime_as_timestamp=True, timezone=timezone.utc),
        media_type=CONTENT_TYPE,
        headers={"smithy-protocol": "rpc-v2-cbor", "x-amzn-RequestId": request_id},
    )


def render_error(error: AwsError, request_id: str) -> Response:
    fault = "Sender" if error.sender_fault else "Receiver"
    return Response(
        cbor2.dumps({"__type": error.code, "message": error.message}),
        status_code=error.status,
        media_type=CONTENT_TYPE,
        headers={"smithy-protocol": "rpc-v2-cbor", "x-amzn-RequestId": request_id,
                 "x-amzn-query-error": f"{error.code};{fault}"},
    )
