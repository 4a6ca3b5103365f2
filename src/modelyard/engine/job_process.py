"""Supervising one job process: its log lines, its metrics, its time limit, stop requests."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..store.logs import LogStore
from .cgroups import JobCgroup, out_of_memory_reason
from .executor import JobHandle
from .instance_types import vcpus
from .sandbox import terminate

FLUSH_SECONDS = 0.5
STOP_GRACE_SECONDS = 10.0

MetricExtractor = Callable[[str], Iterable[tuple[str, float]]]
_LEADING_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def regex_extractor(definitions: list[dict]) -> MetricExtractor:
    """MetricDefinitions as SageMaker applies them: the first group of each regex."""
    compiled = []
    for definition in definitions:
        try:
            compiled.append((definition["Name"], re.compile(definition["Regex"])))
        except re.error:
            continue  # validated at create time; skip rather than fail a running job

    def extract(line: str) -> Iterable[tuple[str, float]]:
        for name, pattern in compiled:
            match = pattern.search(line)
            if match and match.groups():
                # A loose group such as (\S+) may take text after the number with it.
                number = _LEADING_NUMBER.match(match.group(1) or "")
                if number:
                    yield name, float(number.group(0))

    return extract


@dataclass
class LogSink:
    """Buffers a job's output lines and metric values; ``flush`` stores them durably."""

    logs: LogStore
    group: str
    stream: str
    extractors: list[MetricExtractor] = field(default_factory=list)
    on_metrics: Callable[[list[tuple[str, float, float]]], None] | None = None
    tail_lines: int = 20

    def __post_init__(self) -> None:
        self._lines: list[tuple[int, str]] = []
        self._metrics: list[tuple[str, float, float]] = []
        self._tail: list[str] = []
        self._lock = threading.Lock()
        self.final_metrics: dict[str, tuple[float, float]] = {}

    def write(self, line: str) -> None:
        now = time.time()
        found = [(name, value, now) for extract in self.extractors for name, value in extract(line)]
        with self._lock:
            self._lines.append((int(now * 1000), line))
            self._metrics.extend(found)
            for name, value, stamp in found:
                self.final_metrics[name] = (value, stamp)
            self._tail.append(line)
            del self._tail[: -self.tail_lines]

    def tail(self) -> list[str]:
        with self._lock:
            return list(self._tail)

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            metrics, self._metrics = self._metrics, []
        if lines:
            self.logs.append(self.group, self.stream, lines, create_missing=True)
        if metrics and self.on_metrics:
            self.on_metrics(metrics)


@dataclass(frozen=True)
class Outcome:
    reason: str  # "exited", "timeout", "stopped"
    returncode: int | None
    seconds: float
    # "OutOfMemory: ..." when the job failed because the kernel killed it at its memory limit
    out_of_memory: str | None = None


def supervise(
    process: subprocess.Popen, handle: JobHandle, sink: LogSink, *, max_seconds: float | None,
    memory: JobCgroup | None = None,
) -> Outcome:
    """Stream the process's output into ``sink`` until it exits, times out or is stopped.

    ``memory``: the job's cgroup (the process was started in it), to tell an OOM kill.
    """
    handle.process = process
    started = time.monotonic()
    if memory is not None and not memory.contains(process.pid) and process.poll() is None:
        sink.write("modelyard: the job could not join its memory cgroup; it runs without a "
                   "memory limit")
        memory = None
    reader = threading.Thread(target=_pump, args=(process, sink), daemon=True)
    reader.start()
    reason = "exited"
    while process.poll() is None:
        if handle.stop_requested.is_set():
            reason = "stopped"
        elif max_seconds is not None and time.monotonic() - started > max_seconds:
            reason = "timeout"
        if reason != "exited":
            sink.write(f"modelyard: {'stopping' if reason == 'stopped' else 'time limit reached'}"
                       " - sending SIGTERM to the job")
            terminate(process, STOP_GRACE_SECONDS)
            break
        sink.flush()
        try:
            process.wait(timeout=FLUSH_SECONDS)
        except subprocess.TimeoutExpired:
            pass
    reader.join(timeout=5)
    out_of_memory = None
    if memory is not None and process.returncode not in (0, None):
        out_of_memory = out_of_memory_reason(memory, process.returncode in (-9, 137))
        if out_of_memory:
            sink.write(f"modelyard: {out_of_memory}")
    sink.flush()
    return Outcome(reason, process.returncode, time.monotonic() - started, out_of_memory)


def _pump(process: subprocess.Popen, sink: LogSink) -> None:
    assert process.stdout is not None
    for raw in process.stdout:
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        # Progress bars redraw with \r; the last redraw is the line a reader wants.
        line = text.rsplit("\r", 1)[-1]
        if line.strip():
            sink.write(line)


def job_environment(settings, instance_type: str, extra: dict[str, str]) -> dict[str, str]:  # noqa: ANN001
    """What a job process sees: the user's Environment plus SageMaker's and AWS's variables.

    Jobs call AWS APIs as the execution role, as on SageMaker: here that is the server's
    own credentials and endpoint.
    """
    import os
    import sys

    cpus = str(cpus_for(instance_type))
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    return {
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "SM_NUM_CPUS": cpus,
        "OMP_NUM_THREADS": cpus,
        "OPENBLAS_NUM_THREADS": cpus,
        "AWS_ENDPOINT_URL": f"http://{host}:{settings.port}",
        "AWS_ACCESS_KEY_ID": settings.credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": settings.credentials.secret_access_key,
        "AWS_DEFAULT_REGION": settings.region,
        "AWS_REGION": settings.region,
        "BOTOCORE_EXPERIMENTAL__PLUGINS": "modelyard=modelyard.botocore_plugin",
        **extra,
    }


def cpus_for(instance_type: str) -> int:
    """The vCPUs the instance type has, capped by this machine's cores."""
    import os

    return max(1, min(vcpus(instance_type), os.cpu_count() or 1))
