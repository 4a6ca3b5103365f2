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
    autoscaling, cloudwatch_alarms, cloudwatch_metrics, endpoint_configs, endpoints, events,
    iam, inference_experiments, lambda_functions, logs, modelregistry, models, monitoring,
    pipelines, processing, s3_operations, search, sns, sts, training, transform, tuning,
)

Handler = Callable[..., dict[str, Any]]

OPERATIONS: dict[str, dict[str, Handler]] = {
    "sagemaker": {**modelregistry.OPERATIONS, **models.OPERATIONS, **training.OPERATIONS,
                  **processing.OPERATIONS, **pipelines.OPERATIONS,
                  **endpoint_configs.OPERATIONS, **endpoints.OPERATIONS,
                  **transform.OPERATIONS, **monitoring.OPERATIONS,
                  **search.OPERATIONS, **tuning.OPERATIONS,
                  **inference_experiments.OPERATIONS},
    "s3": s3_operations.OPERATIONS,
    "logs": logs.OPERATIONS,
    "sts": sts.OPERATIONS,
    "iam": iam.OPERATIONS,
    "cloudwatch": {**cloudwatch_metrics.OPERATIONS, **cloudwatch_alarms.OPERATIONS},
    "sns": sns.OPERATIONS,
    "events": events.OPERATIONS,
    "lambda": lambda_functions.OPERATIONS,
    "application-autoscaling": autoscaling.OPERATIONS,
}


def find_handler(service: str, operation: str) -> Handler | None:
    return OPERATIONS.get(service, {}).get(operation)
