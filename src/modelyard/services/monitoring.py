"""Model Monitor: monitoring schedules, their executions, and (via monitoring_definitions)
data and model quality job definitions.

A schedule is created ``Pending``; the monitoring scheduler (``modelyard.monitor``) makes it
``Scheduled`` on its next pass and then starts one execution per due window on the server's
clock. ``StopMonitoringSchedule`` makes it ``Stopped``; ``Start`` and ``Update`` send it
back through ``Pending``. Executions are listed with ``ListMonitoringExecutions`` and the
latest shows in ``DescribeMonitoringSchedule``'s ``LastMonitoringExecutionSummary``.
"""

from __future__ import annotations

from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError, validation_error
from ..monitor import executions
from ..monitor.schedules import (
    DEFINITION_KINDS, EXECUTION_KIND, SCHEDULE_KIND, check_inline_job, check_schedule_config,
    spec_of_schedule,
)
from ..store.resources import ListQuery, Resource
from . import monitoring_definitions
from .common import resource_arn
from .monitoring_definitions import page

_SUPPORTED_TYPES = tuple(DEFINITION_KINDS)


def schedule_not_found(name: str) -> AwsError:
    return AwsError("ResourceNotFound",
                    f"Monitoring schedule {name} does not exist. Check the name with "
                    "ListMonitoringSchedules.")


def _find(ctx: RequestContext, name: str) -> Resource:
    found = ctx.platform.resources.get(SCHEDULE_KIND, name)
    if found is None:
        raise schedule_not_found(name)
    return found


def _checked_config(ctx: RequestContext, config: dict[str, Any]) -> dict[str, Any]:
    """The MonitoringScheduleConfig with its MonitoringType, checked as SageMaker does."""
    config = dict(config)
    monitoring_type = config.get("MonitoringType")
    inline, named = config.get("MonitoringJobDefinition"), config.get("MonitoringJobDefinitionName")
    if (inline is None) == (named is None):
        raise validation_error(
            "MonitoringScheduleConfig needs exactly one of MonitoringJobDefinitionName (with "
            "MonitoringType) and an inline MonitoringJobDefinition.")
    if named is not None and monitoring_type is None:
        raise validation_error(
            "MonitoringScheduleConfig.MonitoringType is required with "
            "MonitoringJobDefinitionName (DataQuality or ModelQuality).")
    monitoring_type = monitoring_type or "DataQuality"
    if monitoring_type not in _SUPPORTED_TYPES:
        raise validation_error(
            f"MonitoringType {monitoring_type} is not supported by modelyard yet; use "
            "DataQuality or ModelQuality.")
    config["MonitoringType"] = monitoring_type
    check_schedule_config(config.get("ScheduleConfig"))
    if inline is not None:
        if monitoring_type != "DataQuality":
            raise validation_error(
                "An inline MonitoringJobDefinition is a DataQuality job; create a "
                f"{monitoring_type} job definition and name it instead.")
        check_inline_job(inline)
    elif ctx.platform.resources.get(DEFINITION_KINDS[monitoring_type], named) is None:
        raise validation_error(
            f"The {monitoring_type} job definition {named} does not exist; create it with "
            f"Create{monitoring_type}JobDefinition first.")
    spec = spec_of_schedule(ctx.platform, {"MonitoringScheduleConfig": config})
    if spec.endpoint_name:
        _check_endpoint(ctx, spec.endpoint_name)
    return config


def _check_endpoint(ctx: RequestContext, endpoint: str) -> None:
    try:
        executions.endpoint_capture(ctx.platform, endpoint)
    except executions.MonitoringInputError as error:
        raise validation_error(str(error)) from None


def _wake(ctx: RequestContext) -> None:
    scheduler = getattr(ctx.platform, "monitor_scheduler", None)
    if scheduler is not None:
        scheduler.wake()


def create_monitoring_schedule(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["MonitoringScheduleName"]
    config = _checked_config(ctx, request["MonitoringScheduleConfig"])
    arn = resource_arn(ctx, "monitoring-schedule", name)
    now = ctx.now
    spec = spec_of_schedule(ctx.platform, {"MonitoringScheduleConfig": config})
    document = {
        "MonitoringScheduleArn": arn, "MonitoringScheduleName": name,
        "MonitoringScheduleStatus": "Pending", "MonitoringType": config["MonitoringType"],
        "CreationTime": now, "LastModifiedTime": now, "MonitoringScheduleConfig": config,
        "Tags": request.get("Tags", []),  # for ListTags / AddTags
    }
    if spec.endpoint_name:
        document["EndpointName"] = spec.endpoint_name
    ctx.platform.resources.create(
        SCHEDULE_KIND, name, arn, document, now=now, status="Pending",
        parent=spec.endpoint_name,
        already_exists=lambda: AwsError(
            "ResourceInUse", f"Monitoring schedule {name} already exists ({arn}). Choose "
                             "another name or update it with UpdateMonitoringSchedule."))
    _wake(ctx)
    return {"MonitoringScheduleArn": arn}


def _public(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items()
            if not key.startswith("_") and key != "Tags"}


def _last_execution(ctx: RequestContext, schedule: Resource) -> dict[str, Any] | None:
    found = ctx.platform.resources.list(EXECUTION_KIND, ListQuery(
        parent=schedule.name.lower(), max_results=5)).items
    for item in found:
        if item.document.get("_schedule_created") == schedule.creation_time:
            return executions.summary(item.document)
    return None


def describe_monitoring_schedule(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    schedule = _find(ctx, request["MonitoringScheduleName"])
    response = _public(schedule.document)
    last = _last_execution(ctx, schedule)
    if last is not None:
        response["LastMonitoringExecutionSummary"] = last
    return response


def list_monitoring_schedules(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    items = ctx.platform.resources.list(SCHEDULE_KIND, ListQuery(max_results=100_000)).items
    wanted = []
    for item in items:
        doc = item.document
        config = doc["MonitoringScheduleConfig"]
        if not _common_filters(request, item, doc.get("EndpointName"),
                               doc["MonitoringScheduleStatus"]):
            continue
        if request.get("MonitoringJobDefinitionName") and (
                config.get("MonitoringJobDefinitionName") or "").lower() != \
                request["MonitoringJobDefinitionName"].lower():
            continue
        if request.get("MonitoringTypeEquals") and \
                doc["MonitoringType"] != request["MonitoringTypeEquals"]:
            continue
        wanted.append(item)
    key = {"Name": lambda r: r.name.lower(), "Status": lambda r: r.status or ""}.get(
        request.get("SortBy", "CreationTime"), lambda r: r.creation_time)
    wanted.sort(key=key, reverse=request.get("SortOrder", "Descending") == "Descending")
    summaries = [{
        "MonitoringScheduleName": item.name, "MonitoringScheduleArn": item.arn,
        "CreationTime": item.document["CreationTime"],
        "LastModifiedTime": item.document["LastModifiedTime"],
        "MonitoringScheduleStatus": item.document["MonitoringScheduleStatus"],
        "EndpointName": item.document.get("EndpointName"),
        "MonitoringJobDefinitionName":
            item.document["MonitoringScheduleConfig"].get("MonitoringJobDefinitionName"),
        "MonitoringType": item.document["MonitoringType"],
    } for item in wanted]
    summaries = [{k: v for k, v in summary.items() if v is not None} for summary in summaries]
    return page(summaries, request, "MonitoringScheduleSummaries", "schedules")


def _common_filters(request: dict[str, Any], item: Resource, endpoint: str | None,
                    status: str) -> bool:
    doc = item.document
    if request.get("EndpointName") and endpoint != request["EndpointName"]:
        return False
    if request.get("NameContains") and request["NameContains"].lower() not in \
            doc["MonitoringScheduleName"].lower():
        return False
    if request.get("StatusEquals") and status != request["StatusEquals"]:
        return False
    for member, field, after in (("CreationTimeAfter", "CreationTime", True),
                                 ("CreationTimeBefore", "CreationTime", False),
                                 ("LastModifiedTimeAfter", "LastModifiedTime", True),
                                 ("LastModifiedTimeBefore", "LastModifiedTime", False),
                                 ("ScheduledTimeAfter", "ScheduledTime", True),
                                 ("ScheduledTimeBefore", "ScheduledTime", False)):
        bound = request.get(member)
        if bound is None or field not in doc:
            continue
        bound = bound.timestamp() if hasattr(bound, "timestamp") else float(bound)
        value = float(doc[field])
        if (after and value <= bound) or (not after and value >= bound):
            return False
    return True


def update_monitoring_schedule(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["MonitoringScheduleName"]
    schedule = _find(ctx, name)
    config = dict(request["MonitoringScheduleConfig"])
    if "ScheduleConfig" not in config:  # the SDK leaves it out to keep the current one
        current = schedule.document["MonitoringScheduleConfig"].get("ScheduleConfig")
        if current:
            config["ScheduleConfig"] = current
    config = _checked_config(ctx, config)
    spec = spec_of_schedule(ctx.platform, {"MonitoringScheduleConfig": config})
    now = ctx.now

    def change(current: Resource) -> dict[str, Any]:
        document = {**current.document, "MonitoringScheduleConfig": config,
                    "MonitoringType": config["MonitoringType"], "LastModifiedTime": now,
                    "_next_fire": None}
        document.pop("FailureReason", None)
        if spec.endpoint_name:
            document["EndpointName"] = spec.endpoint_name
        if current.document["MonitoringScheduleStatus"] != "Stopped":
            document["MonitoringScheduleStatus"] = document["__status__"] = "Pending"
        return document

    ctx.platform.resources.update(SCHEDULE_KIND, name, change, now=now,
                                  missing=lambda: schedule_not_found(name))
    _wake(ctx)
    return {"MonitoringScheduleArn": schedule.arn}


def _set_status(ctx: RequestContext, name: str, status: str) -> None:
    now = ctx.now

    def change(current: Resource) -> dict[str, Any]:
        return {**current.document, "MonitoringScheduleStatus": status, "__status__": status,
                "LastModifiedTime": now, "_next_fire": None}

    ctx.platform.resources.update(SCHEDULE_KIND, name, change, now=now,
                                  missing=lambda: schedule_not_found(name))
    _wake(ctx)


def start_monitoring_schedule(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["MonitoringScheduleName"]
    status = _find(ctx, name).document["MonitoringScheduleStatus"]
    if status in ("Stopped", "Failed"):
        _set_status(ctx, name, "Pending")
    return {}


def stop_monitoring_schedule(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["MonitoringScheduleName"]
    _find(ctx, name)
    _set_status(ctx, name, "Stopped")
    return {}


def delete_monitoring_schedule(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["MonitoringScheduleName"]
    _find(ctx, name)
    ctx.platform.resources.delete(SCHEDULE_KIND, name)
    return {}


def list_monitoring_executions(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    schedule = request.get("MonitoringScheduleName")
    items = ctx.platform.resources.list(EXECUTION_KIND, ListQuery(
        parent=schedule.lower() if schedule else None,
        status_equals=request.get("StatusEquals"), max_results=100_000)).items
    wanted = []
    for item in items:
        doc = item.document
        if not _common_filters(request, item, doc.get("EndpointName"),
                               doc["MonitoringExecutionStatus"]):
            continue
        if request.get("MonitoringJobDefinitionName") and (
                doc.get("MonitoringJobDefinitionName") or "").lower() != \
                request["MonitoringJobDefinitionName"].lower():
            continue
        if request.get("MonitoringTypeEquals") and \
                doc.get("MonitoringType") != request["MonitoringTypeEquals"]:
            continue
        wanted.append(doc)
    field = {"ScheduledTime": "ScheduledTime", "Status": "MonitoringExecutionStatus"}.get(
        request.get("SortBy", "CreationTime"), "CreationTime")
    wanted.sort(key=lambda doc: doc[field],
                reverse=request.get("SortOrder", "Descending") == "Descending")
    return page([executions.summary(doc) for doc in wanted], request,
                "MonitoringExecutionSummaries", "executions")


def list_monitoring_alerts(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    """No alerts are defined on modelyard's schedules: alert on their CloudWatch metrics."""
    _find(ctx, request["MonitoringScheduleName"])
    return {"MonitoringAlertSummaries": []}


def list_monitoring_alert_history(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    if request.get("MonitoringScheduleName"):
        _find(ctx, request["MonitoringScheduleName"])
    return {"MonitoringAlertHistory": []}


OPERATIONS = {
    **monitoring_definitions.OPERATIONS,
    "CreateMonitoringSchedule": create_monitoring_schedule,
    "DescribeMonitoringSchedule": describe_monitoring_schedule,
    "ListMonitoringSchedules": list_monitoring_schedules,
    "UpdateMonitoringSchedule": update_monitoring_schedule,
    "DeleteMonitoringSchedule": delete_monitoring_schedule,
    "StartMonitoringSchedule": start_monitoring_schedule,
    "StopMonitoringSchedule": stop_monitoring_schedule,
    "ListMonitoringExecutions": list_monitoring_executions,
    "ListMonitoringAlerts": list_monitoring_alerts,
    "ListMonitoringAlertHistory": list_monitoring_alert_history,
}
