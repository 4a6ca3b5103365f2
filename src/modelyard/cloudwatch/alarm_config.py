"""PutMetricAlarm / PutCompositeAlarm requests checked the way CloudWatch checks them.

Each check raises an AwsError with CloudWatch's code (MissingParameter,
InvalidParameterCombination, InvalidParameterValue, ValidationError) and a message that
says what to change.
"""

from __future__ import annotations

import re
from typing import Any

from ..api.errors import AwsError
from .alarm_actions import action_kind
from .alarm_evaluation import BAND_COMPARISONS, COMPARISONS, TREATMENTS

PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d{1,10})?|100(\.0{1,10})?)$")
SINGLE_METRIC_MEMBERS = ("MetricName", "Namespace", "Statistic", "ExtendedStatistic",
                         "Dimensions", "Period", "Unit")
ACTION_LISTS = ("AlarmActions", "OKActions", "InsufficientDataActions")


def missing(member: str, hint: str) -> AwsError:
    return AwsError("MissingParameter", f"The parameter {member} is required. {hint}")


def combination(message: str) -> AwsError:
    return AwsError("InvalidParameterCombination", message)


def invalid(message: str) -> AwsError:
    return AwsError("ValidationError", message)


def check_name(name: str) -> None:
    if not name.isascii() or any(ord(ch) < 32 for ch in name):
        raise AwsError("InvalidParameterValue", f"The alarm name {name!r} must contain only "
                       "printable ASCII characters.")


def check_period(period: int, where: str) -> None:
    if period not in (10, 30) and (period < 60 or period % 60):
        raise invalid(f"{where} must be 10, 30 or a multiple of 60 seconds; got {period}.")


def check_actions(request: dict[str, Any]) -> None:
    for member in ACTION_LISTS:
        for arn in request.get(member) or []:
            if action_kind(arn) is None:
                raise invalid(
                    f"{member} contains {arn!r}, an action modelyard cannot run. Alarm actions "
                    "here are SNS topic ARNs (arn:aws:sns:<region>:<account>:<topic>) and "
                    "Lambda function ARNs (arn:aws:lambda:<region>:<account>:function:<name>) "
                    "and Application Auto Scaling policy ARNs (arn:aws:autoscaling:<region>:"
                    "<account>:scalingPolicy:<id>:resource/<namespace>/<resource>:policyName/"
                    "<name>); EC2 and Systems Manager actions are not supported.")


def check_metric_alarm(request: dict[str, Any]) -> None:
    """Everything PutMetricAlarm needs that botocore's shape does not say."""
    check_name(request["AlarmName"])
    if request.get("EvaluationCriteria") or request.get("EvaluationInterval"):
        raise invalid("PromQL alarms (EvaluationCriteria, EvaluationInterval) are not "
                      "supported by modelyard; alarm on a metric or a metric math expression.")
    if request.get("Metrics"):
        given = [member for member in SINGLE_METRIC_MEMBERS if request.get(member)]
        if given:
            raise combination(f"Metrics cannot be combined with {', '.join(given)}: each "
                              "query's MetricStat carries its metric, period and statistic. "
                              "Remove those members or remove Metrics.")
        _check_queries(request["Metrics"], request.get("ThresholdMetricId"))
    else:
        for member in ("MetricName", "Namespace"):
            if not request.get(member):
                raise missing(member, "Name the metric to watch (MetricName and Namespace), "
                              "or give Metrics for a metric math alarm.")
        if request.get("Period") is None:
            raise missing("Period", "Give the length of each evaluated period in seconds.")
        check_period(request["Period"], "Period")
        statistic, extended = request.get("Statistic"), request.get("ExtendedStatistic")
        if statistic and extended:
            raise combination("Give either Statistic or ExtendedStatistic, not both.")
        if not statistic and not extended:
            raise missing("Statistic", "Give Statistic (SampleCount, Average, Sum, Minimum, "
                          "Maximum) or ExtendedStatistic (a percentile such as p99).")
        if extended and not PERCENTILE.match(extended):
            raise AwsError("InvalidParameterValue", f"ExtendedStatistic {extended!r} is not "
                           "supported: use a percentile between p0 and p100, e.g. p99 or "
                           "p99.9.")
        period = request["Period"]
        n = request.get("EvaluationPeriods") or 1
        limit = 86400 if period < 3600 else 7 * 86400
        if period * n > limit:
            raise invalid(f"Period * EvaluationPeriods ({period} * {n}) must not exceed "
                          f"{limit} seconds.")
    low_sample = request.get("EvaluateLowSampleCountPercentile")
    if low_sample:
        if low_sample not in ("evaluate", "ignore"):
            raise invalid("EvaluateLowSampleCountPercentile must be 'evaluate' or 'ignore'.")
        if not request.get("ExtendedStatistic"):
            raise combination("EvaluateLowSampleCountPercentile applies only to alarms on a "
                              "percentile (ExtendedStatistic); remove it.")
    if request.get("EvaluationPeriods") is None:
        raise missing("EvaluationPeriods", "Give how many recent periods to evaluate.")
    n = request["EvaluationPeriods"]
    m = request.get("DatapointsToAlarm")
    if m is not None and m > n:
        raise invalid(f"DatapointsToAlarm ({m}) must not exceed EvaluationPeriods ({n}).")
    operator = request.get("ComparisonOperator")
    if not operator:
        raise missing("ComparisonOperator", "Give how the statistic compares with Threshold, "
                      "e.g. GreaterThanThreshold.")
    if operator in BAND_COMPARISONS or request.get("ThresholdMetricId"):
        raise invalid(f"Anomaly detection alarms ({operator} with ThresholdMetricId) are not "
                      "supported by modelyard; use GreaterThanThreshold, "
                      "GreaterThanOrEqualToThreshold, LessThanThreshold or "
                      "LessThanOrEqualToThreshold with a static Threshold.")
    if operator not in COMPARISONS:
        raise invalid(f"ComparisonOperator {operator!r} is not valid.")
    if request.get("Threshold") is None:
        raise missing("Threshold", f"Give the value the statistic is compared with ({operator}).")
    treat = request.get("TreatMissingData")
    if treat is not None and treat not in TREATMENTS:
        raise invalid(f"TreatMissingData must be one of {', '.join(TREATMENTS)}; got {treat!r}.")
    check_actions(request)


def _check_queries(queries: list[dict[str, Any]], threshold_metric_id: str | None) -> None:
    returning = [query for query in queries if query.get("ReturnData", True)]
    if len(returning) != 1:
        raise invalid("Exactly one element of the metrics list should return data: set "
                      "ReturnData to false on every query but the one the alarm watches "
                      f"(now {len(returning)} return data).")
    ids = [query["Id"] for query in queries]
    duplicates = sorted({query_id for query_id in ids if ids.count(query_id) > 1})
    if duplicates:
        raise invalid(f"Metric query ids must be unique; repeated: {', '.join(duplicates)}.")
    periods = set()
    for query in queries:
        stat, expression = query.get("MetricStat"), query.get("Expression")
        if bool(stat) == bool(expression):
            raise invalid(f"Metrics query {query['Id']!r} must have exactly one of MetricStat "
                          "and Expression.")
        if stat:
            check_period(stat["Period"], f"The Period of query {query['Id']!r}")
            periods.add(stat["Period"])
            if stat["Stat"] not in COMPARISON_STATS and not PERCENTILE.match(stat["Stat"]):
                raise AwsError("InvalidParameterValue", f"Stat {stat['Stat']!r} of query "
                               f"{query['Id']!r} is not supported: use SampleCount, Average, "
                               "Sum, Minimum, Maximum or a percentile such as p99.")
        elif query.get("Period"):
            check_period(query["Period"], f"The Period of query {query['Id']!r}")
            periods.add(query["Period"])
    if len(periods) > 1:
        raise invalid("All metrics of a metric math alarm must use the same period; got "
                      f"{', '.join(str(period) for period in sorted(periods))}.")
    if not periods:
        raise invalid("A metric math alarm needs at least one MetricStat query (or a Period "
                      "on its expression) to know its period.")


COMPARISON_STATS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")


def metric_alarm_document(request: dict[str, Any]) -> dict[str, Any]:
    """The configuration members a metric alarm keeps (Describe shows what was given)."""
    members = ("AlarmName", "AlarmDescription", "MetricName", "Namespace", "Statistic",
               "ExtendedStatistic", "Period", "Unit", "EvaluationPeriods", "DatapointsToAlarm",
               "Threshold", "ComparisonOperator", "TreatMissingData",
               "EvaluateLowSampleCountPercentile", "Metrics")
    document = {member: request[member] for member in members if request.get(member) is not None}
    document["ActionsEnabled"] = request.get("ActionsEnabled", True)
    for member in ACTION_LISTS:
        document[member] = list(request.get(member) or [])
    if not request.get("Metrics"):
        document["Dimensions"] = list(request.get("Dimensions") or [])
    return document


def composite_alarm_document(request: dict[str, Any]) -> dict[str, Any]:
    members = ("AlarmName", "AlarmDescription", "AlarmRule", "ActionsSuppressor",
               "ActionsSuppressorWaitPeriod", "ActionsSuppressorExtensionPeriod")
    document = {member: request[member] for member in members if request.get(member) is not None}
    document["ActionsEnabled"] = request.get("ActionsEnabled", True)
    for member in ACTION_LISTS:
        document[member] = list(request.get(member) or [])
    return document
