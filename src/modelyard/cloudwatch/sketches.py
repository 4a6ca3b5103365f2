"""Percentiles from Apache DataSketches KLL sketches, as CloudWatch computes them from raw values.

A batch of values (PutMetricData's ``Values``/``Counts``, or a flush of endpoint
latencies) is stored as one serialized KLL sketch; a period's percentile merges the
sketches of its rows (and the plain single values, which need none) and reads the
quantile from the merge.

Error: with ``K = 200`` a KLL sketch answers a quantile query with a value whose true
rank in the data is within ``RANK_ERROR`` (about 1.33 %, i.e. ±0.0133 of normalized rank)
of the requested one, with 99 % confidence (DataSketches'
``get_normalized_rank_error(200, False)``); merged sketches keep that bound. A sketch
is exact while it holds fewer than about K values (no compaction has happened yet),
and its minimum and maximum (p0, p100) are always exact.

Counts: KLL has no weighted update here, so a value with count c is added c times
(rounded to a whole number, at least once when c > 0). A datum whose counts add up to
more than ``MAX_EXPANDED`` samples is scaled down to ``MAX_EXPANDED`` for its sketch, keeping
the proportions within it (SampleCount, Sum, Average, Minimum, Maximum stay exact); its
weight against other data in the same period is then understated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from datasketches import kll_doubles_sketch

K = 200
RANK_ERROR = kll_doubles_sketch.get_normalized_rank_error(K, False)
MAX_EXPANDED = 100_000


def expand(values: Sequence[float], counts: Sequence[float] | None) -> np.ndarray:
    """The values repeated by their (rounded) counts, as the sketch takes them."""
    array = np.asarray(values, dtype=np.float64)
    if counts is None:
        return array
    weights = np.asarray(counts, dtype=np.float64)
    total = float(weights.sum())
    if total > MAX_EXPANDED:
        weights = weights * (MAX_EXPANDED / total)
    repeats = np.where(weights > 0, np.maximum(np.rint(weights), 1), 0).astype(np.int64)
    return np.repeat(array, repeats)


def build(values: np.ndarray) -> bytes:
    """A serialized sketch of ``values``."""
    sketch = kll_doubles_sketch(K)
    if len(values):
        sketch.update(np.ascontiguousarray(values, dtype=np.float64))
    return bytes(sketch.serialize())


class Merger:
    """Accumulates sketches and plain values of one period; answers percentiles."""

    def __init__(self) -> None:
        self._sketch: kll_doubles_sketch | None = None

    def _target(self) -> kll_doubles_sketch:
        if self._sketch is None:
            self._sketch = kll_doubles_sketch(K)
        return self._sketch

    def add_sketch(self, blob: bytes) -> None:
        self._target().merge(kll_doubles_sketch.deserialize(bytes(blob)))

    def add_values(self, values: Iterable[float], counts: Iterable[float] | None = None) -> None:
        array = expand(list(values), None if counts is None else list(counts))
        if len(array):
            self._target().update(array)

    @property
    def empty(self) -> bool:
        return self._sketch is None or self._sketch.is_empty()

    def percentile(self, percent: float) -> float | None:
        """The value at ``percent`` (0-100): the smallest retained value whose inclusive
        rank reaches it; None without data."""
        if self.empty:
            return None
        assert self._sketch is not None
        if percent <= 0:
            return float(self._sketch.get_min_value())
        if percent >= 100:
            return float(self._sketch.get_max_value())
        return float(self._sketch.get_quantile(percent / 100.0, inclusive=True))
