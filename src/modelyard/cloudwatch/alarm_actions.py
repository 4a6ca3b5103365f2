"""What an alarm's state change sets off, in AWS's shapes.

Every transition emits the "CloudWatch Alarm State Change" event on the default bus; when
the alarm's actions are enabled, the new state's actions run too: SNS topics get AWS's
alarm notification (JSON message, ``ALARM: "name" in US East (N. Virginia)`` subject),
Lambda functions get AWS's alarm payload (``source``, ``alarmArn``, ``alarmData``). Each is
one durable outbox delivery, written in the same transaction as the state change, so a
failing action never stops evaluation and a restart delivers what was promised.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from ..engine.deliveries import DeliveryFailed
from . import alarm_store
from .alarm_evaluation import format_time

if TYPE_CHECKING:
    from ..platform import Platform
    from ..store.outbox import Delivery

log = logging.getLogger("modelyard.cloudwatch.alarms")

EVENT_KIND = "cloudwatch-alarm-event"
SNS_KIND = "cloudwatch-alarm-sns"
LAMBDA_KIND = "cloudwatch-alarm-lambda"
# Application Auto Scaling policies (registered by modelyard.autoscaling).
SCALING_KIND = "cloudwatch-alarm-scaling"
SOURCE = "aws.cloudwatch"
DETAIL_TYPE = "CloudWatch Alarm State Change"

REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)", "us-west-2": "US West (Oregon)",
    "ca-central-1": "Canada (Central)", "eu-west-1": "EU (Ireland)",
    "eu-west-2": "EU (London)", "eu-west-3": "EU (Paris)", "eu-central-1": "EU (Frankfurt)",
    "eu-north-1": "EU (Stockholm)", "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-northeast-2": "Asia Pacific (Seoul)", "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)", "ap-south-1": "Asia Pacific (Mumbai)",
    "sa-east-1": "South America (Sao Paulo)",
}
ACTIONS_FOR_STATE = {"ALARM": "AlarmActions", "OK": "OKActions",
                     "INSUFFICIENT_DATA": "InsufficientDataActions"}


def register(platform: "Platform") -> None:
    platform.deliveries.register(EVENT_KIND, deliver_event, attempts=3, backoff=(1.0, 5.0))
    platform.deliveries.register(SNS_KIND, deliver_sns, attempts=3, backoff=(1.0, 10.0))
    platform.deliveries.register(LAMBDA_KIND, deliver_lambda, attempts=3, backoff=(1.0, 10.0))


def action_kind(arn: str) -> str | None:
    """The delivery kind that runs an action ARN; None for actions modelyard cannot run."""
    parts = arn.split(":")
    if len(parts) >= 6 and parts[0] == "arn" and parts[2] == "sns":
        return SNS_KIND
    if len(parts) >= 7 and parts[0] == "arn" and parts[2] == "lambda" and parts[5] == "function":
        return LAMBDA_KIND
    if (len(parts) >= 9 and parts[0] == "arn" and parts[2] == "autoscaling"
            and parts[5] == "scalingPolicy" and parts[-1].startswith("policyName/")):
        return SCALING_KIND
    return None


def deliveries_for(platform: "Platform", before: dict[str, Any], after: dict[str, Any],
                   history_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The outbox rows of one transition: its event, and its actions when enabled."""
    now = after["StateUpdatedTimestamp"]
    detail = event_detail(before, after)
    rows: list[tuple[str, str, dict[str, Any]]] = [
        (EVENT_KIND, f"cw-alarm:{history_id}:event",
         {"detail": detail, "resources": [after["AlarmArn"]], "time": now})]
    if not after.get("ActionsEnabled", True) or after.get("ActionsSuppressedBy"):
        return rows  # disabled, or held back by the composite alarm's ActionsSuppressor
    owner = {"alarm_name": after["AlarmName"], "alarm_type": after["AlarmType"]}
    for index, arn in enumerate(after.get(ACTIONS_FOR_STATE[after["StateValue"]], [])):
        kind = action_kind(arn)
        key = f"cw-alarm:{history_id}:action:{index}"
        if kind == SNS_KIND:
            rows.append((kind, key, {**owner, "arn": arn, "subject": subject(platform, after),
                                     "message": sns_message(platform, before, after)}))
        elif kind == LAMBDA_KIND:
            payload = {"source": SOURCE, "alarmArn": after["AlarmArn"],
                       "accountId": platform.settings.account_id,
                       "time": format_time(now), "region": platform.settings.region,
                       "alarmData": detail}
            rows.append((kind, key, {**owner, "arn": arn, "payload": payload}))
        elif kind == SCALING_KIND:
            rows.append((kind, key, {**owner, "arn": arn, "state": after["StateValue"],
                                     "time": now}))
    return rows


def _state(document: dict[str, Any]) -> dict[str, Any]:
    state = {"value": document["StateValue"], "reason": document.get("StateReason", ""),
             "timestamp": format_time(document.get("StateUpdatedTimestamp")
                                      or document["AlarmConfigurationUpdatedTimestamp"])}
    if document.get("StateReasonData"):
        state["reasonData"] = document["StateReasonData"]
    if document.get("ActionsSuppressedBy"):
        state["actionsSuppressedBy"] = document["ActionsSuppressedBy"]
        state["actionsSuppressedReason"] = document.get("ActionsSuppressedReason", "")
    return state


def event_detail(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The "CloudWatch Alarm State Change" event's detail, as AWS documents it."""
    configuration: dict[str, Any] = {}
    if after.get("AlarmDescription"):
        configuration["description"] = after["AlarmDescription"]
    if after["AlarmType"] == "CompositeAlarm":
        configuration["alarmRule"] = after["AlarmRule"]
        for member, key in (("ActionsSuppressor", "actionsSuppressor"),
                            ("ActionsSuppressorWaitPeriod", "actionsSuppressorWaitPeriod"),
                            ("ActionsSuppressorExtensionPeriod",
                             "actionsSuppressorExtensionPeriod")):
            if after.get(member) is not None:
                configuration[key] = after[member]
    else:
        configuration["metrics"] = event_metrics(after)
    return {"alarmName": after["AlarmName"], "state": _state(after),
            "previousState": _state(before), "configuration": configuration}


def event_metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    def metric_stat(metric: dict[str, Any], period: int, stat: str,
                    unit: str | None) -> dict[str, Any]:
        stat_doc = {"metric": {"namespace": metric.get("Namespace"),
                               "name": metric.get("MetricName"),
                               "dimensions": {d["Name"]: d["Value"]
                                              for d in metric.get("Dimensions", [])}},
                    "period": period, "stat": stat}
        if unit:
            stat_doc["unit"] = unit
        return stat_doc

    if alarm.get("Metrics"):
        metrics = []
        for query in alarm["Metrics"]:
            item: dict[str, Any] = {"id": query["Id"]}
            if query.get("MetricStat"):
                stat = query["MetricStat"]
                item["metricStat"] = metric_stat(stat["Metric"], stat["Period"], stat["Stat"],
                                                 stat.get("Unit"))
            if query.get("Expression"):
                item["expression"] = query["Expression"]
            if query.get("Label"):
                item["label"] = query["Label"]
            item["returnData"] = query.get("ReturnData", True)
            metrics.append(item)
        return metrics
    stat = alarm.get("Statistic") or alarm.get("ExtendedStatistic")
    return [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, alarm["AlarmArn"])),
             "metricStat": metric_stat(alarm, alarm["Period"], stat, alarm.get("Unit")),
             "returnData": True}]


def subject(platform: "Platform", alarm: dict[str, Any]) -> str:
    text = f'{alarm["StateValue"]}: "{alarm["AlarmName"]}" in {region_name(platform)}'
    return text if len(text) <= 100 else text[:97] + "..."


def region_name(platform: "Platform") -> str:
    return REGION_NAMES.get(platform.settings.region, platform.settings.region)


def sns_message(platform: "Platform", before: dict[str, Any], after: dict[str, Any]) -> str:
    """AWS's alarm notification body (a JSON document)."""
    message: dict[str, Any] = {
        "AlarmName": after["AlarmName"],
        "AlarmDescription": after.get("AlarmDescription"),
        "AWSAccountId": platform.settings.account_id,
        "AlarmConfigurationUpdatedTimestamp":
            format_time(after["AlarmConfigurationUpdatedTimestamp"]),
        "NewStateValue": after["StateValue"],
        "NewStateReason": after.get("StateReason", ""),
        "StateChangeTime": format_time(after["StateUpdatedTimestamp"]),
        "Region": region_name(platform),
        "AlarmArn": after["AlarmArn"],
        "OldStateValue": before["StateValue"],
        "OKActions": after.get("OKActions", []),
        "AlarmActions": after.get("AlarmActions", []),
        "InsufficientDataActions": after.get("InsufficientDataActions", []),
    }
    if after["AlarmType"] == "CompositeAlarm":
        message["AlarmRule"] = after["AlarmRule"]
        try:
            triggering = json.loads(after.get("StateReasonData") or "{}").get(
                "triggeringAlarms", [])
        except ValueError:
            triggering = []
        message["TriggeringChildren"] = [
            {"Arn": child.get("arn"), "State": {"Value": child.get("state", {}).get("value"),
                                                "Timestamp": child.get("state", {}).get(
                                                    "timestamp")}}
            for child in triggering]
    else:
        message["Trigger"] = trigger(after)
    return json.dumps(message)


def trigger(alarm: dict[str, Any]) -> dict[str, Any]:
    """The notification's Trigger: what the alarm watches and how it compares."""
    result: dict[str, Any] = {}
    if alarm.get("Metrics"):
        result["Metrics"] = [_trigger_query(query) for query in alarm["Metrics"]]
    else:
        result.update({
            "MetricName": alarm.get("MetricName"), "Namespace": alarm.get("Namespace"),
            "StatisticType": "ExtendedStatistic" if alarm.get("ExtendedStatistic")
            else "Statistic",
        })
        if alarm.get("ExtendedStatistic"):
            result["ExtendedStatistic"] = alarm["ExtendedStatistic"]
        else:
            result["Statistic"] = alarm.get("Statistic", "").upper()
        result["Unit"] = alarm.get("Unit")
        result["Dimensions"] = [{"value": d["Value"], "name": d["Name"]}
                                for d in alarm.get("Dimensions", [])]
    result.update({
        "Period": alarm.get("Period"), "EvaluationPeriods": alarm["EvaluationPeriods"],
        "DatapointsToAlarm": alarm.get("DatapointsToAlarm", alarm["EvaluationPeriods"]),
        "ComparisonOperator": alarm["ComparisonOperator"],
        "Threshold": alarm.get("Threshold"),
        "TreatMissingData": alarm.get("TreatMissingData", "missing"),
        "EvaluateLowSampleCountPercentile": alarm.get("EvaluateLowSampleCountPercentile", ""),
    })
    return result


def _trigger_query(query: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {"Id": query["Id"]}
    if query.get("Expression"):
        item["Expression"] = query["Expression"]
    if query.get("Label"):
        item["Label"] = query["Label"]
    if query.get("MetricStat"):
        stat = query["MetricStat"]
        metric = stat["Metric"]
        item["MetricStat"] = {
            "Metric": {"Dimensions": [{"value": d["Value"], "name": d["Name"]}
                                      for d in metric.get("Dimensions", [])],
                       "MetricName": metric.get("MetricName"),
                       "Namespace": metric.get("Namespace")},
            "Period": stat["Period"], "Stat": stat["Stat"]}
    item["ReturnData"] = query.get("ReturnData", True)
    return item


# --- delivery handlers (run by the outbox worker) ----------------------------------------


def deliver_event(platform: "Platform", delivery: "Delivery") -> None:
    from ..events.bus import put_event

    payload = delivery.payload
    try:
        put_event(platform, SOURCE, DETAIL_TYPE, payload["detail"],
                  resources=payload["resources"], time=payload["time"])
    except NotImplementedError as error:
        raise DeliveryFailed(f"EventBridge is not available: {error}") from None


def deliver_sns(platform: "Platform", delivery: "Delivery") -> None:
    from ..sns.publish import publish

    payload = delivery.payload
    try:
        message_id = publish(platform, payload["arn"], payload["message"],
                             subject=payload["subject"])
    except (AwsError, NotImplementedError) as error:
        record_action_history(platform, payload, False, str(error))
        raise DeliveryFailed(f"{payload['arn']}: {error}") from None
    record_action_history(platform, payload, True, message_id)


def deliver_lambda(platform: "Platform", delivery: "Delivery") -> None:
    from ..lambdas.invoke import invoke_async

    payload = delivery.payload
    try:
        request_id = invoke_async(platform, payload["arn"],
                                  json.dumps(payload["payload"]).encode(), key=delivery.key)
    except (AwsError, NotImplementedError) as error:
        record_action_history(platform, payload, False, str(error))
        raise DeliveryFailed(f"{payload['arn']}: {error}") from None
    record_action_history(platform, payload, True, request_id)


def record_action_history(platform: "Platform", payload: dict[str, Any], succeeded: bool,
                    detail: str) -> None:
    """An "Action" history item, as CloudWatch records for each action it runs."""
    alarm = {"AlarmName": payload["alarm_name"], "AlarmType": payload["alarm_type"]}
    arn = payload["arn"]
    if succeeded:
        summary = f"Successfully executed action {arn}"
        data: dict[str, Any] = {"actionState": "Succeeded", "notificationResource": arn,
                                "publishedMessage": {"messageId": detail}}
    else:
        summary = f"Failed to execute action {arn}"
        data = {"actionState": "Failed", "notificationResource": arn, "error": detail}
    try:
        alarm_store.record_history(platform, alarm, "Action", summary, data,
                                   platform.clock.now())
    except Exception:  # noqa: BLE001 - history is a record, not the action itself
        log.exception("could not record the action history of alarm %s", alarm["AlarmName"])
