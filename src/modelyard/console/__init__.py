"""The web console, served at ``/console/`` by the same server as the API.

Server-rendered pages, one small module per resource family (home, pipelines, jobs,
tuning, registry, endpoints, monitoring, alarms, objects), each giving its routes; page.py
holds what they share (the sign-in check, the layout, CSRF-checked actions that run operations through
``modelyard.dispatch.call``), auth.py the signed session cookie, html.py escaping, and
charts.py the server-drawn SVG. static/ has the one stylesheet and the one script (live
updates by polling the page itself); there is no build step.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

if TYPE_CHECKING:
    from ..platform import Platform

STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {"console.css": "text/css; charset=utf-8",
                "console.js": "text/javascript; charset=utf-8"}


def routes(platform: "Platform") -> list[BaseRoute]:
    """The console's routes, mounted by app.py before the API's catch-all route."""
    from . import (alarms, endpoints, home, jobs, monitoring, objects, pipelines, registry,
                   tuning)
    from .page import signin_page

    show, submit, signout = signin_page(platform)
    assembled: list[BaseRoute] = [
        Route("/", _to_console, methods=["GET", "HEAD"]),
        Route("/console", _to_console, methods=["GET", "HEAD"]),
        Route("/console/signin", show, methods=["GET"]),
        Route("/console/signin", submit, methods=["POST"]),
        Route("/console/signout", signout, methods=["POST"]),
        Route("/console/static/{name}", _static, methods=["GET", "HEAD"]),
    ]
    for module in (home, pipelines, jobs, tuning, registry, endpoints, monitoring, alarms,
                   objects):
        assembled += module.routes(platform)
    return assembled


async def _to_console(request: Request) -> Response:
    return RedirectResponse("/console/", status_code=302)


async def _static(request: Request) -> Response:
    """The stylesheet and the script: public (the sign-in page needs them), no user data."""
    name = request.path_params["name"]
    if name not in STATIC_TYPES:
        return Response("Not found", status_code=404, media_type="text/plain")
    return Response((STATIC / name).read_bytes(), media_type=STATIC_TYPES[name],
                    headers={"Cache-Control": "max-age=300",
                             "X-Content-Type-Options": "nosniff"})
