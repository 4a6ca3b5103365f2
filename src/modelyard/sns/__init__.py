"""SNS: topics, subscriptions and deliveries through the durable outbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..platform import Platform


def start(platform: "Platform") -> None:
    """Register delivery kinds and start background loops (before deliveries start)."""


def stop(platform: "Platform") -> None:
    """Stop background loops."""
