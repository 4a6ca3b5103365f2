"""The ASGI application: a health route and the AWS gateway on every other path.

``POST /endpoints/...`` (InvokeEndpoint, the data plane) first goes to the gateway's
``handle_invocation``, which answers it without Starlette's routing and Request objects;
whatever that declines, and every other request, goes through Starlette to ``handle``.

The web console lives at ``/console/``; a browser's unsigned ``GET /`` is redirected there.
Signed requests (an ``Authorization`` header or a presigned URL) always reach the API, so an
S3 bucket named ``console`` stays reachable path-style.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import console
from .api.gateway import Gateway
from .platform import Platform
from .sns import web as sns_web

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


class App:
    """The server's ASGI callable: the invocation fast path in front of Starlette."""

    def __init__(self, gateway: Gateway, starlette: Starlette, console_app: Starlette) -> None:
        self.gateway = gateway
        self.starlette = starlette
        self.console = console_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] == "POST"
                and scope["path"].startswith("/endpoints/")
                and await self.gateway.handle_invocation(scope, receive, send)):
            return
        if scope["type"] == "http" and _for_console(scope):
            await self.console(scope, receive, send)
            return
        await self.starlette(scope, receive, send)


def build_app(platform: Platform) -> App:
    gateway = Gateway(platform)
    console_app = Starlette(routes=console.routes(platform))
    return App(gateway, Starlette(
        routes=[
            Route("/_modelyard/health", gateway.health, methods=["GET"]),
            # SNS's SubscribeURL / UnsubscribeURL: open links, as on AWS (a token confirms).
            Route("/_modelyard/sns", sns_web.endpoint(platform), methods=["GET"]),
            Route("/{path:path}", gateway.handle, methods=ALL_METHODS),
        ],
    ), console_app)


def _for_console(scope: Scope) -> bool:
    """An unsigned browser request for the console (or for ``/``, which redirects there)."""
    path = scope["path"]
    if not (path == "/console" or path.startswith("/console/")
            or (path == "/" and scope["method"] in ("GET", "HEAD"))):
        return False
    if any(name == b"authorization" for name, _ in scope["headers"]):
        return False
    query = scope.get("query_string", b"")
    if b"X-Amz-Signature=" in query or b"Signature=" in query:
        return False
    if path == "/":
        return any(name == b"accept" and b"text/html" in value
                   for name, value in scope["headers"])
    return True
