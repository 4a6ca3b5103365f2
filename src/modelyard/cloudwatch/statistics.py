"""Statistics of one metric per period, from the stored statistic sets and their sketches.

A period's SampleCount, Sum, Minimum, Maximum and Average are exact (sums and extremes
of the stored sets, aggregated in SQL per stored timestamp). Percentiles (``pNN``,
``pNN.N``) merge the period's KLL sketches with its single values and are within
``sketches.RANK_ERROR`` of the requested rank; a period whose only data are statistic
sets with Minimum < Maximum has no percentile (as in CloudWatch).

Periods start at the query's start time rounded down to the minute (to the period for 1,
5, 10, 20 and 30 seconds), as CloudWatch rounds it; only periods with data are returned.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from ..api.errors import AwsError
from ..store.cloudwatch_metrics import (
    canonical_dimensions, cloudwatch_metric_data_table, dimensions_text,
)
from .sketches import Merger

if TYPE_CHECKING:
    from ..platform import Platform

BASIC_STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
SUB_MINUTE_PERIODS = (1, 5, 10, 20, 30)
MAX_DATAPOINTS = 1440
HIGH_RESOLUTION_SECONDS = 3 * 3600
_PERCENTILE = re.compile(r"p(\d{1,3}(?:\.\d{1,10})?)")


def percentile_of(statistic: str) -> float | None:
    """``p99.5`` -> 99.5; None for anything that is not a percentile in 0..100."""
    match = _PERCENTILE.fullmatch(statistic)
    if match is None:
        return None
    percent = float(match.group(1))
    return percent if 0.0 <= percent <= 100.0 else None


def check_statistic(statistic: str, member: str) -> None:
    if statistic in BASIC_STATISTICS or percentile_of(statistic) is not None:
        return
    raise AwsError("InvalidParameterValue",
                   f"The value {statistic!r} for parameter {member} is not a statistic "
                   f"modelyard computes: use one of {', '.join(BASIC_STATISTICS)} or a "
                   "percentile p0.0 to p100 such as p99 or p99.9.")


def period_is_valid(period: int) -> bool:
    return period in SUB_MINUTE_PERIODS or (period > 0 and period % 60 == 0)


def aligned_start(start: float, period: int) -> float:
    """CloudWatch's rounding of a query's start: to the minute, or to the sub-minute period."""
    step = period if period in SUB_MINUTE_PERIODS else 60
    return float(math.floor(start / step) * step)


@dataclass
class Bucket:
    """One period's aggregate (of one unit, or of all units)."""

    start: float
    unit: str
    count: float = 0.0
    total: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf
    merger: Merger = field(default_factory=Merger)
    _singles: list[float] = field(default_factory=list)
    _weights: list[float] = field(default_factory=list)

    def add_set(self, count: float, total: float, low: float, high: float) -> None:
        self.count += count
        self.total += total
        self.minimum = min(self.minimum, low)
        self.maximum = max(self.maximum, high)

    def add_single(self, value: float, count: float) -> None:
        self._singles.append(value)
        self._weights.append(count)

    def value(self, statistic: str) -> float | None:
        if statistic == "SampleCount":
            return self.count
        if statistic == "Sum":
            return self.total
        if statistic == "Average":
            return self.total / self.count if self.count else None
        if statistic == "Minimum":
            return self.minimum
        if statistic == "Maximum":
            return self.maximum
        percent = percentile_of(statistic)
        if percent is None:
            return None
        if self._singles:
            self.merger.add_values(self._singles, self._weights)
            self._singles, self._weights = [], []
        return self.merger.percentile(percent)


def aggregate(platform: "Platform", namespace: str, metric_name: str,
              dimensions: Mapping[str, str], start: float, end: float, period: int, *,
              unit: str | None = None, percentiles: bool = False,
              by_unit: bool = False) -> list[Bucket]:
    """The periods with data in [start, end), ascending (then by unit with ``by_unit``).

    ``unit`` keeps only data stored with that unit; ``percentiles`` also loads the
    sketches and single values the percentile statistics need."""
    table = cloudwatch_metric_data_table
    first = aligned_start(start, period)
    conditions = [
        table.c.namespace == namespace, table.c.metric_name == metric_name,
        table.c.dimensions == dimensions_text(canonical_dimensions(dimensions)),
        table.c.timestamp >= first, table.c.timestamp < end, table.c.sample_count > 0,
    ]
    if unit is not None:
        conditions.append(table.c.unit == unit)
    buckets: dict[tuple[int, str], Bucket] = {}

    def bucket(stamp: float, row_unit: str) -> Bucket:
        index = int((stamp - first) // period)
        key = (index, row_unit if by_unit else "")
        found = buckets.get(key)
        if found is None:
            found = buckets[key] = Bucket(first + index * period, row_unit)
        return found

    sets = (select(table.c.timestamp, table.c.unit, func.sum(table.c.sample_count),
                   func.sum(table.c.sum), func.min(table.c.minimum), func.max(table.c.maximum))
            .where(*conditions).group_by(table.c.timestamp, table.c.unit))
    with platform.db.read() as connection:
        for stamp, row_unit, count, total, low, high in connection.execute(sets):
            bucket(stamp, row_unit).add_set(count, total, low, high)
        if percentiles and buckets:
            sketched = (select(table.c.timestamp, table.c.unit, table.c.sketch)
                        .where(*conditions, table.c.sketch.is_not(None)))
            for stamp, row_unit, blob in connection.execute(sketched):
                bucket(stamp, row_unit).merger.add_sketch(blob)
            singles = (select(table.c.timestamp, table.c.unit, table.c.minimum,
                              func.sum(table.c.sample_count))
                       .where(*conditions, table.c.sketch.is_(None),
                              table.c.minimum == table.c.maximum)
                       .group_by(table.c.timestamp, table.c.unit, table.c.minimum))
            for stamp, row_unit, value, count in connection.execute(singles):
                bucket(stamp, row_unit).add_single(value, count)
    return [buckets[key] for key in sorted(buckets)]


def statistic_series(platform: "Platform", namespace: str, metric_name: str,
                     dimensions: dict[str, str], start: float, end: float, period: int,
                     statistic: str, unit: str | None = None) -> list[tuple[float, float]]:
    """(period start, value) ascending, only periods with data; ``statistic`` is
    SampleCount|Average|Sum|Minimum|Maximum or a percentile such as p99 or p99.5."""
    check_statistic(statistic, "Statistic")
    buckets = aggregate(platform, namespace, metric_name, dimensions, start, end, period,
                        unit=unit, percentiles=percentile_of(statistic) is not None)
    series = []
    for item in buckets:
        value = item.value(statistic)
        if value is not None:
            series.append((item.start, value))
    return series


def get_metric_statistics(platform: "Platform", request: dict[str, Any]) -> dict[str, Any]:
    """GetMetricStatistics, with CloudWatch's checks on periods, times and statistics."""
    statistics = request.get("Statistics") or []
    extended = request.get("ExtendedStatistics") or []
    if not statistics and not extended:
        raise AwsError("MissingParameter", "Must specify either Statistics or "
                       "ExtendedStatistics (percentiles such as p99).")
    if statistics and extended:
        raise AwsError("InvalidParameterCombination", "Must specify either Statistics or "
                       "ExtendedStatistics, but not both: make two calls.")
    for position, statistic in enumerate(statistics, start=1):
        if statistic not in BASIC_STATISTICS:
            check_statistic(statistic, f"Statistics.member.{position}")
    for position, statistic in enumerate(extended, start=1):
        if percentile_of(statistic) is None:
            raise AwsError("InvalidParameterValue",
                           f"The value {statistic!r} for parameter ExtendedStatistics.member."
                           f"{position} is not a valid percentile: use p0.0 to p100, e.g. p99 "
                           "or p99.9.")
    period, start, end = request["Period"], request["StartTime"], request["EndTime"]
    check_time_range(period, start, end, "Period")
    first = aligned_start(start, period)
    wanted = math.ceil((end - first) / period)
    if wanted > MAX_DATAPOINTS:
        raise AwsError("InvalidParameterCombination",
                       f"You have requested up to {wanted:,} datapoints, which exceeds the limit "
                       f"of {MAX_DATAPOINTS:,}. You may reduce the datapoints requested by "
                       "increasing Period, or decreasing the time range.")
    label = request["MetricName"]
    if period % 60 and start < platform.clock.now() - HIGH_RESOLUTION_SECONDS:
        return {"Label": label, "Datapoints": []}  # sub-minute data is kept three hours
    dimensions = {item["Name"]: item["Value"] for item in request.get("Dimensions") or []}
    buckets = aggregate(platform, request["Namespace"], label, dimensions, start, end, period,
                        unit=request.get("Unit"), percentiles=bool(extended), by_unit=True)
    datapoints = []
    for item in buckets:
        point: dict[str, Any] = {"Timestamp": item.start, "Unit": item.unit}
        for statistic in statistics:
            point[statistic] = item.value(statistic)
        values = {statistic: item.value(statistic) for statistic in extended}
        values = {name: value for name, value in values.items() if value is not None}
        if extended:
            if not values:
                continue  # only statistic sets with Minimum < Maximum: no percentile
            point["ExtendedStatistics"] = values
        datapoints.append(point)
    return {"Label": label, "Datapoints": datapoints}


def check_time_range(period: int, start: float, end: float, member: str,
                     code: str = "InvalidParameterValue") -> None:
    if not period_is_valid(period):
        raise AwsError(code, f"The parameter {member} must be 1, 5, 10, 20, 30 or a multiple "
                       f"of 60 (it is {period}).")
    if start >= end:
        raise AwsError(code, "The parameter StartTime must be less than the parameter EndTime.")
