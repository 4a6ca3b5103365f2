"""CloudWatch metrics benchmark: ``python bench/cloudwatch_metrics.py [--points 1000000]``.

Starts a modelyard server (temporary data directory) and, through boto3:

- PutMetricData: ``--points`` datapoints of one metric, in calls of 1,000 datapoints each
  (``Values``/``Counts``: seven datums of at most 150 distinct values, as CloudWatch
  allows), spread over the last hour (each call one timestamp, 60 minutes round-robin).
  Reported as datapoints/s, one client, sequential calls.
- GetMetricStatistics over that metric: Average (one call) and p99 (another call:
  CloudWatch takes Statistics or ExtendedStatistics, not both), with one period covering
  the hour and with 60 one-minute periods; median and worst of ``--repeats`` calls.

Baselines, measured in the same run on the same points, in this process: for puts, what
the server must do per call minus HTTP and the database (one KLL sketch of the call's
1,000 values); for reads, numpy (``mean`` and ``percentile(99)`` over all points, and per
minute). The ratios say what the API round trip, SQL and sketch merging cost on top.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "src"))

from server_process import ServerProcess  # noqa: E402

from modelyard.cloudwatch import sketches  # noqa: E402

NAMESPACE = "Modelyard/Bench"
METRIC = "Latency"
BATCH = 1000
DIMS = [{"Name": "Service", "Value": "bench"}]


def batches(points: int, seed: int = 11) -> tuple[list[np.ndarray], float]:
    rng = np.random.default_rng(seed)
    base = (math.floor(time.time() / 60) - 61) * 60.0
    return [rng.lognormal(3.0, 0.7, size=BATCH) for _ in range(points // BATCH)], base


def put_all(client, data: list[np.ndarray], base: float) -> float:
    started = time.perf_counter()
    for index, values in enumerate(data):
        stamp = base + 60 * (index % 60) + 1
        client.put_metric_data(Namespace=NAMESPACE, MetricData=[
            {"MetricName": METRIC, "Dimensions": DIMS, "Timestamp": stamp,
             "Unit": "Milliseconds", "Values": values[i:i + 150].tolist(),
             "Counts": [1.0] * len(values[i:i + 150])}
            for i in range(0, BATCH, 150)])
    return time.perf_counter() - started


def client_only_put(server, data: list[np.ndarray], base: float) -> float:
    """The same calls through a boto3 client that answers itself before sending: the
    client's own share (validation, serialization, gzip, signing)."""
    from botocore.awsrequest import AWSResponse

    client = server.client("cloudwatch")

    def answer(request, **_):
        return AWSResponse(request.url, 200, {}, _Raw(b"{}"))

    client.meta.events.register("before-send.cloudwatch.PutMetricData", answer)
    return put_all(client, data, base)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_):
        yield self.body


def baseline_put(data: list[np.ndarray]) -> float:
    started = time.perf_counter()
    for values in data:
        sketches.build(values)
    return time.perf_counter() - started


def timed(function, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    data, base = batches(args.points)
    everything = np.concatenate(data)
    minute_of = np.array([index % 60 for index in range(len(data))]).repeat(BATCH)
    with tempfile.TemporaryDirectory(prefix="modelyard-cw-bench-") as directory:
        server = ServerProcess.start(Path(directory))
        try:
            client = server.client("cloudwatch")
            put_seconds = put_all(client, data, base)
            client_seconds = client_only_put(server, data, base)
            reads = measure_reads(client, base, args.repeats)
            checks = check(client, base, everything)
        finally:
            server.stop()
    sketch_seconds = baseline_put(data)

    def numpy_one() -> None:
        everything.mean()
        np.percentile(everything, 99)

    def numpy_sixty() -> None:
        order = np.argsort(minute_of, kind="stable")
        grouped = np.split(everything[order], np.flatnonzero(np.diff(minute_of[order])) + 1)
        for group in grouped:
            group.mean()
            np.percentile(group, 99)

    baselines = {"1 period": timed(numpy_one, args.repeats),
                 "60 periods": timed(numpy_sixty, args.repeats)}
    rate = len(everything) / put_seconds
    baseline_rate = len(everything) / sketch_seconds
    print(f"PutMetricData: {len(everything):,} datapoints in {len(data):,} calls of {BATCH:,}: "
          f"{put_seconds:.1f} s, {rate:,.0f} datapoints/s "
          f"(in-process sketching alone: {baseline_rate:,.0f}/s; "
          f"ratio {baseline_rate / rate:.1f}x); the boto3 client's own share "
          f"{client_seconds / put_seconds:.0%} ({client_seconds / len(data) * 1000:.1f} ms a call)")
    for label in ("1 period", "60 periods"):
        average, p99 = reads[label]["Average"], reads[label]["p99"]
        numpy_median = statistics.median(baselines[label])
        server_median = statistics.median(average) + statistics.median(p99)
        print(f"GetMetricStatistics, {label}: Average median {ms(average)} (worst "
              f"{ms(max(average))}), p99 median {ms(p99)} (worst {ms(max(p99))}); numpy "
              f"mean+percentile over the same points {numpy_median * 1000:.1f} ms; ratio "
              f"(Average + p99) / numpy {server_median / numpy_median:.1f}x")
    print(f"check: server Average {checks['average']:.6f} vs numpy {everything.mean():.6f}; "
          f"server p99 {checks['p99']:.3f} at rank {checks['rank']:.4f} "
          f"(wanted 0.99 +- {sketches.RANK_ERROR:.4f})")


def ms(times: list[float] | float) -> str:
    """Milliseconds: the median of several timings, or one timing."""
    seconds = statistics.median(times) if isinstance(times, list) else times
    return f"{seconds * 1000:.1f} ms"


def measure_reads(client, base: float, repeats: int) -> dict[str, dict[str, list[float]]]:
    results = {}
    for label, period in (("1 period", 3600), ("60 periods", 60)):
        request = {"Namespace": NAMESPACE, "MetricName": METRIC, "Dimensions": DIMS,
                   "StartTime": base, "EndTime": base + 3600, "Period": period}
        results[label] = {
            "Average": timed(lambda: client.get_metric_statistics(
                **request, Statistics=["Average"]), repeats),
            "p99": timed(lambda: client.get_metric_statistics(
                **request, ExtendedStatistics=["p99"]), repeats),
        }
    return results


def check(client, base: float, everything: np.ndarray) -> dict[str, float]:
    request = {"Namespace": NAMESPACE, "MetricName": METRIC, "Dimensions": DIMS,
               "StartTime": base, "EndTime": base + 3600, "Period": 3600}
    average = client.get_metric_statistics(**request, Statistics=["Average"])["Datapoints"][0]
    p99 = client.get_metric_statistics(**request, ExtendedStatistics=["p99"])["Datapoints"][0]
    value = p99["ExtendedStatistics"]["p99"]
    return {"average": average["Average"], "p99": value,
            "rank": float(np.count_nonzero(everything <= value) / len(everything))}


if __name__ == "__main__":
    main()
