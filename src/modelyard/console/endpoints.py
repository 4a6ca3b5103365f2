"""Endpoints: the list, and an endpoint's variants (weights, instance counts), data
capture, invocation / latency / error charts from the metrics store, the alarms watching it,
a link to its monitoring schedules, and its recent log."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.routing import Route

from ..api.errors import AwsError
from ..cloudwatch.statistics import statistic_series
from .alarms import endpoint_alarms
from .charts import line_chart
from .html import Safe, definition_list, el, link, number, pager, s3_link, seg, status, table, when
from .monitoring import endpoint_link as endpoint_monitoring_link
from .page import View, breadcrumbs, filter_form, heading, list_request, page

if TYPE_CHECKING:
    from ..platform import Platform

NAMESPACE = "AWS/SageMaker"
WINDOW_SECONDS = 3 * 3600
RUNNING = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")


def endpoint_url(name: str) -> str:
    return f"/console/endpoints/{seg(name)}"


def list_endpoints(view: View) -> tuple[str, Safe]:
    token, name = view.arg("token"), view.arg("name")
    result = view.call("sagemaker", "ListEndpoints", list_request(view, NameContains="name"))
    rows = [[link(endpoint_url(item["EndpointName"]), item["EndpointName"]),
             status(item.get("EndpointStatus")), when(item.get("CreationTime")),
             when(item.get("LastModifiedTime"))]
            for item in result.get("Endpoints", [])]
    return "Endpoints", el("section", heading("Endpoints"), filter_form(view),
                           table(["Endpoint", "Status", "Created", "Last modified"], rows,
                                 empty="No endpoints yet.", id="endpoints"),
                           pager("/console/endpoints", result.get("NextToken"), name=name,
                                 token=token))


def show_endpoint(view: View) -> tuple[str, Safe]:
    name = view.params["name"]
    endpoint = view.call("sagemaker", "DescribeEndpoint", {"EndpointName": name})
    state = endpoint.get("EndpointStatus", "")
    variants = endpoint.get("ProductionVariants") or []
    rows = [[item.get("VariantName"), number(item.get("CurrentWeight", "")),
             number(item.get("DesiredWeight", "")), item.get("CurrentInstanceCount", ""),
             item.get("DesiredInstanceCount", ""),
             ", ".join(image.get("SpecifiedImage", "") for image in
                       item.get("DeployedImages") or [])]
            for item in variants]
    capture = endpoint.get("DataCaptureConfig") or {}
    end = max(time.time(), view.now()) + 60
    charts = []
    for item in variants:
        dims = {"EndpointName": name, "VariantName": item.get("VariantName", "")}
        invocations = statistic_series(view.platform, NAMESPACE, "Invocations", dims,
                                       end - WINDOW_SECONDS, end, 60, "Sum")
        errors = statistic_series(view.platform, NAMESPACE, "Invocation5XXErrors", dims,
                                  end - WINDOW_SECONDS, end, 60, "Sum")
        client_errors = statistic_series(view.platform, NAMESPACE, "Invocation4XXErrors",
                                         dims, end - WINDOW_SECONDS, end, 60, "Sum")
        latency = statistic_series(view.platform, NAMESPACE, "ModelLatency", dims,
                                   end - WINDOW_SECONDS, end, 60, "Average")
        p99 = statistic_series(view.platform, NAMESPACE, "ModelLatency", dims,
                               end - WINDOW_SECONDS, end, 60, "p99")
        charts.append(line_chart(f"{item.get('VariantName')}: invocations per minute",
                                 {"Invocations": invocations, "5XX errors": errors,
                                  "4XX errors": client_errors}))
        charts.append(line_chart(f"{item.get('VariantName')}: model latency (ms)",
                                 {"Average": _ms(latency), "p99": _ms(p99)}, unit=" ms"))
    body = el("section",
              breadcrumbs(("/console/endpoints", "Endpoints"), ("", name)),
              heading(name),
              el("div",
                 definition_list([("Status", status(state)),
                                  ("Failure reason", endpoint.get("FailureReason")),
                                  ("Configuration", endpoint.get("EndpointConfigName")),
                                  ("Created", when(endpoint.get("CreationTime"))),
                                  ("Last modified", when(endpoint.get("LastModifiedTime"))),
                                  ("Data capture", s3_link(capture.get("DestinationS3Uri"))
                                   if capture.get("EnableCapture") else "off"),
                                  ("Capture status", capture.get("CaptureStatus"))]),
                 el("h2", "Variants"),
                 table(["Variant", "Weight", "Desired weight", "Instances",
                        "Desired instances", "Image"], rows, empty="No variants.",
                       id="variants"),
                 id="endpoint-live", data_live="1" if state in RUNNING else None),
              el("h2", "Traffic (last 3 hours)"), el("div", *charts, class_="charts"),
              el("h2", "Alarms"), endpoint_alarms(view, name),
              el("p", endpoint_monitoring_link(name)),
              el("h2", "Recent log"), _log(view, name),
              el("p", el("small", "ARN: ", endpoint.get("EndpointArn")), class_="mono"))
    return name, body


def _ms(series: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """ModelLatency is stored in microseconds, as SageMaker reports it."""
    return [(stamp, round(value / 1000, 3)) for stamp, value in series]


def _log(view: View, name: str) -> Safe:
    group = f"/aws/sagemaker/Endpoints/{name}"
    try:
        events = view.call("logs", "FilterLogEvents", {
            "logGroupName": group, "limit": 100,
            "startTime": int((view.now() - WINDOW_SECONDS) * 1000)}).get("events", [])
    except AwsError:
        events = []
    if not events:
        return el("p", "No log lines in the last 3 hours.", class_="empty")
    return el("pre", "\n".join(e.get("message", "").rstrip("\n") for e in events[-100:]),
              class_="log", tabindex="0")


def routes(platform: "Platform") -> list[Route]:
    active = "/console/endpoints"
    return [
        Route("/console/endpoints", page(platform, list_endpoints, active), methods=["GET"]),
        Route("/console/endpoints/{name}", page(platform, show_endpoint, active),
              methods=["GET"]),
    ]
