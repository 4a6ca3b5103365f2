"""Application Auto Scaling for SageMaker endpoint variants
(``sagemaker:variant:DesiredInstanceCount``): scalable targets, target tracking and step
scaling policies driven by CloudWatch alarms, scheduled actions.

store.py keeps the state, policies.py checks policies and manages target tracking's
alarms, scaling.py changes capacity (activities, UpdateEndpointWeightsAndCapacities),
scheduled.py runs scheduled actions, runner.py is the background loop and the alarm
action's delivery handler, endpoints.py what UpdateEndpoint and DeleteEndpoint do to scaled
variants; services/autoscaling.py holds the API handlers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..platform import Platform


def start(platform: "Platform") -> None:
    """Register delivery kinds and start background loops (before deliveries start)."""
    from . import runner

    runner.start(platform)


def stop(platform: "Platform") -> None:
    """Stop background loops."""
    from . import runner

    runner.stop(platform)
