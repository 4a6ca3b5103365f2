"""A small HTTP/1.1 server for the container contract: keep-alive, one handler call per request.

Why not Starlette on uvicorn: the model server answers two routes with bodies of known
length, and its whole budget per request is a few hundred microseconds. uvicorn without
httptools parses with h11 (pure Python) and Starlette adds an ASGI round trip; this
asyncio protocol parses the request line and headers with ``bytes.split`` and calls the
handler synchronously. Serving the same BlazingText handler, one ticket per request, it
answered 2,027 requests/s (p50 0.17 ms) at concurrency 1 and 2,830 at 16, against 833
(p50 0.49 ms) and 1,206 for Starlette on uvicorn (``bench/model_server.py
--compare-starlette``, 2 shared cores).

Requests are handled inline on the event loop, in arrival order per connection (so
pipelined requests are answered in order). Model code is CPU-bound and single-threaded
anyway; a thread hop per request would only add latency. The price is that ``/ping``
waits behind the requests already queued, which for SageMaker's 2-second ping timeout
leaves room for any payload the 60-second invocation limit allows in practice.

With ``workers`` > 1 (batch transform's concurrent mini-batches), the process forks that
many workers after the model is loaded and the socket bound, as the containers' gunicorn
workers do: parsing and scoring big CSV batches hold the GIL, so threads would not use a
second core. A worker takes one connection at a time from the shared socket (blocking
``accept``, so only an idle worker takes one) and answers one request on it with
``Connection: close``, so requests spread over the workers whatever the client's
connections. The parent forwards SIGTERM/SIGINT (a worker finishes its request first)
and waits; a worker that dies takes the others down.

Not supported, on purpose (the only clients are modelyard's gateway and batch-transform
driver): ``Transfer-Encoding: chunked`` request bodies (411) and HTTP/2.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Coroutine

MAX_HEADER_BYTES = 64 * 1024

_REASONS = {
    200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 411: "Length Required",
    413: "Payload Too Large", 415: "Unsupported Media Type", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 503: "Service Unavailable",
}


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def accept(self) -> str:
        return self.headers.get("accept", "")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self, keep_alive: bool) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Unknown')}"]
        if self.content_type:
            lines.append(f"Content-Type: {self.content_type}")
        lines.extend(f"{name}: {value}" for name, value in self.headers.items())
        lines.append(f"Content-Length: {len(self.body)}")
        if not keep_alive:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def text_response(status: int, message: str) -> Response:
    return Response(status, message.encode("utf-8"), "text/plain; charset=utf-8")


Handler = Callable[[Request], Response]


class _Connection(asyncio.Protocol):
    """One client connection: buffer bytes, cut requests out, answer each in turn."""

    def __init__(self, handler: Handler, max_body: int, keep_alive: bool = True) -> None:
        self.handler = handler
        self.max_body = max_body
        self.allow_keep_alive = keep_alive
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.head: tuple[str, str, dict[str, str], bool, int] | None = None  # awaiting its body
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while not self.closing and self._next_request():
            pass

    def _fail(self, status: int, message: str) -> None:
        assert self.transport is not None
        self.transport.write(text_response(status, message).encode(keep_alive=False))
        self.closing = True
        self.transport.close()

    def _next_request(self) -> bool:
        """Answer one complete request from the buffer; False when more bytes are needed."""
        if self.head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEADER_BYTES:
                    self._fail(431, "request headers are larger than 64 KiB")
                return False
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            del self.buffer[: end + 4]
            parts = lines[0].split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self._fail(400, f"malformed request line {lines[0][:100]!r}")
                return False
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, colon, value = line.partition(":")
                if not colon:
                    self._fail(400, f"malformed header line {line[:100]!r}")
                    return False
                headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._fail(411, "chunked request bodies are not supported: send Content-Length")
                return False
            try:
                length = int(headers.get("content-length", "0"))
                if length < 0:
                    raise ValueError
            except ValueError:
                self._fail(400, "Content-Length is not a non-negative integer")
                return False
            if length > self.max_body:
                self._fail(413, f"request body of {length} bytes exceeds the limit of {self.max_body} bytes")
                return False
            connection = headers.get("connection", "").lower()
            keep_alive = connection != "close" if parts[2] == "HTTP/1.1" else connection == "keep-alive"
            keep_alive = keep_alive and self.allow_keep_alive
            if headers.get("expect", "").lower() == "100-continue" and len(self.buffer) < length:
                assert self.transport is not None
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.head = (parts[0], parts[1], headers, keep_alive, length)
        method, path, headers, keep_alive, length = self.head
        if len(self.buffer) < length:
            return False
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        self.head = None
        try:
            response = self.handler(Request(method, path.split("?", 1)[0], headers, body))
        except Exception:  # noqa: BLE001 - a handler bug must not kill the connection silently
            traceback.print_exc()
            response = text_response(500, "internal error in the model server (see its log)")
        assert self.transport is not None
        self.transport.write(response.encode(keep_alive))
        if not keep_alive:
            self.closing = True
            self.transport.close()
            return False
        return True


async def _serve(handler: Handler, sock: socket.socket, max_body: int, on_ready: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    stopped = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: stopped.done() or stopped.set_result(None))
    server = await loop.create_server(lambda: _Connection(handler, max_body), sock=sock)
    on_ready()
    try:
        await stopped
    finally:
        server.close()


def bind(host: str, port: int) -> socket.socket:
    """The listening socket; port 0 picks a free one (read it from ``getsockname()``)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def serve_forever(handler: Handler, sock: socket.socket, max_body: int,
                  on_ready: Callable[[], None] = lambda: None, workers: int = 1) -> bool:
    """Serve until SIGTERM or SIGINT; requests in progress finish first (they run inline).
    ``workers`` > 1 forks that many worker processes (see the module's docstring).
    False if a worker failed."""
    if workers > 1:
        return _serve_workers(handler, sock, max_body, on_ready, workers)
    # The model and the imports stay for the process's life: out of the collector's
    # generations, a full collection no longer walks them while requests wait.
    gc.freeze()
    try:
        _run(_serve(handler, sock, max_body, on_ready))
    finally:
        sock.close()
        sys.stdout.flush()
    return True


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop's event loop when it is installed (less CPU per request than asyncio's
    in bench/invoke.py's least loaded runs), else on asyncio's."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def _serve_workers(handler: Handler, sock: socket.socket, max_body: int,
                   on_ready: Callable[[], None], workers: int) -> bool:
    sys.stdout.flush()
    sys.stderr.flush()
    stopping = False
    live: set[int] = set()

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in live:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    # Blocked while forking, so that a signal reaches either no worker yet or all of them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # a worker: never returns into the parent's code
            status = 1
            try:
                _worker(handler, sock, max_body)
                status = 0
            except BaseException:  # noqa: BLE001 - reported, then the worker exits non-zero
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        live.add(pid)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    sock.close()  # the workers hold it
    on_ready()
    healthy = True
    while live:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid not in live:
            continue  # as PID 1 of a sandbox, orphans are reaped here too
        live.discard(pid)
        if not stopping:  # a worker died on its own: take the others down
            print(f"model server worker {pid} exited unexpectedly (status {status})",
                  file=sys.stderr, flush=True)
            healthy = False
            stop(signal.SIGTERM, None)
    sys.stdout.flush()
    return healthy


class _StopWorker(Exception):
    pass


class _SocketTransport:
    """What ``_Connection`` needs of a transport, over a blocking socket."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.closed = False

    def write(self, data: bytes) -> None:
        self.conn.sendall(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.conn if name == "socket" else default


def _worker(handler: Handler, sock: socket.socket, max_body: int) -> None:
    """Serve connections one at a time, one request each, until SIGTERM (which lets a
    request in progress finish)."""
    state = {"accepting": False, "stop": False}

    def on_term(signum: int, frame: object) -> None:
        state["stop"] = True
        if state["accepting"]:  # idle: leave now
            raise _StopWorker

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    # A signal landing just before accept() blocks would be missed: wake up now and then.
    sock.settimeout(1.0)
    while not state["stop"]:
        try:
            state["accepting"] = True
            if state["stop"]:
                break
            conn, _ = sock.accept()
        except (_StopWorker, TimeoutError):
            continue
        finally:
            state["accepting"] = False
        with conn:
            conn.settimeout(None)
            protocol = _Connection(handler, max_body, keep_alive=False)
            transport = _SocketTransport(conn)
            protocol.connection_made(transport)  # type: ignore[arg-type]
            try:
                while not transport.closed:
                    data = conn.recv(1 << 20)
                    if not data:
                        break
                    protocol.data_received(data)
            except OSError:
                pass  # the client went away
