"""A real HTTP endpoint for SNS tests: records every POST, answers a chosen status."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: str
    status: int = 200  # what the subscriber answered

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def message_type(self) -> str:
        return self.headers.get("x-amz-sns-message-type", "")


class Subscriber:
    """``with Subscriber() as endpoint:`` listens on 127.0.0.1 until the block ends. While
    ``down`` it drops each connection without an answer and records nothing: a subscriber
    that is unavailable, on a port no other process can take meanwhile."""

    def __init__(self, port: int = 0, status: int = 200) -> None:
        self.status = status
        self.down = False
        self.received: list[Received] = []
        self._lock = threading.Condition()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                if owner.down:
                    self.close_connection = True
                    return
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode("utf-8")
                with owner._lock:
                    status = owner.status
                    owner.received.append(Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                        status))
                    owner._lock.notify_all()
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sns"

    def __enter__(self) -> "Subscriber":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, message_type: str, count: int = 1, timeout: float = 60) -> list[Received]:
        """The first ``count`` messages of ``message_type``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [item for item in self.received if item.message_type == message_type]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} {message_type} message(s) in {timeout}s; got "
                        f"{[item.message_type for item in self.received]}")
                self._lock.wait(left)

    def of_type(self, message_type: str) -> list[Received]:
        with self._lock:
            return [item for item in self.received if item.message_type == message_type]


class SmtpSink:
    """A minimal SMTP server on 127.0.0.1 that keeps every message it is sent."""

    def __init__(self) -> None:
        import socketserver
        from email import message_from_bytes

        self.messages: list[Any] = []
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(b"220 sink ESMTP\r\n")
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    command = line.strip().upper()
                    if command.startswith((b"EHLO", b"HELO")):
                        self.wfile.write(b"250 sink\r\n")
                    elif command == b"DATA":
                        self.wfile.write(b"354 go ahead\r\n")
                        lines = []
                        while (data := self.rfile.readline()) not in (b".\r\n", b""):
                            lines.append(data[1:] if data.startswith(b"..") else data)
                        with owner._lock:
                            owner.messages.append(message_from_bytes(b"".join(lines)))
                            owner._lock.notify_all()
                        self.wfile.write(b"250 queued\r\n")
                    elif command == b"QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:
                        self.wfile.write(b"250 ok\r\n")

        self._lock = threading.Condition()
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"smtp://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, count: int, timeout: float = 30) -> list[Any]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} emails, got {len(self.messages)}")
                self._lock.wait(left)
            return list(self.messages)
