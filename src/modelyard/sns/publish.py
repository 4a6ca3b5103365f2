"""SNS Publish: validate a message, then promise one durable delivery per subscription.

``publish`` is the seam the rest of modelyard uses (alarm actions, EventBridge targets);
the Publish and PublishBatch handlers use ``prepare`` and ``fan_out`` directly. Every
delivery of one message is enqueued in a single transaction, so a server killed during
Publish either delivers the message to all matching subscriptions or to none (and the
client saw no MessageId); after that, each delivery survives restarts (at least once).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from ..api.shapes import format_iso8601
from .filters import matches_attributes, matches_body, parse_policy
from .topics import CONFIRMED, SUBSCRIPTION_KIND, get_topic, invalid, list_all

if TYPE_CHECKING:
    from ..platform import Platform
    from ..store.resources import Resource

# A message and its attributes together: 256 KiB, as on AWS.
MAX_MESSAGE_BYTES = 262_144
PROTOCOL_KINDS = {"http": "sns-http", "https": "sns-http", "lambda": "sns-lambda",
                  "email": "sns-mail", "email-json": "sns-mail", "sms": "sns-mail"}
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
# "UTF-8 text with no line breaks or control characters, and less than 100 characters".
_SUBJECT = re.compile(r"^[^\x00-\x1f\x7f]{1,99}$")


@dataclass(frozen=True)
class Prepared:
    """A validated message, ready to fan out."""

    message: str
    subject: str | None = None
    # MessageStructure=json: the message per protocol ("default" is required).
    per_protocol: dict[str, str] | None = None
    # As Publish received them: {name: {DataType, StringValue | BinaryValue}}.
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def message_for(self, protocol: str) -> str:
        if self.per_protocol is None:
            return self.message
        return self.per_protocol.get(protocol, self.per_protocol["default"])

    def envelope_attributes(self) -> dict[str, dict[str, str]]:
        """The ``MessageAttributes`` of SNS's JSON envelope: {name: {Type, Value}}."""
        result = {}
        for name, attribute in self.attributes.items():
            value = attribute.get("StringValue")
            if value is None and attribute.get("BinaryValue") is not None:
                value = base64.b64encode(attribute["BinaryValue"]).decode()
            result[name] = {"Type": attribute["DataType"], "Value": value}
        return result


def publish(platform: "Platform", topic_arn: str, message: str, *, subject: str | None = None,
            message_attributes: dict | None = None,
            message_structure: str | None = None, key: str | None = None) -> str:
    """Publish `message` to `topic_arn`; return the message id (AwsError NotFound if no topic).

    ``key`` (e.g. the caller's own delivery key) makes the publish idempotent: the same key
    gives the same message id, and its deliveries are promised once, so an at-least-once
    caller that runs again after a crash does not notify twice.
    """
    topic = get_topic(platform, topic_arn)
    prepared = prepare(message, subject=subject, message_attributes=message_attributes,
                       message_structure=message_structure)
    message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"modelyard-sns:{key}")) if key else None
    return fan_out(platform, topic, prepared, message_id=message_id)


def prepare(message: str | None, *, subject: str | None = None,
            message_attributes: dict | None = None,
            message_structure: str | None = None) -> Prepared:
    """Check a message as SNS does; AwsError (InvalidParameter...) saying what is wrong."""
    if message is None or message == "":
        raise invalid("Empty message")
    if subject is not None and not _SUBJECT.match(subject):
        raise invalid("Subject Reason: a subject is 1 to 99 characters, without line "
                      "breaks or control characters")
    attributes = _check_attributes(message_attributes or {})
    size = len(message.encode("utf-8")) + sum(
        len(name.encode()) + len(value["DataType"].encode())
        + len((value.get("StringValue") or "").encode()) + len(value.get("BinaryValue") or b"")
        for name, value in attributes.items())
    if size > MAX_MESSAGE_BYTES:
        raise invalid(f"Message too long: the message and its attributes are {size} bytes; "
                      f"the limit is {MAX_MESSAGE_BYTES} bytes (256 KiB)")
    per_protocol = None
    if message_structure is not None:
        if message_structure != "json":
            raise invalid(f"MessageStructure Reason: {message_structure!r} is not supported; "
                          "the only value is json")
        per_protocol = _per_protocol(message)
    return Prepared(message, subject, per_protocol, attributes)


def _per_protocol(message: str) -> dict[str, str]:
    try:
        messages = json.loads(message)
    except ValueError:
        raise invalid("Message Structure - JSON message body failed to parse") from None
    if not isinstance(messages, dict):
        raise invalid("Message Structure - JSON message body failed to parse")
    if "default" not in messages:
        raise invalid("Message Structure - No default entry in JSON message body")
    for protocol, text in messages.items():
        if not isinstance(text, str):
            raise invalid(f"Message Structure - the message for {protocol!r} must be a "
                          "string (JSON-encode structured messages)")
    if messages["default"] == "":
        raise invalid("Message Structure - the default message is empty")
    return messages


def _check_attributes(attributes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    for name, attribute in attributes.items():
        if (not _ATTRIBUTE_NAME.match(name) or name.startswith(".") or name.endswith(".")
                or ".." in name or name.lower().startswith(("aws.", "amazon."))):
            raise _bad_attribute(
                f"The message attribute name '{name}' is invalid: use up to 256 of A-Z a-z "
                "0-9 _ - . (no leading, trailing or double '.', no AWS. or Amazon. prefix).")
        data_type = attribute.get("DataType") or ""
        base = data_type.split(".", 1)[0]
        text = attribute.get("StringValue")
        if base not in ("String", "Number", "Binary"):
            raise _bad_attribute(
                f"The message attribute '{name}' has an invalid message attribute type, the "
                "set of supported type prefixes is Binary, Number, and String.")
        if base == "Binary":
            if not attribute.get("BinaryValue"):
                raise _bad_attribute(
                    f"The message attribute '{name}' with type 'Binary' must use field "
                    "'Binary'.")
            continue
        if not text:
            raise _bad_attribute(
                f"The message attribute '{name}' must contain non-empty message attribute "
                f"value for message attribute type '{data_type}'.")
        if base == "Number":
            try:
                float(text)
            except ValueError:
                raise _bad_attribute(
                    f"Could not cast message attribute '{name}' value to number.") from None
        if data_type == "String.Array":
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if not isinstance(parsed, list):
                raise _bad_attribute(
                    f"The message attribute '{name}' of type String.Array must be a JSON "
                    "array, e.g. [\"a\", 1, true].")
    return attributes


def _bad_attribute(message: str) -> AwsError:
    return AwsError("ParameterValueInvalid", message)


def passes_filter(subscription: "Resource", prepared: Prepared) -> bool:
    attributes = subscription.document.get("Attributes", {})
    text = attributes.get("FilterPolicy")
    if not text:
        return True
    policy = parse_policy(text)
    if attributes.get("FilterPolicyScope") == "MessageBody":
        return matches_body(policy, prepared.message_for(subscription.document["Protocol"]))
    return matches_attributes(policy, prepared.attributes)


def fan_out(platform: "Platform", topic: "Resource", prepared: Prepared, *,
            message_id: str | None = None) -> str:
    """Enqueue one delivery per confirmed, matching subscription; return the message id."""
    message_id = message_id or str(uuid.uuid4())
    timestamp = format_iso8601(platform.clock.now())
    subscriptions = [item for item in list_all(platform, SUBSCRIPTION_KIND, topic.arn)
                     if item.status == CONFIRMED and passes_filter(item, prepared)]
    display_name = topic.document.get("Attributes", {}).get("DisplayName", "")
    with platform.db.write() as connection:
        for subscription in subscriptions:
            document = subscription.document
            protocol = document["Protocol"]
            kind = PROTOCOL_KINDS.get(protocol)
            if kind is None:
                continue
            payload = {
                "Type": "Notification", "MessageId": message_id, "TopicArn": topic.arn,
                "SubscriptionArn": subscription.arn, "Protocol": protocol,
                "Endpoint": document["Endpoint"], "Subject": prepared.subject,
                "Message": prepared.message_for(protocol), "Timestamp": timestamp,
                "MessageAttributes": prepared.envelope_attributes(),
                "Raw": document.get("Attributes", {}).get("RawMessageDelivery") == "true",
                "DisplayName": display_name,
            }
            platform.deliveries.enqueue(kind, f"sns:{message_id}:{subscription.name}",
                                        payload, connection=connection)
    platform.deliveries.wake()
    return message_id


def publish_sms(platform: "Platform", phone_number: str, prepared: Prepared) -> str:
    """Publish with PhoneNumber: one SMS, kept in the outbox like a subscription's."""
    if not re.match(r"^\+?[0-9]{4,15}$", phone_number):
        raise invalid("PhoneNumber Reason: use E.164 format, e.g. +14155550100")
    message_id = str(uuid.uuid4())
    payload = {
        "Type": "Notification", "MessageId": message_id, "TopicArn": None,
        "SubscriptionArn": None, "Protocol": "sms", "Endpoint": phone_number,
        "Subject": prepared.subject, "Message": prepared.message_for("sms"),
        "Timestamp": format_iso8601(platform.clock.now()),
        "MessageAttributes": prepared.envelope_attributes(), "Raw": False, "DisplayName": "",
    }
    platform.deliveries.enqueue("sns-mail", f"sns:{message_id}:sms", payload)
    return message_id
