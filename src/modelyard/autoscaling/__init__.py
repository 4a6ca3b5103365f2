"""Application Auto Scaling for SageMaker endpoint variants
(``sagemaker:variant:DesiredInstanceCount``): scalable targets, target tracking and step
scaling policies driven by CloudWatch alarms, scheduled actions."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..platform import Platform


def start(platform: "Platform") -> None:
    """Register delivery kinds and start background loops (before deliveries start)."""


def stop(platform: "Platform") -> None:
    """Stop background loops."""
