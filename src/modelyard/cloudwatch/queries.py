"""GetMetricData's paging and ordering, and ListMetrics.

GetMetricData evaluates every query (``metric_math.run_queries``), orders each result's
points by ``ScanBy`` (TimestampDescending by default, as CloudWatch) and returns at most
``MaxDatapoints`` points per call across the results, in request order; a result cut
short says ``PartialData`` and the response carries a ``NextToken`` for the rest. Tokens
are opaque, stateless and bound to the request they came from.

ListMetrics lists each metric (namespace, name, dimension set) with data still kept,
500 per page, filtered by namespace, name, dimension filters and ``RecentlyActive``
(data with a timestamp in the last three hours).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ..api.errors import AwsError
from ..store.cloudwatch_metrics import cloudwatch_metric_data_table
from .metric_math import run_queries, validation

if TYPE_CHECKING:
    from ..platform import Platform

DEFAULT_MAX_DATAPOINTS = 100_800
LIST_PAGE_SIZE = 500
RECENTLY_ACTIVE_SECONDS = 3 * 3600


def _fingerprint(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _token(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def _read_token(token: str, fingerprint: str, error: AwsError) -> dict[str, Any]:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeError):
        raise error from None
    if not isinstance(payload, dict) or payload.get("f") != fingerprint:
        raise error
    return payload


def get_metric_data(platform: "Platform", request: dict[str, Any]) -> dict[str, Any]:
    queries = request["MetricDataQueries"]
    start, end = request["StartTime"], request["EndTime"]
    scan = request.get("ScanBy") or "TimestampDescending"
    limit = request.get("MaxDatapoints")
    if limit is None:
        limit = DEFAULT_MAX_DATAPOINTS
    if limit < 1:
        raise validation("The parameter MaxDatapoints must be at least 1.")
    fingerprint = _fingerprint([queries, start, end, scan])
    offset = 0
    if request.get("NextToken"):
        payload = _read_token(request["NextToken"], fingerprint, AwsError(
            "InvalidNextToken", "The NextToken is not valid for this request (it belongs to "
            "another request or was altered); call again without NextToken."))
        offset = int(payload.get("o", 0))
    results = run_queries(platform, queries, start, end)
    page_end = offset + limit
    position = 0
    shaped = []
    for result in results:
        stamps, values = result["Timestamps"], result["Values"]
        if scan == "TimestampDescending":
            stamps, values = stamps[::-1], values[::-1]
        low = min(max(offset - position, 0), len(stamps))
        high = min(max(page_end - position, 0), len(stamps))
        position += len(stamps)
        shaped.append({**result, "Timestamps": stamps[low:high], "Values": values[low:high],
                       "StatusCode": "PartialData" if high < len(stamps) else "Complete",
                       "Messages": []})
    response: dict[str, Any] = {"MetricDataResults": shaped, "Messages": []}
    if position > page_end:
        response["NextToken"] = _token({"o": page_end, "f": fingerprint})
    return response


def list_metrics(platform: "Platform", request: dict[str, Any]) -> dict[str, Any]:
    table = cloudwatch_metric_data_table
    statement = select(table.c.namespace, table.c.metric_name, table.c.dimensions).distinct()
    if request.get("Namespace"):
        statement = statement.where(table.c.namespace == request["Namespace"])
    if request.get("MetricName"):
        statement = statement.where(table.c.metric_name == request["MetricName"])
    if request.get("RecentlyActive") == "PT3H":
        statement = statement.where(
            table.c.timestamp >= platform.clock.now() - RECENTLY_ACTIVE_SECONDS)
    filters = request.get("Dimensions") or []
    fingerprint = _fingerprint([request.get(name) for name in (
        "Namespace", "MetricName", "Dimensions", "RecentlyActive")])
    after = None
    if request.get("NextToken"):
        after = _read_token(request["NextToken"], fingerprint, AwsError(
            "InvalidParameterValue", "The NextToken is not valid for this request; call "
            "ListMetrics again without NextToken.")).get("a")
    with platform.db.read() as connection:
        rows = sorted(tuple(row) for row in connection.execute(statement))
    metrics = []
    last = None
    for namespace, name, dimensions_json in rows:
        key = [namespace, name, dimensions_json]
        if after is not None and key <= after:
            continue
        dimensions = dict(json.loads(dimensions_json))
        if not all(item["Name"] in dimensions and item.get("Value") in (
                None, dimensions[item["Name"]]) for item in filters):
            continue
        if len(metrics) == LIST_PAGE_SIZE:
            break
        metrics.append({"Namespace": namespace, "MetricName": name, "Dimensions": [
            {"Name": key_name, "Value": value} for key_name, value in dimensions.items()]})
        last = key
    else:
        last = None
    response: dict[str, Any] = {"Metrics": metrics}
    if last is not None:
        response["NextToken"] = _token({"a": last, "f": fingerprint})
    return response
