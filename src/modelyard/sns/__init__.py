"""SNS: topics, subscriptions and deliveries through the durable outbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..platform import Platform


def start(platform: "Platform") -> None:
    """Register delivery kinds and start background loops (before deliveries start)."""
    from .delivery import deliver_http, deliver_lambda, deliver_mail

    # AWS retries an HTTP/S endpoint three times, 20 s apart; locally the same count,
    # sooner. Lambda deliveries only hand the event to Lambda's own durable queue.
    platform.deliveries.register("sns-http", deliver_http, attempts=4, backoff=(1.0, 5.0, 20.0))
    platform.deliveries.register("sns-lambda", deliver_lambda, attempts=5,
                                 backoff=(1.0, 2.0, 5.0, 10.0))
    platform.deliveries.register("sns-mail", deliver_mail, attempts=3, backoff=(10.0, 30.0))


def stop(platform: "Platform") -> None:
    """Stop background loops (SNS has none: the delivery worker runs its deliveries)."""
