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
JSON_SERVICES = ("sagemaker", "logs", "events")


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
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AwsError("SerializationException", f"The request body is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise AwsError("SerializationException", "The request body must be a JSON object.")
    return value


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
