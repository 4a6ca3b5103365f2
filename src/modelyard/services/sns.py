"""SNS operation handlers (query protocol): topics, subscriptions, Publish, tags.

The domain lives in ``modelyard.sns``; these handlers read requests and shape answers.
"""

from __future__ import annotations

from typing import Any

from ..api.context import RequestContext
from ..api.errors import AwsError
from ..sns import subscriptions
from ..sns.publish import fan_out, prepare, publish_sms
from ..sns.topics import (
    CONFIRMED, SUBSCRIPTION_KIND, TOPIC_KIND, TOPIC_NAME, check_topic_attribute, get_topic,
    invalid, parse_arn, subscription_attributes, topic_arn, topic_attributes,
)
from ..store.resources import ListQuery, Resource

PAGE_SIZE = 100
MAX_TAGS = 50


# --- topics -----------------------------------------------------------------------------


def create_topic(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    name = request["Name"]
    attributes = request.get("Attributes") or {}
    if name.endswith(".fifo"):
        check_topic_attribute("FifoTopic", "true")
    if not TOPIC_NAME.match(name):
        raise invalid("Topic Name Reason: a topic name is 1 to 256 of A-Z a-z 0-9 _ -")
    for attribute, value in attributes.items():
        check_topic_attribute(attribute, value)
    attributes = {key: value for key, value in attributes.items() if key != "FifoTopic"}
    if request.get("DataProtectionPolicy"):
        check_topic_attribute("DataProtectionPolicy", request["DataProtectionPolicy"])
        attributes["DataProtectionPolicy"] = request["DataProtectionPolicy"]
    tags = _check_tags(request.get("Tags") or [])
    arn = topic_arn(ctx.platform, name)
    existing = ctx.platform.resources.get(TOPIC_KIND, name)
    if existing is None:
        try:
            ctx.platform.resources.create(
                TOPIC_KIND, name, arn, {"Attributes": attributes, "Tags": tags},
                now=ctx.now)
            return {"TopicArn": arn}
        except AwsError:  # created concurrently: answer as for an existing topic
            existing = ctx.platform.resources.get(TOPIC_KIND, name)
    if existing.name != name:
        raise invalid(f"Topic Name Reason: topic {existing.name!r} exists; modelyard keeps "
                      "topic names case-insensitively, so choose a name that differs by "
                      "more than case")
    current = existing.document.get("Attributes", {})
    if any(current.get(key, "") != value for key, value in attributes.items()):
        raise invalid("Attributes Reason: Topic already exists with different attributes")
    if tags and any(tag not in existing.document.get("Tags", []) for tag in tags):
        raise invalid("Tags Reason: Topic already exists with different tags")
    return {"TopicArn": existing.arn}


def delete_topic(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    arn = request["TopicArn"]
    parse_arn(arn)
    topic = ctx.platform.resources.get_by_arn(arn)
    if topic is None or topic.kind != TOPIC_KIND:
        return {}  # deleting a topic that does not exist succeeds, as on AWS
    from ..sns.topics import list_all

    for subscription in list_all(ctx.platform, SUBSCRIPTION_KIND, topic.arn):
        ctx.platform.resources.delete(SUBSCRIPTION_KIND, subscription.name)
    ctx.platform.resources.delete(TOPIC_KIND, topic.name)
    return {}


def list_topics(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    page = ctx.platform.resources.list(TOPIC_KIND, ListQuery(
        descending=False, max_results=PAGE_SIZE, next_token=request.get("NextToken")))
    return {"Topics": [{"TopicArn": item.arn} for item in page.items],
            "NextToken": page.next_token}


def get_topic_attributes(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    topic = get_topic(ctx.platform, request["TopicArn"])
    return {"Attributes": topic_attributes(ctx.platform, topic)}


def set_topic_attributes(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    topic = get_topic(ctx.platform, request["TopicArn"])
    name, value = request["AttributeName"], request.get("AttributeValue") or ""
    check_topic_attribute(name, value)

    def change(current: Resource) -> dict[str, Any]:
        attributes = dict(current.document.get("Attributes", {}))
        if value == "" and name != "DisplayName":
            attributes.pop(name, None)
        else:
            attributes[name] = value
        return {**current.document, "Attributes": attributes}

    ctx.platform.resources.update(TOPIC_KIND, topic.name, change, now=ctx.now,
                                  missing=lambda: AwsError("NotFound", "Topic does not exist",
                                                           404))
    return {}


# --- subscriptions ----------------------------------------------------------------------


def subscribe(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    arn = subscriptions.subscribe(
        ctx.platform, request["TopicArn"], request["Protocol"], request.get("Endpoint"),
        request.get("Attributes"), return_arn=bool(request.get("ReturnSubscriptionArn")))
    return {"SubscriptionArn": arn}


def confirm_subscription(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    authenticated = str(request.get("AuthenticateOnUnsubscribe", "")).lower() == "true"
    arn = subscriptions.confirm(ctx.platform, request["TopicArn"], request["Token"],
                                authenticated=authenticated)
    return {"SubscriptionArn": arn}


def unsubscribe(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    subscriptions.unsubscribe(ctx.platform, request["SubscriptionArn"])
    return {}


def list_subscriptions(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    return _subscription_page(ctx, None, request.get("NextToken"))


def list_subscriptions_by_topic(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    topic = get_topic(ctx.platform, request["TopicArn"])
    return _subscription_page(ctx, topic.arn, request.get("NextToken"))


def _subscription_page(ctx: RequestContext, parent: str | None,
                       token: str | None) -> dict[str, Any]:
    page = ctx.platform.resources.list(SUBSCRIPTION_KIND, ListQuery(
        parent=parent, descending=False, max_results=PAGE_SIZE, next_token=token))
    items = [{
        "SubscriptionArn": item.arn if item.status == CONFIRMED else "PendingConfirmation",
        "Owner": item.document["Owner"], "Protocol": item.document["Protocol"],
        "Endpoint": item.document["Endpoint"], "TopicArn": item.document["TopicArn"],
    } for item in page.items]
    return {"Subscriptions": items, "NextToken": page.next_token}


def get_subscription_attributes(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    from ..sns.topics import get_subscription

    subscription = get_subscription(ctx.platform, request["SubscriptionArn"])
    return {"Attributes": subscription_attributes(subscription)}


def set_subscription_attributes(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    subscriptions.set_attribute(ctx.platform, request["SubscriptionArn"],
                                request["AttributeName"], request.get("AttributeValue"))
    return {}


# --- publishing -------------------------------------------------------------------------


def publish(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    targets = [name for name in ("TopicArn", "TargetArn", "PhoneNumber") if request.get(name)]
    if not targets:
        raise invalid("TopicArn or TargetArn Reason: no value for required parameter")
    if len(targets) > 1:
        raise invalid(f"{targets[1]} Reason: give only one of TopicArn, TargetArn and "
                      "PhoneNumber")
    for fifo_only in ("MessageGroupId", "MessageDeduplicationId"):
        if request.get(fifo_only):
            raise invalid(f"{fifo_only} Reason: The request includes {fifo_only} parameter "
                          "that is not valid for this topic type")
    prepared = prepare(request.get("Message"), subject=request.get("Subject"),
                       message_attributes=request.get("MessageAttributes"),
                       message_structure=request.get("MessageStructure"))
    if targets[0] == "PhoneNumber":
        return {"MessageId": publish_sms(ctx.platform, request["PhoneNumber"], prepared)}
    topic = get_topic(ctx.platform, request[targets[0]], targets[0])
    return {"MessageId": fan_out(ctx.platform, topic, prepared)}


def publish_batch(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    topic = get_topic(ctx.platform, request["TopicArn"])
    entries = request.get("PublishBatchRequestEntries") or []
    if not entries:
        raise AwsError("EmptyBatchRequest", "The batch request doesn't contain any entries.")
    if len(entries) > 10:
        raise AwsError("TooManyEntriesInBatchRequest",
                       f"The batch request contains {len(entries)} entries; the limit is 10.")
    ids = [entry["Id"] for entry in entries]
    if len(set(ids)) != len(ids):
        raise AwsError("BatchEntryIdsNotDistinct",
                       "Two or more batch entries in the request have the same Id.")
    total = sum(len(entry.get("Message", "").encode()) for entry in entries)
    if total > 262_144:
        raise AwsError("BatchRequestTooLong", f"The batch's messages add up to {total} "
                       "bytes; the limit for the whole batch is 262144 bytes.")
    successful, failed = [], []
    for entry in entries:
        try:
            if not all(ch.isalnum() or ch in "-_" for ch in entry["Id"]) or len(entry["Id"]) > 80:
                raise AwsError("InvalidBatchEntryId", "An Id is 1 to 80 of A-Z a-z 0-9 - _.")
            for fifo_only in ("MessageGroupId", "MessageDeduplicationId"):
                if entry.get(fifo_only):
                    raise invalid(f"{fifo_only} Reason: not valid for a standard topic")
            prepared = prepare(entry.get("Message"), subject=entry.get("Subject"),
                               message_attributes=entry.get("MessageAttributes"),
                               message_structure=entry.get("MessageStructure"))
            successful.append({"Id": entry["Id"],
                               "MessageId": fan_out(ctx.platform, topic, prepared)})
        except AwsError as error:
            failed.append({"Id": entry["Id"], "Code": error.code, "Message": error.message,
                           "SenderFault": error.sender_fault})
    return {"Successful": successful, "Failed": failed}


# --- tags -------------------------------------------------------------------------------


def _check_tags(tags: list[dict[str, str]]) -> list[dict[str, str]]:
    if len(tags) > MAX_TAGS:
        raise AwsError("TagLimitExceeded", f"A topic has at most {MAX_TAGS} tags.")
    keys = [tag["Key"] for tag in tags]
    if len(set(keys)) != len(keys):
        raise invalid("Tags Reason: duplicate tag keys")
    return [{"Key": tag["Key"], "Value": tag.get("Value", "")} for tag in tags]


def _tagged_topic(ctx: RequestContext, arn: str) -> Resource:
    try:
        return get_topic(ctx.platform, arn, "ResourceArn")
    except AwsError as error:
        if error.code == "NotFound":
            raise AwsError("ResourceNotFound", "Resource does not exist", 404) from None
        raise


def tag_resource(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    topic = _tagged_topic(ctx, request["ResourceArn"])
    new = {tag["Key"]: tag.get("Value", "") for tag in _check_tags(request["Tags"])}

    def change(current: Resource) -> dict[str, Any]:
        tags = {tag["Key"]: tag["Value"] for tag in current.document.get("Tags", [])}
        tags.update(new)
        if len(tags) > MAX_TAGS:
            raise AwsError("TagLimitExceeded", f"A topic has at most {MAX_TAGS} tags.")
        return {**current.document, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}

    ctx.platform.resources.update(TOPIC_KIND, topic.name, change, now=ctx.now,
                                  missing=lambda: AwsError("ResourceNotFound", "Resource does "
                                                           "not exist", 404))
    return {}


def untag_resource(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    topic = _tagged_topic(ctx, request["ResourceArn"])
    remove = set(request["TagKeys"])
    ctx.platform.resources.update(
        TOPIC_KIND, topic.name,
        lambda current: {**current.document, "Tags": [
            tag for tag in current.document.get("Tags", []) if tag["Key"] not in remove]},
        now=ctx.now, missing=lambda: AwsError("ResourceNotFound", "Resource does not exist",
                                              404))
    return {}


def list_tags_for_resource(ctx: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
    topic = _tagged_topic(ctx, request["ResourceArn"])
    return {"Tags": topic.document.get("Tags", [])}


OPERATIONS: dict[str, Any] = {
    "CreateTopic": create_topic,
    "DeleteTopic": delete_topic,
    "ListTopics": list_topics,
    "GetTopicAttributes": get_topic_attributes,
    "SetTopicAttributes": set_topic_attributes,
    "Subscribe": subscribe,
    "ConfirmSubscription": confirm_subscription,
    "Unsubscribe": unsubscribe,
    "ListSubscriptions": list_subscriptions,
    "ListSubscriptionsByTopic": list_subscriptions_by_topic,
    "GetSubscriptionAttributes": get_subscription_attributes,
    "SetSubscriptionAttributes": set_subscription_attributes,
    "Publish": publish,
    "PublishBatch": publish_batch,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags_for_resource,
}
