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


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        try:
            self.writer.close()
        except RuntimeError:  # the loop is already closed
            pass


class UpstreamPool:
    """Idle keep-alive connections per ``host:port``; used from one event loop at a time."""

    def __init__(self, max_idle_per_host: int = MAX_IDLE_PER_HOST) -> None:
        self.max_idle = max_idle_per_host
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}

    async def post(self, url: str, path: str, headers: dict[str, str], body: bytes,
                   timeout: float) -> UpstreamResponse:
        """POST ``body`` to ``url + path``; raises UpstreamUnavailable or TimeoutError."""
        parts = urlsplit(url)
        address = (parts.hostname or "127.0.0.1", parts.port or 80)
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
            if not connection.reader.at_eof() and not connection.writer.is_closing():
                return connection
            connection.close()
        return None

    async def _connect(self, address: tuple[str, int]) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(*address, limit=MAX_HEADER_BYTES * 4)
        except OSError as error:
            raise UpstreamUnavailable(f"cannot connect to {address[0]}:{address[1]}: "
                                      f"{error.strerror or error}") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(reader, writer)

    async def _exchange(self, address: tuple[str, int], connection: _Connection,
                        request: bytes) -> UpstreamResponse:
        keep = False
        try:
            connection.writer.write(request)
            await connection.writer.drain()
            try:
                head = await connection.reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as error:
                raise UpstreamUnavailable("the model server closed the connection without "
                                          "answering") from error
            status, headers = _parse_head(head)
            body, keep = await _read_body(connection.reader, headers)
            return UpstreamResponse(status, headers, body)
        except (ConnectionError, asyncio.LimitOverrunError, asyncio.IncompleteReadError) as error:
            raise UpstreamUnavailable(f"the connection to the model server failed: {error}") \
                from None
        finally:
            if keep:
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


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> tuple[bytes, bool]:
    """The body and whether the connection can be reused."""
    keep = headers.get("connection", "").lower() != "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers from our servers
                return b"".join(chunks), keep
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        return await reader.readexactly(int(length)), keep
    return await reader.read(), False
