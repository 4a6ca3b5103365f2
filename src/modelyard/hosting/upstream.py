"""A pooled asyncio HTTP/1.1 client for the model servers behind an endpoint.

The runtime calls ``POST /invocations`` on loopback model servers (``runtimes.model_server``),
which always answer with ``Content-Length`` and keep connections alive. Keeping a few idle
connections per instance saves a TCP handshake per invocation; everything is awaited on
the gateway's event loop, so a slow model never blocks other requests.

Deliberately small (no TLS, no redirects, no chunked request bodies): the only peers are
modelyard's own model servers. Responses with ``Transfer-Encoding: chunked`` or without a
length (read to EOF) are understood anyway, for servers written by users later.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_IDLE_PER_HOST = 32
MAX_HEADER_BYTES = 64 * 1024


class UpstreamUnavailable(Exception):
    """The model server could not be reached or closed the connection without answering."""


@dataclass
class UpstreamResponse:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection to a model server, as a protocol: bytes arrive in
    ``data_received`` and complete the waiting exchange's future, without the stream
    reader's extra buffering and one future per ``readuntil`` / ``readexactly``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.buffer = bytearray()
        self.answer: asyncio.Future[tuple[UpstreamResponse, bool]] | None = None
        self.head: tuple[int, dict[str, str], int] | None = None  # status, headers, body start
        self.received_any = False
        self.lost = False

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()  # once, not per request (a getpid() each)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.received_any = True
        if self.answer is not None and not self.answer.done():
            try:
                self._try_complete(eof=False)
            except UpstreamUnavailable as error:
                self.answer.set_exception(error)

    def eof_received(self) -> bool:
        self._ended()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)

    # -- the exchange -------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return not self.lost and self.transport is not None and not self.transport.is_closing()

    def send(self, request: bytes) -> asyncio.Future[tuple[UpstreamResponse, bool]]:
        """Write one request; the future gives (response, whether the connection is reusable)."""
        if not self.usable:
            raise UpstreamUnavailable("the model server closed the connection without answering")
        assert self.transport is not None and self.loop is not None
        self.answer = self.loop.create_future()
        self.buffer.clear()
        self.head = None
        self.received_any = False
        self.transport.write(request)
        return self.answer

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            try:
                self.transport.close()
            except RuntimeError:  # the loop is already closed
                pass

    def _ended(self, exc: Exception | None = None) -> None:
        self.lost = True
        answer = self.answer
        if answer is None or answer.done():
            return
        try:
            if not self.received_any:
                raise UpstreamUnavailable("the model server closed the connection without "
                                          "answering")
            if not self._try_complete(eof=True):
                raise UpstreamUnavailable("the connection to the model server failed: "
                                          f"{exc or 'it closed in the middle of the answer'}")
        except UpstreamUnavailable as error:
            answer.set_exception(error)

    def _try_complete(self, *, eof: bool) -> bool:
        """Resolve the answer if the buffer holds all of it; raises UpstreamUnavailable."""
        assert self.answer is not None
        if self.head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEADER_BYTES * 4:
                    raise UpstreamUnavailable("the connection to the model server failed: its "
                                              "response headers are too large")
                return False
            status, headers = _parse_head(bytes(self.buffer[:end + 4]))
            self.head = (status, headers, end + 4)
        status, headers, start = self.head
        keep = headers.get("connection", "").lower() != "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            # Parsed whole once the last chunk can have arrived (it ends in CRLF CRLF).
            body = _chunked_body(self.buffer, start) if self.buffer.endswith(b"\r\n\r\n") \
                else None
            if body is None:
                return False
        else:
            length = headers.get("content-length")
            if length is not None and length.isdigit():
                if len(self.buffer) - start < int(length):
                    return False
                body = bytes(self.buffer[start:start + int(length)])
            elif not eof:
                return False  # no length: the body runs to the end of the connection
            else:
                body, keep = bytes(self.buffer[start:]), False
        self.answer.set_result((UpstreamResponse(status, headers, body), keep and not eof))
        return True


class UpstreamPool:
    """Idle keep-alive connections per ``host:port``; used from one event loop at a time."""

    def __init__(self, max_idle_per_host: int = MAX_IDLE_PER_HOST) -> None:
        self.max_idle = max_idle_per_host
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}
        self._addresses: dict[str, tuple[str, int]] = {}

    async def post(self, url: str, path: str, headers: dict[str, str], body: bytes,
                   timeout: float) -> UpstreamResponse:
        """POST ``body`` to ``url + path``; raises UpstreamUnavailable or TimeoutError."""
        address = self._addresses.get(url)
        if address is None:
            parts = urlsplit(url)
            address = self._addresses[url] = (parts.hostname or "127.0.0.1", parts.port or 80)
        head = [f"POST {path} HTTP/1.1", f"Host: {address[0]}:{address[1]}",
                f"Content-Length: {len(body)}"]
        head.extend(f"{name}: {value}" for name, value in headers.items())
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        async with asyncio.timeout(timeout):
            # A pooled connection the server closed meanwhile fails before any answer: the
            # request cannot have run, so it is retried once on a fresh connection.
            connection = self._take_idle(address)
            if connection is not None:
                try:
                    return await self._exchange(address, connection, request)
                except UpstreamUnavailable:
                    pass
            connection = await self._connect(address)
            return await self._exchange(address, connection, request)

    def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    def _take_idle(self, address: tuple[str, int]) -> _Connection | None:
        connections = self._idle.get(address)
        while connections:
            connection = connections.pop()
            if connection.usable:
                return connection
            connection.close()
        return None

    async def _connect(self, address: tuple[str, int]) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(_Connection, *address)
        except OSError as error:
            raise UpstreamUnavailable(f"cannot connect to {address[0]}:{address[1]}: "
                                      f"{error.strerror or error}") from None
        return connection

    async def _exchange(self, address: tuple[str, int], connection: _Connection,
                        request: bytes) -> UpstreamResponse:
        keep = False
        try:
            response, keep = await connection.send(request)
            return response
        except ConnectionError as error:
            raise UpstreamUnavailable(f"the connection to the model server failed: {error}") \
                from None
        finally:
            if keep and connection.usable:
                idle = self._idle.setdefault(address, deque())
                if len(idle) < self.max_idle:
                    idle.append(connection)
                else:
                    connection.close()
            else:
                connection.close()


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise UpstreamUnavailable(f"the model server answered something other than HTTP/1.1: "
                                  f"{lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if parts[0] == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers.setdefault("connection", "close")
    return int(parts[1]), headers


def _chunked_body(buffer: bytearray, start: int) -> bytes | None:
    """A complete ``Transfer-Encoding: chunked`` body from ``buffer[start:]``, or None
    while part of it has still to arrive (no trailers: modelyard's servers send none)."""
    chunks, position = [], start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        try:
            size = int(bytes(buffer[position:line_end]).split(b";", 1)[0].strip() or b"0", 16)
        except ValueError:
            raise UpstreamUnavailable("the model server sent a malformed chunked body") from None
        position = line_end + 2
        if size == 0:
            return b"".join(chunks) if buffer.find(b"\r\n", position) >= 0 else None
        if len(buffer) < position + size + 2:
            return None
        chunks.append(bytes(buffer[position:position + size]))
        position += size + 2
