"""PutMetricData: CloudWatch's checks on metric datums, then rows in the metric store.

Each datum becomes statistic sets in ``store.cloudwatch_metrics`` (SampleCount, Sum,
Minimum, Maximum, Unit). Raw values — ``Value``, ``Values``/``Counts``, and statistic sets
whose Minimum equals their Maximum — of one metric, timestamp and unit in one call are
stored as one row; when that row holds more than one sample it carries a KLL sketch of
them (see ``sketches``), from which percentiles are read. A statistic set with
Minimum < Maximum is kept as its own row without a sketch: as in CloudWatch, it counts
for every statistic except percentiles.

Resolution: ``StorageResolution`` 60 (the default) stores the timestamp rounded down to
its minute, 1 to its second, as CloudWatch keeps standard and high-resolution metrics.

Retention: rows older than ``RETENTION_SECONDS`` (15 days, CloudWatch's retention of
1-minute data) are deleted by a sweep that runs with a write at most once per
``SWEEP_INTERVAL_SECONDS`` of the server clock.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import delete

from ..api.errors import AwsError
from ..store.cloudwatch_metrics import (
    CloudWatchMetricStore, MetricDatum, canonical_dimensions, cloudwatch_metric_data_table,
)
from . import sketches

if TYPE_CHECKING:
    from ..platform import Platform

MAX_DATUMS = 1000
MAX_VALUES = 150
MAX_DIMENSIONS = 30
VALUE_LIMIT = 2.0 ** 360
PAST_LIMIT_SECONDS = 14 * 86400
FUTURE_LIMIT_SECONDS = 2 * 3600
RETENTION_SECONDS = 15 * 86400
SWEEP_INTERVAL_SECONDS = 3600.0

log = logging.getLogger("modelyard.cloudwatch")
_sweeps: dict[str, float] = {}
_sweep_lock = threading.Lock()


def invalid(message: str) -> AwsError:
    return AwsError("InvalidParameterValue", message)


def combination(message: str) -> AwsError:
    return AwsError("InvalidParameterCombination", message)


def missing(message: str) -> AwsError:
    return AwsError("MissingParameter", message)


def put_metric_data(platform: "Platform", namespace: str,
                    metric_data: list[dict[str, Any]]) -> None:
    """Check ``metric_data`` (PutMetricData's MetricDatum dicts, Timestamp as epoch float,
    default now) as CloudWatch does and store it under ``namespace``; AwsError on bad input,
    naming the member to fix. Nothing is stored unless every datum is valid."""
    if not metric_data:
        raise missing("The parameter MetricData is required: give at least one metric datum.")
    if len(metric_data) > MAX_DATUMS:
        raise invalid(f"The collection MetricData must not have a size greater than "
                      f"{MAX_DATUMS} (it has {len(metric_data)}); split the data into "
                      "several PutMetricData calls.")
    now = platform.clock.now()
    groups: dict[tuple, _Group] = {}
    rows: list[MetricDatum] = []
    for index, datum in enumerate(metric_data, start=1):
        path = f"MetricData.member.{index}"
        name = datum.get("MetricName")
        if not name:
            raise missing(f"The parameter {path}.MetricName is required.")
        dimensions = _dimensions(datum.get("Dimensions") or [], path)
        stamp = _timestamp(datum.get("Timestamp"), now, path, datum.get("StorageResolution"))
        unit = datum.get("Unit") or "None"
        key = (name, dimensions, stamp, unit)
        statistic_set = datum.get("StatisticValues")
        raw = _raw_values(datum, path)
        if raw is None:
            assert statistic_set is not None
            count, total, low, high = _statistic_set(statistic_set, path)
            if low != high:
                rows.append(MetricDatum(namespace, name, dimensions, stamp, count, total, low,
                                        high, unit))
                continue
            raw = (np.array([low]), np.array([count]))
        groups.setdefault(key, _Group()).add(*raw)
    for (name, dimensions, stamp, unit), group in groups.items():
        row = group.datum(namespace, name, dimensions, stamp, unit)
        if row is not None:
            rows.append(row)
    CloudWatchMetricStore(platform.db).put(rows)
    maybe_sweep(platform, now)


class _Group:
    """Raw values of one metric, timestamp and unit within one call."""

    def __init__(self) -> None:
        self.values: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []

    def add(self, values: np.ndarray, counts: np.ndarray) -> None:
        self.values.append(values)
        self.counts.append(counts)

    def datum(self, namespace: str, name: str, dimensions: tuple[tuple[str, str], ...],
              stamp: float, unit: str) -> MetricDatum | None:
        """The group's statistic set (None when every count is zero: no samples)."""
        values = np.concatenate(self.values)
        counts = np.concatenate(self.counts)
        present = counts > 0
        total_count = float(counts.sum())
        if not present.any():
            return None
        low = float(values[present].min())
        high = float(values[present].max())
        total = float((values * counts).sum())
        sketch = None
        if total_count > 1 and low != high:
            sketch = sketches.build(sketches.expand(values, counts))
        return MetricDatum(namespace, name, dimensions, stamp, total_count, total, low, high,
                           unit, sketch)


def _dimensions(dimensions: list[dict[str, str]], path: str) -> tuple[tuple[str, str], ...]:
    if len(dimensions) > MAX_DIMENSIONS:
        raise invalid(f"The collection {path}.Dimensions must not have a size greater than "
                      f"{MAX_DIMENSIONS}.")
    seen: dict[str, str] = {}
    for position, dimension in enumerate(dimensions, start=1):
        name, value = dimension.get("Name"), dimension.get("Value")
        if not name:
            raise missing(f"The parameter {path}.Dimensions.member.{position}.Name is required.")
        if value is None or value == "":
            raise missing(f"The parameter {path}.Dimensions.member.{position}.Value is "
                          "required.")
        if name in seen:
            raise invalid(f"The parameter {path}.Dimensions.member.{position}.Name has the "
                          f"value {name!r}, which another dimension of this datum already "
                          "uses; dimension names must be unique.")
        seen[name] = value
    return canonical_dimensions(seen)


def _timestamp(value: float | None, now: float, path: str, resolution: int | None) -> float:
    if resolution is None:
        resolution = 60
    if resolution not in (1, 60):
        raise invalid(f"The value {resolution} for parameter {path}.StorageResolution is not "
                      "valid: use 1 (high resolution) or 60 (standard resolution).")
    stamp = now if value is None else float(value)
    if stamp < now - PAST_LIMIT_SECONDS:
        raise invalid(f"The parameter {path}.Timestamp must specify a time no more than two "
                      "weeks in the past.")
    if stamp > now + FUTURE_LIMIT_SECONDS:
        raise invalid(f"The parameter {path}.Timestamp must specify a time no more than two "
                      "hours in the future.")
    return float(math.floor(stamp / resolution) * resolution)


def _check_value(value: float, member: str) -> float:
    if not math.isfinite(value) or abs(value) > VALUE_LIMIT:
        raise invalid(f"The value {value} for parameter {member} is not valid: values must be "
                      "finite numbers between -2^360 and 2^360.")
    return float(value)


def _raw_values(datum: Mapping[str, Any], path: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(values, counts) of a Value or Values datum; None for a StatisticValues datum."""
    given = [member for member in ("Value", "StatisticValues", "Values")
             if datum.get(member) is not None]
    if len(given) > 1:
        first, second = given[:2]
        raise combination(f"The parameters {path}.{first} and {path}.{second} are mutually "
                          "exclusive and you have specified both.")
    counts = datum.get("Counts")
    if not given:
        raise missing(f"The parameter {path}.Value is required: give Value, Values (with "
                      "optional Counts) or StatisticValues.")
    if counts is not None and given[0] != "Values":
        raise combination(f"The parameter {path}.Counts can only be given with "
                          f"{path}.Values.")
    if given[0] == "Value":
        value = _check_value(datum["Value"], f"{path}.Value")
        return np.array([value]), np.array([1.0])
    if given[0] == "StatisticValues":
        return None
    values = datum["Values"]
    if not values:
        raise missing(f"The parameter {path}.Values must hold at least one value.")
    if len(values) > MAX_VALUES:
        raise invalid(f"The collection {path}.Values must not have a size greater than "
                      f"{MAX_VALUES}; repeat values through Counts instead of listing them.")
    array = np.asarray(values, dtype=np.float64)
    bad = np.flatnonzero(~(np.abs(array) <= VALUE_LIMIT))  # NaN fails the comparison too
    if len(bad):
        _check_value(float(array[bad[0]]), f"{path}.Values.member.{bad[0] + 1}")
    if counts is None:
        return array, np.ones(len(array))
    if len(counts) != len(values):
        raise invalid(f"The parameters {path}.Values and {path}.Counts must be of the same "
                      f"size ({len(values)} values, {len(counts)} counts).")
    weights = np.asarray(counts, dtype=np.float64)
    bad = np.flatnonzero(~((weights >= 0) & np.isfinite(weights)))
    if len(bad):
        raise invalid(f"The value {weights[bad[0]]} for parameter {path}.Counts.member."
                      f"{bad[0] + 1} is not valid: counts must be zero or more.")
    return array, weights


def _statistic_set(statistic_set: Mapping[str, float],
                   path: str) -> tuple[float, float, float, float]:
    member = f"{path}.StatisticValues"
    count = _check_value(statistic_set["SampleCount"], f"{member}.SampleCount")
    total = _check_value(statistic_set["Sum"], f"{member}.Sum")
    low = _check_value(statistic_set["Minimum"], f"{member}.Minimum")
    high = _check_value(statistic_set["Maximum"], f"{member}.Maximum")
    if count <= 0:
        raise invalid(f"The parameter {member}.SampleCount must be greater than 0.")
    if low > high:
        raise invalid(f"The parameter {member}.Maximum must be greater than or equal to "
                      f"{member}.Minimum.")
    return count, total, low, high


def maybe_sweep(platform: "Platform", now: float) -> int:
    """Delete rows past retention, at most once per sweep interval; returns rows deleted."""
    key = platform.db.url
    with _sweep_lock:
        last = _sweeps.get(key)
        if last is not None and abs(now - last) < SWEEP_INTERVAL_SECONDS:
            return 0
        _sweeps[key] = now
    return sweep(platform, now)


def sweep(platform: "Platform", now: float) -> int:
    table = cloudwatch_metric_data_table
    try:
        with platform.db.write() as connection:
            result = connection.execute(
                delete(table).where(table.c.timestamp < now - RETENTION_SECONDS))
    except Exception:  # noqa: BLE001 - a failed sweep only delays the cleanup
        log.exception("could not sweep old metric data")
        return 0
    return int(result.rowcount or 0)


TRAINING_NAMESPACE = "/aws/sagemaker/TrainingJobs"


def publish_training_metrics(platform: "Platform", job_name: str,
                             points: list[tuple[str, float, float]]) -> None:
    """A training job's MetricDefinitions matches (name, value, log line time) as CloudWatch
    datums under ``/aws/sagemaker/TrainingJobs``: with dimension ``Host`` =
    ``<job>/algo-1`` as SageMaker publishes them, and with ``TrainingJobName`` = ``<job>``,
    which the SDK's ``TrainingJobAnalytics`` queries. High resolution (1 s), so the
    curve of a short job keeps its points. Never fails the job: bad values are skipped
    and a store error is logged."""
    data = []
    for metric, value, stamp in points:
        if not math.isfinite(value) or abs(value) > VALUE_LIMIT:
            continue
        for dimension, dimension_value in (("Host", f"{job_name}/algo-1"),
                                           ("TrainingJobName", job_name)):
            data.append({"MetricName": metric, "Value": value, "Timestamp": stamp,
                         "StorageResolution": 1,
                         "Dimensions": [{"Name": dimension, "Value": dimension_value}]})
    for first in range(0, len(data), MAX_DATUMS):
        try:
            put_metric_data(platform, TRAINING_NAMESPACE, data[first:first + MAX_DATUMS])
        except Exception:  # noqa: BLE001 - metrics must never fail the job
            log.exception("could not publish training metrics of %s", job_name)


_sweepers: dict[int, tuple[threading.Thread, threading.Event]] = {}


def start_retention(platform: "Platform") -> None:
    """Sweep old rows in the background too (endpoint metrics arrive without PutMetricData):
    the thread looks at the clock every 0.5 s and sweeps once per sweep interval."""
    stopping = threading.Event()

    def run() -> None:
        while not stopping.wait(0.5):
            maybe_sweep(platform, platform.clock.now())

    thread = threading.Thread(target=run, name="cloudwatch-retention", daemon=True)
    _sweepers[id(platform)] = (thread, stopping)
    thread.start()


def stop_retention(platform: "Platform") -> None:
    found = _sweepers.pop(id(platform), None)
    if found is not None:
        found[1].set()
        found[0].join(timeout=10)
