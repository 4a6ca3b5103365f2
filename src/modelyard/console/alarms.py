"""CloudWatch alarms: their list with a state filter and paging (DescribeAlarms), and an
alarm's state, condition, actions (as text), state history (DescribeAlarmHistory) and a
chart of its metric's recent datapoints with the threshold; the alarms of an endpoint for
the endpoint page."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from ..api.errors import AwsError
from ..cloudwatch.statistics import statistic_series
from .charts import line_chart
from .html import Safe, definition_list, el, link, number, pager, seg, status, table, when
from .page import View, breadcrumbs, heading, page

if TYPE_CHECKING:
    from ..platform import Platform

STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")
TYPES = ["MetricAlarm", "CompositeAlarm"]
PAGE_SIZE = 50
HISTORY = 100
MIN_WINDOW_SECONDS = 3 * 3600
MAX_POINTS = 120  # periods drawn per metric
ENDPOINT_DIMENSIONS = ("EndpointName", "Endpoint")
ENDPOINT_SCAN_PAGES = 20  # of 100 alarms: the endpoint page looks at the first 2,000
COMPARISONS = {
    "GreaterThanOrEqualToThreshold": "≥", "GreaterThanThreshold": ">",
    "LessThanThreshold": "<", "LessThanOrEqualToThreshold": "≤",
    "LessThanLowerOrGreaterThanUpperThreshold": "outside band",
    "LessThanLowerThreshold": "below band", "GreaterThanUpperThreshold": "above band",
}


def alarm_url(name: str) -> str:
    return f"/console/alarms/{seg(name)}"


def _alarms(result: dict[str, Any]) -> list[dict[str, Any]]:
    return list(result.get("MetricAlarms", [])) + list(result.get("CompositeAlarms", []))


def _metric(alarm: dict[str, Any]) -> str:
    if alarm.get("AlarmRule"):
        return "composite"
    if alarm.get("MetricName"):
        return alarm["MetricName"]
    if alarm.get("Metrics"):
        return "metric math: " + ", ".join(
            query.get("Expression") or query.get("Id", "") for query in alarm["Metrics"]
            if query.get("ReturnData", True) or query.get("Id") == alarm.get("ThresholdMetricId"))
    return ""


def condition(alarm: dict[str, Any]) -> str:
    """``Maximum > 10 for 1 of 1 × 60 s`` (or a composite alarm's rule)."""
    if alarm.get("AlarmRule"):
        return alarm["AlarmRule"]
    operator = alarm.get("ComparisonOperator", "")
    symbol = COMPARISONS.get(operator, operator)
    statistic = alarm.get("Statistic") or alarm.get("ExtendedStatistic") or ""
    threshold = number(alarm["Threshold"]) if alarm.get("Threshold") is not None \
        else alarm.get("ThresholdMetricId", "")
    evaluations = alarm.get("EvaluationPeriods")
    points = alarm.get("DatapointsToAlarm") or evaluations
    period = f" × {alarm['Period']} s" if alarm.get("Period") else ""
    return f"{statistic} {symbol} {threshold} for {points} of {evaluations}{period}".strip()


def list_alarms(view: View) -> tuple[str, Safe]:
    token, prefix, state = view.arg("token"), view.arg("name"), view.arg("state")
    request: dict[str, Any] = {"AlarmTypes": TYPES, "MaxRecords": PAGE_SIZE}
    for member, value in (("NextToken", token), ("AlarmNamePrefix", prefix),
                          ("StateValue", state)):
        if value:
            request[member] = value
    result = view.call("cloudwatch", "DescribeAlarms", request)
    rows = [[link(alarm_url(item["AlarmName"]), item["AlarmName"]),
             status(item.get("StateValue")), _metric(item), item.get("Namespace") or "",
             el("span", condition(item), class_="mono"),
             when(item.get("StateUpdatedTimestamp"))]
            for item in _alarms(result)]
    filters = el("form",
                 el("label", "Name starts with ",
                    el("input", name="name", value=prefix, type="search")),
                 el("label", "State ",
                    el("select", el("option", "any", value=""),
                       *(el("option", s, value=s, selected=s == state) for s in STATES),
                       name="state")),
                 el("button", "Filter", type="submit"), method="get", class_="filters")
    body = el("section", heading("Alarms"), filters,
              table(["Alarm", "State", "Metric", "Namespace", "Condition",
                     "Last state change"], rows, empty="No alarms match.", id="alarms"),
              pager("/console/alarms", result.get("NextToken"), name=prefix, state=state,
                    token=token))
    return "Alarms", body


def show_alarm(view: View) -> tuple[str, Safe]:
    name = view.params["name"]
    found = _alarms(view.call("cloudwatch", "DescribeAlarms",
                              {"AlarmNames": [name], "AlarmTypes": TYPES}))
    if not found:
        raise AwsError("ResourceNotFound", f"Alarm {name} does not exist.")
    alarm = found[0]
    history = view.call("cloudwatch", "DescribeAlarmHistory", {
        "AlarmName": name, "AlarmTypes": TYPES, "MaxRecords": HISTORY,
        "ScanBy": "TimestampDescending"}).get("AlarmHistoryItems", [])
    rows = [[when(item.get("Timestamp")), item.get("HistoryItemType", ""),
             item.get("HistorySummary", "")] for item in history]
    dimensions = ", ".join(f"{d.get('Name')}={d.get('Value')}"
                           for d in alarm.get("Dimensions") or [])
    facts = definition_list([
        ("State", el("span", status(alarm.get("StateValue")), id="alarm-state",
                     data_state=alarm.get("StateValue"))),
        ("Reason", alarm.get("StateReason")),
        ("Last state change", when(alarm.get("StateUpdatedTimestamp"))),
        ("Description", alarm.get("AlarmDescription")),
        ("Type", alarm.get("AlarmType")),
        ("Namespace", alarm.get("Namespace")),
        ("Metric", _metric(alarm)),
        ("Dimensions", _dimensions_cell(alarm.get("Dimensions") or []) if dimensions else None),
        ("Condition", el("span", condition(alarm), class_="mono")),
        ("Missing data", alarm.get("TreatMissingData")),
        ("Actions enabled", "yes" if alarm.get("ActionsEnabled", True) else "no"),
        ("Configuration updated", when(alarm.get("AlarmConfigurationUpdatedTimestamp")))])
    actions = [[kind, el("span", arn, class_="mono")]
               for kind, member in (("ALARM", "AlarmActions"), ("OK", "OKActions"),
                                    ("INSUFFICIENT_DATA", "InsufficientDataActions"))
               for arn in alarm.get(member) or []]
    body = el("section",
              breadcrumbs(("/console/alarms", "Alarms"), ("", name)),
              heading(name),
              el("div", facts, id="alarm-live",
                 data_live="1" if alarm.get("StateValue") == "INSUFFICIENT_DATA" else None),
              el("h2", "Actions"),
              table(["On state", "Target ARN"], actions, empty="No actions.", id="actions"),
              el("h2", "State history"),
              table(["Time", "Type", "Summary"], rows, empty="No history yet.", id="history"),
              el("h2", "Metric"), el("div", *_charts(view, alarm), class_="charts"),
              el("p", el("small", "ARN: ", alarm.get("AlarmArn")), class_="mono"))
    return name, body


def _dimensions_cell(dimensions: list[dict[str, str]]) -> Safe:
    parts: list[Any] = []
    for item in dimensions:
        value: Any = item.get("Value", "")
        if item.get("Name") in ENDPOINT_DIMENSIONS:
            value = link(f"/console/endpoints/{seg(item['Value'])}", item["Value"])
        parts.append(el("li", item.get("Name", ""), "=", value))
    return el("ul", *parts, class_="plain")


def _charts(view: View, alarm: dict[str, Any]) -> list[Safe]:
    """The alarm's metric (or each metric of its math) over the recent periods, with the
    threshold drawn across."""
    stats = []
    if alarm.get("MetricName"):
        stats.append((alarm.get("Namespace", ""), alarm["MetricName"],
                      alarm.get("Dimensions") or [], alarm.get("Period") or 60,
                      alarm.get("Statistic") or alarm.get("ExtendedStatistic") or "Average"))
    for query in alarm.get("Metrics") or []:
        stat = query.get("MetricStat") or {}
        metric = stat.get("Metric") or {}
        if metric.get("MetricName"):
            stats.append((metric.get("Namespace", ""), metric["MetricName"],
                          metric.get("Dimensions") or [], stat.get("Period") or 60,
                          stat.get("Stat") or "Average"))
    if not stats:
        return [el("p", "A composite alarm has no metric of its own.", class_="empty")]
    end = max(time.time(), view.now()) + 60
    charts = []
    for namespace, metric_name, dimensions, period, statistic in stats:
        start = end - max(MIN_WINDOW_SECONDS, period * MAX_POINTS)
        try:
            series = statistic_series(view.platform, namespace, metric_name,
                                      {d["Name"]: d["Value"] for d in dimensions},
                                      start, end, int(period), statistic)
        except AwsError:
            series = []
        drawn = {f"{statistic} per {period} s": series}
        if series and alarm.get("Threshold") is not None and alarm.get("MetricName"):
            drawn["Threshold"] = [(series[0][0], float(alarm["Threshold"])),
                                  (series[-1][0], float(alarm["Threshold"]))]
        charts.append(line_chart(f"{namespace} {metric_name}", drawn))
    return charts


def _names_endpoint(alarm: dict[str, Any], endpoint: str) -> bool:
    dimension_lists = [alarm.get("Dimensions") or []] + [
        ((query.get("MetricStat") or {}).get("Metric") or {}).get("Dimensions") or []
        for query in alarm.get("Metrics") or []]
    return any(item.get("Name") in ENDPOINT_DIMENSIONS and item.get("Value") == endpoint
               for dimensions in dimension_lists for item in dimensions)


def endpoint_alarms(view: View, endpoint: str) -> Safe:
    """For the endpoint page: the metric alarms whose dimensions name the endpoint."""
    found: list[dict[str, Any]] = []
    request: dict[str, Any] = {"AlarmTypes": ["MetricAlarm"], "MaxRecords": 100}
    for _ in range(ENDPOINT_SCAN_PAGES):
        result = view.call("cloudwatch", "DescribeAlarms", request)
        found += [alarm for alarm in result.get("MetricAlarms", [])
                  if _names_endpoint(alarm, endpoint)]
        if not result.get("NextToken"):
            break
        request["NextToken"] = result["NextToken"]
    rows = [[link(alarm_url(alarm["AlarmName"]), alarm["AlarmName"]),
             status(alarm.get("StateValue")), _metric(alarm),
             el("span", condition(alarm), class_="mono"),
             when(alarm.get("StateUpdatedTimestamp"))] for alarm in found]
    return table(["Alarm", "State", "Metric", "Condition", "Last state change"], rows,
                 empty="No alarm watches this endpoint.", id="endpoint-alarms")


def routes(platform: "Platform") -> list[Route]:
    active = "/console/alarms"
    return [
        Route("/console/alarms", page(platform, list_alarms, active), methods=["GET"]),
        # Alarm names may hold "/": the rest of the path is the name.
        Route("/console/alarms/{name:path}", page(platform, show_alarm, active),
              methods=["GET"]),
    ]


__all__ = ["routes", "endpoint_alarms", "alarm_url"]
