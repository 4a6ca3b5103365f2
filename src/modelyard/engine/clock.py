"""Time, injected: every loop and timestamp asks a clock, so tests can move time by hand."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone


class Clock:
    """Wall-clock time in epoch seconds."""

    def now(self) -> float:
        return time.time()

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now(), tz=timezone.utc)


class FakeClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class OffsetFileClock(Clock):
    """Wall-clock time plus an offset read from a file: a running server's clock, moved by
    tests (``MODELYARD_CLOCK_OFFSET_FILE``) so schedules and alarms can be driven without
    sleeping. The file holds seconds as text; a missing or empty file means no offset.
    Request signatures are still checked against the real time."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._offset = 0.0
        self._lock = threading.Lock()

    def offset(self) -> float:
        import os

        try:
            stat = os.stat(self._path)
        except OSError:
            return 0.0
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                try:
                    with open(self._path) as handle:
                        text = handle.read().strip()
                    self._offset = float(text) if text else 0.0
                    self._stamp = stamp
                except (OSError, ValueError):
                    pass  # a half-written file: keep the last offset, read it next time
            return self._offset

    def now(self) -> float:
        return time.time() + self.offset()


def clock_from_environment() -> Clock:
    import os

    path = os.environ.get("MODELYARD_CLOCK_OFFSET_FILE")
    return OffsetFileClock(path) if path else Clock()
