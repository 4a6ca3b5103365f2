"""Model quality constraints, violations and CloudWatch metrics.

constraints.json (suggested by a baseline run; thresholds are the baseline's values)::

    {"version": 0.0,
     "binary_classification_constraints": {
        "accuracy": {"threshold": 0.93, "comparison_operator": "LessThanThreshold"}, ...}}

A monitoring run compares each metric named in the ``<problem>_constraints`` section with
its threshold (``LessThanThreshold``, ``LessThanOrEqualToThreshold``,
``GreaterThanThreshold``, ``GreaterThanOrEqualToThreshold``: the metric violates when the
comparison holds) and writes constraint_violations.json::

    {"violations": [{"metric_name": "accuracy", "constraint_check_type": "LessThanThreshold",
                     "description": "Metric accuracy with 0.61 +/- 0.01 was
                                     LessThanThreshold '0.93'"}]}   (one line)

Metrics go to CloudWatch namespace ``aws/sagemaker/Endpoints/model-metrics`` with the
``Endpoint`` and ``MonitoringSchedule`` dimensions (``aws/sagemaker/ModelMonitoring/
model-metrics`` with only ``MonitoringSchedule`` when there is no endpoint), one datum per
scalar metric, named as in statistics.json.
"""

from __future__ import annotations

import json
import math
import operator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .model_quality_metrics import CONSTRAINED

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
}
ENDPOINT_NAMESPACE = "aws/sagemaker/Endpoints/model-metrics"
SCHEDULE_NAMESPACE = "aws/sagemaker/ModelMonitoring/model-metrics"


class ConstraintsError(ValueError):
    """The baseline constraints file cannot be used; the message says what to fix."""


def _scalar(entry: Any) -> float | None:
    if isinstance(entry, dict) and isinstance(entry.get("value"), (int, float)):
        value = float(entry["value"])
        return value if math.isfinite(value) else None
    return None


def suggest_constraints(section: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """constraints.json for a baseline: every constrained metric that has a value."""
    constraints = {}
    for name, comparison in CONSTRAINED[section].items():
        value = _scalar(metrics.get(name))
        if value is not None:
            constraints[name] = {"threshold": value, "comparison_operator": comparison}
    return {"version": 0.0, f"{section}_constraints": constraints}


def load_constraints(path: Path, section: str) -> dict[str, dict[str, Any]]:
    """The ``<section>_constraints`` of a baseline constraints file (a file or a directory
    holding ``constraints.json``)."""
    if path.is_dir():
        candidate = path / "constraints.json"
        files = [candidate] if candidate.exists() else sorted(path.glob("*.json"))
        if not files:
            raise ConstraintsError(f"The baseline constraints directory {path} holds no "
                                   "constraints.json.")
        path = files[0]
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConstraintsError(f"The baseline constraints file {path} does not exist.") from None
    except ValueError as error:
        raise ConstraintsError(f"The baseline constraints file is not valid JSON ({error}); "
                               "pass the constraints.json a model quality baseline "
                               "job wrote.") from None
    if not isinstance(document, dict):
        raise ConstraintsError("The baseline constraints file is not a JSON object.")
    key = f"{section}_constraints"
    constraints = document.get(key)
    if not isinstance(constraints, dict):
        present = [k for k in document if k.endswith("_constraints")]
        raise ConstraintsError(
            f"The baseline constraints have no {key!r} section"
            + (f" (they have {', '.join(present)}): the problem_type differs from the "
               "baseline's" if present else "; use a model quality baseline's constraints.json")
            + ".")
    for name, constraint in constraints.items():
        if not isinstance(constraint, dict) or not isinstance(
                constraint.get("threshold"), (int, float)):
            raise ConstraintsError(f"Constraint {name!r} needs a numeric 'threshold'.")
        if constraint.get("comparison_operator") not in OPERATORS:
            raise ConstraintsError(
                f"Constraint {name!r} has comparison_operator "
                f"{constraint.get('comparison_operator')!r}; use one of {', '.join(OPERATORS)}.")
    return constraints


def _format(value: float) -> str:
    return repr(float(value))


def check(metrics: dict[str, Any], constraints: dict[str, dict[str, Any]]) -> list[dict]:
    """The violations of ``constraints`` by ``metrics`` (metrics without a value are not
    checked: e.g. auc when the data has no probabilities)."""
    violations = []
    for name, constraint in constraints.items():
        value = _scalar(metrics.get(name))
        if value is None:
            continue
        comparison = constraint["comparison_operator"]
        threshold = float(constraint["threshold"])
        if OPERATORS[comparison](value, threshold):
            stddev = metrics[name].get("standard_deviation")
            shown = _format(value) + (f" +/- {_format(stddev)}"
                                      if isinstance(stddev, (int, float)) else "")
            violations.append({
                "metric_name": name,
                "constraint_check_type": comparison,
                "description": f"Metric {name} with {shown} was {comparison} "
                               f"'{_format(threshold)}'",
            })
    return violations


def metric_data(metrics: dict[str, Any], endpoint: str | None, schedule: str | None,
                timestamp: datetime) -> tuple[str, list[dict[str, Any]]]:
    """(namespace, MetricData) for PutMetricData: one datum per scalar metric."""
    dimensions = []
    if endpoint:
        dimensions.append({"Name": "Endpoint", "Value": endpoint})
    if schedule:
        dimensions.append({"Name": "MonitoringSchedule", "Value": schedule})
    namespace = ENDPOINT_NAMESPACE if endpoint else SCHEDULE_NAMESPACE
    data = []
    for name, entry in metrics.items():
        value = _scalar(entry)
        if value is not None:
            data.append({"MetricName": name, "Dimensions": dimensions, "Timestamp": timestamp,
                         "Value": value, "Unit": "None"})
    return namespace, data


def publish(metrics: dict[str, Any], endpoint: str | None, schedule: str | None,
            timestamp: datetime | None = None) -> int:
    """PutMetricData through boto3 (the job's credentials and AWS_ENDPOINT_URL); the count."""
    import boto3

    when = timestamp or datetime.now(timezone.utc)
    namespace, data = metric_data(metrics, endpoint, schedule, when)
    client = boto3.client("cloudwatch")
    for start in range(0, len(data), 20):
        client.put_metric_data(Namespace=namespace, MetricData=data[start:start + 20])
    return len(data)
