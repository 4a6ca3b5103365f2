"""Subscribing, confirming and unsubscribing.

Confirmation, as modelyard does it locally:

- ``http`` / ``https``: pending until the endpoint confirms, as on AWS. Subscribe POSTs a
  ``SubscriptionConfirmation`` message (Token, SubscribeURL) to the endpoint; a GET of the
  SubscribeURL (it points back at this server) or ``ConfirmSubscription`` with the token
  confirms it.
- ``email`` / ``email-json``: pending until confirmed, as on AWS. The confirmation email is
  kept in the outbox (``modelyard outbox`` shows its SubscribeURL and token) and sent by
  SMTP when the server has ``MODELYARD_SMTP_URL``.
- ``lambda`` and ``sms``: confirmed at once, as on AWS.

``MODELYARD_SNS_AUTOCONFIRM=email,email-json,http,https`` (any subset) confirms those
protocols at Subscribe, with no handshake: for local setups where nobody reads the mail.
"""

from __future__ import annotations

import os
import re
import secrets
import uuid
from typing import TYPE_CHECKING, Any

from ..api.shapes import format_iso8601
from .topics import (
    CONFIRMED, PENDING, SUBSCRIPTION_KIND, TOPIC_KIND, check_subscription_attribute,
    get_subscription, get_topic, invalid, list_all, parse_arn, subscribe_url,
)

if TYPE_CHECKING:
    from ..platform import Platform
    from ..store.resources import Resource

SUPPORTED = ("http", "https", "email", "email-json", "sms", "lambda")
REFUSED = ("sqs", "application", "firehose")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9]{4,15}$")
_LAMBDA = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,140}"
                     r"(:(\$LATEST|[A-Za-z0-9_-]+))?$")


def subscribe(platform: "Platform", topic_arn: str, protocol: str, endpoint: str | None,
              attributes: dict[str, str] | None = None, *,
              return_arn: bool = False) -> str:
    """Subscribe; the subscription ARN, or ``pending confirmation`` while it is pending."""
    topic = get_topic(platform, topic_arn)
    endpoint = _check_endpoint(protocol, endpoint)
    wanted = {name: check_subscription_attribute(name, value, protocol)
              for name, value in (attributes or {}).items()}
    for existing in list_all(platform, SUBSCRIPTION_KIND, topic.arn):
        document = existing.document
        if document["Protocol"] != protocol or document["Endpoint"] != endpoint:
            continue
        current = document.get("Attributes", {})
        if any(current.get(name, _default(name)) != value for name, value in wanted.items()):
            raise invalid("Attributes Reason: Subscription already exists with different "
                          "attributes")
        if existing.status == PENDING:
            _send_confirmation(platform, existing)
            return existing.arn if return_arn else "pending confirmation"
        return existing.arn
    subscription_id = str(uuid.uuid4())
    confirmed = protocol in ("lambda", "sms") or protocol in _autoconfirmed()
    document = {
        "TopicArn": topic.arn, "Protocol": protocol, "Endpoint": endpoint,
        "Owner": parse_arn(topic.arn).account, "Attributes": wanted,
        "Token": None if confirmed else secrets.token_hex(64),
        "ConfirmationWasAuthenticated": "false",
    }
    subscription = platform.resources.create(
        SUBSCRIPTION_KIND, subscription_id, f"{topic.arn}:{subscription_id}", document,
        now=platform.clock.now(), status=CONFIRMED if confirmed else PENDING, parent=topic.arn)
    if confirmed:
        return subscription.arn
    _send_confirmation(platform, subscription)
    return subscription.arn if return_arn else "pending confirmation"


def _default(name: str) -> str:
    return "false" if name == "RawMessageDelivery" else ""


def _autoconfirmed() -> set[str]:
    configured = os.environ.get("MODELYARD_SNS_AUTOCONFIRM", "")
    return {item.strip().lower() for item in configured.split(",") if item.strip()}


def _check_endpoint(protocol: str, endpoint: str | None) -> str:
    if protocol in REFUSED:
        raise invalid(f"Protocol Reason: modelyard does not deliver to {protocol} endpoints; "
                      f"supported protocols are {', '.join(SUPPORTED)}")
    if protocol not in SUPPORTED:
        raise invalid(f"Protocol Reason: {protocol!r} is not a protocol SNS knows; use one "
                      f"of {', '.join(SUPPORTED)}")
    if not endpoint:
        raise invalid(f"Endpoint Reason: a {protocol} subscription needs an Endpoint")
    if protocol in ("http", "https"):
        if not endpoint.lower().startswith(f"{protocol}://") or len(endpoint) <= len(protocol) + 3:
            raise invalid(f"Endpoint Reason: a {protocol} endpoint must be a URL starting "
                          f"with {protocol}://")
    elif protocol in ("email", "email-json"):
        if not _EMAIL.match(endpoint):
            raise invalid("Endpoint Reason: an email endpoint is an address like "
                          "team@example.com")
    elif protocol == "sms":
        if not _PHONE.match(endpoint):
            raise invalid("Endpoint Reason: an sms endpoint is a phone number in E.164 "
                          "format, e.g. +14155550100")
    elif protocol == "lambda" and not _LAMBDA.match(endpoint):
        raise invalid("Endpoint Reason: a lambda endpoint is a function ARN like "
                      "arn:aws:lambda:us-east-1:123456789012:function:my-function")
    return endpoint


def _send_confirmation(platform: "Platform", subscription: "Resource") -> None:
    """Promise the SubscriptionConfirmation message (http/https POST, or email)."""
    document = subscription.document
    token = document["Token"]
    payload: dict[str, Any] = {
        "Type": "SubscriptionConfirmation", "MessageId": str(uuid.uuid4()),
        "Token": token, "TopicArn": document["TopicArn"],
        "SubscriptionArn": subscription.arn, "Protocol": document["Protocol"],
        "Endpoint": document["Endpoint"], "Subject": None,
        "Message": (f"You have chosen to subscribe to the topic {document['TopicArn']}.\n"
                    "To confirm the subscription, visit the SubscribeURL included in this "
                    "message."),
        "SubscribeURL": subscribe_url(platform, document["TopicArn"], token),
        "Timestamp": format_iso8601(platform.clock.now()), "Raw": False, "DisplayName": "",
    }
    kind = "sns-http" if document["Protocol"] in ("http", "https") else "sns-mail"
    platform.deliveries.enqueue(kind, f"sns-confirm:{payload['MessageId']}", payload)


def confirm(platform: "Platform", topic_arn: str, token: str, *,
            authenticated: bool = False) -> str:
    """ConfirmSubscription: the subscription whose token this is becomes Confirmed."""
    topic = get_topic(platform, topic_arn)
    for subscription in list_all(platform, SUBSCRIPTION_KIND, topic.arn):
        if token and subscription.document.get("Token") == token:
            break
    else:
        raise invalid("Token Reason: no subscription of this topic has this token (it may "
                      "be confirmed under another token, or unsubscribed)")
    if subscription.status == CONFIRMED:
        return subscription.arn

    def change(current: "Resource") -> dict[str, Any]:
        return {**current.document, "__status__": CONFIRMED,
                "ConfirmationWasAuthenticated": "true" if authenticated else "false"}

    platform.resources.update(SUBSCRIPTION_KIND, subscription.name, change,
                              now=platform.clock.now(), missing=lambda: invalid("Token"))
    return subscription.arn


def unsubscribe(platform: "Platform", subscription_arn: str, *,
                signed: bool = True) -> None:
    """Delete a subscription (deliveries not yet made to it are dropped).

    ``signed`` is False for the UnsubscribeURL, which a subscription confirmed with
    AuthenticateOnUnsubscribe=true refuses, as on AWS.
    """
    from ..api.errors import AwsError

    try:
        subscription = get_subscription(platform, subscription_arn)
    except AwsError as error:
        if error.code == "NotFound":
            return  # unsubscribing twice succeeds, as on AWS
        raise
    if not signed and subscription.document.get("ConfirmationWasAuthenticated") == "true":
        raise AwsError("AuthorizationError", "This subscription was confirmed with "
                       "AuthenticateOnUnsubscribe; unsubscribe with a signed Unsubscribe "
                       "call.", status=403)
    platform.resources.delete(SUBSCRIPTION_KIND, subscription.name)
    topic = platform.resources.get_by_arn(subscription.document["TopicArn"])
    if topic is not None:
        platform.resources.update(
            TOPIC_KIND, topic.name,
            lambda current: {**current.document, "SubscriptionsDeleted":
                             current.document.get("SubscriptionsDeleted", 0) + 1},
            now=platform.clock.now(), missing=lambda: invalid("TopicArn"))


def set_attribute(platform: "Platform", subscription_arn: str, name: str,
                  value: str | None) -> None:
    subscription = get_subscription(platform, subscription_arn)
    value = check_subscription_attribute(name, value or "", subscription.document["Protocol"])

    def change(current: "Resource") -> dict[str, Any]:
        attributes = dict(current.document.get("Attributes", {}))
        if value == "" and name != "RawMessageDelivery":
            attributes.pop(name, None)
        else:
            attributes[name] = value
        return {**current.document, "Attributes": attributes}

    platform.resources.update(SUBSCRIPTION_KIND, subscription.name, change,
                              now=platform.clock.now(),
                              missing=lambda: invalid("SubscriptionArn"))
