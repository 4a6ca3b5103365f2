"""Operation handlers (see services/__init__.py)."""

from __future__ import annotations

from typing import Any

OPERATIONS: dict[str, Any] = {}
