"""Parameter ranges as SageMaker defines them, turned into Optuna distributions.

A tuning job searches one space per training job definition. Each range becomes one
Optuna parameter; multi-algorithm jobs (``TrainingJobDefinitions``) add a categorical
``__definition`` choice and name each definition's parameters ``<definition>.<name>``, a
conditional space TPE handles. Scaling types:

- ``Linear``: uniform over [min, max].
- ``Logarithmic``: uniform over log values (both bounds must be > 0).
- ``ReverseLogarithmic`` (continuous only, within [0, 1)): ``1 - x`` is searched on a log
  scale, so values crowd towards 1 (e.g. momentum 0.9 ... 0.999).
- ``Auto``: SageMaker "assumes linear, then infers"; here a range spanning two orders of
  magnitude or more with a positive lower bound is searched on a log scale, any other
  linearly.

Hyperparameter values handed to training jobs are strings, as SageMaker passes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from optuna.distributions import (
    BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution,
)

from ..api.errors import validation_error

DEFINITION_PARAM = "__definition"
MAX_RANGES = 30
MAX_CATEGORY_VALUES = 30


@dataclass(frozen=True)
class Range:
    """One tunable hyperparameter of one training job definition."""

    name: str  # the hyperparameter's name
    key: str  # the Optuna parameter's name
    kind: str  # "Integer", "Continuous", "Categorical"
    distribution: BaseDistribution
    reverse: bool = False  # ReverseLogarithmic: the distribution is over 1 - value

    def value(self, sampled: Any) -> str:
        """The hyperparameter's value, as the training job receives it."""
        if self.kind == "Categorical":
            return str(sampled)
        if self.kind == "Integer":
            return str(int(sampled))
        number = 1.0 - float(sampled) if self.reverse else float(sampled)
        return repr(number)


def parse_ranges(ranges: dict[str, Any], *, prefix: str, where: str) -> list[Range]:
    """The ranges of one ParameterRanges structure, validated as SageMaker does."""
    parsed: list[Range] = []
    for item in ranges.get("IntegerParameterRanges", []):
        low, high = _bounds(item, int, where)
        log = _log_scale(item, low, high, where, continuous=False)
        parsed.append(Range(item["Name"], prefix + item["Name"], "Integer",
                            IntDistribution(low, high, log=log)))
    for item in ranges.get("ContinuousParameterRanges", []):
        low, high = _bounds(item, float, where)
        scaling = item.get("ScalingType", "Auto")
        if scaling == "ReverseLogarithmic":
            if not (0 <= low and high < 1):
                raise validation_error(
                    f"{where}: ContinuousParameterRange {item['Name']} uses ReverseLogarithmic "
                    f"scaling, which needs 0 <= MinValue <= MaxValue < 1 (got {low}, {high}).")
            parsed.append(Range(item["Name"], prefix + item["Name"], "Continuous",
                                FloatDistribution(1.0 - high, 1.0 - low, log=True), reverse=True))
            continue
        log = _log_scale(item, low, high, where, continuous=True)
        parsed.append(Range(item["Name"], prefix + item["Name"], "Continuous",
                            FloatDistribution(low, high, log=log)))
    for item in ranges.get("CategoricalParameterRanges", []):
        values = list(item["Values"])
        if not values or len(values) > MAX_CATEGORY_VALUES:
            raise validation_error(
                f"{where}: CategoricalParameterRange {item['Name']} must have between 1 and "
                f"{MAX_CATEGORY_VALUES} Values (got {len(values)}).")
        if len(set(values)) != len(values):
            raise validation_error(
                f"{where}: CategoricalParameterRange {item['Name']} lists a value twice.")
        parsed.append(Range(item["Name"], prefix + item["Name"], "Categorical",
                            CategoricalDistribution(values)))
    if ranges.get("AutoParameters"):
        raise validation_error(
            f"{where}: AutoParameters (Autotune) are not supported by modelyard; give the "
            "ranges explicitly.")
    names = [item.name for item in parsed]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise validation_error(f"{where}: hyperparameter {duplicates[0]} has more than one range.")
    if len(parsed) > MAX_RANGES:
        raise validation_error(
            f"{where}: {len(parsed)} parameter ranges; at most {MAX_RANGES} are allowed.")
    return parsed


def _bounds(item: dict[str, Any], kind: type, where: str) -> tuple[Any, Any]:
    label = "IntegerParameterRange" if kind is int else "ContinuousParameterRange"
    try:
        low, high = kind(item["MinValue"]), kind(item["MaxValue"])
    except ValueError:
        raise validation_error(
            f"{where}: {label} {item['Name']} has MinValue {item['MinValue']!r} and MaxValue "
            f"{item['MaxValue']!r}; both must be {'integers' if kind is int else 'numbers'}."
        ) from None
    if kind is float and not (math.isfinite(low) and math.isfinite(high)):
        raise validation_error(f"{where}: {label} {item['Name']} bounds must be finite.")
    if low > high:
        raise validation_error(
            f"{where}: {label} {item['Name']} has MinValue {item['MinValue']} greater than "
            f"MaxValue {item['MaxValue']}.")
    return low, high


def _log_scale(item: dict[str, Any], low: float, high: float, where: str, *,
               continuous: bool) -> bool:
    scaling = item.get("ScalingType", "Auto")
    label = "ContinuousParameterRange" if continuous else "IntegerParameterRange"
    if scaling == "ReverseLogarithmic":
        raise validation_error(
            f"{where}: {label} {item['Name']}: ReverseLogarithmic scaling is only valid for "
            "continuous ranges.")
    if scaling == "Logarithmic":
        if low <= 0:
            raise validation_error(
                f"{where}: {label} {item['Name']} uses Logarithmic scaling, which needs "
                f"MinValue and MaxValue greater than 0 (MinValue is {item['MinValue']}).")
        return True
    if scaling == "Auto":
        return low > 0 and high / low >= 100
    return False


def categorical_only(ranges: list[Range]) -> bool:
    return all(item.kind == "Categorical" for item in ranges)


def grid_size(ranges: list[Range]) -> int:
    size = 1
    for item in ranges:
        assert isinstance(item.distribution, CategoricalDistribution)
        size *= len(item.distribution.choices)
    return size


def distributions(ranges: list[Range]) -> dict[str, BaseDistribution]:
    return {item.key: item.distribution for item in ranges}
