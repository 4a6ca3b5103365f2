"""Automatic model tuning: HyperParameterTuningJobs searched with Optuna, each trial a real
training job run by the executor."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..platform import Platform


def start(platform: "Platform") -> None:
    """Resume the tuning jobs a stopped (or killed) server left running."""


def stop(platform: "Platform") -> None:
    """Stop the tuning loop (trials' training jobs stop with the executor)."""
