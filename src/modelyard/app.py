"""The ASGI application: a health route and the AWS gateway on every other path.

``POST /endpoints/...`` (InvokeEndpoint, the data plane) first goes to the gateway's
``handle_invocation``, which answers it without Starlette's routing and Request objects;
whatever that declines, and every other request, goes through Starlette to ``handle``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .api.gateway import Gateway
from .platform import Platform
from .sns import web as sns_web

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


class App:
    """The server's ASGI callable: the invocation fast path in front of Starlette."""

    def __init__(self, gateway: Gateway, starlette: Starlette) -> None:
        self.gateway = gateway
        self.starlette = starlette

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] == "POST"
                and scope["path"].startswith("/endpoints/")
                and await self.gateway.handle_invocation(scope, receive, send)):
            return
        await self.starlette(scope, receive, send)


def build_app(platform: Platform) -> App:
    gateway = Gateway(platform)
    return App(gateway, Starlette(
        routes=[
            Route("/_modelyard/health", gateway.health, methods=["GET"]),
            # SNS's SubscribeURL / UnsubscribeURL: open links, as on AWS (a token confirms).
            Route("/_modelyard/sns", sns_web.endpoint(platform), methods=["GET"]),
            Route("/{path:path}", gateway.handle, methods=ALL_METHODS),
        ],
    ))
