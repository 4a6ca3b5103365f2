"""Lambda: Python functions run in the job sandbox by warm workers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..platform import Platform


def start(platform: "Platform") -> None:
    """Register delivery kinds and start background loops (before deliveries start)."""
    from .invoke import ASYNC_ATTEMPTS, ASYNC_BACKOFF, DELIVERY_KIND, deliver, runtime

    import shutil

    # Sandboxes of workers a killed server left behind (their processes died with it).
    shutil.rmtree(platform.settings.data_dir / "lambda" / "workers", ignore_errors=True)
    platform.deliveries.register(DELIVERY_KIND, deliver, attempts=ASYNC_ATTEMPTS,
                                 backoff=ASYNC_BACKOFF)
    runtime(platform)


def stop(platform: "Platform") -> None:
    """Stop background loops and workers."""
    found = getattr(platform, "lambda_runtime", None)
    if found is not None:
        found.stop()
        platform.lambda_runtime = None  # type: ignore[attr-defined]
