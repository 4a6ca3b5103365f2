"""A background thread that looks at the server clock every few tenths of a second.

Schedulers and workers that act "when the clock says so" poll rather than sleep until a
computed time: an injected clock may jump, and work may come due without anyone calling
``wake()``. Subclasses implement ``check(now)``; an exception in one pass is logged and the
loop carries on, so a database hiccup never ends it.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..platform import Platform


class PollingLoop:
    """Calls ``check(platform.clock.now())`` every ``poll_seconds`` and on ``wake()``."""

    thread_name = "modelyard-loop"
    poll_seconds = 0.25
    stop_timeout = 5.0
    log = logging.getLogger("modelyard")

    def __init__(self, platform: "Platform") -> None:
        self.platform = platform
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self, now: float) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.stop_timeout)

    def wake(self) -> None:
        """Look now rather than at the next poll."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.check(self.platform.clock.now())
            except Exception:  # noqa: BLE001 - a broken database must not end the loop
                self.log.exception("%s hit an error; retrying", self.thread_name)
