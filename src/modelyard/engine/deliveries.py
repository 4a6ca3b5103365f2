"""The worker that carries out the outbox's promises (``store.outbox``).

Each kind of delivery registers a handler and a retry policy before the worker starts:

    platform.deliveries.register("sns-http", deliver_http, attempts=3, backoff=[1, 20])

``enqueue`` writes the promise durably and wakes the worker; the worker runs due
deliveries on a few threads. A handler that returns has delivered; one that raises is
retried after ``backoff[attempt - 1]`` seconds (the last entry repeats) until ``attempts``
are spent, then the delivery is marked failed with its error. Deliveries are at least
once: a server killed while running one runs it again after restart, so a handler whose
effect must happen once (a pipeline start) makes it idempotent with the delivery's key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..store.outbox import Delivery, Outbox
from .polling import PollingLoop

if TYPE_CHECKING:
    from ..platform import Platform

log = logging.getLogger("modelyard.deliveries")

# How often the worker looks at the clock when nothing wakes it (a retry comes due).
POLL_SECONDS = 0.25
# Finished deliveries are kept this long (seconds) for `modelyard outbox` and tests.
KEEP_FINISHED_SECONDS = 7 * 24 * 3600


class DeliveryFailed(Exception):
    """Raised by a handler for a failure that retrying cannot fix: fail at once."""


@dataclass(frozen=True)
class DeliveryKind:
    handler: Callable[["Platform", Delivery], None]
    attempts: int
    backoff: Sequence[float]


NEXT_DUE_SECONDS = 1.0


class Deliveries(PollingLoop):
    thread_name = "modelyard-deliveries"
    poll_seconds = POLL_SECONDS
    log = log

    def __init__(self, platform: "Platform", threads: int = 4) -> None:
        super().__init__(platform)
        self.outbox = Outbox(platform.db)
        self.kinds: dict[str, DeliveryKind] = {}
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="modelyard-delivery")
        self._slots = threading.Semaphore(threads)
        self._last_purge = 0.0
        # The earliest pending due time, as last read: (when read, changes then, due time).
        # An idle server's poll is then no query at all, rather than a write transaction.
        self._changes = 0
        self._next_due: tuple[float, int, float | None] | None = None

    def register(self, kind: str, handler: Callable[["Platform", Delivery], None], *,
                 attempts: int = 3, backoff: Sequence[float] = (1.0, 10.0)) -> None:
        self.kinds[kind] = DeliveryKind(handler, max(1, attempts), tuple(backoff) or (1.0,))

    def enqueue(self, kind: str, key: str, payload: dict[str, Any], *, delay: float = 0.0,
                connection: Any = None) -> bool:
        """Promise a delivery (durably); False when ``key`` was already promised."""
        now = self.platform.clock.now()
        self._changes += 1  # before and after: a read racing the insert is not trusted
        added = self.outbox.add(kind, key, payload, now=now, due_time=now + delay,
                                connection=connection)
        self._changes += 1
        self.wake()
        return added

    def start(self) -> None:
        released = self.outbox.release_running(self.platform.clock.now())
        if released:
            log.info("re-running %d deliveries a stopped server had started", released)
        super().start()

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def check(self, now: float) -> None:
        self._dispatch_due(now)
        if now - self._last_purge > 3600:
            self._last_purge = now
            self.outbox.purge_finished(now - KEEP_FINISHED_SECONDS)

    def _maybe_due(self, now: float) -> bool:
        """Whether a delivery may be due: the earliest due time is re-read after a change
        made here, and at least every ``NEXT_DUE_SECONDS`` (for promises made inside a
        transaction still open when they woke the loop, or by another server)."""
        changes, moment = self._changes, time.monotonic()
        known = self._next_due
        if known is None or known[1] != changes or moment - known[0] >= NEXT_DUE_SECONDS:
            known = (moment, changes, self.outbox.next_due_time(set(self.kinds)))
            self._next_due = known
        return known[2] is not None and known[2] <= now

    def _dispatch_due(self, now: float) -> None:
        if not self.kinds or not self._maybe_due(now):
            return
        self._changes += 1  # what is claimed below changes the earliest due time
        kinds = set(self.kinds)
        while kinds and not self.stopping:
            free = 0
            while self._slots.acquire(blocking=False):
                free += 1
            if not free:
                return
            due = self.outbox.claim_due(now, kinds, limit=free)
            for _ in range(free - len(due)):
                self._slots.release()
            for delivery in due:
                self._pool.submit(self._deliver, delivery)
            if len(due) < free:
                return

    def _deliver(self, delivery: Delivery) -> None:
        kind = self.kinds[delivery.kind]
        try:
            kind.handler(self.platform, delivery)
        except Exception as error:  # noqa: BLE001 - recorded on the delivery, then retried
            now = self.platform.clock.now()
            message = f"{type(error).__name__}: {error}"
            if isinstance(error, DeliveryFailed) or delivery.attempts >= kind.attempts:
                log.warning("delivery %s (%s) failed after %d attempts: %s", delivery.key,
                            delivery.kind, delivery.attempts, message)
                self.outbox.fail(delivery.id, now, message)
            else:
                backoff = kind.backoff[min(delivery.attempts, len(kind.backoff)) - 1]
                self.outbox.retry(delivery.id, now, now + backoff, message)
                self._changes += 1
        else:
            self.outbox.finish(delivery.id, self.platform.clock.now())
        finally:
            self._slots.release()
            self.wake()
