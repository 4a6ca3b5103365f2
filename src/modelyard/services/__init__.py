"""Operation handlers, one module per resource family.

A handler is a plain function ``handler(ctx: RequestContext, request: dict) -> dict``:
the request was already validated against botocore's input shape, and the returned dict
is shaped by the output shape. ``OPERATIONS`` maps botocore service name -> operation
name -> handler; anything not listed answers ``NotImplemented`` naming the operation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import (
    endpoint_configs, endpoints, iam, logs, modelregistry, models, pipelines, processing,
    s3_operations, sts, training, transform,
)

Handler = Callable[..., dict[str, Any]]

OPERATIONS: dict[str, dict[str, Handler]] = {
    "sagemaker": {**modelregistry.OPERATIONS, **models.OPERATIONS, **training.OPERATIONS,
                  **processing.OPERATIONS, **pipelines.OPERATIONS,
                  **endpoint_configs.OPERATIONS, **endpoints.OPERATIONS,
                  **transform.OPERATIONS},
    "s3": s3_operations.OPERATIONS,
    "logs": logs.OPERATIONS,
    "sts": sts.OPERATIONS,
    "iam": iam.OPERATIONS,
}


def find_handler(service: str, operation: str) -> Handler | None:
    return OPERATIONS.get(service, {}).get(operation)
