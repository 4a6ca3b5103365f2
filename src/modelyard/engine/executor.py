"""Runs jobs out of process with bounded concurrency; queued jobs wait for a free slot.

A job is identified by (kind, name) in the resource store; the executor only decides when
it runs. Which code runs it is the ``runners`` table: kind -> ``runner(platform, name,
handle)``. Worker threads live as long as the server, and each job's process is tied to
its worker thread, so a killed server leaves no job running. After a restart,
``recover`` re-queues what was in progress and finishes what was stopping.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..store.resources import ListQuery
from .job_records import fail_unfinished

if TYPE_CHECKING:
    from ..platform import Platform

log = logging.getLogger("modelyard.executor")


@dataclass
class JobHandle:
    """What the executor and a running job share: a stop request and the live process."""

    kind: str
    name: str
    stop_requested: threading.Event = field(default_factory=threading.Event)
    process: subprocess.Popen | None = None


Runner = Callable[["Platform", str, JobHandle], None]
Recovery = Callable[["Platform", str, str], bool]  # (platform, name, status) -> re-queue?


@dataclass(frozen=True)
class JobKind:
    runner: Runner
    recover: Recovery


class Executor:
    def __init__(self, platform: "Platform", kinds: dict[str, JobKind], slots: int) -> None:
        self.platform = platform
        self.kinds = kinds
        self.slots = max(1, slots)
        self._queue: queue.Queue[JobHandle | None] = queue.Queue()
        self._handles: dict[tuple[str, str], JobHandle] = {}
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        # Called with (kind, name) after each job's runner returns, e.g. to wake pipelines.
        self.on_finished: list[Callable[[str, str], None]] = []

    def start(self) -> None:
        for index in range(self.slots):
            worker = threading.Thread(target=self._work, name=f"job-slot-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        self.recover()

    def submit(self, kind: str, name: str) -> None:
        handle = JobHandle(kind, name)
        with self._lock:
            self._handles[(kind, name)] = handle
        self._queue.put(handle)

    def request_stop(self, kind: str, name: str) -> bool:
        """Ask a queued or running job to stop; False if the executor does not hold it."""
        with self._lock:
            handle = self._handles.get((kind, name))
        if handle is None:
            return False
        handle.stop_requested.set()
        return True

    def is_active(self, kind: str, name: str) -> bool:
        with self._lock:
            return (kind, name) in self._handles

    def recover(self) -> None:
        for kind, job_kind in self.kinds.items():
            for status in ("InProgress", "Stopping"):
                for resource in self._all(kind, status):
                    if job_kind.recover(self.platform, resource.name, status):
                        log.info("re-queueing %s %s after a restart", kind, resource.name)
                        self.submit(kind, resource.name)

    def shutdown(self) -> None:
        """The server is stopping: take no new work, and leave running jobs as they are.

        A job is not a user's stop: its record stays InProgress, its processes end with
        the server (PR_SET_PDEATHSIG), and the next start runs it again, exactly as after
        a kill -9.
        """
        for _ in self._workers:
            self._queue.put(None)

    def _fail(self, handle: JobHandle, error: Exception) -> None:
        """A runner crashed: the job ends Failed, never InProgress for ever."""
        reason = (f"InternalServerError: modelyard could not run the job "
                  f"({type(error).__name__}: {error}); the server log has the details.")
        try:
            fail_unfinished(self.platform, handle.kind, handle.name, reason[:1024])
        except Exception:  # noqa: BLE001 - e.g. the store is gone while shutting down
            log.exception("could not mark %s %s failed", handle.kind, handle.name)

    def _all(self, kind: str, status: str):
        token = None
        while True:
            page = self.platform.resources.list(kind, ListQuery(
                status_equals=status, descending=False, max_results=100, next_token=token))
            yield from page.items
            token = page.next_token
            if not token:
                return

    def _work(self) -> None:
        while True:
            handle = self._queue.get()
            if handle is None:
                return
            try:
                self.kinds[handle.kind].runner(self.platform, handle.name, handle)
            except Exception as error:  # noqa: BLE001 - a runner bug must not kill the slot
                log.exception("the runner of %s %s failed", handle.kind, handle.name)
                self._fail(handle, error)
            finally:
                with self._lock:
                    if self._handles.get((handle.kind, handle.name)) is handle:
                        del self._handles[(handle.kind, handle.name)]
                for listener in self.on_finished:
                    listener(handle.kind, handle.name)
