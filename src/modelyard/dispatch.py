"""One seam for calling an operation from inside the server, as a client would.

The pipeline engine, EventBridge targets, alarm actions and Lambda's own calls all start
work through ``call``: the request is validated against botocore's input shape and runs
the same handler the HTTP gateway runs, so an internal caller can never do what a client
could not.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from .api.context import RequestContext
from .api.errors import AwsError, not_implemented
from .api.shapes import operation_model, parse_input

if TYPE_CHECKING:
    from .platform import Platform


def call(platform: "Platform", service: str, operation: str, request: dict[str, Any], *,
         caller: str = "modelyard",
         internal: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``service``'s ``operation`` with ``request``; AwsError on a bad request.

    ``internal`` reaches the handler as ``ctx.internal`` (e.g. the tuning job a trial's
    training job belongs to), outside the validated request, so no client can set it.
    """
    from .services import find_handler

    model = operation_model(service, operation)
    if model is None:
        raise AwsError("UnknownOperationException",
                       f"{operation!r} is not an operation of {service}.")
    handler = find_handler(service, operation)
    if handler is None:
        raise not_implemented(service, operation)
    params = parse_input(model.input_shape, request)
    ctx = RequestContext(platform, uuid.uuid4().hex, service, operation, caller,
                         dict(internal or {}))
    return handler(ctx, params)
