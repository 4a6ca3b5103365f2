"""Metric math values and functions: scalars, time series, arrays of time series.

``metric_math`` evaluates an expression's syntax tree; the values it combines and the
functions it calls (``FUNCTIONS``, by upper-case name) are here. See ``metric_math`` for
the rules CloudWatch applies (timestamps kept by arithmetic, reductions, FILL, IF).
"""

from __future__ import annotations

import math
import statistics as pystats
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import expressions as ex
from .statistics import aligned_start

if TYPE_CHECKING:
    from .metric_math import EvaluationContext


@dataclass
class Series:
    points: dict[float, float]
    label: str
    period: int
    first: float  # the grid FILL fills: first, first + period, ... < end
    end: float
    support: set[float] = field(default_factory=set)

    def derive(self, points: dict[float, float]) -> "Series":
        return Series(points, self.label, self.period, self.first, self.end, self.support)

    def grid(self) -> list[float]:
        count = max(0, math.ceil((self.end - self.first) / self.period))
        return [self.first + index * self.period for index in range(count)]


Value = float | Series | list[Series]


def scalar_series(value: float, label: str, period: int, start: float, end: float,
                  support: set[float] | None) -> Series:
    """A scalar as a series: at ``support``'s timestamps, else at every period."""
    series = Series({}, label, period, aligned_start(start, period), end, set())
    stamps = sorted(support) if support else series.grid()
    series.points = {stamp: value for stamp in stamps}
    return series


def map_value(value: Value, operation: Callable[[float], float | None]) -> Value:
    """``operation`` on every number of ``value``; points it answers None for are dropped."""
    if isinstance(value, float):
        result = operation(value)
        if result is None:
            raise ex.ExpressionError("the expression divides a scalar by zero")
        return result
    if isinstance(value, list):
        return [map_value(series, operation) for series in value]  # type: ignore[misc]
    points = {}
    for stamp, number in value.points.items():
        result = operation(number)
        if result is not None and math.isfinite(result):
            points[stamp] = result
    return value.derive(points)


def _apply(op: str, left: float, right: float) -> float | None:
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "/":
        return left / right if right else None
    if op == "^":
        try:
            result = left ** right
        except (OverflowError, ZeroDivisionError):
            return None
        return result if isinstance(result, float | int) else None
    if op == "&&":
        return 1.0 if left and right else 0.0
    if op == "||":
        return 1.0 if left or right else 0.0
    return 1.0 if {"<": left < right, "<=": left <= right, ">": left > right,
                   ">=": left >= right, "==": left == right, "!=": left != right}[op] else 0.0


def binary(op: str, left: Value, right: Value) -> Value:
    """``left op right``: two series keep the timestamps both have; arrays apply per series."""
    if isinstance(left, list) and isinstance(right, list):
        raise ex.ExpressionError(f"'{op}' cannot combine two arrays of time series")
    if isinstance(left, list):
        return [binary(op, series, right) for series in left]  # type: ignore[misc]
    if isinstance(right, list):
        return [binary(op, left, series) for series in right]  # type: ignore[misc]
    if isinstance(left, float) and isinstance(right, float):
        result = _apply(op, left, right)
        if result is None:
            raise ex.ExpressionError(f"the scalar operation {left} {op} {right} has no value")
        return float(result)
    if isinstance(right, float):
        return map_value(left, lambda x: _apply(op, x, right))
    if isinstance(left, float):
        return map_value(right, lambda x: _apply(op, left, x))
    points = {}
    for stamp, number in left.points.items():
        other = right.points.get(stamp)
        if other is not None:
            result = _apply(op, number, other)
            if result is not None and math.isfinite(result):
                points[stamp] = float(result)
    return left.derive(points)


def empty_series(context: "EvaluationContext") -> Series:
    """No value: a series without points on the expression's grid."""
    start, end = context.evaluator.start, context.evaluator.end
    return Series({}, "__expr__", context.period, aligned_start(start, context.period), end)


def _arity(node: ex.Call, low: int, high: int) -> None:
    if not low <= len(node.args) <= high:
        wanted = str(low) if low == high else f"{low} to {high}"
        raise ex.ExpressionError(f"{node.name} takes {wanted} argument(s), not "
                                 f"{len(node.args)}", node.position)


def _reduce(name: str, reducer: Callable[[list[float]], float]) -> Callable:
    def function(context: "EvaluationContext", node: ex.Call) -> Value:
        _arity(node, 1, 1)
        value = context.value(node.args[0])
        if isinstance(value, float):
            return value
        if isinstance(value, Series):
            if not value.points:
                return value  # no data, no value (an empty series)
            return float(reducer(list(value.points.values())))
        if not value:
            return empty_series(context)
        columns: dict[float, list[float]] = {}
        for series in value:
            for stamp, number in series.points.items():
                columns.setdefault(stamp, []).append(number)
        points = {stamp: float(reducer(numbers)) for stamp, numbers in sorted(columns.items())}
        result = value[0].derive(points)
        result.label = "__expr__"
        return result

    return function


def _stddev(numbers: list[float]) -> float:
    return pystats.pstdev(numbers) if len(numbers) > 1 else 0.0


def _metrics(context: "EvaluationContext", node: ex.Call) -> Value:
    _arity(node, 0, 1)
    text = None
    if node.args:
        argument = node.args[0]
        if not isinstance(argument, ex.Text):
            raise ex.ExpressionError("METRICS takes a quoted string", node.position)
        text = argument.value
    found: list[Series] = []
    for identifier, query in context.evaluator.queries.items():
        if "MetricStat" not in query:
            continue
        series = context.evaluator.value_of(identifier)
        assert isinstance(series, Series)
        label = query.get("Label") or series.label
        if text is None or text in label:
            named = series.derive(series.points)
            named.label = label
            found.append(named)
    context.note(found)
    return found


def _fill(context: "EvaluationContext", node: ex.Call) -> Value:
    _arity(node, 2, 2)
    target = context.value(node.args[0])
    how = context.eval_node(node.args[1])
    if isinstance(how, Series | list):
        raise ex.ExpressionError("FILL's second argument is a number, REPEAT or LINEAR",
                                 node.position)

    def fill(series: Series) -> Series:
        points: dict[float, float] = {}
        known = sorted(series.points)
        previous: float | None = None
        for stamp in series.grid():
            if stamp in series.points:
                previous = series.points[stamp]
                points[stamp] = previous
            elif isinstance(how, float):
                points[stamp] = how
            elif how == "REPEAT" and previous is not None:
                points[stamp] = previous
            elif how == "LINEAR":
                after = next((item for item in known if item > stamp), None)
                before = max((item for item in known if item < stamp), default=None)
                if before is not None and after is not None:
                    share = (stamp - before) / (after - before)
                    points[stamp] = series.points[before] + share * (
                        series.points[after] - series.points[before])
        return series.derive(points)

    if isinstance(target, float):
        return target
    if isinstance(target, list):
        return [fill(series) for series in target]
    return fill(target)


def _if(context: "EvaluationContext", node: ex.Call) -> Value:
    _arity(node, 2, 3)
    condition = context.value(node.args[0])
    then = context.value(node.args[1])
    otherwise = context.value(node.args[2]) if len(node.args) == 3 else None
    if isinstance(condition, list) or isinstance(then, list) or isinstance(otherwise, list):
        raise ex.ExpressionError("IF works on single time series and scalars", node.position)
    if isinstance(condition, float):
        if condition:
            return then
        return empty_series(context) if otherwise is None else otherwise
    points = {}
    for stamp, flag in condition.points.items():
        chosen = then if flag else otherwise
        if chosen is None:
            continue
        number = chosen if isinstance(chosen, float) else chosen.points.get(stamp)
        if number is not None:
            points[stamp] = float(number)
    return condition.derive(points)


def _sequential(kind: str) -> Callable:
    def function(context: "EvaluationContext", node: ex.Call) -> Value:
        _arity(node, 1, 1)
        value = context.value(node.args[0])

        def one(series: Series) -> Series:
            stamps = sorted(series.points)
            points: dict[float, float] = {}
            running = 0.0
            for index, stamp in enumerate(stamps):
                number = series.points[stamp]
                if kind == "RUNNING_SUM":
                    running += number
                    points[stamp] = running
                elif kind == "PERIOD":
                    points[stamp] = float(series.period)
                elif index:
                    delta = number - series.points[stamps[index - 1]]
                    points[stamp] = delta if kind == "DIFF" else delta / (
                        stamp - stamps[index - 1])
            return series.derive(points)

        if isinstance(value, float):
            raise ex.ExpressionError(f"{kind} needs a time series", node.position)
        return [one(series) for series in value] if isinstance(value, list) else one(value)

    return function


def _elementwise(operation: Callable[[float], float]) -> Callable:
    def function(context: "EvaluationContext", node: ex.Call) -> Value:
        _arity(node, 1, 1)
        return map_value(context.value(node.args[0]), operation)

    return function


FUNCTIONS: dict[str, Callable[["EvaluationContext", ex.Call], Value]] = {
    "SUM": _reduce("SUM", sum), "AVG": _reduce("AVG", lambda xs: sum(xs) / len(xs)),
    "MIN": _reduce("MIN", min), "MAX": _reduce("MAX", max),
    "STDDEV": _reduce("STDDEV", _stddev),
    "METRICS": _metrics, "FILL": _fill, "IF": _if,
    "ABS": _elementwise(abs), "CEIL": _elementwise(lambda x: float(math.ceil(x))),
    "FLOOR": _elementwise(lambda x: float(math.floor(x))),
    "DIFF": _sequential("DIFF"), "RATE": _sequential("RATE"),
    "RUNNING_SUM": _sequential("RUNNING_SUM"), "PERIOD": _sequential("PERIOD"),
}
