"""CloudWatch-style metric data: statistic sets per namespace, metric, dimensions and time.

Generic on purpose: the SageMaker Runtime writes its per-minute invocation metrics here
(namespace ``AWS/SageMaker``), and CloudWatch's ``PutMetricData`` / ``GetMetricStatistics``
(``modelyard.cloudwatch``) put and read the same rows. One row is one statistic set
(SampleCount, Sum, Minimum, Maximum) with a unit; a single value is a set of one sample.
A set of several raw values may carry a serialized KLL sketch of them, for percentiles.
Dimensions are stored as canonical JSON (sorted by name), so equal dimension sets compare
equal as strings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import (
    Column, Float, Index, Integer, LargeBinary, String, Table, Text, insert, select,
)

from .db import Database, metadata

cloudwatch_metric_data_table = Table(
    "cloudwatch_metric_data",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace", String(255), nullable=False),
    Column("metric_name", String(255), nullable=False),
    Column("dimensions", Text, nullable=False),  # canonical JSON: [[name, value], ...]
    Column("timestamp", Float, nullable=False),  # seconds since the epoch
    Column("sample_count", Float, nullable=False),
    Column("sum", Float, nullable=False),
    Column("minimum", Float, nullable=False),
    Column("maximum", Float, nullable=False),
    Column("unit", String(32), nullable=False),
    # A serialized KLL sketch of the set's values when it has more than one (percentiles).
    Column("sketch", LargeBinary, nullable=True),
    Index("ix_cloudwatch_metric_data_series", "namespace", "metric_name", "dimensions",
          "timestamp"),
)


@dataclass(frozen=True)
class MetricDatum:
    """One statistic set, as PutMetricData's ``StatisticValues`` (or one ``Value``) gives it."""

    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    timestamp: float
    sample_count: float
    sum: float
    minimum: float
    maximum: float
    unit: str = "None"
    # A serialized KLL sketch of the set's values (cloudwatch/sketches.py), or None.
    sketch: bytes | None = None

    @classmethod
    def single(cls, namespace: str, metric_name: str, dimensions: Mapping[str, str],
               timestamp: float, value: float, unit: str = "None") -> "MetricDatum":
        return cls(namespace, metric_name, canonical_dimensions(dimensions), timestamp,
                   1.0, value, value, value, unit)

    @property
    def average(self) -> float:
        return self.sum / self.sample_count if self.sample_count else 0.0


def canonical_dimensions(dimensions: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(name), str(value)) for name, value in dimensions.items()))


def _dimensions_text(dimensions: Iterable[tuple[str, str]]) -> str:
    return json.dumps([list(pair) for pair in sorted(dimensions)], separators=(",", ":"))


dimensions_text = _dimensions_text  # the stored form, for queries outside this module


class CloudWatchMetricStore:
    def __init__(self, database: Database) -> None:
        self.db = database

    def put(self, data: Iterable[MetricDatum]) -> None:
        rows = [
            {"namespace": d.namespace, "metric_name": d.metric_name,
             "dimensions": _dimensions_text(d.dimensions), "timestamp": d.timestamp,
             "sample_count": d.sample_count, "sum": d.sum, "minimum": d.minimum,
             "maximum": d.maximum, "unit": d.unit, "sketch": d.sketch}
            for d in data
        ]
        if not rows:
            return
        with self.db.write() as connection:
            connection.execute(insert(cloudwatch_metric_data_table), rows)

    def query(self, namespace: str, metric_name: str, dimensions: Mapping[str, str],
              start: float = 0.0, end: float = float("inf")) -> list[MetricDatum]:
        """The sets of one metric with exactly these dimensions, start <= timestamp < end,
        oldest first (several sets may share a timestamp: callers aggregate)."""
        table = cloudwatch_metric_data_table
        statement = (
            select(table)
            .where(table.c.namespace == namespace, table.c.metric_name == metric_name,
                   table.c.dimensions == _dimensions_text(canonical_dimensions(dimensions)),
                   table.c.timestamp >= start)
            .order_by(table.c.timestamp, table.c.id)
        )
        if end != float("inf"):
            statement = statement.where(table.c.timestamp < end)
        with self.db.read() as connection:
            rows = connection.execute(statement).all()
        return [
            MetricDatum(row.namespace, row.metric_name,
                        tuple((name, value) for name, value in json.loads(row.dimensions)),
                        row.timestamp, row.sample_count, row.sum, row.minimum, row.maximum,
                        row.unit, row.sketch)
            for row in rows
        ]
