"""SNS topics and subscriptions as stored resources, and the attributes SNS reports.

A topic is a resource of kind ``sns-topic`` (name = topic name, document = the attributes
a user set, its tags and a count of deleted subscriptions). A subscription is a resource of
kind ``sns-subscription`` named by its id (the last part of its ARN), its parent the
topic's ARN and its status ``PendingConfirmation`` or ``Confirmed``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from ..store.resources import ListQuery, Resource

if TYPE_CHECKING:
    from ..platform import Platform

TOPIC_KIND = "sns-topic"
SUBSCRIPTION_KIND = "sns-subscription"
PENDING, CONFIRMED = "PendingConfirmation", "Confirmed"

TOPIC_NAME = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_ARN = re.compile(r"^arn:aws[a-z-]*:sns:([a-z0-9-]*):(\d{12}):([A-Za-z0-9_.-]{1,256})"
                  r"(?::([0-9a-f-]{36}))?$")

# Attributes a user may set on a topic (SetTopicAttributes / CreateTopic's Attributes).
TOPIC_ATTRIBUTES = {
    "DisplayName", "Policy", "DeliveryPolicy", "KmsMasterKeyId", "TracingConfig",
    "SignatureVersion", "DataProtectionPolicy",
    *(f"{protocol}{what}" for protocol in ("HTTP", "Lambda", "SQS", "Firehose", "Application")
      for what in ("SuccessFeedbackRoleArn", "SuccessFeedbackSampleRate",
                   "FailureFeedbackRoleArn")),
}
# ... and on a subscription (Subscribe's Attributes / SetSubscriptionAttributes).
SUBSCRIPTION_ATTRIBUTES = {
    "DeliveryPolicy", "FilterPolicy", "FilterPolicyScope", "RawMessageDelivery",
    "RedrivePolicy", "SubscriptionRoleArn", "ReplayPolicy",
}

# AWS's default HTTP/S delivery policy: three retries, 20 s apart (modelyard shortens the
# delays, see sns/__init__.py).
DEFAULT_DELIVERY_POLICY = {
    "http": {
        "defaultHealthyRetryPolicy": {
            "minDelayTarget": 20, "maxDelayTarget": 20, "numRetries": 3,
            "numMaxDelayRetries": 0, "numNoDelayRetries": 0, "numMinDelayRetries": 0,
            "backoffFunction": "linear",
        },
        "disableSubscriptionOverrides": False,
        "defaultRequestPolicy": {"headerContentType": "text/plain; charset=UTF-8"},
    }
}


def invalid(what: str) -> AwsError:
    """SNS's InvalidParameter: ``Invalid parameter: <what>``."""
    return AwsError("InvalidParameter", f"Invalid parameter: {what}")


def not_found(what: str) -> AwsError:
    return AwsError("NotFound", what, status=404)


@dataclass(frozen=True)
class Arn:
    region: str
    account: str
    topic: str
    subscription: str | None


def parse_arn(arn: str, member: str = "TopicArn") -> Arn:
    match = _ARN.match(arn or "")
    if match is None:
        raise invalid(f"{member} Reason: {arn!r} is not an SNS ARN; a topic ARN looks like "
                      "arn:aws:sns:us-east-1:123456789012:my-topic")
    return Arn(*match.groups())


def topic_arn(platform: "Platform", name: str) -> str:
    return platform.settings.arn("sns", name)


def get_topic(platform: "Platform", arn: str, member: str = "TopicArn") -> Resource:
    """The topic ``arn`` names; InvalidParameter for a malformed ARN, NotFound if absent."""
    parsed = parse_arn(arn, member)
    if parsed.subscription is not None:
        raise invalid(f"{member} Reason: {arn} is a subscription ARN, not a topic ARN")
    topic = platform.resources.get_by_arn(arn)
    if topic is None or topic.kind != TOPIC_KIND:
        raise not_found("Topic does not exist")
    return topic


def get_subscription(platform: "Platform", arn: str) -> Resource:
    parsed = parse_arn(arn, "SubscriptionArn")
    if parsed.subscription is None:
        raise invalid("SubscriptionArn Reason: it names a topic, not a subscription (a "
                      "subscription ARN is the topic ARN followed by :<subscription id>)")
    found = platform.resources.get(SUBSCRIPTION_KIND, parsed.subscription)
    if found is None or found.arn != arn:
        raise not_found("Subscription does not exist")
    return found


def list_all(platform: "Platform", kind: str, parent: str | None = None) -> list[Resource]:
    """Every resource of ``kind`` (under ``parent``), oldest first."""
    items, token = [], None
    while True:
        page = platform.resources.list(kind, ListQuery(parent=parent, descending=False,
                                                       max_results=1000, next_token=token))
        items.extend(page.items)
        token = page.next_token
        if token is None:
            return items


def default_policy(arn: str, account: str) -> dict[str, Any]:
    """The access policy SNS gives a new topic."""
    actions = ["SNS:GetTopicAttributes", "SNS:SetTopicAttributes", "SNS:AddPermission",
               "SNS:RemovePermission", "SNS:DeleteTopic", "SNS:Subscribe",
               "SNS:ListSubscriptionsByTopic", "SNS:Publish"]
    return {
        "Version": "2008-10-17",
        "Id": "__default_policy_ID",
        "Statement": [{
            "Sid": "__default_statement_ID", "Effect": "Allow", "Principal": {"AWS": "*"},
            "Action": actions, "Resource": arn,
            "Condition": {"StringEquals": {"AWS:SourceOwner": account}},
        }],
    }


def topic_attributes(platform: "Platform", topic: Resource) -> dict[str, str]:
    """GetTopicAttributes: what SNS computes, then what the user set."""
    subscriptions = list_all(platform, SUBSCRIPTION_KIND, topic.arn)
    confirmed = sum(1 for item in subscriptions if item.status == CONFIRMED)
    account = parse_arn(topic.arn).account
    attributes = {
        "TopicArn": topic.arn,
        "Owner": account,
        "DisplayName": "",
        "Policy": json.dumps(default_policy(topic.arn, account), separators=(",", ":")),
        "SubscriptionsConfirmed": str(confirmed),
        "SubscriptionsPending": str(len(subscriptions) - confirmed),
        "SubscriptionsDeleted": str(topic.document.get("SubscriptionsDeleted", 0)),
        "EffectiveDeliveryPolicy": json.dumps(DEFAULT_DELIVERY_POLICY, separators=(",", ":")),
    }
    attributes.update(topic.document.get("Attributes", {}))
    if "DeliveryPolicy" in attributes:
        attributes["EffectiveDeliveryPolicy"] = attributes["DeliveryPolicy"]
    return attributes


def subscription_attributes(subscription: Resource) -> dict[str, str]:
    document = subscription.document
    attributes = {
        "SubscriptionArn": subscription.arn,
        "TopicArn": document["TopicArn"],
        "Owner": document["Owner"],
        "Protocol": document["Protocol"],
        "Endpoint": document["Endpoint"],
        "ConfirmationWasAuthenticated": document.get("ConfirmationWasAuthenticated", "false"),
        "PendingConfirmation": "true" if subscription.status == PENDING else "false",
        "RawMessageDelivery": "false",
    }
    if document["Protocol"] in ("http", "https"):
        attributes["EffectiveDeliveryPolicy"] = json.dumps({
            "healthyRetryPolicy": DEFAULT_DELIVERY_POLICY["http"]["defaultHealthyRetryPolicy"],
            "sicklyRetryPolicy": None, "throttlePolicy": None, "guaranteed": False,
        }, separators=(",", ":"))
    attributes.update(document.get("Attributes", {}))
    if "FilterPolicy" in attributes:
        attributes.setdefault("FilterPolicyScope", "MessageAttributes")
    return attributes


def check_topic_attribute(name: str, value: str) -> None:
    """Reject what SNS rejects in SetTopicAttributes / CreateTopic."""
    if name in ("FifoTopic", "ContentBasedDeduplication", "FifoThroughputScope",
                "ArchivePolicy"):
        if name == "FifoTopic" and value.lower() == "false":
            return
        raise invalid(f"Attributes Reason: {name}: modelyard does not support FIFO topics; "
                      "create a standard topic (a name without .fifo, no FifoTopic attribute)")
    if name not in TOPIC_ATTRIBUTES:
        raise invalid(f"AttributeName Reason: {name!r} is not a topic attribute; settable "
                      f"ones are {', '.join(sorted(TOPIC_ATTRIBUTES)[:8])}, ...")
    if name in ("Policy", "DeliveryPolicy", "DataProtectionPolicy") and value:
        _json_object(value, name)
    if name == "DisplayName" and len(value) > 100:
        raise invalid("DisplayName Reason: at most 100 characters")
    if name == "SignatureVersion" and value not in ("1", "2"):
        raise invalid("SignatureVersion Reason: must be 1 or 2")
    if name == "TracingConfig" and value not in ("PassThrough", "Active"):
        raise invalid("TracingConfig Reason: must be PassThrough or Active")


def check_subscription_attribute(name: str, value: str, protocol: str) -> str:
    """Validate one subscription attribute; return its normalized value."""
    from .filters import parse_policy

    if name not in SUBSCRIPTION_ATTRIBUTES:
        raise invalid(f"AttributeName Reason: {name!r} is not a subscription attribute; "
                      f"settable ones are {', '.join(sorted(SUBSCRIPTION_ATTRIBUTES))}")
    if name == "RawMessageDelivery":
        if value.lower() not in ("true", "false"):
            raise invalid("Attributes Reason: RawMessageDelivery must be true or false")
        if value.lower() == "true" and protocol not in ("http", "https", "sqs", "firehose"):
            raise invalid(f"Attributes Reason: Delivery protocol [{protocol}] does not "
                          "support raw message delivery.")
        return value.lower()
    if name == "FilterPolicy" and value:
        parse_policy(value)
    if name == "FilterPolicyScope" and value not in ("MessageAttributes", "MessageBody"):
        raise invalid("Attributes Reason: FilterPolicyScope must be MessageAttributes or "
                      "MessageBody")
    if name in ("DeliveryPolicy", "RedrivePolicy", "ReplayPolicy") and value:
        _json_object(value, name)
    return value


def _json_object(value: str, name: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except ValueError as error:
        raise invalid(f"{name} Reason: not valid JSON ({error})") from None
    if not isinstance(parsed, dict):
        raise invalid(f"{name} Reason: must be a JSON object")
    return parsed


def public_base_url(platform: "Platform") -> str:
    """Where subscribers reach this server: SubscribeURL, UnsubscribeURL, SigningCertURL.

    ``MODELYARD_PUBLIC_URL`` overrides it (a server behind a proxy or bound to 0.0.0.0).
    """
    configured = os.environ.get("MODELYARD_PUBLIC_URL", "").rstrip("/")
    if configured:
        return configured
    host = platform.settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{platform.settings.port}"


def subscribe_url(platform: "Platform", topic: str, token: str) -> str:
    from urllib.parse import urlencode

    query = urlencode({"Action": "ConfirmSubscription", "TopicArn": topic, "Token": token})
    return f"{public_base_url(platform)}{WEB_PATH}?{query}"


def unsubscribe_url(platform: "Platform", subscription: str) -> str:
    from urllib.parse import urlencode

    query = urlencode({"Action": "Unsubscribe", "SubscriptionArn": subscription})
    return f"{public_base_url(platform)}{WEB_PATH}?{query}"


# The unauthenticated GET route SubscribeURL and UnsubscribeURL point at (sns/web.py).
WEB_PATH = "/_modelyard/sns"
