"""GetMetricData's queries: metric statistics and metric math over them.

A ``MetricStat`` query is a statistic per period (``statistics.statistic_series``). An
``Expression`` query is parsed by ``expressions`` and evaluated here over three kinds of
value: a scalar, a time series (period start -> value) and an array of time series
(``METRICS()``, ``[m1, m2]``). As in CloudWatch:

- arithmetic and comparisons between two series keep the timestamps both have; with a
  scalar they apply to every point; division by zero leaves the point out;
- ``SUM``/``AVG``/``MIN``/``MAX``/``STDDEV`` of one series give a scalar, of an array a
  series (per timestamp, over the series that have a value there);
- ``FILL(x, value | REPEAT | LINEAR)`` fills the periods of the query's time range
  that have no value; ``IF(condition, a[, b])`` takes ``a`` where the condition is
  non-zero, ``b`` elsewhere (no point without ``b``); ``METRICS(['text'])`` is every
  ``MetricStat`` query (whose label contains the text);
- also ``ABS``, ``CEIL``, ``FLOOR``, ``DIFF``, ``RATE``, ``RUNNING_SUM``, ``PERIOD``.

A scalar result is returned at the timestamps of the metrics the expression uses.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from . import expressions as ex
from .math_functions import FUNCTIONS, Series, Value, binary, map_value, scalar_series
from .statistics import aligned_start, check_statistic, period_is_valid, statistic_series

if TYPE_CHECKING:
    from ..platform import Platform

MAX_QUERIES = 500
_ID = re.compile(r"[a-z][a-zA-Z0-9_]*")


def validation(message: str) -> AwsError:
    return AwsError("ValidationError", message)


def run_queries(platform: "Platform", queries: list[dict[str, Any]], start: float,
                end: float) -> list[dict[str, Any]]:
    """MetricDataQueries -> MetricDataResults (Id, Label, Timestamps ascending as epoch
    floats, Values, StatusCode) for the queries whose ReturnData is not false."""
    if not queries:
        raise validation("MetricDataQueries must hold at least one query.")
    if len(queries) > MAX_QUERIES:
        raise validation(f"MetricDataQueries must not hold more than {MAX_QUERIES} queries.")
    if start >= end:
        raise validation("The parameter StartTime must be less than the parameter EndTime.")
    by_id: dict[str, dict[str, Any]] = {}
    for position, query in enumerate(queries, start=1):
        _check_query(query, position, by_id)
    evaluator = _Evaluator(platform, by_id, start, end)
    results = []
    for query in queries:
        if query.get("ReturnData") is False:
            continue
        value = evaluator.value_of(query["Id"])
        label = query.get("Label")
        for series in evaluator.as_series_list(value, query):
            name = label or series.label
            if label and isinstance(value, list):
                name = f"{label} {series.label}"
            stamps = sorted(series.points)
            results.append({"Id": query["Id"], "Label": name, "Timestamps": stamps,
                            "Values": [series.points[stamp] for stamp in stamps],
                            "StatusCode": "Complete"})
    return results


def _check_query(query: dict[str, Any], position: int, by_id: dict[str, dict]) -> None:
    member = f"MetricDataQueries.member.{position}"
    identifier = query.get("Id", "")
    if not _ID.fullmatch(identifier):
        raise validation(f"The value {identifier!r} for parameter {member}.Id is not valid: an "
                         "Id starts with a lowercase letter and holds only letters, digits "
                         "and underscores.")
    if identifier in by_id:
        raise validation(f"The Id {identifier!r} of {member} is used by another query; Ids "
                         "must be unique.")
    stat, expression = query.get("MetricStat"), query.get("Expression")
    if (stat is None) == (expression is None):
        raise validation(f"{member} must have exactly one of MetricStat and Expression.")
    if stat is not None:
        metric = stat["Metric"]
        if not metric.get("Namespace") or not metric.get("MetricName"):
            raise validation(f"{member}.MetricStat.Metric needs a Namespace and a MetricName.")
        if not period_is_valid(stat["Period"]):
            raise validation(f"The parameter {member}.MetricStat.Period must be 1, 5, 10, 20, "
                             f"30 or a multiple of 60 (it is {stat['Period']}).")
        try:
            check_statistic(stat["Stat"], f"{member}.MetricStat.Stat")
        except AwsError as error:
            raise validation(error.message) from None
    else:
        period = query.get("Period")
        if period is not None and not period_is_valid(period):
            raise validation(f"The parameter {member}.Period must be 1, 5, 10, 20, 30 or a "
                             f"multiple of 60 (it is {period}).")
        try:
            query = {**query, "_tree": ex.parse(expression)}
        except ex.ExpressionError as error:
            raise validation(f"Error in expression {identifier!r}: {error.describe()}.") from None
    by_id[identifier] = query


class _Evaluator:
    def __init__(self, platform: "Platform", queries: dict[str, dict[str, Any]], start: float,
                 end: float) -> None:
        self.platform = platform
        self.queries = queries
        self.start = start
        self.end = end
        self.values: dict[str, Value] = {}
        self.active: list[str] = []
        stat_periods = [q["MetricStat"]["Period"] for q in queries.values() if "MetricStat" in q]
        self.default_period = min(stat_periods) if stat_periods else 60

    def value_of(self, identifier: str) -> Value:
        if identifier in self.values:
            return self.values[identifier]
        if identifier in self.active:
            cycle = " -> ".join([*self.active[self.active.index(identifier):], identifier])
            raise validation(f"Expressions refer to each other in a circle: {cycle}.")
        query = self.queries[identifier]
        self.active.append(identifier)
        try:
            value = self._metric(query) if "MetricStat" in query else self._expression(query)
        finally:
            self.active.pop()
        self.values[identifier] = value
        return value

    def _metric(self, query: dict[str, Any]) -> Series:
        stat = query["MetricStat"]
        metric = stat["Metric"]
        dimensions = {item["Name"]: item["Value"] for item in metric.get("Dimensions") or []}
        period = stat["Period"]
        points = dict(statistic_series(self.platform, metric["Namespace"], metric["MetricName"],
                                       dimensions, self.start, self.end, period, stat["Stat"],
                                       unit=stat.get("Unit")))
        return Series(points, metric["MetricName"], period, aligned_start(self.start, period),
                      self.end, set(points))

    def _expression(self, query: dict[str, Any]) -> Value:
        identifier = query["Id"]
        tree = query["_tree"]
        for name in ex.references(tree):
            if name not in self.queries and name.upper() not in ("REPEAT", "LINEAR"):
                raise validation(f"Error in expression {identifier!r}: {name!r} is not the Id "
                                 "of another query in this request.")
        period = query.get("Period") or self.default_period
        try:
            return EvaluationContext(self, period).evaluate(tree)
        except ex.ExpressionError as error:
            raise validation(f"Error in expression {identifier!r}: {error.describe()}.") from None

    def as_series_list(self, value: Value, query: dict[str, Any]) -> list[Series]:
        if isinstance(value, list):
            return value
        if isinstance(value, Series):
            if "Expression" in query:
                value = value.derive(value.points)
                value.label = query["Id"]
            return [value]
        period = query.get("Period") or self.default_period
        return [scalar_series(value, query["Id"], period, self.start, self.end, None)]


class EvaluationContext:
    """Evaluates one expression's tree."""

    def __init__(self, evaluator: _Evaluator, period: int) -> None:
        self.evaluator = evaluator
        self.period = period
        self.support: set[float] = set()

    def evaluate(self, node: ex.Node) -> Value:
        value = self.eval_node(node)
        if isinstance(value, float):
            return scalar_series(value, "__expr__", self.period, self.evaluator.start,
                                 self.evaluator.end, self.support)
        return value

    def eval_node(self, node: ex.Node) -> Value | str:
        if isinstance(node, ex.Number):
            return node.value
        if isinstance(node, ex.Text):
            return node.value
        if isinstance(node, ex.Ref):
            if node.name.upper() in ("REPEAT", "LINEAR"):
                return node.name.upper()
            value = self.evaluator.value_of(node.name)
            self.note(value)
            return value
        if isinstance(node, ex.Array):
            items: list[Series] = []
            for item in node.items:
                value = self.eval_node(item)
                if isinstance(value, Series):
                    items.append(value)
                elif isinstance(value, list):
                    items.extend(value)
                else:
                    raise ex.ExpressionError("an array [...] holds only time series")
            return items
        if isinstance(node, ex.Unary):
            operand = self.value(node.operand)
            if node.op == "-":
                return map_value(operand, lambda x: -x)
            return map_value(operand, lambda x: 0.0 if x else 1.0)
        if isinstance(node, ex.Binary):
            return binary(node.op, self.value(node.left), self.value(node.right))
        assert isinstance(node, ex.Call)
        function = FUNCTIONS.get(node.name)
        if function is None:
            raise ex.ExpressionError(f"unknown function {node.name}; modelyard knows "
                                     f"{', '.join(sorted(FUNCTIONS))}", node.position)
        return function(self, node)

    def value(self, node: ex.Node) -> Value:
        value = self.eval_node(node)
        if isinstance(value, str):
            raise ex.ExpressionError(f"{value!r} can only be an argument of FILL or METRICS")
        return value

    def note(self, value: Value | str) -> None:
        if isinstance(value, Series):
            self.support |= value.support or set(value.points)
        elif isinstance(value, list):
            for series in value:
                self.support |= series.support or set(series.points)
