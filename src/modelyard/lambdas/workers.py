"""Warm Lambda workers: one sandboxed Python process per execution environment.

A worker runs ``worker_main`` inside the job sandbox (engine/sandbox.py: private mount and
PID namespaces, its own /tmp, the data directory hidden), with the function's code at
``/opt/ml/task`` (``LAMBDA_TASK_ROOT``), its environment variables, and credentials plus
``AWS_ENDPOINT_URL`` pointing back at this server, as jobs get them. Requests and
responses travel over two pipes; what the process writes to its real stdout (child
processes, C libraries) is pumped into the same log stream.

Each function revision has a small pool: an idle worker is reused, a new one starts when
all are busy (up to ``MAX_WORKERS_PER_FUNCTION``, then callers wait), idle ones are
reaped after ``IDLE_SECONDS``, a worker that timed out or died is killed and replaced on
the next call, and a new revision (code or configuration changed) retires the old pool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..engine.cgroups import JobCgroup, join_in_child, job_memory_cgroup, out_of_memory_reason
from ..engine.job_process import LogSink, job_environment
from ..engine.sandbox import (Sandbox, SandboxUnavailable, _die_with_parent_thread,
                              namespace_command, terminate)
from ..store.logs import LogStore
from . import functions
from .worker_main import read_frame, write_frame

if TYPE_CHECKING:
    from ..platform import Platform

log = logging.getLogger("modelyard.lambda")

MAX_WORKERS_PER_FUNCTION = 8
IDLE_SECONDS = 300.0
START_SECONDS = 60.0  # a generous init budget: imports on a busy 2-core machine
FLUSH_SECONDS = 0.5


class WorkerFailed(Exception):
    """The worker could not start."""


class _Exited(Exception):
    """The worker's response pipe closed: the process is gone."""


class Worker:
    """One execution environment: a sandboxed process with its handler imported."""

    def __init__(self, platform: "Platform", config: dict[str, Any], code: dict[str, Any],
                 sinks: "SinkFlusher", spawn: Callable[..., Any]) -> None:
        self.platform = platform
        self.config = config
        self.id = uuid.uuid4().hex
        name = config["FunctionName"]
        day = datetime.now(timezone.utc).strftime("%Y/%m/%d")
        self.log_group = f"/aws/lambda/{name}"
        self.log_stream = f"{day}/[{config['Version']}]{self.id}"
        self.sink = LogSink(LogStore.for_database(platform.db), self.log_group, self.log_stream)
        self.sandbox = Sandbox(platform.settings.data_dir / "lambda" / "workers" / self.id)
        self.process: subprocess.Popen | None = None
        self.last_used = time.monotonic()
        self.init_ms: float | None = None  # reported once, on the first invocation
        self.init_error: dict[str, Any] | None = None
        self.max_rss_mb = 0
        self.memory: JobCgroup | None = None
        self._resources = contextlib.ExitStack()
        self._sinks = sinks
        self._spawn = spawn  # runs Popen on a long-lived thread (PR_SET_PDEATHSIG)
        self._start(code)

    def _start(self, code: dict[str, Any]) -> None:
        platform, config = self.platform, self.config
        self.sandbox.create([])
        functions.extract_code(platform, code, self.sandbox.ml / "task")
        request_read, self._request_fd = os.pipe()
        self._response_fd, response_write = os.pipe()
        env = _environment(platform, config, self.log_stream)
        env["MODELYARD_LAMBDA_FDS"] = f"{request_read},{response_write}"
        argv = [sys.executable, "-m", "modelyard.lambdas.worker_main"]
        started = time.monotonic()
        try:
            self.memory = self._resources.enter_context(self._memory_cgroup())
            procs = os.fsencode(self.memory.procs_file) if self.memory is not None else None

            def prepare_child() -> None:
                _die_with_parent_thread()
                if procs is not None:
                    join_in_child(procs)

            self.process = self._spawn(
                subprocess.Popen,
                namespace_command(self.sandbox, platform.settings.data_dir, "/opt/ml/task", argv),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env=env, start_new_session=True, pass_fds=(request_read, response_write),
                preexec_fn=prepare_child,
            )
        except (OSError, SandboxUnavailable) as error:
            self.close()
            raise WorkerFailed(f"cannot start the function's worker: {error}") from None
        finally:
            os.close(request_read)
            os.close(response_write)
        pump = threading.Thread(target=self._pump, name=f"lambda-output-{self.id[:8]}",
                                daemon=True)
        pump.start()
        self._sinks.add(self.sink)
        try:
            ready = self._receive(START_SECONDS)
        except _Exited:
            ready = None
        if ready is None:
            self.close()
            pump.join(timeout=1)
            said = " | ".join(self.sink.tail()[-5:])
            raise WorkerFailed("the function's worker did not start within "
                               f"{START_SECONDS:.0f} seconds or exited while starting"
                               + (f"; it said: {said}" if said else ""))
        header, _ = ready
        self.init_ms = (time.monotonic() - started) * 1000
        self.init_error = header.get("init_error")
        self._write_text(header.get("logs", ""))

    def invoke(self, request_id: str, payload: bytes, timeout: float, arn: str,
               client_context: Any = None) -> tuple[dict[str, Any] | None, bytes, list[str]]:
        """Run one invocation: (answer header or None on timeout, payload, log lines)."""
        assert self.process is not None
        deadline_ms = int((time.time() + timeout) * 1000)
        lines = [f"START RequestId: {request_id} Version: {self.config['Version']}"]
        started = time.monotonic()
        try:
            write_frame(self._request_fd, {"id": request_id, "deadline_ms": deadline_ms,
                                           "arn": arn, "client_context": client_context}, payload)
        except OSError:
            raise WorkerFailed("the function's worker exited") from None
        try:
            answer = self._receive(timeout)
        except _Exited:
            answer = self._exit_error(request_id)
            lines.extend([answer[0]["error"]["errorMessage"], answer[0]["error"]["errorType"]])
        elapsed_ms = (time.monotonic() - started) * 1000
        self.last_used = time.monotonic()
        if answer is None:
            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            lines.append(f"{stamp} {request_id} Task timed out after {timeout:.2f} seconds")
            header, body = None, b""
        else:
            header, body = answer
            self.max_rss_mb = max(self.max_rss_mb, int(header.pop("max_rss_kb", 0)) // 1024, 1)
            lines.extend(_split_lines(header.pop("logs", "")))
        lines.append(f"END RequestId: {request_id}")
        report = (f"REPORT RequestId: {request_id}\tDuration: {elapsed_ms:.2f} ms\t"
                  f"Billed Duration: {max(1, int(elapsed_ms + 0.999))} ms\t"
                  f"Memory Size: {self.config['MemorySize']} MB\tMax Memory Used: "
                  f"{self.max_rss_mb} MB")
        if self.init_ms is not None:
            report += f"\tInit Duration: {self.init_ms:.2f} ms"
            self.init_ms = None
        lines.append(report)
        for line in lines:
            self.sink.write(line)
        return header, body, lines

    def _exit_error(self, request_id: str) -> tuple[dict[str, Any], bytes]:
        """The answer for an invocation whose process died (a crash, an OOM kill)."""
        assert self.process is not None
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        how = (f"signal: {signal_name(-code)}" if code is not None and code < 0 else
               f"exit status {code}" if code is not None else "unknown")
        if code == 137:  # the sandbox's shell reports its child's SIGKILL as 128 + 9
            how = "signal: killed"
        kind = "Runtime.ExitError"
        if self.memory is not None and out_of_memory_reason(self.memory, how == "signal: killed"):
            kind, how = "Runtime.OutOfMemory", "signal: killed"  # the kernel's OOM kill
            self.max_rss_mb = int(self.config["MemorySize"])
        return {"error": {"errorType": kind, "requestId": request_id, "errorMessage": (
            f"RequestId: {request_id} Error: Runtime exited with error: {how}")}}, b""

    def _memory_cgroup(self) -> Any:
        """A memory cgroup sized to MemorySize, as jobs get one (engine/cgroups.py); none
        when MODELYARD_JOB_MEMORY_LIMIT=off or the machine cannot enforce limits."""
        settings = self.platform.settings
        if settings.job_memory_limit_bytes != 0:
            settings = dataclasses.replace(
                settings, job_memory_limit_bytes=int(self.config["MemorySize"]) * 1024 * 1024)
        return job_memory_cgroup(settings, "ml.m5.large", f"lambda-{self.id}",
                                 lambda line: log.debug("%s: %s", self.log_stream, line))

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        """Kill the process and remove its sandbox (its last log lines are kept)."""
        if self.process is not None:
            terminate(self.process, 0.5)
        for fd in ("_request_fd", "_response_fd"):
            number = getattr(self, fd, None)
            if number is not None:
                try:
                    os.close(number)
                except OSError:
                    pass
                setattr(self, fd, None)
        self.sandbox.remove()
        self._resources.close()
        self._sinks.retire(self.sink)

    def _receive(self, timeout: float) -> tuple[dict[str, Any], bytes] | None:
        """The worker's next frame; None after ``timeout`` seconds; _Exited if it died."""
        ready, _, _ = select.select([self._response_fd], [], [], max(0.0, timeout))
        if not ready:
            return None
        frame = read_frame(self._response_fd)
        if frame is None:
            raise _Exited()
        return frame

    def _write_text(self, text: str) -> None:
        for line in _split_lines(text):
            self.sink.write(line)

    def _pump(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line.strip():
                self.sink.write(line)


def signal_name(number: int) -> str:
    """Go's spelling, as Lambda reports it: "killed", "segmentation fault", ..."""
    import signal

    names = {signal.SIGKILL: "killed", signal.SIGSEGV: "segmentation fault",
             signal.SIGABRT: "aborted", signal.SIGTERM: "terminated"}
    return names.get(number, f"signal {number}")


def _split_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]



def _environment(platform: "Platform", config: dict[str, Any], stream: str) -> dict[str, str]:
    """The function's variables, Lambda's own, and this server's credentials and endpoint."""
    base = job_environment(platform.settings, "ml.m5.large", {})
    base = {key: value for key, value in base.items()
            if not key.startswith(("SM_", "OMP_", "OPENBLAS_"))}
    user = (config.get("Environment") or {}).get("Variables") or {}
    return {
        **base,
        **{str(key): str(value) for key, value in user.items()},
        "AWS_LAMBDA_FUNCTION_NAME": config["FunctionName"],
        "AWS_LAMBDA_FUNCTION_VERSION": config["Version"],
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config["MemorySize"]),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config['FunctionName']}",
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{config['Runtime']}",
        "AWS_DEFAULT_REGION": platform.settings.region,
        "AWS_REGION": platform.settings.region,
        "LAMBDA_TASK_ROOT": "/opt/ml/task",
        "LAMBDA_RUNTIME_DIR": os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        "_HANDLER": config["Handler"],
        "TZ": ":UTC",
    }


class SinkFlusher:
    """One thread that writes every worker's buffered log lines every half second."""

    def __init__(self) -> None:
        self._sinks: dict[int, LogSink] = {}
        self._retired: list[LogSink] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lambda-logs", daemon=True)
        self._thread.start()

    def add(self, sink: LogSink) -> None:
        with self._lock:
            self._sinks[id(sink)] = sink

    def retire(self, sink: LogSink) -> None:
        with self._lock:
            if self._sinks.pop(id(sink), None) is not None:
                self._retired.append(sink)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()

    def flush(self) -> None:
        with self._lock:
            sinks = [*self._sinks.values(), *self._retired]
            self._retired = []
        for sink in sinks:
            try:
                sink.flush()
            except Exception:  # noqa: BLE001 - a closing database must not end the loop
                log.debug("could not write Lambda log lines", exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()


def revision_key(config: dict[str, Any]) -> str:
    """What a warm worker depends on: code and configuration (RevisionId changes with both)."""
    return json.dumps([config["FunctionName"], config["Version"], config["RevisionId"]])
