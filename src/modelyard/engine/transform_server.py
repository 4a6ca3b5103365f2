"""A batch transform job's model server: its sandboxed process, readiness, log and stop.

The server is ``modelyard.runtimes.model_server`` for the model's container, started in the
job's sandbox (warm, forked by its framework's zygote, when ``warm_start`` allows); its
output goes to the job's log, and it is ready when it prints the model server's ready line
with its address.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from .executor import JobHandle
from .job_process import LogSink
from .sandbox import Sandbox, terminate
from .warm_start import start_warm

STARTUP_TIMEOUT_SECONDS = 600.0
STOP_GRACE_SECONDS = 10.0


class TransformFailed(Exception):
    """The job cannot go on; the message is its FailureReason."""


class ModelServerProcess:
    """The sandboxed model server of one transform job, its output in the job's log."""

    def __init__(self, sandbox: Sandbox, hidden: Path, argv: list[str], env: dict[str, str],
                 sink: LogSink, cgroup_procs: Path | None, framework: str = "") -> None:
        from ..runtimes.model_server import READY_LINE

        self._ready_line = READY_LINE
        self.sink = sink
        self.url: str | None = None
        self._ready = threading.Event()
        self.process = start_warm(sandbox, hidden, "/opt/ml", argv, env,
                                  framework=framework, cgroup_procs=cgroup_procs)
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n").rsplit("\r", 1)[-1]
            if not line.strip():
                continue
            self.sink.write(line)
            if self.url is None and line.startswith(self._ready_line):
                self.url = line[len(self._ready_line):].strip()
                self._ready.set()

    def wait_ready(self, handle: JobHandle) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self._ready.wait(0.2):
            self.sink.flush()
            if handle.stop_requested.is_set():
                return
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                raise TransformFailed(self.failure("exited before it was ready"))
            if time.monotonic() > deadline:
                raise TransformFailed(self.failure(
                    f"was not ready within {STARTUP_TIMEOUT_SECONDS:g} seconds"))
        self.sink.write(f"modelyard: the model server is ready at {self.url}")

    def failure(self, what: str) -> str:
        tail = [line for line in self.sink.tail() if not line.startswith("modelyard:")]
        errors = [line for line in tail if line.startswith("ModelError:")]
        quoted = " | ".join(line.strip() for line in (errors[-1:] or tail[-3:] or ["(no output)"]))
        return f"ClientError: The model server {what}. Last log: {quoted}"

    def stop(self) -> None:
        terminate(self.process, STOP_GRACE_SECONDS)
        self._reader.join(timeout=5)
        self.sink.flush()
