"""Metric history of training jobs: every value a MetricDefinitions regex matched.

FinalMetricDataList holds the last value per metric; tuning strategies and early
stopping need the whole series, so it is kept here, in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, Float, Index, Integer, String, Table, insert, select

from .db import Database, metadata

job_metrics_table = Table(
    "job_metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_name", String(256), nullable=False),
    Column("metric_name", String(256), nullable=False),
    Column("value", Float, nullable=False),
    Column("timestamp", Float, nullable=False),
    Index("ix_job_metrics_job", "job_name", "metric_name", "id"),
)


@dataclass(frozen=True)
class MetricPoint:
    metric_name: str
    value: float
    timestamp: float


class MetricStore:
    def __init__(self, database: Database) -> None:
        self.db = database

    def append(self, job_name: str, points: list[tuple[str, float, float]]) -> None:
        if not points:
            return
        with self.db.write() as connection:
            connection.execute(insert(job_metrics_table), [
                {"job_name": job_name, "metric_name": name, "value": value, "timestamp": stamp}
                for name, value, stamp in points
            ])

    def series(self, job_name: str, metric_name: str | None = None) -> list[MetricPoint]:
        table = job_metrics_table
        statement = select(table).where(table.c.job_name == job_name).order_by(table.c.id)
        if metric_name is not None:
            statement = statement.where(table.c.metric_name == metric_name)
        with self.db.read() as connection:
            rows = connection.execute(statement).all()
        return [MetricPoint(row.metric_name, row.value, row.timestamp) for row in rows]
