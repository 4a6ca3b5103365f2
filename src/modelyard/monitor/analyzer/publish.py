"""CloudWatch metrics of a monitoring run, published with boto3 from inside the job.

As SageMaker's analyzer publishes them when ``publish_cloudwatch_metrics`` is ``Enabled``
and the baseline's ``monitoring_config.emit_metrics`` is too: namespace
``aws/sagemaker/Endpoints/data-metrics`` with dimensions ``Endpoint`` and
``MonitoringSchedule`` for an endpoint, ``aws/sagemaker/ModelMonitoring/data-metrics``
with ``MonitoringSchedule`` for batch transform; per feature

- ``feature_data_<name>``: the values as a statistic set (SampleCount, Sum, Minimum,
  Maximum; numeric features),
- ``feature_non_null_<name>``: the completeness (non-null share),
- ``feature_baseline_drift_<name>``: the baseline drift distance,

timestamped at ``metric_time`` (what SageMaker's executions pass), else at the end of the
analysed window (``end_time``), else when they are put.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .statistics import FRACTIONAL, INTEGRAL, ColumnProfile

ENDPOINT_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
BATCH_NAMESPACE = "aws/sagemaker/ModelMonitoring/data-metrics"
BATCH_SIZE = 500


def metric_data(profiles: list[ColumnProfile], drift: dict[str, float],
                dimensions: list[dict[str, str]], timestamp: datetime | None
                ) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = []

    def datum(name: str, **fields: Any) -> None:
        item = {"MetricName": name, "Dimensions": dimensions, **fields}
        if timestamp is not None:
            item["Timestamp"] = timestamp
        data.append(item)

    for profile in profiles:
        if profile.inferred_type in (INTEGRAL, FRACTIONAL) and profile.values is not None \
                and profile.values.size:
            values = profile.values
            datum(f"feature_data_{profile.name}", StatisticValues={
                "SampleCount": float(values.size), "Sum": float(values.sum()),
                "Minimum": float(values.min()), "Maximum": float(values.max())})
        datum(f"feature_non_null_{profile.name}", Value=float(profile.completeness))
        if profile.name in drift:
            datum(f"feature_baseline_drift_{profile.name}", Value=float(drift[profile.name]))
    return data


def publish(env: dict[str, str], profiles: list[ColumnProfile], drift: dict[str, float]
            ) -> int:
    """Put the run's metrics; returns how many were published."""
    import boto3

    endpoint = env.get("sagemaker_endpoint_name")
    schedule = env.get("sagemaker_monitoring_schedule_name", "")
    if endpoint and env.get("monitoring_input_type") != "BATCH_TRANSFORM_INPUT":
        namespace = ENDPOINT_NAMESPACE
        dimensions = [{"Name": "Endpoint", "Value": endpoint},
                      {"Name": "MonitoringSchedule", "Value": schedule}]
    else:
        namespace = BATCH_NAMESPACE
        dimensions = [{"Name": "MonitoringSchedule", "Value": schedule}]
    data = metric_data(profiles, drift, dimensions,
                       _time(env.get("metric_time")) or _time(env.get("end_time")))
    client = boto3.client("cloudwatch")
    for start in range(0, len(data), BATCH_SIZE):
        client.put_metric_data(Namespace=namespace, MetricData=data[start:start + BATCH_SIZE])
    return len(data)


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace(" ", "").replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
