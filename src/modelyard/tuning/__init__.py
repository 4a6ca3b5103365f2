"""Automatic model tuning: HyperParameterTuningJobs searched with Optuna, each trial a real
training job run by the executor.

``loop.py`` moves running tuning jobs forward (one thread for all of them), ``search.py``
keeps one Optuna study per job (rebuilt from the job's record after a restart),
``space.py`` turns SageMaker's ranges into Optuna distributions, ``validation.py`` and
``warm_start.py`` check CreateHyperParameterTuningJob, ``records.py`` sums trials up as
DescribeHyperParameterTuningJob shows them. The API is services/tuning.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..platform import Platform

_loops: dict[int, "object"] = {}


def start(platform: "Platform") -> None:
    """Start the tuning loop; its first pass resumes the tuning jobs a stopped (or killed)
    server left InProgress or Stopping."""
    from .loop import TuningLoop

    loop = TuningLoop(platform)
    platform.executor.on_finished.append(loop.on_job_finished)
    _loops[id(platform)] = loop
    loop.start()


def stop(platform: "Platform") -> None:
    """Stop the tuning loop (trials' training jobs stop with the executor)."""
    loop = _loops.pop(id(platform), None)
    if loop is not None:
        loop.stop()  # type: ignore[attr-defined]


def wake(platform: "Platform") -> None:
    """Have the loop look at the tuning jobs now (a job was created or stopped)."""
    loop = _loops.get(id(platform))
    if loop is not None:
        loop.wake()  # type: ignore[attr-defined]
