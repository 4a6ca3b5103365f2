"""Carrying out SNS deliveries from the durable outbox, one handler per delivery kind.

- ``sns-http``: POST AWS's JSON envelope (or the raw message) with the ``x-amz-sns-*``
  headers; 2xx is delivered, 429 / 5xx / no answer is retried, any other status fails.
- ``sns-lambda``: AWS's SNS event, queued through Lambda's durable ``invoke_async``.
- ``sns-mail``: email, email-json and sms are kept as ``sns-outbox-message`` resources
  (``modelyard outbox`` lists them) and, with ``MODELYARD_SMTP_URL`` set, emails are sent.

Deliveries are at least once; the outbox message and the Lambda invocation are keyed by
the delivery's key, so a re-run after a crash keeps, mails and invokes once (an SMTP send
interrupted between the send and its record may repeat).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import smtplib
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..api.errors import AwsError
from ..engine.deliveries import DeliveryFailed
from .topics import SUBSCRIPTION_KIND, public_base_url, unsubscribe_url

if TYPE_CHECKING:
    from ..platform import Platform
    from ..store.outbox import Delivery

log = logging.getLogger("modelyard.sns")

OUTBOX_KIND = "sns-outbox-message"
HTTP_TIMEOUT = 15.0  # seconds, as SNS waits for an HTTP/S endpoint
USER_AGENT = "Amazon Simple Notification Service Agent"
CONFIRMATION_TEXT = ("You have chosen to subscribe to the topic {topic}.\n"
                     "To confirm the subscription, visit the SubscribeURL included in this "
                     "message.")


def signing_cert_url(platform: "Platform") -> str:
    return f"{public_base_url(platform)}/_modelyard/sns/SimpleNotificationService-modelyard.pem"


def envelope(platform: "Platform", payload: dict[str, Any], *,
             lambda_names: bool = False) -> dict[str, Any]:
    """AWS's JSON message for HTTP/S and email-json (``lambda_names``: the Lambda event's
    ``SigningCertUrl`` / ``UnsubscribeUrl`` spelling, with Subject always present)."""
    kind = payload["Type"]
    message: dict[str, Any] = {"Type": kind, "MessageId": payload["MessageId"]}
    if kind != "Notification":
        message["Token"] = payload["Token"]
    message["TopicArn"] = payload["TopicArn"]
    if payload.get("Subject") is not None or lambda_names:
        message["Subject"] = payload.get("Subject")
    message["Message"] = payload["Message"]
    if kind != "Notification":
        message["SubscribeURL"] = payload["SubscribeURL"]
    message["Timestamp"] = payload["Timestamp"]
    message["SignatureVersion"] = "1"
    message["Signature"] = _signature(message)
    cert, unsubscribe = (("SigningCertUrl", "UnsubscribeUrl") if lambda_names
                         else ("SigningCertURL", "UnsubscribeURL"))
    message[cert] = signing_cert_url(platform)
    if kind == "Notification":
        if payload.get("SubscriptionArn"):
            message[unsubscribe] = unsubscribe_url(platform, payload["SubscriptionArn"])
        if payload.get("MessageAttributes") or lambda_names:
            message["MessageAttributes"] = payload.get("MessageAttributes") or {}
    return message


def _signature(message: dict[str, Any]) -> str:
    """Not a verifiable signature (there is no AWS certificate to sign with): a digest of
    the string SignatureVersion 1 signs, so the field is present and stable."""
    fields = (("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
              if message["Type"] == "Notification" else
              ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn",
               "Type"))
    text = "".join(f"{name}\n{message[name]}\n" for name in fields
                   if message.get(name) is not None)
    return base64.b64encode(hashlib.sha1(text.encode()).digest()).decode()


# --- http / https -----------------------------------------------------------------------


def deliver_http(platform: "Platform", delivery: "Delivery") -> None:
    import httpx

    payload = delivery.payload
    if payload["Type"] == "Notification" and not _still_subscribed(platform, payload):
        log.info("skipping %s: the subscription was deleted", delivery.key)
        return
    headers = {
        "x-amz-sns-message-type": payload["Type"],
        "x-amz-sns-message-id": payload["MessageId"],
        "x-amz-sns-topic-arn": payload["TopicArn"],
        "Content-Type": "text/plain; charset=UTF-8",
        "User-Agent": USER_AGENT,
    }
    if payload.get("SubscriptionArn") and payload["Type"] != "SubscriptionConfirmation":
        headers["x-amz-sns-subscription-arn"] = payload["SubscriptionArn"]
    if payload["Type"] == "Notification" and payload.get("Raw"):
        body = payload["Message"]
        headers["x-amz-sns-rawdelivery"] = "true"
    else:
        body = json.dumps(envelope(platform, payload), indent=2)
    try:
        response = httpx.post(payload["Endpoint"], content=body.encode("utf-8"),
                              headers=headers, follow_redirects=False,
                              timeout=httpx.Timeout(HTTP_TIMEOUT, connect=5.0))
    except httpx.HTTPError as error:
        raise ConnectionError(f"{payload['Endpoint']} did not answer: {error}") from None
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 429 or status >= 500:
        raise ConnectionError(f"{payload['Endpoint']} answered HTTP {status}")
    raise DeliveryFailed(f"{payload['Endpoint']} answered HTTP {status}; SNS does not retry "
                         "client errors")


def _still_subscribed(platform: "Platform", payload: dict[str, Any]) -> bool:
    arn = payload.get("SubscriptionArn")
    if not arn:
        return True
    found = platform.resources.get(SUBSCRIPTION_KIND, arn.rsplit(":", 1)[-1])
    return found is not None


# --- lambda -----------------------------------------------------------------------------


def lambda_event(platform: "Platform", payload: dict[str, Any]) -> dict[str, Any]:
    """The event a Lambda function subscribed to a topic receives."""
    return {"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": payload["SubscriptionArn"],
        "Sns": envelope(platform, payload, lambda_names=True),
    }]}


def deliver_lambda(platform: "Platform", delivery: "Delivery") -> None:
    from ..lambdas.invoke import invoke_async

    payload = delivery.payload
    if not _still_subscribed(platform, payload):
        return
    event = json.dumps(lambda_event(platform, payload)).encode()
    try:
        invoke_async(platform, payload["Endpoint"], event, key=delivery.key)
    except AwsError as error:
        if error.status < 500:
            raise DeliveryFailed(f"{payload['Endpoint']}: {error.code}: {error.message}") \
                from None
        raise


# --- email / email-json / sms: the local outbox, and SMTP -------------------------------


def deliver_mail(platform: "Platform", delivery: "Delivery") -> None:
    payload = delivery.payload
    if payload["Type"] == "Notification" and not _still_subscribed(platform, payload):
        return
    record = _keep(platform, delivery.key, payload)
    smtp_url = os.environ.get("MODELYARD_SMTP_URL", "").strip()
    if not smtp_url or payload["Protocol"] == "sms" or record.status == "sent":
        return
    try:
        _send_smtp(smtp_url, payload, record.document)
    except (OSError, smtplib.SMTPException) as error:
        raise ConnectionError(f"SMTP {_redacted(smtp_url)}: {error}") from None
    platform.resources.update(
        OUTBOX_KIND, record.name, lambda current: {**current.document, "__status__": "sent"},
        now=platform.clock.now(), missing=lambda: AwsError("NotFound", delivery.key))


def _keep(platform: "Platform", key: str, payload: dict[str, Any]):  # noqa: ANN202
    existing = platform.resources.get(OUTBOX_KIND, key)
    if existing is not None:
        return existing
    subject, body = mail_text(platform, payload)
    document = {
        "Time": payload["Timestamp"], "Type": payload["Type"],
        "MessageId": payload["MessageId"], "Protocol": payload["Protocol"],
        "Endpoint": payload["Endpoint"], "TopicArn": payload.get("TopicArn"),
        "SubscriptionArn": payload.get("SubscriptionArn"), "Subject": subject, "Body": body,
    }
    try:
        return platform.resources.create(
            OUTBOX_KIND, key, f"modelyard:sns-outbox:{key}", document,
            now=platform.clock.now(), status="kept", parent=payload["Protocol"])
    except AwsError:  # a concurrent re-run kept it first
        return platform.resources.get(OUTBOX_KIND, key)


def mail_text(platform: "Platform", payload: dict[str, Any]) -> tuple[str | None, str]:
    """(email subject, body) as SNS would send them for the payload's protocol."""
    protocol, kind = payload["Protocol"], payload["Type"]
    if protocol == "sms":
        return None, payload["Message"]
    if protocol == "email-json":
        body = json.dumps(envelope(platform, payload), indent=2)
    elif kind == "SubscriptionConfirmation":
        body = (f"You have chosen to subscribe to the topic:\n{payload['TopicArn']}\n\n"
                "To confirm this subscription, click or visit the link below (If this was "
                f"in error no action is necessary):\n{payload['SubscribeURL']}\n\n"
                f"(or call ConfirmSubscription with Token {payload['Token']})\n")
    else:
        body = payload["Message"]
        if payload.get("SubscriptionArn"):
            body += ("\n\n--\nIf you wish to stop receiving notifications from this topic, "
                     "please click or visit the link below to unsubscribe:\n"
                     f"{unsubscribe_url(platform, payload['SubscriptionArn'])}\n")
    if kind == "SubscriptionConfirmation":
        return "AWS Notification - Subscription Confirmation", body
    return payload.get("Subject") or "AWS Notification Message", body


def _send_smtp(url: str, payload: dict[str, Any], document: dict[str, Any]) -> None:
    """Send one email through ``smtp://[user:password@]host[:port]`` (``smtps://`` for TLS;
    ``?starttls=1`` to upgrade a plain connection)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise DeliveryFailed(f"MODELYARD_SMTP_URL {_redacted(url)} is not smtp://host:port "
                             "or smtps://host:port")
    message = EmailMessage()
    display = payload.get("DisplayName") or "AWS Notifications"
    sender = os.environ.get("MODELYARD_SMTP_FROM", "no-reply@sns.modelyard.local")
    message["From"] = f'"{display}" <{sender}>'
    message["To"] = payload["Endpoint"]
    message["Subject"] = document["Subject"]
    message["Message-ID"] = f"<{payload['MessageId']}@sns.modelyard.local>"
    message.set_content(document["Body"])
    smtp_class = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    port = parts.port or (465 if parts.scheme == "smtps" else 25)
    with smtp_class(parts.hostname, port, timeout=HTTP_TIMEOUT) as client:
        if "starttls=1" in parts.query or "starttls=true" in parts.query:
            client.starttls()
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
