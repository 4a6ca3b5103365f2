"""Profiling a table into SageMaker's ``statistics.json``.

Per column, in one vectorised pass each: the inferred type (Deequ's rule, which SageMaker's
analyzer uses: any non-numeric string -> ``String``, else any fraction -> ``Fractional``,
else ``Integral``; no values -> ``Unknown``), present/missing counts, and

- numbers: mean, sum, population std_dev, min, max, a KLL sketch (Apache DataSketches,
  k = 2048, its retained items written level by level as SageMaker's ``sketch.data``) and
  10 equal-width buckets between min and max (the last one closed);
- strings: the exact distinct count and the value counts (the 1000 most frequent, as
  Deequ's histogram keeps).

Only unique strings are classified (regular expressions run on ``value_counts`` keys), so
a categorical column costs one hash pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from datasketches import kll_doubles_sketch

KLL_K = 2048
KLL_C = 0.64  # what SageMaker's files show (Deequ's shrinking factor)
NUM_BUCKETS = 10
MAX_CATEGORICAL_BUCKETS = 1000

INTEGRAL, FRACTIONAL, STRING, UNKNOWN = "Integral", "Fractional", "String", "Unknown"

_INT_RE = r"\s*[+-]?\d+\s*"
_FRACTION_RE = r"\s*[+-]?(?:\d+\.\d*|\.\d+|\d+(?:\.\d*)?[eE][+-]?\d+|\.\d+[eE][+-]?\d+)\s*"


@dataclass
class ColumnProfile:
    """One feature's statistics (and what the comparison needs besides the file)."""

    name: str
    inferred_type: str
    num_present: int
    num_missing: int
    type_counts: dict[str, int] = field(default_factory=dict)  # Integral/Fractional/String
    values: np.ndarray | None = None  # present numbers (numeric types)
    sketch: kll_doubles_sketch | None = None
    categories: pd.Series | None = None  # value -> count (String)

    @property
    def completeness(self) -> float:
        total = self.num_present + self.num_missing
        return self.num_present / total if total else 0.0

    def fraction_of(self, wanted: str) -> float:
        """Share of present values that are of type ``wanted`` (numbers match Fractional)."""
        if not self.num_present:
            return 1.0
        matching = self.type_counts.get(wanted, 0)
        if wanted == FRACTIONAL:
            matching += self.type_counts.get(INTEGRAL, 0)
        return matching / self.num_present


def _numeric_kind(dtype: Any) -> str | None:
    if pd.api.types.is_bool_dtype(dtype):
        return None
    if pd.api.types.is_integer_dtype(dtype):
        return INTEGRAL
    if pd.api.types.is_float_dtype(dtype):
        return FRACTIONAL
    return None


def _classify_values(keys: pd.Index) -> np.ndarray:
    """Type of each distinct present value: python numbers by type, strings by pattern."""
    kinds = np.full(len(keys), STRING, dtype=object)
    as_text = []
    for position, key in enumerate(keys):
        if isinstance(key, (bool, np.bool_)):
            as_text.append(None)
        elif isinstance(key, (int, np.integer)):
            kinds[position] = INTEGRAL
            as_text.append(None)
        elif isinstance(key, (float, np.floating)):
            kinds[position] = FRACTIONAL
            as_text.append(None)
        else:
            as_text.append(str(key))
    text = pd.Series(as_text, dtype=object)
    mask = text.notna().to_numpy()
    if mask.any():
        strings = text[mask].astype(str)
        integral = strings.str.fullmatch(_INT_RE).to_numpy(dtype=bool)
        fractional = ~integral & strings.str.fullmatch(_FRACTION_RE).to_numpy(dtype=bool)
        chosen = np.where(integral, INTEGRAL, np.where(fractional, FRACTIONAL, STRING))
        kinds[mask] = chosen
    return kinds


def _decide(type_counts: dict[str, int]) -> str:
    if type_counts.get(STRING):
        return STRING
    if type_counts.get(FRACTIONAL):
        return FRACTIONAL
    if type_counts.get(INTEGRAL):
        return INTEGRAL
    return UNKNOWN


def profile_column(name: str, column: pd.Series) -> ColumnProfile:
    """Statistics of one column."""
    total = len(column)
    kind = _numeric_kind(column.dtype)
    if kind is not None:
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        values = values[~np.isnan(values)]
        present = int(values.size)
        profile = ColumnProfile(name, kind if present else UNKNOWN, present, total - present,
                                {kind: present})
        if present:
            _numbers(profile, values)
        return profile
    codes, uniques = pd.factorize(column.to_numpy(dtype=object), use_na_sentinel=True)
    uniques = np.asarray(uniques, dtype=object)
    empty = np.flatnonzero(uniques == "")  # an empty string is a missing value, as in CSV
    if empty.size:
        codes = np.where(codes == empty[0], -1, codes)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    if empty.size:
        counts[empty[0]] = 0
    present = int(counts.sum())
    kinds = _classify_values(pd.Index(uniques, dtype=object)) if len(uniques) else np.array(
        [], dtype=object)
    type_counts = {t: int(counts[kinds == t].sum()) for t in (INTEGRAL, FRACTIONAL, STRING)}
    inferred = _decide(type_counts)
    profile = ColumnProfile(name, inferred, present, total - present, type_counts)
    if inferred in (INTEGRAL, FRACTIONAL):
        numbers = pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce").to_numpy(
            np.float64)[codes[codes >= 0]]
        _numbers(profile, numbers[~np.isnan(numbers)])
    elif inferred == STRING:
        seen = counts > 0
        categories = pd.Series(counts[seen], index=[_text(v) for v in uniques[seen]])
        if not categories.index.is_unique:  # 1 and "1" are one value in the file
            categories = categories.groupby(level=0, sort=False).sum()
        profile.categories = categories.sort_values(ascending=False, kind="stable")
    return profile


def _text(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def _numbers(profile: ColumnProfile, values: np.ndarray) -> None:
    profile.values = values
    sketch = kll_doubles_sketch(KLL_K)
    sketch.update(values)
    profile.sketch = sketch


def profile_frame(frame: pd.DataFrame) -> list[ColumnProfile]:
    return [profile_column(str(name), frame[name]) for name in frame.columns]


# -- the file -----------------------------------------------------------------------------

def sketch_levels(sketch: kll_doubles_sketch) -> list[list[float]]:
    """The sketch's retained items by compactor level (level i items weigh 2^i)."""
    levels: dict[int, list[float]] = {}
    for item, weight in sketch:
        levels.setdefault(int(weight).bit_length() - 1, []).append(float(item))
    top = max(levels) if levels else 0
    return [levels.get(level, []) for level in range(top + 1)]


def kll_buckets(values: np.ndarray, low: float, high: float) -> list[dict[str, float]]:
    """10 equal-width buckets between min and max; the last includes max."""
    if low == high:
        return [{"lower_bound": low, "upper_bound": high, "count": float(values.size)}]
    counts, edges = np.histogram(values, bins=NUM_BUCKETS, range=(low, high))
    return [{"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]),
             "count": float(counts[i])} for i in range(NUM_BUCKETS)]


def feature_statistics(profile: ColumnProfile) -> dict[str, Any]:
    common = {"num_present": profile.num_present, "num_missing": profile.num_missing}
    feature: dict[str, Any] = {"name": profile.name, "inferred_type": profile.inferred_type}
    if profile.inferred_type in (INTEGRAL, FRACTIONAL) and profile.values is not None:
        values = profile.values
        low, high = float(values.min()), float(values.max())
        feature["numerical_statistics"] = {
            "common": common,
            "mean": float(values.mean()),
            "sum": float(values.sum()),
            "std_dev": float(values.std()),
            "min": low,
            "max": high,
            "distribution": {"kll": {
                "buckets": kll_buckets(values, low, high),
                "sketch": {"parameters": {"c": KLL_C, "k": float(KLL_K)},
                           "data": sketch_levels(profile.sketch)},  # type: ignore[arg-type]
            }},
        }
    else:
        categories = profile.categories if profile.categories is not None else pd.Series(
            dtype=np.int64)
        top = categories.iloc[:MAX_CATEGORICAL_BUCKETS]
        feature["string_statistics"] = {
            "common": common,
            "distinct_count": float(len(categories)),
            "distribution": {"categorical": {"buckets": [
                {"value": str(value), "count": int(count)} for value, count in top.items()]}},
        }
    return feature


def statistics_document(profiles: list[ColumnProfile], item_count: int) -> dict[str, Any]:
    """The statistics.json document."""
    return {"version": 0.0, "dataset": {"item_count": int(item_count)},
            "features": [feature_statistics(p) for p in profiles]}


# -- reading a baseline's sketch back -----------------------------------------------------

@dataclass
class WeightedItems:
    """A KLL sketch as sorted items with cumulative weights (its empirical CDF)."""

    items: np.ndarray
    cumulative: np.ndarray

    @property
    def n(self) -> float:
        return float(self.cumulative[-1]) if self.cumulative.size else 0.0

    @classmethod
    def from_levels(cls, levels: list[list[float]]) -> "WeightedItems":
        items = [np.asarray(level, dtype=np.float64) for level in levels]
        weights = [np.full(len(level), 2.0 ** i) for i, level in enumerate(levels)]
        return cls._build(np.concatenate(items or [np.empty(0)]),
                          np.concatenate(weights or [np.empty(0)]))

    @classmethod
    def from_sketch(cls, sketch: kll_doubles_sketch) -> "WeightedItems":
        pairs = list(sketch)
        return cls._build(np.fromiter((p[0] for p in pairs), np.float64, len(pairs)),
                          np.fromiter((p[1] for p in pairs), np.float64, len(pairs)))

    @classmethod
    def _build(cls, items: np.ndarray, weights: np.ndarray) -> "WeightedItems":
        order = np.argsort(items, kind="stable")
        return cls(items[order], np.cumsum(weights[order]))

    def cdf(self, points: np.ndarray) -> np.ndarray:
        """Share of the weight at or below each point (the inclusive rank / n)."""
        if not self.items.size:
            return np.zeros(len(points))
        index = np.searchsorted(self.items, points, side="right")
        ranks = np.where(index > 0, self.cumulative[np.maximum(index - 1, 0)], 0.0)
        return ranks / self.n

    def quantile(self, fraction: float) -> float:
        target = fraction * self.n
        index = int(np.searchsorted(self.cumulative, target, side="left"))
        return float(self.items[min(index, self.items.size - 1)])

