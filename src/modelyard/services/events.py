"""EventBridge (botocore ``events``) on the default bus: rules, targets, events, patterns.

Rules live in the resource store (``modelyard.events.rules``); matching, schedules and
deliveries are in ``modelyard.events``. Only the ``default`` bus exists: naming another
bus answers ResourceNotFoundException saying so.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError, validation_error
from ..events import rules as store
from ..events.bus import make_event, publish_event
from ..events.patterns import compile_pattern, matches
from ..events.rules import DEFAULT_BUS, DISABLED, ENABLED
from ..events.schedule import parse_schedule
from ..events.scheduler import first_fire
from ..events.targets import check_target

MAX_TARGETS_PER_RULE = 5
MAX_PUT_EVENTS_BYTES = 256 * 1024
MIN_TIME, MAX_TIME = 0.0, 253402300799.0  # what an event's ISO 8601 time can show
_RULE_MEMBERS = ("Name", "Arn", "EventPattern", "ScheduleExpression", "State", "Description",
                 "RoleArn", "ManagedBy", "EventBusName")
_EVENT_FIELDS = ("id", "account", "source", "time", "region", "resources", "detail-type")


def _check_bus(ctx: RequestContext, bus: str | None) -> None:
    if bus is None or bus == DEFAULT_BUS or bus == _bus_arn(ctx):
        return
    raise AwsError("ResourceNotFoundException",
                   f"Event bus {bus} does not exist. modelyard has only the default event bus: "
                   "leave EventBusName out or pass \"default\".")


def _bus_arn(ctx: RequestContext) -> str:
    return ctx.arn("events", f"event-bus/{DEFAULT_BUS}")


def _rule_arn(ctx: RequestContext, name: str) -> str:
    return ctx.arn("events", f"rule/{name}")


def _enabled(state: str) -> bool:
    return state != DISABLED


# --- rules ---------------------------------------------------------------------------------


def put_rule(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _check_bus(ctx, request.get("EventBusName"))
    name = request["Name"]
    pattern, schedule = request.get("EventPattern"), request.get("ScheduleExpression")
    if not pattern and not schedule:
        raise validation_error("Parameter(s) EventPattern or ScheduleExpression must be "
                               "specified.")
    if pattern:
        compile_pattern(pattern)
    parsed = parse_schedule(schedule) if schedule else None
    state = request.get("State", ENABLED)
    now = ctx.now
    fields: dict[str, Any] = {
        "Name": name, "Arn": _rule_arn(ctx, name), "State": state,
        "EventBusName": DEFAULT_BUS, "CreatedBy": ctx.account_id,
        "EventPattern": pattern, "ScheduleExpression": schedule,
        "Description": request.get("Description"), "RoleArn": request.get("RoleArn"),
    }

    def schedule_fields(previous: dict[str, Any] | None) -> dict[str, Any]:
        if parsed is None:
            return {"_next_fire": None, "_anchor": None}
        unchanged = (previous is not None and previous.get("ScheduleExpression") == schedule
                     and _enabled(previous["State"]) == _enabled(state)
                     and previous.get("_next_fire") is not None)
        if unchanged:
            return {"_next_fire": previous["_next_fire"], "_anchor": previous.get("_anchor")}
        next_fire, anchor = first_fire(parsed, now)
        return {"_next_fire": next_fire if _enabled(state) else None, "_anchor": anchor}

    existing = store.find_rule(ctx.platform, name)
    if existing is None:
        document = {**fields, **schedule_fields(None), "Targets": [],
                    "Tags": request.get("Tags", [])}
        store.create_rule(ctx.platform, name, fields["Arn"], document)
    else:
        def change(document: dict[str, Any]) -> None:
            previous = dict(document)
            document.update(fields)
            document.update(schedule_fields(previous))

        store.update_rule(ctx.platform, name, change)
    return {"RuleArn": fields["Arn"]}


def _rule_view(document: dict[str, Any]) -> dict[str, Any]:
    return {member: document[member] for member in _RULE_MEMBERS
            if document.get(member) is not None}


def describe_rule(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _check_bus(ctx, request.get("EventBusName"))
    document = store.get_rule(ctx.platform, request["Name"]).document
    return {**_rule_view(document), "CreatedBy": document.get("CreatedBy", ctx.account_id)}


def _offset_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
        if offset < 0:
            raise ValueError
        return offset
    except Exception:
        raise validation_error("The NextToken is not valid: pass it exactly as the previous "
                               "response returned it.") from None


def _page(items: list[Any], request: dict[str, Any]) -> tuple[list[Any], str | None]:
    offset = _offset_token(request.get("NextToken"))
    limit = request.get("Limit", 100)
    page = items[offset:offset + limit]
    token = None
    if offset + limit < len(items):
        token = base64.urlsafe_b64encode(json.dumps({"o": offset + limit}).encode()).decode()
    return page, token


def list_rules(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _check_bus(ctx, request.get("EventBusName"))
    prefix = request.get("NamePrefix")
    rules = [rule for rule in store.all_rules(ctx.platform)
             if not prefix or rule.name.startswith(prefix)]
    page, token = _page(rules, request)
    return {"Rules": [_rule_view(rule.document) for rule in page], "NextToken": token}


def list_rule_names_by_target(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _check_bus(ctx, request.get("EventBusName"))
    names = [rule.name for rule in store.all_rules(ctx.platform)
             if any(target["Arn"] == request["TargetArn"]
                    for target in rule.document.get("Targets", []))]
    page, token = _page(names, request)
    return {"RuleNames": page, "NextToken": token}


def _set_state(ctx: RequestContext, request: dict[str, Any], state: str) -> dict[str, Any]:
    _check_bus(ctx, request.get("EventBusName"))
    name = request["Name"]
    store.get_rule(ctx.platform, name)
    now = ctx.now

    def change(document: dict[str, Any]) -> None:
        was_enabled = _enabled(document["State"])
        document["State"] = state
        schedule = document.get("ScheduleExpression")
        if not schedule:
            return
        if state == DISABLED:
            document["_next_fire"] = None
        elif not was_enabled or document.get("_next_fire") is None:
            document["_next_fire"], document["_anchor"] = first_fire(parse_schedule(schedule), now)

    store.update_rule(ctx.platform, name, change)
    return {}


def enable_rule(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return _set_state(ctx, request, ENABLED)


def disable_rule(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return _set_state(ctx, request, DISABLED)


def delete_rule(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _check_bus(ctx, request.get("EventBusName"))
    name = request["Name"]
    rule = store.find_rule(ctx.platform, name)
    if rule is None:
        return {}  # deleting a rule that is not there succeeds, as in EventBridge
    if rule.document.get("Targets") and not request.get("Force"):
        raise validation_error("Rule can't be deleted since it has targets. Remove them with "
                               "RemoveTargets first.")
    store.delete_rule(ctx.platform, name)
    return {}


# --- targets -------------------------------------------------------------------------------


def put_targets(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _check_bus(ctx, request.get("EventBusName"))
    name = request["Rule"]
    current = store.get_rule(ctx.platform, name).document.get("Targets", [])
    failed: list[dict[str, Any]] = []
    accepted: list[dict[str, Any]] = []
    for target in request["Targets"]:
        problem = check_target(target)
        if problem is not None:
            failed.append({"TargetId": target["Id"], "ErrorCode": "ValidationException",
                           "ErrorMessage": problem})
        else:
            accepted.append(target)
    ids = {target["Id"] for target in accepted}
    merged = [target for target in current if target["Id"] not in ids] + accepted
    if len(merged) > MAX_TARGETS_PER_RULE:
        raise AwsError("LimitExceededException",
                       f"The requested resource exceeds the maximum number allowed: a rule has "
                       f"at most {MAX_TARGETS_PER_RULE} targets (rule {name} would have "
                       f"{len(merged)}).")
    if accepted:
        def change(document: dict[str, Any]) -> None:
            existing = [target for target in document.get("Targets", [])
                        if target["Id"] not in ids]
            document["Targets"] = existing + accepted

        store.update_rule(ctx.platform, name, change)
    return {"FailedEntryCount": len(failed), "FailedEntries": failed}


def remove_targets(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _check_bus(ctx, request.get("EventBusName"))
    name = request["Rule"]
    store.get_rule(ctx.platform, name)
    ids = set(request["Ids"])

    def change(document: dict[str, Any]) -> None:
        document["Targets"] = [target for target in document.get("Targets", [])
                               if target["Id"] not in ids]

    store.update_rule(ctx.platform, name, change)
    return {"FailedEntryCount": 0, "FailedEntries": []}


def list_targets_by_rule(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _check_bus(ctx, request.get("EventBusName"))
    targets = store.get_rule(ctx.platform, request["Rule"]).document.get("Targets", [])
    page, token = _page(targets, request)
    return {"Targets": page, "NextToken": token}


# --- events --------------------------------------------------------------------------------


def _entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as EventBridge counts it toward the 256 KB of a request."""
    size = 14 if "Time" in entry else 0
    for member in ("Source", "DetailType", "Detail"):
        size += len(entry.get(member, "").encode())
    size += sum(len(resource.encode()) for resource in entry.get("Resources", []))
    return size


def _entry_problem(ctx: RequestContext, entry: dict[str, Any]) -> tuple[str, str] | None:
    bus = entry.get("EventBusName")
    if bus is not None and bus not in (DEFAULT_BUS, _bus_arn(ctx)):
        return ("InvalidArgument", f"Event bus {bus} does not exist. modelyard has only the "
                "default event bus.")
    for member in ("Source", "DetailType", "Detail"):
        if not entry.get(member):
            return ("InvalidArgument",
                    f"Parameter {member} is not valid. Reason: {member} is a required argument.")
    if entry["Source"].startswith("aws."):
        return ("NotAuthorizedForSourceException", "Not authorized for the source.")
    detail = _json_or_none(entry["Detail"])
    if not isinstance(detail, dict):
        return ("MalformedDetail", "Detail is malformed.")
    if "Time" in entry and not MIN_TIME <= entry["Time"] <= MAX_TIME:
        return ("InvalidArgument", "Parameter Time is not valid: give a time between 1970 "
                "and 9999.")
    return None


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def put_events(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    entries = request["Entries"]
    if sum(_entry_size(entry) for entry in entries) > MAX_PUT_EVENTS_BYTES:
        raise validation_error("Total size of the entries in the request is over the limit "
                               f"of {MAX_PUT_EVENTS_BYTES} bytes. Send fewer or smaller events.")
    results: list[dict[str, Any]] = []
    for entry in entries:
        problem = _entry_problem(ctx, entry)
        if problem is not None:
            results.append({"ErrorCode": problem[0], "ErrorMessage": problem[1]})
            continue
        event = make_event(ctx.platform, entry["Source"], entry["DetailType"],
                           json.loads(entry["Detail"]), entry.get("Resources", []),
                           time=entry.get("Time"))
        publish_event(ctx.platform, event)
        results.append({"EventId": event["id"]})
    failed = sum(1 for result in results if "ErrorCode" in result)
    return {"FailedEntryCount": failed, "Entries": results}


def test_event_pattern(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    pattern = compile_pattern(request["EventPattern"])
    event = _json_or_none(request["Event"])
    if event is None:
        raise validation_error("Parameter Event is not valid: it is not JSON (or is nested "
                               "too deeply).")
    missing = [field for field in _EVENT_FIELDS
               if not isinstance(event, dict) or field not in event]
    if missing:
        raise validation_error(
            "Parameter Event is not valid. The event must have the fields "
            f"{', '.join(_EVENT_FIELDS)} (resources may be []); missing: {', '.join(missing)}.")
    try:
        return {"Result": matches(pattern, event)}
    except RecursionError:
        raise validation_error("Parameter Event is not valid: it is nested too deeply.") from None


def describe_event_bus(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    _check_bus(ctx, request.get("Name"))
    return {"Name": DEFAULT_BUS, "Arn": _bus_arn(ctx)}


# --- tags ----------------------------------------------------------------------------------


def _rule_of_arn(ctx: RequestContext, arn: str) -> str:
    prefix = ctx.arn("events", "rule/")
    if not arn.startswith(prefix) or "/" in arn[len(prefix):]:
        raise AwsError("ResourceNotFoundException",
                       f"{arn} is not the ARN of a rule on the default event bus "
                       f"({prefix}<name>).")
    name = arn[len(prefix):]
    store.get_rule(ctx.platform, name)
    return name


def tag_resource(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = _rule_of_arn(ctx, request["ResourceARN"])
    new = {tag["Key"]: tag["Value"] for tag in request["Tags"]}

    def change(document: dict[str, Any]) -> None:
        tags = [tag for tag in document.get("Tags", []) if tag["Key"] not in new]
        document["Tags"] = tags + [{"Key": key, "Value": value} for key, value in new.items()]

    store.update_rule(ctx.platform, name, change)
    return {}


def untag_resource(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = _rule_of_arn(ctx, request["ResourceARN"])
    keys = set(request["TagKeys"])

    def change(document: dict[str, Any]) -> None:
        document["Tags"] = [tag for tag in document.get("Tags", []) if tag["Key"] not in keys]

    store.update_rule(ctx.platform, name, change)
    return {}


def list_tags_for_resource(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = _rule_of_arn(ctx, request["ResourceARN"])
    return {"Tags": store.get_rule(ctx.platform, name).document.get("Tags", [])}


OPERATIONS: dict[str, Any] = {
    "PutRule": put_rule,
    "DescribeRule": describe_rule,
    "ListRules": list_rules,
    "ListRuleNamesByTarget": list_rule_names_by_target,
    "EnableRule": enable_rule,
    "DisableRule": disable_rule,
    "DeleteRule": delete_rule,
    "PutTargets": put_targets,
    "RemoveTargets": remove_targets,
    "ListTargetsByRule": list_targets_by_rule,
    "PutEvents": put_events,
    "TestEventPattern": test_event_pattern,
    "DescribeEventBus": describe_event_bus,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags_for_resource,
}
