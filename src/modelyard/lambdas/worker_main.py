"""The Python runtime loop of one warm Lambda worker, run inside the function's sandbox.

Started as ``python -m modelyard.lambdas.worker_main`` in the function's code directory
(``LAMBDA_TASK_ROOT``), it imports the handler once (Lambda's init phase), tells the
server it is ready, then runs one invocation per request frame read from the request
pipe and answers with one response frame. What the handler prints (``print``,
``logging``) is captured per invocation and returned with the response, so the server
can write it to CloudWatch Logs and answer ``LogType=Tail``.

Frames, both ways: 8 bytes (header length, body length; big endian) + JSON header + body.
This module imports only the standard library: it is the cold start of every function.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import resource
import struct
import sys
import threading
import time
import traceback
from typing import Any

_FRAME = struct.Struct(">II")


def read_frame(fd: int) -> tuple[dict[str, Any], bytes] | None:
    """One frame from ``fd``; None at end of file."""
    head = _read_exactly(fd, _FRAME.size)
    if head is None:
        return None
    header_length, body_length = _FRAME.unpack(head)
    data = _read_exactly(fd, header_length + body_length)
    if data is None:
        return None
    return json.loads(data[:header_length]), data[header_length:]


def write_frame(fd: int, header: dict[str, Any], body: bytes = b"") -> None:
    encoded = json.dumps(header, separators=(",", ":")).encode()
    view = memoryview(_FRAME.pack(len(encoded), len(body)) + encoded + body)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exactly(fd: int, count: int) -> bytes | None:
    chunks, remaining = [], count
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class _Capture:
    """Stands in for sys.stdout and sys.stderr: keeps what the function writes."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._lock = threading.Lock()
        self.encoding = "utf-8"
        self.errors = "replace"

    def write(self, text: str) -> int:
        with self._lock:
            self._parts.append(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return 1

    def take(self) -> str:
        with self._lock:
            text, self._parts = "".join(self._parts), []
        return text


class LambdaContext:
    """The context object Lambda's Python runtime passes to a handler."""

    def __init__(self, request_id: str, deadline_ms: int, invoked_arn: str,
                 client_context: Any = None) -> None:
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_arn
        self.client_context = client_context
        self.identity = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def log(self, message: str) -> None:
        sys.stdout.write(message)


class _RequestIdFilter(logging.Filter):
    """Adds the current invocation's request id to log records, as Lambda's runtime does."""

    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


def _configure_logging() -> _RequestIdFilter:
    """The root logger's handler in Lambda's Python runtime, with its text format."""
    request_filter = _RequestIdFilter()
    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(request_filter)
    logging.getLogger().addHandler(handler)
    return request_filter


def _error(error_type: str, message: str, request_id: str = "",
           trace: list[str] | None = None) -> dict[str, Any]:
    return {"errorMessage": message, "errorType": error_type, "requestId": request_id,
            "stackTrace": trace or []}


def _load_handler(spec: str) -> tuple[Any, dict[str, Any] | None]:
    """Import ``module.function`` as Lambda's runtime does; (handler, None) or (None, error)."""
    try:
        module_name, function_name = spec.rsplit(".", 1)
    except ValueError as error:
        return None, _error("Runtime.MalformedHandlerName", f"Bad handler '{spec}': {error}")
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as error:
        return None, _error("Runtime.ImportModuleError",
                            f"Unable to import module '{module_name}': {error}")
    except SyntaxError as error:
        return None, _error("Runtime.UserCodeSyntaxError", f"Syntax error in module "
                            f"'{module_name}': {error}", trace=traceback.format_exception_only(
                                type(error), error))
    except Exception as error:  # noqa: BLE001 - the module's own code failed at import
        trace = traceback.format_list(traceback.extract_tb(error.__traceback__)[1:])
        return None, _error(type(error).__name__, str(error), trace=trace)
    handler = getattr(module, function_name, None)
    if handler is None:
        return None, _error("Runtime.HandlerNotFound",
                            f"Handler '{function_name}' missing on module '{module_name}'")
    return handler, None


def _invoke(handler: Any, header: dict[str, Any], body: bytes) -> tuple[dict[str, Any], bytes]:
    request_id = header["id"]
    try:
        event = json.loads(body) if body.strip() else {}
    except ValueError as error:
        return {"error": _error("Runtime.UnmarshalError", f"Unable to unmarshal input: {error}",
                                request_id)}, b""
    context = LambdaContext(request_id, header["deadline_ms"], header["arn"],
                            header.get("client_context"))
    try:
        result = handler(event, context)
    except Exception as error:  # noqa: BLE001 - the function's error is the caller's answer
        frames = traceback.extract_tb(error.__traceback__)[1:]  # not this runtime's frame
        trace = traceback.format_list(frames)
        sys.stdout.write(f"[ERROR] {type(error).__name__}: {error}\nTraceback (most recent call "
                         f"last):\n{''.join(trace)}")
        return {"error": _error(type(error).__name__, str(error), request_id, trace)}, b""
    try:
        payload = json.dumps(result).encode()
    except (TypeError, ValueError) as error:
        return {"error": _error("Runtime.MarshalError", f"Unable to marshal response: {error}",
                                request_id)}, b""
    return {}, payload


def main() -> None:
    request_fd, response_fd = (int(fd) for fd in os.environ.pop("MODELYARD_LAMBDA_FDS").split(","))
    capture = _Capture()
    sys.stdout = sys.stderr = capture  # type: ignore[assignment]
    request_filter = _configure_logging()
    started = time.monotonic()
    task_root = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
    if task_root not in sys.path:
        sys.path.insert(0, task_root)
    handler, init_error = _load_handler(os.environ["_HANDLER"])
    write_frame(response_fd, {"ready": True, "init_ms": (time.monotonic() - started) * 1000,
                              "init_error": init_error, "logs": capture.take()})
    while True:
        frame = read_frame(request_fd)
        if frame is None:
            return
        header, body = frame
        request_filter.request_id = header["id"]
        if init_error is not None:
            answer, payload = {"error": {**init_error, "requestId": header["id"]}}, b""
        else:
            answer, payload = _invoke(handler, header, body)
        answer["logs"] = capture.take()
        answer["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        write_frame(response_fd, answer, payload)


if __name__ == "__main__":
    main()
