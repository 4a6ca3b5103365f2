"""The ASGI application: a health route and the AWS gateway on every other path."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from .api.gateway import Gateway
from .platform import Platform

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def build_app(platform: Platform) -> Starlette:
    gateway = Gateway(platform)
    return Starlette(
        routes=[
            Route("/_modelyard/health", gateway.health, methods=["GET"]),
            Route("/{path:path}", gateway.handle, methods=ALL_METHODS),
        ],
    )
