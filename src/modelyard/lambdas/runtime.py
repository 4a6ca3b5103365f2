"""The server's Lambda runtime: per-function pools of warm workers, and one invocation.

``LambdaRuntime.run`` takes a function's stored configuration and an event and returns
Invoke's output members, in AWS's shapes: 200 with the payload; ``FunctionError``
``Unhandled`` with ``{"errorMessage", "errorType", "stackTrace", "requestId"}`` when the
handler raised or could not be loaded; ``Sandbox.Timedout`` ("Task timed out after N.NN
seconds") when it ran past its Timeout, after which its worker is killed and replaced.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from .workers import (IDLE_SECONDS, MAX_WORKERS_PER_FUNCTION, SinkFlusher, Worker, WorkerFailed,
                      revision_key)

if TYPE_CHECKING:
    from ..platform import Platform

log = logging.getLogger("modelyard.lambda")

TAIL_BYTES = 4096
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
REAP_SECONDS = 5.0
WAIT_FOR_WORKER_SECONDS = 900.0


class _Pool:
    """The workers of one function revision."""

    def __init__(self) -> None:
        self.idle: list[Worker] = []
        self.busy = 0
        self.retired = False
        self.available = threading.Condition()


class LambdaRuntime:
    def __init__(self, platform: "Platform") -> None:
        self.platform = platform
        self._pools: dict[str, _Pool] = {}
        self._current: dict[str, str] = {}  # function name -> revision key of its live pool
        # Stored functions by lower-cased name, so a warm Invoke needs no database read;
        # every change to a function calls forget(). _generation guards against a reader
        # caching what it read just before a change.
        self._functions: dict[str, Any] = {}
        self._generation: dict[str, int] = {}
        self._lock = threading.Lock()
        self._sinks = SinkFlusher()
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="lambda-spawner")
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="lambda-reaper", daemon=True)
        self._reaper.start()

    # --- invocations ----------------------------------------------------------------------

    def run(self, config: dict[str, Any], code: dict[str, Any], payload: bytes,
            request_id: str, *, tail: bool = False, invoked_arn: str | None = None,
            client_context: Any = None) -> dict[str, Any]:
        """Invoke's output members for one synchronous invocation."""
        pool = self._pool(config)
        try:
            worker = self._acquire(pool, config, code)
        except WorkerFailed as error:
            raise AwsError("ServiceException", (
                f"modelyard could not start an execution environment for "
                f"{config['FunctionName']}: {error}"), status=500) from None
        keep = True
        header: dict[str, Any] | None = None
        try:
            header, body, lines = worker.invoke(
                request_id, payload, float(config["Timeout"]),
                invoked_arn or config["FunctionArn"], client_context)
        except WorkerFailed as error:
            keep = False
            message = f"RequestId: {request_id} Error: Runtime exited ({error})"
            header, body, lines = {"error": {"errorType": "Runtime.ExitError",
                                             "requestId": request_id,
                                             "errorMessage": message}}, b"", [message]
            worker.sink.write(message)
        finally:
            if header is None or not worker.alive() or worker.init_error is not None:
                keep = False  # timed out, died, or could not load its handler: start afresh
            self._release(pool, worker, keep)
        result: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": config["Version"]}
        if header is None:
            error = {"errorType": "Sandbox.Timedout", "errorMessage": (
                f"RequestId: {request_id} Error: Task timed out after "
                f"{float(config['Timeout']):.2f} seconds")}
            body = json.dumps(error).encode()
            result["FunctionError"] = "Unhandled"
        elif header.get("error") is not None:
            body = json.dumps(header["error"]).encode()
            result["FunctionError"] = "Unhandled"
        elif len(body) > MAX_RESPONSE_BYTES:
            body = json.dumps({"errorType": "Function.ResponseSizeTooLarge", "errorMessage": (
                f"Response payload size exceeded maximum allowed payload size "
                f"({MAX_RESPONSE_BYTES} bytes).")}).encode()
            result["FunctionError"] = "Unhandled"
        result["Payload"] = body
        if tail:
            text = "\n".join(lines).encode() + b"\n"
            result["LogResult"] = base64.b64encode(text[-TAIL_BYTES:]).decode()
        return result

    def function(self, name: str, load: Any) -> Any:
        """The stored function ``name`` (a Resource or None), read through ``load`` once."""
        key = name.lower()
        with self._lock:
            found = self._functions.get(key)
            generation = self._generation.get(key, 0)
        if found is not None:
            return found
        found = load(name)
        if found is not None:
            with self._lock:
                if self._generation.get(key, 0) == generation:
                    self._functions[key] = found
        return found

    def forget(self, name: str) -> None:
        """The function changed: read it afresh on its next invocation."""
        key = name.lower()
        with self._lock:
            self._functions.pop(key, None)
            self._generation[key] = self._generation.get(key, 0) + 1

    def retire(self, function_name: str) -> None:
        """Stop the function's workers (code or configuration changed, or it was deleted)."""
        self.forget(function_name)
        with self._lock:
            keys = [key for key in self._pools if json.loads(key)[0] == function_name]
            pools = [self._pools.pop(key) for key in keys]
            self._current.pop(function_name, None)
        for pool in pools:
            with pool.available:
                pool.retired = True
                idle, pool.idle = pool.idle, []
                pool.available.notify_all()
            for worker in idle:
                worker.close()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            names = {json.loads(key)[0] for key in self._pools}
        for name in names:
            self.retire(name)
        self._sinks.stop()
        self._spawner.shutdown(wait=False)

    # --- pools ----------------------------------------------------------------------------

    def _pool(self, config: dict[str, Any]) -> _Pool:
        key = revision_key(config)
        name = config["FunctionName"]
        with self._lock:
            previous = self._current.get(name)
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = _Pool()
            self._current[name] = key
        same_version = previous is not None and json.loads(previous)[1] == config["Version"]
        if same_version and previous != key:
            self._retire_key(previous)  # a new revision: the old workers go
        return pool

    def _retire_key(self, key: str) -> None:
        with self._lock:
            pool = self._pools.pop(key, None)
        if pool is None:
            return
        with pool.available:
            pool.retired = True
            idle, pool.idle = pool.idle, []
        for worker in idle:
            worker.close()

    def _acquire(self, pool: _Pool, config: dict[str, Any], code: dict[str, Any]) -> Worker:
        deadline = time.monotonic() + WAIT_FOR_WORKER_SECONDS
        with pool.available:
            while True:
                while pool.idle:
                    worker = pool.idle.pop()
                    if worker.alive():
                        pool.busy += 1
                        return worker
                    worker.close()
                if pool.busy < MAX_WORKERS_PER_FUNCTION:
                    pool.busy += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AwsError("TooManyRequestsException", (
                        f"Rate Exceeded: all {MAX_WORKERS_PER_FUNCTION} workers of "
                        f"{config['FunctionName']} stayed busy"), status=429,
                        Reason="ReservedFunctionConcurrentInvocationLimitExceeded")
                pool.available.wait(min(remaining, 1.0))
        try:
            return Worker(self.platform, config, code, self._sinks, self._spawn)
        except Exception:
            with pool.available:
                pool.busy -= 1
                pool.available.notify()
            raise

    def _release(self, pool: _Pool, worker: Worker, keep: bool) -> None:
        with pool.available:
            pool.busy -= 1
            if keep and not pool.retired:
                pool.idle.append(worker)
                worker = None  # type: ignore[assignment]
            pool.available.notify()
        if worker is not None:
            worker.close()

    def _spawn(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        return self._spawner.submit(function, *args, **kwargs).result()

    def _reap_loop(self) -> None:
        while not self._stop.wait(REAP_SECONDS):
            now = time.monotonic()
            with self._lock:
                pools = list(self._pools.values())
            for pool in pools:
                with pool.available:
                    stale = [worker for worker in pool.idle
                             if now - worker.last_used > IDLE_SECONDS or not worker.alive()]
                    pool.idle = [w for w in pool.idle if w not in stale]
                for worker in stale:
                    worker.close()
