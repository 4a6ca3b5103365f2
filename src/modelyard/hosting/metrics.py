"""Endpoint invocation metrics: aggregated per minute in memory, flushed to the metric store.

SageMaker publishes, per endpoint and variant (dimensions ``EndpointName``,
``VariantName``) and per minute, under namespace ``AWS/SageMaker``: ``Invocations``,
``Invocation4XXErrors``, ``Invocation5XXErrors``, ``InvocationsPerInstance`` (Count),
``ModelLatency`` and ``OverheadLatency`` (Microseconds), and ``ModelSetupTime``
(Microseconds, written by the endpoint controller through ``record_model_setup_time``).

The request path only adds to one variant-minute's counters under a lock; every
``FLUSH_INTERVAL_SECONDS`` (and on ``close``) a background thread writes what accumulated
as statistic sets to
``store.cloudwatch_metrics``, timestamped with their minute. A minute may therefore have
several sets per metric (one per flush), which readers aggregate as CloudWatch aggregates
several ``PutMetricData`` calls; a killed server loses at most one interval.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from ..store.cloudwatch_metrics import CloudWatchMetricStore, MetricDatum
from ..store.db import Database

NAMESPACE = "AWS/SageMaker"
FLUSH_INTERVAL_SECONDS = 10.0

log = logging.getLogger("modelyard.hosting")


@dataclass
class _Stat:
    count: float = 0.0
    total: float = 0.0
    minimum: float = float("inf")
    maximum: float = float("-inf")
    # Raw values of the latency metrics, for the percentile sketch written with the set.
    values: list[float] | None = None
    keep: bool = field(default=False, repr=False)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if value < self.minimum:
            self.minimum = value
        if value > self.maximum:
            self.maximum = value
        if self.keep:
            if self.values is None:
                self.values = []
            self.values.append(value)

    def sketch(self) -> bytes | None:
        """A KLL sketch of the values (cloudwatch/sketches.py), for p50/p99 statistics."""
        if not self.values or self.count < 2 or self.minimum == self.maximum:
            return None
        import numpy as np

        from ..cloudwatch.sketches import build
        return build(np.asarray(self.values, dtype=np.float64))


class _Invocations:
    """One minute of one variant's invocations, as plain counters: ``record`` is on every
    request's path, so it updates these in place; ``flush`` turns them into the six
    statistic sets (the 0/1 error counts' minimum and maximum follow from the counts)."""

    __slots__ = ("count", "errors_4xx", "errors_5xx", "per_instance", "model", "overhead")

    def __init__(self) -> None:
        self.count = 0
        self.errors_4xx = 0
        self.errors_5xx = 0
        self.per_instance = _Stat()
        self.model = _Stat(keep=True)
        self.overhead = _Stat(keep=True)

    def stats(self) -> dict[str, _Stat]:
        count = float(self.count)
        stats = {"Invocations": _Stat(count, count, 1.0, 1.0),
                 "Invocation4XXErrors": _flag_stat(count, self.errors_4xx),
                 "Invocation5XXErrors": _flag_stat(count, self.errors_5xx),
                 "InvocationsPerInstance": self.per_instance,
                 "OverheadLatency": self.overhead}
        if self.model.count:
            stats["ModelLatency"] = self.model
        return stats


def _flag_stat(count: float, ones: int) -> _Stat:
    """The statistic set of ``count`` values of which ``ones`` are 1 and the rest 0."""
    return _Stat(count, float(ones), 0.0 if ones < count else 1.0, 1.0 if ones else 0.0)


# (minute start, endpoint, variant, metric) -> statistic set
_Key = tuple[float, str, str, str]
UNITS = {"ModelLatency": "Microseconds", "OverheadLatency": "Microseconds",
         "ModelSetupTime": "Microseconds"}
SKETCHED = ("ModelLatency", "OverheadLatency")


def dimensions(endpoint: str, variant: str) -> dict[str, str]:
    return {"EndpointName": endpoint, "VariantName": variant}


class InvocationMetrics:
    """Per-minute aggregation of invocation outcomes; ``start`` runs the flusher thread."""

    def __init__(self, database: Database, interval: float = FLUSH_INTERVAL_SECONDS) -> None:
        self.store = CloudWatchMetricStore(database)
        self.interval = interval
        self._lock = threading.Lock()
        self._stats: dict[_Key, _Stat] = {}
        self._invocations: dict[tuple[float, str, str], _Invocations] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="invocation-metrics",
                                            daemon=True)
            self._thread.start()

    def record(self, endpoint: str, variant: str, *, status: int, instances: int,
               model_us: float | None, overhead_us: float, now: float | None = None) -> None:
        """One invocation routed to ``variant`` and answered with HTTP ``status`` (as the
        client saw it). ``Invocations`` counts every one, errors included, as SageMaker's
        does; ``model_us`` is None when the model was never reached."""
        key = (_minute(time.time() if now is None else now), endpoint, variant)
        with self._lock:
            minute = self._invocations.get(key)
            if minute is None:
                minute = self._invocations[key] = _Invocations()
            minute.count += 1
            if status >= 400:
                if status >= 500:
                    minute.errors_5xx += 1
                else:
                    minute.errors_4xx += 1
            minute.per_instance.add(1.0 / max(instances, 1))
            if model_us is not None:
                minute.model.add(model_us)
            minute.overhead.add(overhead_us)

    def record_value(self, endpoint: str, variant: str, metric: str, value: float,
                     now: float | None = None) -> None:
        with self._lock:
            self._add(_minute(time.time() if now is None else now), endpoint, variant,
                      metric, value)

    def flush(self) -> int:
        """Write what accumulated since the last flush; returns the statistic sets written."""
        with self._lock:
            taken, self._stats = self._stats, {}
            invocations, self._invocations = self._invocations, {}
        for (minute, endpoint, variant), counts in invocations.items():
            for metric, stat in counts.stats().items():
                key = (minute, endpoint, variant, metric)
                if key in taken:  # record_value used an invocation metric's name
                    _merge(taken[key], stat)
                else:
                    taken[key] = stat
        data = [
            MetricDatum(NAMESPACE, metric, tuple(sorted(dimensions(endpoint, variant).items())),
                        minute, stat.count, stat.total, stat.minimum, stat.maximum,
                        UNITS.get(metric, "Count"), stat.sketch())
            for (minute, endpoint, variant, metric), stat in taken.items()
        ]
        try:
            self.store.put(data)
        except Exception:  # noqa: BLE001 - keep serving; the numbers go back for the next try
            log.exception("could not write %d invocation metric sets", len(data))
            with self._lock:
                for key, stat in taken.items():
                    _merge(self._stats.setdefault(key, _Stat()), stat)
            return 0
        return len(data)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    def _add(self, minute: float, endpoint: str, variant: str, metric: str, value: float) -> None:
        key = (minute, endpoint, variant, metric)
        stat = self._stats.get(key)
        if stat is None:
            stat = self._stats[key] = _Stat(keep=metric in SKETCHED)
        stat.add(value)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()


def _merge(kept: _Stat, stat: _Stat) -> None:
    kept.count += stat.count
    kept.total += stat.total
    kept.minimum = min(kept.minimum, stat.minimum)
    kept.maximum = max(kept.maximum, stat.maximum)
    if stat.values:
        kept.keep = True
        kept.values = (kept.values or []) + stat.values


def _minute(timestamp: float) -> float:
    return float(int(timestamp // 60) * 60)


def record_model_setup_time(database: Database, endpoint: str, variant: str,
                            microseconds: float, now: float | None = None) -> None:
    """For the endpoint controller: one instance of ``variant`` took this long to become
    healthy (from launch to a passing /ping). Written at once, not aggregated."""
    stamp = _minute(time.time() if now is None else now)
    CloudWatchMetricStore(database).put([MetricDatum.single(
        NAMESPACE, "ModelSetupTime", dimensions(endpoint, variant), stamp, microseconds,
        "Microseconds")])
