"""The web console, served at ``/console/`` by the same server as the API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from ..platform import Platform


def routes(platform: "Platform") -> list[BaseRoute]:
    """The console's routes, mounted by app.py before the API's catch-all route."""
    return []
