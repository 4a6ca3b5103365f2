"""autoscaling operations."""

from __future__ import annotations

from typing import Any

OPERATIONS: dict[str, Any] = {}
