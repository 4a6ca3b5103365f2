"""CloudWatch metrics (botocore ``cloudwatch``): PutMetricData, GetMetricStatistics,
GetMetricData and ListMetrics.

The work is in ``modelyard.cloudwatch``: ``metrics`` checks and stores datums,
``statistics`` aggregates them per period (percentiles from KLL sketches),
``metric_math`` evaluates GetMetricData's queries and ``queries`` pages them. SageMaker's
own metrics land in the same store: endpoint invocations under ``AWS/SageMaker`` and
training metrics (``MetricDefinitions``) under ``/aws/sagemaker/TrainingJobs``.
"""

from __future__ import annotations

from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError
from ..cloudwatch.metrics import MAX_DATUMS, put_metric_data
from ..cloudwatch.queries import get_metric_data, list_metrics
from ..cloudwatch.statistics import get_metric_statistics

RESERVED_PREFIX = "AWS/"


def put_metric_data_handler(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    namespace = request["Namespace"]
    if namespace.startswith(RESERVED_PREFIX):
        raise AwsError("InvalidParameterValue",
                       f"The value {namespace} for parameter Namespace is invalid: namespaces "
                       f"starting with {RESERVED_PREFIX!r} are reserved for AWS services.")
    data = list(request.get("MetricData") or [])
    for entity in request.get("EntityMetricData") or []:
        data.extend(entity.get("MetricData") or [])  # entities are accepted, not kept
    if len(data) > MAX_DATUMS:
        raise AwsError("InvalidParameterValue",
                       f"The collection MetricData must not have a size greater than "
                       f"{MAX_DATUMS} (with EntityMetricData's metrics it has {len(data)}); "
                       "split the data into several PutMetricData calls.")
    put_metric_data(ctx.platform, namespace, data)
    return {}


def get_metric_statistics_handler(ctx: RequestContext,
                                  request: dict[str, Any]) -> dict[str, Any]:
    return get_metric_statistics(ctx.platform, request)


def get_metric_data_handler(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return get_metric_data(ctx.platform, request)


def list_metrics_handler(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return list_metrics(ctx.platform, request)


OPERATIONS: dict[str, Any] = {
    "PutMetricData": put_metric_data_handler,
    "GetMetricStatistics": get_metric_statistics_handler,
    "GetMetricData": get_metric_data_handler,
    "ListMetrics": list_metrics_handler,
}
