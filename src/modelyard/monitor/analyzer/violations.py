"""Comparing a profile with the baseline: ``constraint_violations.json``.

Checks (``constraint_check_type``), per baseline feature:

- ``missing_column_check`` / ``extra_column_check``: a baseline feature the data lacks, a
  column the baseline does not know.
- ``data_type_check``: the share of present values of the baseline's numeric type
  (Integral, or any number for Fractional) is below ``datatype_check_threshold``.
- ``completeness_check``: the non-null share is below the feature's ``completeness``.
- ``categorical_values_check``: the share of values inside ``string_constraints.domains``
  is below ``domain_content_threshold``.
- ``baseline_drift_check``: the distance between the baseline's and the data's
  distributions exceeds ``comparison_threshold`` (numbers) or
  ``categorical_comparison_threshold`` (strings). Numbers: the L-infinity distance between
  the two KLL sketches' CDFs over the union of their items (the two-sample
  Kolmogorov-Smirnov statistic, Deequ's ``numericalDistance``); ``Robust`` subtracts
  ``1.8 * sqrt((n + m) / (n * m))`` (floored at 0), ``Simple`` does not. Strings:
  ``LInfinity`` is the largest difference of category shares (same Robust correction);
  ``ChiSquared`` is the p-value of a chi-squared goodness-of-fit test of the data's counts
  against the baseline's shares (categories with fewer than 5 expected merged), a drift when
  below the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .constraints import effective_config
from .statistics import FRACTIONAL, INTEGRAL, STRING, ColumnProfile, WeightedItems
from .statistics_json import java_double

ROBUST_C_ALPHA = 1.8


@dataclass
class Comparison:
    violations: list[dict[str, str]] = field(default_factory=list)
    drift: dict[str, float] = field(default_factory=dict)  # feature -> distance
    emit_metrics: bool = True

    def add(self, feature: str, check: str, description: str) -> None:
        self.violations.append({"feature_name": feature, "constraint_check_type": check,
                                "description": description})


def _pct(share: float) -> str:
    return java_double(share * 100.0)


def _number(value: float) -> str:
    return java_double(value).strip('"')


def robust(distance: float, n: float, m: float) -> float:
    if n <= 0 or m <= 0:
        return distance
    return max(0.0, distance - ROBUST_C_ALPHA * math.sqrt((n + m) / (n * m)))


def numerical_distance(baseline: WeightedItems, current: WeightedItems, method: str) -> float:
    """L-infinity distance of the two sketches' CDFs (Simple) or its Robust correction."""
    keys = np.union1d(baseline.items, current.items)
    if not keys.size:
        return 0.0
    distance = float(np.max(np.abs(baseline.cdf(keys) - current.cdf(keys))))
    return distance if method == "Simple" else robust(distance, baseline.n, current.n)


def categorical_distance(baseline: dict[str, float], current: dict[str, float], method: str
                         ) -> float:
    n, m = sum(baseline.values()), sum(current.values())
    if not n or not m:
        return 0.0
    keys = set(baseline) | set(current)
    distance = max(abs(baseline.get(k, 0.0) / n - current.get(k, 0.0) / m) for k in keys)
    return distance if method == "Simple" else robust(distance, n, m)


def chi_squared_p_value(baseline: dict[str, float], current: dict[str, float]) -> float:
    """p-value of the data's counts against the baseline's shares."""
    from scipy.stats import chi2

    n, m = sum(baseline.values()), sum(current.values())
    if not n or not m:
        return 1.0
    expected = {k: v / n * m for k, v in baseline.items()}
    observed_other = sum(v for k, v in current.items() if k not in expected)
    bins: list[tuple[float, float]] = []
    other_expected, other_observed = 0.0, observed_other
    for key, exp in expected.items():
        if exp < 5:
            other_expected += exp
            other_observed += current.get(key, 0.0)
        else:
            bins.append((exp, current.get(key, 0.0)))
    if other_observed or other_expected:
        if other_expected == 0:
            return 0.0  # values the baseline never saw
        bins.append((other_expected, other_observed))
    if len(bins) < 2:
        return 1.0
    statistic = sum((obs - exp) ** 2 / exp for exp, obs in bins)
    return float(chi2.sf(statistic, len(bins) - 1))


def _baseline_categories(feature: dict[str, Any]) -> dict[str, float] | None:
    buckets = ((feature.get("string_statistics") or {}).get("distribution") or {}) \
        .get("categorical", {}).get("buckets")
    if not buckets:
        return None
    return {str(b["value"]): float(b["count"]) for b in buckets}


def _baseline_sketch(feature: dict[str, Any]) -> WeightedItems | None:
    sketch = (((feature.get("numerical_statistics") or {}).get("distribution") or {})
              .get("kll") or {}).get("sketch") or {}
    levels = sketch.get("data")
    if not isinstance(levels, list) or not levels:
        return None
    return WeightedItems.from_levels(levels)


def compare(profiles: list[ColumnProfile], statistics: dict[str, Any] | None,
            constraints: dict[str, Any] | None) -> Comparison:
    """Violations of ``profiles`` against the baseline files (either may be None)."""
    result = Comparison()
    config = effective_config(constraints, None)
    result.emit_metrics = config.get("emit_metrics", "Enabled") == "Enabled"
    if config.get("evaluate_constraints", "Enabled") != "Enabled":
        return result
    stat_features = {f["name"]: f for f in (statistics or {}).get("features", [])}
    constraint_features = {f["name"]: f for f in (constraints or {}).get("features", [])}
    baseline_names = list(constraint_features or stat_features)
    current = {p.name: p for p in profiles}
    n_current, n_baseline = len(profiles), len(baseline_names)
    for name in baseline_names:
        if name not in current:
            result.add(name, "missing_column_check",
                       "There are missing columns in current dataset. Number of columns in "
                       f"current dataset: {n_current}, Number of columns in baseline "
                       f"constraints: {n_baseline}")
    for profile in profiles:
        if profile.name not in constraint_features and profile.name not in stat_features:
            result.add(profile.name, "extra_column_check",
                       "There are extra columns in current dataset. Number of columns in "
                       f"current dataset: {n_current}, Number of columns in baseline "
                       f"constraints: {n_baseline}")
    for name in baseline_names:
        if name in current:
            _check_feature(result, current[name], constraint_features.get(name),
                           stat_features.get(name), constraints)
    return result


def _check_feature(result: Comparison, profile: ColumnProfile,
                   constraint: dict[str, Any] | None, stats: dict[str, Any] | None,
                   constraints: dict[str, Any] | None) -> None:
    config = effective_config(constraints, constraint)
    name = profile.name
    expected_type = (constraint or stats or {}).get("inferred_type")
    if constraint is not None and expected_type in (INTEGRAL, FRACTIONAL) and profile.num_present:
        threshold = float(config.get("datatype_check_threshold", 1.0))
        share = profile.fraction_of(expected_type)
        if share < threshold:
            result.add(name, "data_type_check",
                       f"Data type match requirement is not met. Expected data type: "
                       f"{expected_type}, Expected match: {_pct(threshold)}%.  Observed: Only "
                       f"{_pct(share)}% of data is {expected_type}.")
    if constraint is not None and constraint.get("completeness") is not None:
        required = float(constraint["completeness"])
        if profile.completeness < required - 1e-12:
            result.add(name, "completeness_check",
                       f"Data completeness requirement is not met. Expected completeness: "
                       f"{_pct(required)}%.  Observed: Only {_pct(profile.completeness)}% of "
                       "data is complete.")
    domains = ((constraint or {}).get("string_constraints") or {}).get("domains")
    if domains and profile.inferred_type == STRING and profile.categories is not None:
        threshold = float(config.get("domain_content_threshold", 1.0))
        inside = float(profile.categories[profile.categories.index.isin(
            [str(d) for d in domains])].sum())
        share = inside / profile.num_present if profile.num_present else 1.0
        if share < threshold:
            result.add(name, "categorical_values_check",
                       f"Categorical value match requirement is not met. Expected match: "
                       f"{_pct(threshold)}%.  Observed: Only {_pct(share)}% of data is "
                       "within the baseline domain.")
    _check_drift(result, profile, stats, config)


def _check_drift(result: Comparison, profile: ColumnProfile, stats: dict[str, Any] | None,
                 config: dict[str, Any]) -> None:
    distribution = config.get("distribution_constraints") or {}
    if stats is None or distribution.get("perform_comparison", "Enabled") != "Enabled":
        return
    method = distribution.get("comparison_method", "Robust")
    name = profile.name
    if profile.sketch is not None and stats.get("numerical_statistics"):
        baseline = _baseline_sketch(stats)
        if baseline is None or not baseline.n:
            return
        distance = numerical_distance(baseline, WeightedItems.from_sketch(profile.sketch),
                                      method)
        threshold = float(distribution.get("comparison_threshold", 0.1))
        result.drift[name] = distance
        if distance > threshold:
            result.add(name, "baseline_drift_check",
                       f"Numerical distance: {_number(distance)} exceeds numerical threshold: "
                       f"{_number(threshold)}")
    elif profile.categories is not None and stats.get("string_statistics"):
        baseline_counts = _baseline_categories(stats)
        if not baseline_counts:
            return
        current_counts = {str(k): float(v) for k, v in profile.categories.items()}
        threshold = float(distribution.get("categorical_comparison_threshold", 0.1))
        if distribution.get("categorical_drift_method", "LInfinity") == "ChiSquared":
            p_value = chi_squared_p_value(baseline_counts, current_counts)
            result.drift[name] = p_value
            if p_value < threshold:
                result.add(name, "baseline_drift_check",
                           f"Categorical distance (ChiSquared p-value): {_number(p_value)} is "
                           f"below categorical threshold: {_number(threshold)}")
            return
        distance = categorical_distance(baseline_counts, current_counts, method)
        result.drift[name] = distance
        if distance > threshold:
            result.add(name, "baseline_drift_check",
                       f"Categorical distance: {_number(distance)} exceeds categorical "
                       f"threshold: {_number(threshold)}")
