"""The table of serving endpoints that the controller publishes and the runtime reads.

The endpoint controller (``hosting.controller``) owns the model-server processes and, each
time a fleet changes (started, healthy, weights changed, drained), publishes a new
immutable ``LiveEndpoint`` here. The SageMaker Runtime (``hosting.runtime``) looks an
endpoint up on every invocation and picks a variant by weight and an instance by load.
Publishing swaps one dict entry, so a reader sees either the old or the new fleet whole.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Instance:
    """One model-server process of a variant, listening on loopback."""

    instance_id: str
    url: str  # e.g. http://127.0.0.1:41234 ; /ping and /invocations live under it
    log_stream_arn: str  # its CloudWatch stream: /aws/sagemaker/Endpoints/<ep>, <variant>/<id>
    in_flight: int = 0  # requests the runtime has sent and not yet seen answered (mutable)


@dataclass(frozen=True)
class LiveVariant:
    name: str
    weight: float  # current weight; 0 drains the variant
    instances: tuple[Instance, ...]
    model_name: str = ""


@dataclass(frozen=True)
class LiveEndpoint:
    name: str
    arn: str
    variants: tuple[LiveVariant, ...]
    # The endpoint's DataCaptureConfig as DescribeEndpoint reports it (with
    # CurrentSamplingPercentage), or None when capture is off.
    data_capture: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # ShadowProductionVariants (hosting/shadow.py): each gets a copy of a share of the
    # requests, off the request path; here a shadow's ``weight`` is that share (0..1).
    shadows: tuple[LiveVariant, ...] = ()

    def variant(self, name: str) -> LiveVariant | None:
        return next((v for v in self.variants if v.name == name), None)


def mixed(variants: tuple[LiveVariant, ...], share: float) -> tuple[LiveVariant, ...]:
    """``variants`` with their weights scaled to take ``share`` of the traffic together
    (those without a healthy instance left out). A guarded deployment publishes the new
    fleet's variants mixed at its share and the old fleet's at the rest (variant names may
    repeat: the runtime picks among all of them by weight)."""
    variants = tuple(variant for variant in variants if variant.instances and variant.weight > 0)
    total = sum(variant.weight for variant in variants)
    if share <= 0 or total <= 0:
        return ()
    return tuple(LiveVariant(variant.name, variant.weight * share / total, variant.instances,
                             variant.model_name) for variant in variants)


class LiveEndpoints:
    """Thread-safe name -> LiveEndpoint map (names are case-insensitive, as in SageMaker)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._endpoints: dict[str, LiveEndpoint] = {}

    def publish(self, endpoint: LiveEndpoint) -> None:
        with self._lock:
            self._endpoints[endpoint.name.lower()] = endpoint

    def remove(self, name: str) -> None:
        with self._lock:
            self._endpoints.pop(name.lower(), None)

    def get(self, name: str) -> LiveEndpoint | None:
        return self._endpoints.get(name.lower())

    def names(self) -> list[str]:
        with self._lock:
            return [endpoint.name for endpoint in self._endpoints.values()]
