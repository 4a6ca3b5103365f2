"""CloudWatch metrics against a real server: PutMetricData, GetMetricStatistics and
GetMetricData agree with numpy, metric math, paging, ListMetrics, CloudWatch's validation.
(Clients, protocols, retention and SageMaker's own metrics: test_cloudwatch_metrics_sources.)"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from cloudwatch_helpers import DIMS, error_of, minute_ago
from modelyard.cloudwatch.sketches import RANK_ERROR


@pytest.fixture()
def cw(server):
    return server.client("cloudwatch")


def put_samples(cw, namespace: str, name: str, stamp: float, samples: np.ndarray,
                unit: str = "Milliseconds") -> None:
    """Publish ``samples`` the way an agent batches them: unique values with counts, at most
    150 per datum, several datums per call."""
    values, counts = np.unique(samples, return_counts=True)
    datums = [{"MetricName": name, "Dimensions": DIMS, "Timestamp": stamp, "Unit": unit,
               "Values": values[i:i + 150].tolist(), "Counts": counts[i:i + 150].tolist()}
              for i in range(0, len(values), 150)]
    for i in range(0, len(datums), 20):
        cw.put_metric_data(Namespace=namespace, MetricData=datums[i:i + 20])


def assert_rank_close(data: np.ndarray, value: float, percent: float) -> None:
    """``value`` sits at ``percent`` of ``data`` within the sketch's stated rank error."""
    below = np.count_nonzero(data < value) / len(data)
    at_or_below = np.count_nonzero(data <= value) / len(data)
    wanted = percent / 100
    slack = RANK_ERROR + 1e-9
    assert below - slack <= wanted <= at_or_below + slack, (percent, value, below, at_or_below)


def test_statistics_agree_with_numpy(cw, unique_name):
    rng = np.random.default_rng(7)
    namespace, start = f"Test/{unique_name}", minute_ago(6)
    minutes = {}
    for index in range(5):
        # Rounded to 0.1 ms so values repeat and Counts matter; 3,000 samples a minute.
        samples = np.round(rng.lognormal(3.0, 0.8, size=3000), 1)
        put_samples(cw, namespace, "Latency", start + 60 * index + 7, samples)
        minutes[start + 60 * index] = samples
    # Single values and a statistic set whose Minimum equals its Maximum count for
    # percentiles too (CloudWatch's rule).
    extra = start + 60 * 2
    cw.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": "Latency", "Dimensions": DIMS, "Timestamp": extra + 1, "Value": 500.0,
         "Unit": "Milliseconds"},
        {"MetricName": "Latency", "Dimensions": DIMS, "Timestamp": extra + 2,
         "Unit": "Milliseconds",
         "StatisticValues": {"SampleCount": 4, "Sum": 8.0, "Minimum": 2.0, "Maximum": 2.0}}])
    minutes[extra] = np.concatenate([minutes[extra], [500.0, 2.0, 2.0, 2.0, 2.0]])
    everything = np.concatenate(list(minutes.values()))

    per_minute = cw.get_metric_statistics(
        Namespace=namespace, MetricName="Latency", Dimensions=DIMS, StartTime=start,
        EndTime=start + 300, Period=60,
        Statistics=["SampleCount", "Sum", "Average", "Minimum", "Maximum"])
    assert per_minute["Label"] == "Latency"
    points = sorted(per_minute["Datapoints"], key=lambda point: point["Timestamp"])
    assert [point["Timestamp"].timestamp() for point in points] == sorted(minutes)
    for point in points:
        data = minutes[point["Timestamp"].timestamp()]
        assert point["SampleCount"] == len(data)
        assert point["Sum"] == pytest.approx(data.sum(), rel=1e-12)
        assert point["Average"] == pytest.approx(data.mean(), rel=1e-12)
        assert (point["Minimum"], point["Maximum"]) == (data.min(), data.max())
        assert point["Unit"] == "Milliseconds"

    percentiles = ["p0", "p10", "p50", "p90", "p99", "p99.9", "p100"]
    for period, expected_points in ((60, 5), (300, 1)):
        answer = cw.get_metric_statistics(
            Namespace=namespace, MetricName="Latency", Dimensions=DIMS, StartTime=start,
            EndTime=start + 300, Period=period, ExtendedStatistics=percentiles)
        assert len(answer["Datapoints"]) == expected_points
        for point in answer["Datapoints"]:
            stamp = point["Timestamp"].timestamp()
            data = everything if period == 300 else minutes[stamp]
            for name, value in point["ExtendedStatistics"].items():
                assert_rank_close(data, value, float(name[1:]))
            assert point["ExtendedStatistics"]["p0"] == data.min()
            assert point["ExtendedStatistics"]["p100"] == data.max()

    # GetMetricData reads the same numbers.
    metric = {"Namespace": namespace, "MetricName": "Latency", "Dimensions": DIMS}
    result = cw.get_metric_data(
        MetricDataQueries=[
            {"Id": "avg", "MetricStat": {"Metric": metric, "Period": 300, "Stat": "Average"}},
            {"Id": "tail", "MetricStat": {"Metric": metric, "Period": 300, "Stat": "p99"}},
            {"Id": "total", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}}],
        StartTime=start, EndTime=start + 300, ScanBy="TimestampAscending")
    by_id = {item["Id"]: item for item in result["MetricDataResults"]}
    assert by_id["avg"]["Values"] == [pytest.approx(everything.mean(), rel=1e-12)]
    assert_rank_close(everything, by_id["tail"]["Values"][0], 99)
    assert by_id["total"]["Values"] == [pytest.approx(minutes[s].sum()) for s in sorted(minutes)]
    assert all(item["StatusCode"] == "Complete" for item in by_id.values())


def test_statistic_sets_units_and_resolution(cw, unique_name):
    namespace, start = f"Test/{unique_name}", minute_ago(3)
    cw.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": "Size", "Dimensions": DIMS, "Timestamp": start + 5, "Unit": "Bytes",
         "StatisticValues": {"SampleCount": 10, "Sum": 100.0, "Minimum": 1.0, "Maximum": 30.0}},
        {"MetricName": "Size", "Dimensions": DIMS, "Timestamp": start + 6, "Unit": "Bytes",
         "Value": 50.0},
        {"MetricName": "Size", "Dimensions": DIMS, "Timestamp": start + 7, "Unit": "Kilobytes",
         "Value": 2.0},
        # High resolution keeps the second; standard resolution the minute.
        {"MetricName": "Hits", "Timestamp": start + 10, "Value": 1.0, "StorageResolution": 1},
        {"MetricName": "Hits", "Timestamp": start + 11, "Value": 2.0, "StorageResolution": 1},
        {"MetricName": "Hits", "Timestamp": start + 12, "Value": 4.0}])

    def stats(**extra):
        return cw.get_metric_statistics(Namespace=namespace, MetricName="Size", Dimensions=DIMS,
                                        StartTime=start, EndTime=start + 60, Period=60,
                                        **extra)["Datapoints"]

    both = stats(Statistics=["Sum", "SampleCount", "Maximum"])
    assert sorted((p["Unit"], p["Sum"], p["SampleCount"], p["Maximum"]) for p in both) == [
        ("Bytes", 150.0, 11.0, 50.0), ("Kilobytes", 2.0, 1.0, 2.0)]
    assert [(p["Unit"], p["Sum"]) for p in stats(Statistics=["Sum"], Unit="Bytes")] == \
        [("Bytes", 150.0)]
    assert stats(Statistics=["Sum"], Unit="Seconds") == []
    # The statistic set (Minimum < Maximum) has no percentile; the single value has.
    assert [p["ExtendedStatistics"] for p in stats(ExtendedStatistics=["p50"], Unit="Bytes")] \
        == [{"p50": 50.0}]

    hits = cw.get_metric_statistics(Namespace=namespace, MetricName="Hits", StartTime=start,
                                    EndTime=start + 60, Period=1, Statistics=["Sum"])
    assert sorted((p["Timestamp"].timestamp() - start, p["Sum"]) for p in hits["Datapoints"]) \
        == [(0.0, 4.0), (10.0, 1.0), (11.0, 2.0)]


def put_series(cw, namespace: str, name: str, start: float, values: dict[int, float]) -> None:
    cw.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": name, "Timestamp": start + 60 * minute, "Value": value}
        for minute, value in values.items()])


def test_metric_math_expressions(cw, unique_name):
    namespace, start = f"Test/{unique_name}", minute_ago(6)
    put_series(cw, namespace, "Requests", start, {0: 10.0, 1: 20.0, 2: 30.0, 4: 50.0})
    put_series(cw, namespace, "Errors", start, {0: 1.0, 2: 6.0, 3: 2.0, 4: 0.0})

    def stat(name):
        return {"Metric": {"Namespace": namespace, "MetricName": name}, "Period": 60,
                "Stat": "Sum"}

    expressions = {
        "rate": "100 * m2 / m1",
        "neg": "-(m1 - 5) * 2 ^ 2",
        "total": "SUM(METRICS())",
        "mean": "AVG([m1, m2])",
        "peak": "MAX(m1)",
        "zeros": "FILL(m2, 0)",
        "repeat": "FILL(m2, REPEAT)",
        "linear": "FILL(m1, LINEAR)",
        "busy": "IF(m1 >= 20 AND m2 > 0, m1, -1)",
        "only": "IF(m1 > 15, m1)",
        "none": "m1 / (m2 - m2)",
        "nodata": "MAX(m3) * 2 + m1",
        "never": "IF(0, m1)",
        "chained": "rate / 10",
    }
    queries = [{"Id": "m1", "MetricStat": stat("Requests"), "ReturnData": False},
               {"Id": "m2", "MetricStat": stat("Errors"), "Label": "errs"},
               {"Id": "m3", "MetricStat": stat("Missing"), "ReturnData": False}]
    queries += [{"Id": key, "Expression": text} for key, text in expressions.items()]
    queries[-1]["Label"] = "rate over ten"
    response = cw.get_metric_data(MetricDataQueries=queries, StartTime=start,
                                  EndTime=start + 300, ScanBy="TimestampAscending")
    results = {item["Id"]: item for item in response["MetricDataResults"]}
    assert "m1" not in results  # ReturnData false
    assert results["m2"]["Label"] == "errs" and results["chained"]["Label"] == "rate over ten"

    def series(key):
        item = results[key]
        return {int(stamp.timestamp() - start) // 60: value
                for stamp, value in zip(item["Timestamps"], item["Values"])}

    assert series("m2") == {0: 1.0, 2: 6.0, 3: 2.0, 4: 0.0}
    assert series("rate") == {0: 10.0, 2: 20.0, 4: 0.0}  # only minutes both have
    assert series("neg") == {0: -20.0, 1: -60.0, 2: -100.0, 4: -180.0}
    assert series("total") == {0: 11.0, 1: 20.0, 2: 36.0, 3: 2.0, 4: 50.0}
    assert series("mean") == {0: 5.5, 1: 20.0, 2: 18.0, 3: 2.0, 4: 25.0}
    assert series("peak") == {0: 50.0, 1: 50.0, 2: 50.0, 4: 50.0}  # a scalar, at m1's points
    assert series("zeros") == {0: 1.0, 1: 0.0, 2: 6.0, 3: 2.0, 4: 0.0}
    assert series("repeat") == {0: 1.0, 1: 1.0, 2: 6.0, 3: 2.0, 4: 0.0}
    assert series("linear") == {0: 10.0, 1: 20.0, 2: 30.0, 3: 40.0, 4: 50.0}
    assert series("busy") == {0: -1.0, 2: 30.0, 4: -1.0}
    assert series("only") == {1: 20.0, 2: 30.0, 4: 50.0}
    assert series("none") == {}
    assert series("nodata") == {} and series("never") == {}  # no data, no value: no error
    assert series("chained") == {0: 1.0, 2: 2.0, 4: 0.0}
    assert results["none"]["StatusCode"] == "Complete"


@pytest.mark.parametrize("expression, fragment", [
    ("m1 +", "expected a number"),
    ("m1 $ 2", "unexpected character '$'"),
    ("SUM(m1", "expected ')'"),
    ("m9 * 2", "'m9' is not the Id of another query"),
    ("NOPE(m1)", "unknown function NOPE"),
    ("FILL(m1)", "FILL takes 2 argument(s)"),
    ("e2 + 1", "in a circle: e1 -> e2 -> e1"),
])
def test_expression_errors_name_the_problem(cw, expression, fragment):
    queries = [{"Id": "m1", "MetricStat": {"Metric": {"Namespace": "Test/x", "MetricName": "y"},
                                           "Period": 60, "Stat": "Sum"}},
               {"Id": "e1", "Expression": expression},
               {"Id": "e2", "Expression": "e1 * 2"}]
    code, message = error_of(cw.get_metric_data, MetricDataQueries=queries,
                             StartTime=minute_ago(5), EndTime=minute_ago(0))
    assert code == "ValidationError"
    assert fragment in message, message


def test_get_metric_data_query_errors(cw):
    metric = {"Namespace": "Test/x", "MetricName": "y"}
    window = {"StartTime": minute_ago(5), "EndTime": minute_ago(0)}
    for queries, fragment in [
        ([{"Id": "M1", "Expression": "1"}], "Id is not valid"),
        ([{"Id": "a", "Expression": "1"}, {"Id": "a", "Expression": "2"}], "must be unique"),
        ([{"Id": "a"}], "exactly one of MetricStat and Expression"),
        ([{"Id": "a", "MetricStat": {"Metric": metric, "Period": 45, "Stat": "Sum"}}],
         "multiple of 60"),
        ([{"Id": "a", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Median"}}],
         "not a statistic"),
    ]:
        code, message = error_of(cw.get_metric_data, MetricDataQueries=queries, **window)
        assert code == "ValidationError" and fragment in message, message


def test_get_metric_data_pages_and_scans_both_ways(cw, unique_name):
    namespace, start = f"Test/{unique_name}", minute_ago(40)
    put_series(cw, namespace, "A", start, {minute: float(minute) for minute in range(30)})
    put_series(cw, namespace, "B", start, {minute: 100.0 + minute for minute in range(0, 30, 3)})
    queries = [{"Id": name.lower(), "MetricStat": {
        "Metric": {"Namespace": namespace, "MetricName": name}, "Period": 60, "Stat": "Sum"}}
        for name in ("A", "B")]
    window = {"StartTime": start, "EndTime": start + 3600}

    for scan, order in (("TimestampAscending", 1), ("TimestampDescending", -1), (None, -1)):
        collected: dict[str, list[tuple[float, float]]] = {"a": [], "b": []}
        token, pages = None, 0
        while True:
            extra = {"ScanBy": scan} if scan else {}
            if token:
                extra["NextToken"] = token
            page = cw.get_metric_data(MetricDataQueries=queries, MaxDatapoints=7, **window,
                                      **extra)
            pages += 1
            assert sum(len(item["Values"]) for item in page["MetricDataResults"]) <= 7
            for item in page["MetricDataResults"]:
                collected[item["Id"]] += list(zip(
                    (stamp.timestamp() for stamp in item["Timestamps"]), item["Values"]))
            token = page.get("NextToken")
            statuses = {item["StatusCode"] for item in page["MetricDataResults"]}
            if not token:
                assert statuses == {"Complete"}
                break
            assert "PartialData" in statuses
        assert pages == math.ceil(40 / 7)
        expected_a = [(start + 60 * m, float(m)) for m in range(30)]
        expected_b = [(start + 60 * m, 100.0 + m) for m in range(0, 30, 3)]
        assert collected["a"] == expected_a[::order]
        assert collected["b"] == expected_b[::order]

    first = cw.get_metric_data(MetricDataQueries=queries, MaxDatapoints=7, **window)
    code, _ = error_of(cw.get_metric_data, MetricDataQueries=queries[:1], MaxDatapoints=7,
                       NextToken=first["NextToken"], **window)
    assert code == "InvalidNextToken"
    code, _ = error_of(cw.get_metric_data, MetricDataQueries=queries, NextToken="garbage",
                       **window)
    assert code == "InvalidNextToken"


def test_list_metrics_filters_and_pages(cw, unique_name):
    namespace = f"Test/{unique_name}"
    now = time.time()
    cw.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": "Lat", "Value": 1.0, "Dimensions": [{"Name": "Host", "Value": "a"}]},
        {"MetricName": "Lat", "Value": 1.0, "Dimensions": [{"Name": "Host", "Value": "b"},
                                                           {"Name": "Az", "Value": "1a"}]},
        {"MetricName": "Lat", "Value": 1.0},
        {"MetricName": "Old", "Value": 1.0, "Timestamp": now - 5 * 3600}])

    def listed(**filters):
        metrics = cw.list_metrics(Namespace=namespace, **filters)["Metrics"]
        return sorted((m["MetricName"], tuple((d["Name"], d["Value"]) for d in m["Dimensions"]))
                      for m in metrics)

    assert listed() == [("Lat", ()), ("Lat", (("Az", "1a"), ("Host", "b"))),
                        ("Lat", (("Host", "a"),)), ("Old", ())]
    assert listed(MetricName="Old") == [("Old", ())]
    assert listed(Dimensions=[{"Name": "Host"}]) == [
        ("Lat", (("Az", "1a"), ("Host", "b"))), ("Lat", (("Host", "a"),))]
    assert listed(Dimensions=[{"Name": "Host", "Value": "b"}, {"Name": "Az"}]) == [
        ("Lat", (("Az", "1a"), ("Host", "b")))]
    assert [name for name, _ in listed(RecentlyActive="PT3H")] == ["Lat", "Lat", "Lat"]

    many = f"Test/{unique_name}-many"
    cw.put_metric_data(Namespace=many, MetricData=[
        {"MetricName": f"m{index:03}", "Value": 1.0} for index in range(501)])
    first = cw.list_metrics(Namespace=many)
    assert len(first["Metrics"]) == 500 and first["NextToken"]
    second = cw.list_metrics(Namespace=many, NextToken=first["NextToken"])
    assert "NextToken" not in second
    names = [m["MetricName"] for m in first["Metrics"] + second["Metrics"]]
    assert sorted(names) == [f"m{index:03}" for index in range(501)]
    paginated = cw.get_paginator("list_metrics").paginate(Namespace=many)
    assert sum(len(page["Metrics"]) for page in paginated) == 501


@pytest.mark.parametrize("datum, code, fragment", [
    ({"MetricName": "x", "Value": 1.0, "StatisticValues": {
        "SampleCount": 1, "Sum": 1.0, "Minimum": 1.0, "Maximum": 1.0}},
     "InvalidParameterCombination", "Value and MetricData.member.1.StatisticValues are mutually"),
    ({"MetricName": "x"}, "MissingParameter", "MetricData.member.1.Value is required"),
    ({"MetricName": "x", "Values": [1.0, 2.0], "Counts": [1.0]}, "InvalidParameterValue",
     "must be of the same size"),
    ({"MetricName": "x", "Value": 1.0, "Counts": [1.0]}, "InvalidParameterCombination",
     "Counts can only be given with"),
    ({"MetricName": "x", "Values": [float(v) for v in range(151)]}, "InvalidParameterValue",
     "must not have a size greater than 150"),
    ({"MetricName": "x", "Values": [1.0], "Counts": [-1.0]}, "InvalidParameterValue",
     "counts must be zero or more"),
    ({"MetricName": "x", "Value": 2.0 ** 361},
     "InvalidParameterValue", "between -2^360 and 2^360"),
    ({"MetricName": "x", "Value": 1.0, "StorageResolution": 30}, "InvalidParameterValue",
     "use 1 (high resolution) or 60"),
    ({"MetricName": "x", "Value": 1.0, "Timestamp": time.time() - 15 * 86400},
     "InvalidParameterValue", "no more than two weeks in the past"),
    ({"MetricName": "x", "Value": 1.0, "Timestamp": time.time() + 3 * 3600},
     "InvalidParameterValue", "no more than two hours in the future"),
    ({"MetricName": "x", "StatisticValues": {"SampleCount": 2, "Sum": 3.0, "Minimum": 2.0,
                                             "Maximum": 1.0}},
     "InvalidParameterValue", "Maximum must be greater than or equal to"),
    ({"MetricName": "x", "Value": 1.0, "Dimensions": [{"Name": "a", "Value": "1"},
                                                      {"Name": "a", "Value": "2"}]},
     "InvalidParameterValue", "dimension names must be unique"),
])
def test_put_metric_data_is_checked_as_cloudwatch_does(cw, unique_name, datum, code, fragment):
    namespace = f"Test/{unique_name}"
    got_code, message = error_of(cw.put_metric_data, Namespace=namespace,
                                 MetricData=[datum])
    assert (got_code, fragment in message) == (code, True), message
    assert cw.list_metrics(Namespace=namespace)["Metrics"] == []  # nothing was stored


def test_put_metric_data_limits_and_reserved_namespaces(cw, unique_name):
    code, message = error_of(cw.put_metric_data, Namespace=f"Test/{unique_name}", MetricData=[
        {"MetricName": "x", "Value": 1.0}] * 1001)
    assert code == "InvalidParameterValue" and "greater than 1000" in message
    code, message = error_of(cw.put_metric_data, Namespace="AWS/SageMaker",
                             MetricData=[{"MetricName": "x", "Value": 1.0}])
    assert code == "InvalidParameterValue" and "reserved" in message
    with pytest.raises(cw.exceptions.InvalidParameterValueException):
        cw.put_metric_data(Namespace="AWS/EC2", MetricData=[{"MetricName": "x", "Value": 1.0}])


@pytest.mark.parametrize("changes, code, fragment", [
    ({"Statistics": None}, "MissingParameter", "Must specify either Statistics"),
    ({"ExtendedStatistics": ["p99"]}, "InvalidParameterCombination", "but not both"),
    ({"Statistics": None, "ExtendedStatistics": ["p101"]}, "InvalidParameterValue",
     "not a valid percentile"),
    ({"Period": 45}, "InvalidParameterValue", "multiple of 60"),
    ({"Period": 1}, "InvalidParameterCombination", "exceeds the limit of 1,440"),
    ({"EndTime": 0.0}, "InvalidParameterValue", "StartTime must be less than"),
])
def test_get_metric_statistics_is_checked_as_cloudwatch_does(cw, changes, code, fragment):
    request = {"Namespace": "Test/x", "MetricName": "y", "StartTime": minute_ago(60),
               "EndTime": minute_ago(0), "Period": 60, "Statistics": ["Sum"]}
    request.update(changes)
    request = {key: value for key, value in request.items() if value is not None}
    if request.get("EndTime") == 0.0:
        request["EndTime"] = request["StartTime"] - 60
    got_code, message = error_of(cw.get_metric_statistics, **request)
    assert (got_code, fragment in message) == (code, True), message
