"""AWS JSON 1.1: ``X-Amz-Target: <prefix>.<Operation>`` and a JSON body (SageMaker, Logs)."""

from __future__ import annotations

import functools
import json
from typing import Any

from starlette.responses import Response

from .errors import AwsError
from .shapes import service_model, shape_output

CONTENT_TYPE = "application/x-amz-json-1.1"

# botocore service names whose wire protocol is JSON 1.x and that modelyard routes.
JSON_SERVICES = ("sagemaker", "logs", "events", "cloudwatch", "application-autoscaling")
# Deeper than any input shape of these services nests (SageMaker's deepest is 10).
MAX_NESTING = 64


@functools.lru_cache(maxsize=1)
def _services_by_target_prefix() -> dict[str, str]:
    return {service_model(name).metadata["targetPrefix"]: name for name in JSON_SERVICES}


def read_target(target: str) -> tuple[str, str]:
    """``SageMaker.CreateTrainingJob`` -> (``sagemaker``, ``CreateTrainingJob``)."""
    prefix, _, operation = target.rpartition(".")
    service = _services_by_target_prefix().get(prefix)
    if service is None or not operation:
        raise AwsError(
            "UnknownOperationException",
            f"X-Amz-Target {target!r} names no service modelyard serves; expected one of "
            f"{sorted(_services_by_target_prefix())} followed by .<Operation>.",
        )
    return service, operation


def read_body(body: bytes) -> dict[str, Any]:
    """The request's JSON object; anything else is a 400 ``SerializationException``."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as error:  # not JSON, not UTF-8, or a number too long to convert
        raise AwsError("SerializationException", f"The request body is not valid JSON: "
                       f"{_shortened(str(error))}") from None
    if not isinstance(value, dict):
        raise AwsError("SerializationException", "The request body must be a JSON object.")
    check_nesting(value)
    return value


def check_nesting(value: Any, limit: int = MAX_NESTING) -> None:
    """Refuse documents nested deeper than any request shape needs, and text that is not
    Unicode (lone UTF-16 surrogates, which JSON escapes can spell and no store accepts).
    No recursion here: the point is to stop input that would exhaust the stack later."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            raise _too_deep(limit)
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            pending.extend((key, depth) for key in item)
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise AwsError("SerializationException", f"The request body has a string with a lone "
                       f"UTF-16 surrogate ({text[error.start]!a}), which is not Unicode text; "
                       "send text as UTF-8.") from None


def _too_deep(limit: int = MAX_NESTING) -> AwsError:
    return AwsError("SerializationException", f"The request body nests objects and arrays "
                    f"more than {limit} levels deep, which no operation accepts; send the "
                    "request as the service model shapes it.")


def _shortened(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_result(output_shape, result: dict[str, Any] | None, request_id: str) -> Response:
    shaped = shape_output(output_shape, result or {}) if output_shape is not None else {}
    return Response(
        json.dumps(shaped, separators=(",", ":")),
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id},
    )


def render_error(error: AwsError, request_id: str) -> Response:
    body = {"__type": error.code, "message": error.message, **error.fields}
    return Response(
        json.dumps(body),
        status_code=error.status,
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": error.code},
    )


AUTH_ERROR_CODES = {
    "missing": "MissingAuthenticationTokenException",
    "unknown-key": "UnrecognizedClientException",
    "mismatch": "InvalidSignatureException",
    "expired": "InvalidSignatureException",
    "skewed": "InvalidSignatureException",
    "malformed": "IncompleteSignatureException",
}
