"""CloudWatch alarms: metric, metric math and composite alarms, their history and tags.

Evaluation runs in the background (``cloudwatch.alarm_loop``); these handlers keep the
alarms' configuration and state, and SetAlarmState runs a transition like the evaluator
does (history, actions, the "CloudWatch Alarm State Change" event).
"""

from __future__ import annotations

import json
from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError
from ..cloudwatch import alarm_config, alarm_loop, alarm_rule, alarm_store
from ..cloudwatch.alarm_actions import deliveries_for

MAX_ALARMS = 5000  # CloudWatch's default quota of alarms per account and region
INITIAL_REASON = "Unchecked: Initial alarm creation"
BRIEF_MEMBERS = ("AlarmName", "AlarmArn", "StateValue", "StateUpdatedTimestamp")


def _not_found(name: str) -> AwsError:
    return AwsError("ResourceNotFound", f"Alarm {name} not found. Check the name with "
                    "DescribeAlarms (names are case-sensitive).", status=404)


def _store(ctx: RequestContext, document: dict[str, Any], alarm_type: str,
           tags: list[dict[str, str]] | None) -> None:
    """Create the alarm, or replace the configuration of an existing one (its state and
    tags stay, as in CloudWatch)."""
    name = document["AlarmName"]
    now = ctx.now
    if alarm_store.get(ctx.platform, name) is None and \
            alarm_store.count(ctx.platform) >= MAX_ALARMS:
        raise AwsError("LimitExceeded", f"This account already has {MAX_ALARMS} alarms, the "
                       "CloudWatch quota. Delete alarms you no longer need.")
    document.update(AlarmArn=alarm_store.alarm_arn(ctx.platform, name), AlarmType=alarm_type,
                    AlarmConfigurationUpdatedTimestamp=now)
    initial = {"StateValue": "INSUFFICIENT_DATA", "StateReason": INITIAL_REASON,
               "StateUpdatedTimestamp": now, "StateTransitionedTimestamp": now,
               "Tags": list(tags or [])}
    alarm_store.save(ctx.platform, document, now=now, initial=initial)
    alarm_loop.notify(ctx.platform, name)


def put_metric_alarm(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    alarm_config.check_metric_alarm(request)
    if request.get("Metrics"):
        _dry_run(ctx, request["Metrics"])
    _store(ctx, alarm_config.metric_alarm_document(request), "MetricAlarm",
           request.get("Tags"))
    return {}


def _dry_run(ctx: RequestContext, queries: list[dict[str, Any]]) -> None:
    """Run the math queries over one empty minute so a bad expression fails now, naming
    itself, rather than at every evaluation."""
    try:
        from ..cloudwatch.metric_math import run_queries

        run_queries(ctx.platform, [dict(query) for query in queries], ctx.now - 600, ctx.now)
    except NotImplementedError:
        return
    except AwsError as error:
        raise AwsError("ValidationError", f"The metric math of this alarm is not valid: "
                       f"{error.message}") from None


def put_composite_alarm(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["AlarmName"]
    alarm_config.check_name(name)
    alarm_config.check_actions(request)
    node = alarm_rule.parse(request["AlarmRule"])
    children = alarm_rule.referenced_alarms(node)
    if name in children:
        raise AwsError("ValidationError", f"The rule of composite alarm {name!r} names the "
                       "alarm itself; a composite alarm can only watch other alarms.")
    absent = [child for child in children if alarm_store.get(ctx.platform, child) is None]
    if absent:
        raise AwsError("ValidationError", "Could not save the composite alarm as alarms "
                       f"[{', '.join(absent)}] in the alarm rule do not exist. Create them "
                       "first or fix the names (case-sensitive).")
    _check_no_cycle(ctx, name, children)
    _check_suppressor(ctx, name, request)
    _store(ctx, alarm_config.composite_alarm_document(request), "CompositeAlarm",
           request.get("Tags"))
    return {}


def _check_suppressor(ctx: RequestContext, name: str, request: dict[str, Any]) -> None:
    periods = ("ActionsSuppressorWaitPeriod", "ActionsSuppressorExtensionPeriod")
    suppressor = request.get("ActionsSuppressor")
    if not suppressor:
        given = [member for member in periods if request.get(member) is not None]
        if given:
            raise AwsError("ValidationError", f"{' and '.join(given)} can only be set with "
                           "ActionsSuppressor, the alarm whose ALARM state suppresses this "
                           "alarm's actions.")
        return
    missing = [member for member in periods if request.get(member) is None]
    if missing:
        raise AwsError("ValidationError", f"{' and '.join(missing)} must be set when "
                       f"ActionsSuppressor is; composite alarm {name!r}.")
    target = (alarm_store.get_by_arn(ctx.platform, suppressor) if suppressor.startswith("arn:")
              else alarm_store.get(ctx.platform, suppressor))
    if target is None:
        raise AwsError("ValidationError", f"The ActionsSuppressor alarm {suppressor!r} of "
                       f"composite alarm {name!r} does not exist. Create it first or fix the "
                       "name (case-sensitive).")
    if target["AlarmName"] == name:
        raise AwsError("ValidationError", f"Composite alarm {name!r} cannot be its own "
                       "ActionsSuppressor.")


def _check_no_cycle(ctx: RequestContext, name: str, children: list[str]) -> None:
    seen: set[str] = set()
    pending = list(children)
    while pending:
        child = pending.pop()
        if child in seen:
            continue
        seen.add(child)
        alarm = alarm_store.get(ctx.platform, child)
        if alarm is None or alarm["AlarmType"] != "CompositeAlarm":
            continue
        grandchildren = alarm_rule.referenced_alarms(alarm_rule.parse(alarm["AlarmRule"]))
        if name in grandchildren:
            raise AwsError("ValidationError", f"The rule would make a cycle: composite alarm "
                           f"{child!r} already depends on {name!r}. Change one of the rules.")
        pending.extend(grandchildren)


def describe_alarms(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    max_records = request.get("MaxRecords", 50)
    relative = request.get("ChildrenOfAlarmName") or request.get("ParentsOfAlarmName")
    if relative:
        others = [member for member in request
                  if member not in ("ChildrenOfAlarmName", "ParentsOfAlarmName", "MaxRecords",
                                    "NextToken")]
        if others or (request.get("ChildrenOfAlarmName") and request.get("ParentsOfAlarmName")):
            raise AwsError("ValidationError", "With ChildrenOfAlarmName or ParentsOfAlarmName "
                           "give only MaxRecords and NextToken besides.")
        alarms = _relatives(ctx, request)
    else:
        if request.get("AlarmNames") and request.get("AlarmNamePrefix"):
            raise AwsError("InvalidParameterCombination", "Give AlarmNames or "
                           "AlarmNamePrefix, not both.")
        types = request.get("AlarmTypes") or ["MetricAlarm"]
        alarms = [alarm for alarm in alarm_store.list_alarms(
            ctx.platform, name_prefix=request.get("AlarmNamePrefix"))
            if alarm["AlarmType"] in types and _matches(alarm, request)]
    offset = alarm_store.decode_token(request.get("NextToken"), "alarms")
    page = alarms[offset:offset + max_records]
    result: dict[str, Any] = {
        "MetricAlarms": [_describe(alarm, relative) for alarm in page
                         if alarm["AlarmType"] == "MetricAlarm"],
        "CompositeAlarms": [_describe(alarm, relative) for alarm in page
                            if alarm["AlarmType"] == "CompositeAlarm"]}
    if offset + max_records < len(alarms):
        result["NextToken"] = alarm_store.encode_token(offset + max_records, "alarms")
    return result


def _matches(alarm: dict[str, Any], request: dict[str, Any]) -> bool:
    if request.get("AlarmNames") and alarm["AlarmName"] not in request["AlarmNames"]:
        return False
    if request.get("StateValue") and alarm["StateValue"] != request["StateValue"]:
        return False
    prefix = request.get("ActionPrefix")
    if prefix:
        actions = [arn for member in alarm_config.ACTION_LISTS for arn in alarm.get(member, [])]
        if not any(arn.startswith(prefix) for arn in actions):
            return False
    return True


def _relatives(ctx: RequestContext, request: dict[str, Any]) -> list[dict[str, Any]]:
    if request.get("ChildrenOfAlarmName"):
        parent = alarm_store.get(ctx.platform, request["ChildrenOfAlarmName"])
        if parent is None or parent["AlarmType"] != "CompositeAlarm":
            return []
        names = alarm_rule.referenced_alarms(alarm_rule.parse(parent["AlarmRule"]))
    else:
        names = alarm_loop.parents_of(ctx.platform, request["ParentsOfAlarmName"])
    found = [alarm_store.get(ctx.platform, name) for name in sorted(set(names))]
    return [alarm for alarm in found if alarm is not None]


def _describe(alarm: dict[str, Any], brief: Any) -> dict[str, Any]:
    if brief:
        return {member: alarm[member] for member in BRIEF_MEMBERS if member in alarm}
    return alarm_store.public(alarm)


def describe_alarms_for_metric(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    wanted_dimensions = _dimension_set(request.get("Dimensions"))

    def watches(metric: dict[str, Any], period: Any, statistic: Any, unit: Any) -> bool:
        if (metric.get("Namespace"), metric.get("MetricName")) != (
                request["Namespace"], request["MetricName"]):
            return False
        if wanted_dimensions is not None and _dimension_set(
                metric.get("Dimensions")) != wanted_dimensions:
            return False
        wanted_statistic = request.get("Statistic") or request.get("ExtendedStatistic")
        if wanted_statistic and statistic != wanted_statistic:
            return False
        if request.get("Period") and period != request["Period"]:
            return False
        return not (request.get("Unit") and unit != request["Unit"])

    found = []
    for alarm in alarm_store.list_alarms(ctx.platform, "MetricAlarm"):
        if alarm.get("Metrics"):
            hit = any(watches(query["MetricStat"]["Metric"], query["MetricStat"]["Period"],
                              query["MetricStat"]["Stat"], query["MetricStat"].get("Unit"))
                      for query in alarm["Metrics"] if query.get("MetricStat"))
        else:
            hit = watches(alarm, alarm.get("Period"),
                          alarm.get("Statistic") or alarm.get("ExtendedStatistic"),
                          alarm.get("Unit"))
        if hit:
            found.append(alarm_store.public(alarm))
    return {"MetricAlarms": found}


def _dimension_set(dimensions: list[dict[str, str]] | None) -> frozenset | None:
    if dimensions is None:
        return None
    return frozenset((d["Name"], d["Value"]) for d in dimensions)


def describe_alarm_history(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request.get("AlarmName")
    types = request.get("AlarmTypes") or (["MetricAlarm", "CompositeAlarm"] if name
                                          else ["MetricAlarm"])
    items, token = alarm_store.history_page(
        ctx.platform, alarm_name=name, alarm_types=types,
        item_type=request.get("HistoryItemType"), start=request.get("StartDate"),
        end=request.get("EndDate"),
        descending=request.get("ScanBy", "TimestampDescending") == "TimestampDescending",
        max_records=request.get("MaxRecords", 100), next_token=request.get("NextToken"))
    result: dict[str, Any] = {"AlarmHistoryItems": items}
    if token:
        result["NextToken"] = token
    return result


def delete_alarms(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    names = list(dict.fromkeys(request["AlarmNames"]))
    alarms = {name: alarm_store.get(ctx.platform, name) for name in names}
    composites = [name for name, alarm in alarms.items()
                  if alarm and alarm["AlarmType"] == "CompositeAlarm"]
    if len(composites) > 1:
        raise AwsError("ValidationError", "DeleteAlarms deletes at most one composite alarm "
                       f"per call; this call names {len(composites)}: "
                       f"{', '.join(composites)}.")
    for name, alarm in alarms.items():
        if alarm is None:
            continue
        users = [parent for parent in alarm_loop.parents_of(ctx.platform, name)
                 if parent not in alarms]
        if users:
            raise AwsError("ValidationError", f"Alarm {name!r} is used in the rule of "
                           f"composite alarm(s) {', '.join(users)}. Change or delete those "
                           "first.")
    alarm_store.delete_alarms(ctx.platform, [name for name, alarm in alarms.items() if alarm],
                              now=ctx.now)
    return {}


def set_alarm_state(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["AlarmName"]
    data = request.get("StateReasonData")
    if data:
        try:
            json.loads(data)
        except ValueError as error:
            raise AwsError("InvalidFormat", f"StateReasonData must be a JSON document: "
                           f"{error}.") from None
    if alarm_store.get(ctx.platform, name) is None:
        raise _not_found(name)
    platform = ctx.platform
    done = alarm_store.transition(
        platform, name, request["StateValue"], request["StateReason"], data or "",
        now=ctx.now, deliveries=lambda before, after, history_id: deliveries_for(
            platform, before, after, history_id))
    if done is not None:
        alarm_loop.state_changed(platform, name)
    return {}


def _set_actions_enabled(ctx: RequestContext, request: dict[str, Any],
                         enabled: bool) -> dict[str, Any]:
    for name in request["AlarmNames"]:
        alarm_store.change(ctx.platform, name, lambda alarm: {**alarm, "ActionsEnabled": enabled},
                           now=ctx.now)
    return {}


def enable_alarm_actions(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return _set_actions_enabled(ctx, request, True)


def disable_alarm_actions(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return _set_actions_enabled(ctx, request, False)


def _alarm_for_arn(ctx: RequestContext, arn: str) -> dict[str, Any]:
    alarm = alarm_store.get_by_arn(ctx.platform, arn)
    if alarm is None:
        raise AwsError("ResourceNotFoundException", f"No alarm has the ARN {arn}. Tags here "
                       "apply to alarms; check the ARN with DescribeAlarms.", status=404,
                       ResourceType="Alarm", ResourceId=arn)
    return alarm


def tag_resource(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    alarm = _alarm_for_arn(ctx, request["ResourceARN"])

    def edit(current: dict[str, Any]) -> dict[str, Any]:
        tags = {tag["Key"]: tag["Value"] for tag in current.get("Tags", [])}
        tags.update({tag["Key"]: tag["Value"] for tag in request["Tags"]})
        if len(tags) > 50:
            raise AwsError("InvalidParameterValueException", "An alarm can have at most 50 "
                           "tags; remove some with UntagResource first.")
        return {**current, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}

    alarm_store.change(ctx.platform, alarm["AlarmName"], edit, now=ctx.now)
    return {}


def untag_resource(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    alarm = _alarm_for_arn(ctx, request["ResourceARN"])
    keys = set(request["TagKeys"])
    alarm_store.change(ctx.platform, alarm["AlarmName"], lambda current: {
        **current, "Tags": [tag for tag in current.get("Tags", []) if tag["Key"] not in keys]},
        now=ctx.now)
    return {}


def list_tags_for_resource(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return {"Tags": _alarm_for_arn(ctx, request["ResourceARN"]).get("Tags", [])}


OPERATIONS = {
    "PutMetricAlarm": put_metric_alarm,
    "PutCompositeAlarm": put_composite_alarm,
    "DescribeAlarms": describe_alarms,
    "DescribeAlarmsForMetric": describe_alarms_for_metric,
    "DescribeAlarmHistory": describe_alarm_history,
    "DeleteAlarms": delete_alarms,
    "SetAlarmState": set_alarm_state,
    "EnableAlarmActions": enable_alarm_actions,
    "DisableAlarmActions": disable_alarm_actions,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags_for_resource,
}
