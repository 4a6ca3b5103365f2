"""Shadow variants: copies of live requests sent to a model that never answers the caller.

An endpoint config may name one ``ShadowProductionVariants`` entry next to its single
production variant (services/endpoint_configs.py). The endpoint controller starts the
shadow's model servers with the endpoint like any variant's and publishes them in
``LiveEndpoint.shadows``; this module does the rest on the data plane:

- **Sampling.** A shadow gets a copy of ``min(1, shadow weight / production weight)`` of the
  requests (the weights of the config's ``InitialVariantWeight`` or of
  ``UpdateEndpointWeightsAndCapacities``): equal weights copy every request, a shadow at
  0.25 against a production variant at 1.0 copies one in four. An inference experiment
  (services/inference_experiments.py) sets the shadow's weight to ``SamplingPercentage /
  100`` against a production weight of 1. SageMaker does not document how a raw config's
  shadow weight maps to a share; this is modelyard's choice.
- **Off the request path.** ``ShadowCopier.submit`` is called once the production answer is
  in (whatever it was) and only puts the copy on a small per-shadow queue
  (``QUEUE_SIZE``): it never waits, never raises, and the caller's response is the
  production variant's alone. A few worker tasks per shadow (``WORKERS_PER_INSTANCE`` per
  model server, at most ``MAX_WORKERS``) send the copies to the shadow's least-busy
  instance on the gateway's event loop. A copy that finds the queue full is dropped and
  counted (``dropped``; logged on the first drop and every ``LOG_EVERY`` after), so a slow
  or crashing shadow costs at most ``QUEUE_SIZE`` waiting copies, never unbounded work.
- **What a copy leaves behind.** Its outcome goes to the invocation metrics under the
  shadow's ``VariantName`` (``Invocations``, ``Invocation4XX/5XXErrors`` with the model's
  status, 503 when no instance could take it, 504 on a timeout; ``ModelLatency``,
  ``OverheadLatency``), and, when the endpoint captures data and the shadow answered, a
  capture record under ``<endpoint>/<shadow variant>/`` marked ``"invocationSource":
  "ShadowExperiment"`` in its ``eventMetadata`` (hosting/capture.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from .capture import CapturePolicy
from .live import LiveEndpoint, LiveVariant

if TYPE_CHECKING:
    from .runtime import SageMakerRuntime

log = logging.getLogger("modelyard.hosting")

SHADOW_INVOCATION_SOURCE = "ShadowExperiment"
QUEUE_SIZE = 32  # copies waiting for a shadow; more are dropped
WORKERS_PER_INSTANCE = 2
MAX_WORKERS = 8
IDLE_SECONDS = 30.0  # a shadow's workers end after this long without a copy
LOG_EVERY = 100


def sampling_share(shadow_weight: float, production_weight: float) -> float:
    """The share (0..1) of requests copied to a shadow of ``shadow_weight``."""
    if shadow_weight <= 0:
        return 0.0
    if production_weight <= 0:
        return 1.0
    return min(1.0, shadow_weight / production_weight)


def live_shadows(deployment: dict[str, Any],
                 live: dict[str, LiveVariant]) -> tuple[LiveVariant, ...]:
    """The ``LiveEndpoint.shadows`` of a deployment, from the controller's LiveVariants by
    name (each shadow's ``weight`` becomes its sampling share)."""
    shadows = deployment.get("Shadows") or []
    if not shadows:
        return ()
    production = deployment["Variants"]
    production_weight = float(production[0]["Weight"]) if production else 0.0
    result = []
    for item in shadows:
        variant = live.get(item["VariantName"])
        if variant is not None:
            result.append(LiveVariant(variant.name,
                                      sampling_share(float(item["Weight"]), production_weight),
                                      variant.instances, variant.model_name))
    return tuple(result)


def shadow_summaries(current: dict[str, Any] | None, target: dict[str, Any] | None,
                     status: str | None, now: float) -> list[dict[str, Any]] | None:
    """DescribeEndpoint's ``ShadowProductionVariants`` (None when there is no shadow), in
    the same ProductionVariantSummary form as its ``ProductionVariants``."""
    from .controller import variant_summaries  # the controller imports this module

    def part(deployment: dict[str, Any] | None) -> dict[str, Any] | None:
        return {"Variants": deployment.get("Shadows") or []} if deployment else None

    return variant_summaries(part(current), part(target), status, now) or None


@dataclass(frozen=True)
class _Copy:
    endpoint: str
    variant: str
    headers: dict[str, str]
    body: bytes
    content_type: str
    inference_id: str | None
    capture: dict[str, Any] | None  # the endpoint's capture config when the request came


class _Lane:
    """The queue and worker count of one shadow variant."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[_Copy] = asyncio.Queue(QUEUE_SIZE)
        self.workers = 0


class ShadowCopier:
    """Copies requests to shadow variants; one per runtime, used on the event loop only."""

    def __init__(self, runtime: "SageMakerRuntime") -> None:
        self.runtime = runtime
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.dropped: Counter[tuple[str, str]] = Counter()  # (endpoint, variant) -> copies
        self.sent: Counter[tuple[str, str]] = Counter()

    def submit(self, endpoint: LiveEndpoint, headers: dict[str, str], body: bytes,
               content_type: str, inference_id: str | None) -> None:
        """Queue a copy of one request for each (sampled) shadow; never blocks or raises."""
        try:
            for shadow in endpoint.shadows:
                share = shadow.weight
                if share <= 0 or (share < 1 and random.random() >= share):
                    continue
                self._enqueue(endpoint, shadow, _Copy(
                    endpoint.name, shadow.name, headers, body, content_type, inference_id,
                    endpoint.data_capture))
        except Exception:  # noqa: BLE001 - a shadow must never fail the caller's request
            log.exception("could not copy a request of endpoint %s to its shadow",
                          endpoint.name)

    def _enqueue(self, endpoint: LiveEndpoint, shadow: LiveVariant, copy: _Copy) -> None:
        key = (endpoint.name.lower(), shadow.name)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        try:
            lane.queue.put_nowait(copy)
        except asyncio.QueueFull:
            self.dropped[key] += 1
            dropped = self.dropped[key]
            if dropped == 1 or dropped % LOG_EVERY == 0:
                log.warning("shadow variant %s of endpoint %s is behind: %d request copies "
                            "dropped so far (at most %d wait)", shadow.name, endpoint.name,
                            dropped, QUEUE_SIZE)
            return
        wanted = min(MAX_WORKERS, max(1, WORKERS_PER_INSTANCE * len(shadow.instances)))
        if lane.workers < wanted:
            lane.workers += 1
            task = asyncio.get_running_loop().create_task(self._work(key, lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _work(self, key: tuple[str, str], lane: _Lane) -> None:
        try:
            while True:
                try:
                    copy = await asyncio.wait_for(lane.queue.get(), IDLE_SECONDS)
                except TimeoutError:
                    return
                try:
                    await self._send(copy)
                except Exception:  # noqa: BLE001 - one bad copy must not end the worker
                    log.exception("sending a copy to shadow variant %s of endpoint %s failed",
                                  copy.variant, copy.endpoint)
        finally:
            lane.workers -= 1
            if lane.workers <= 0 and lane.queue.empty() and self._lanes.get(key) is lane:
                del self._lanes[key]

    async def _send(self, copy: _Copy) -> None:
        """Forward one copy to the shadow as it is published now; record what happened."""
        runtime = self.runtime
        endpoint = runtime.platform.live_endpoints.get(copy.endpoint)
        shadow = next((s for s in endpoint.shadows if s.name == copy.variant),
                      None) if endpoint is not None else None
        if endpoint is None or shadow is None:
            return  # deleted, or updated to a config without this shadow
        started = time.perf_counter()
        status, model_us, upstream = 503, None, None
        try:
            upstream, _, model_us = await runtime._forward(endpoint, shadow, copy.headers,
                                                           copy.body)
            status = upstream.status
        except TimeoutError:
            status = 504
        except AwsError as error:
            status = error.status
        finally:
            overhead_us = (time.perf_counter() - started) * 1e6 - (model_us or 0.0)
            runtime.metrics.record(endpoint.name, shadow.name, status=status,
                                   instances=len(shadow.instances), model_us=model_us,
                                   overhead_us=max(overhead_us, 0.0),
                                   now=runtime.platform.clock.now())
            self.sent[(copy.endpoint.lower(), copy.variant)] += 1
        if upstream is None or status >= 400:
            return
        policy = CapturePolicy.from_config(copy.capture)
        if policy is not None and policy.sampled():
            runtime.capture.submit(
                policy, endpoint.name, shadow.name, inference_id=copy.inference_id,
                input_type=copy.content_type, input_data=copy.body,
                output_type=upstream.headers.get("content-type") or "application/octet-stream",
                output_data=upstream.body, invocation_source=SHADOW_INVOCATION_SOURCE)
