"""The SageMaker training-container contract, as seen from inside a job.

The executor binds the job's directory at ``/opt/ml`` before a runtime starts; tests and
benchmarks point ``MODELYARD_ML_ROOT`` at a directory with the same layout instead. Every
path below is derived from that root at call time, never cached at import, so one process
(e.g. a test) can look at several job directories.

Failure contract: a runtime that fails writes one reason to ``output/failure`` (the
executor reports it as the job's ``FailureReason``) and exits non-zero. ``run_main`` does
that for any exception; ``UserError`` marks problems the user can fix (hyperparameters,
data, channels) and becomes ``ClientError: ...``, like SageMaker's built-in algorithms.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, NoReturn

ML_ROOT_ENV = "MODELYARD_ML_ROOT"
DEFAULT_ML_ROOT = "/opt/ml"

# DescribeTrainingJob's FailureReason holds at most 1024 characters.
MAX_FAILURE_REASON_CHARS = 1024


class UserError(Exception):
    """A problem in the job's request or data that the user can fix; the message says how."""


# ---------------------------------------------------------------- paths


def ml_root() -> Path:
    return Path(os.environ.get(ML_ROOT_ENV) or DEFAULT_ML_ROOT)


def input_dir() -> Path:
    return ml_root() / "input"


def input_config_dir() -> Path:
    return input_dir() / "config"


def input_data_dir() -> Path:
    return input_dir() / "data"


def channel_dir(name: str) -> Path:
    return input_data_dir() / name


def hyperparameters_file() -> Path:
    return input_config_dir() / "hyperparameters.json"


def input_data_config_file() -> Path:
    return input_config_dir() / "inputdataconfig.json"


def resource_config_file() -> Path:
    return input_config_dir() / "resourceconfig.json"


def model_dir() -> Path:
    return ml_root() / "model"


def output_dir() -> Path:
    return ml_root() / "output"


def output_data_dir() -> Path:
    return output_dir() / "data"


def output_intermediate_dir() -> Path:
    return output_dir() / "intermediate"


def failure_file() -> Path:
    return output_dir() / "failure"


def checkpoints_dir() -> Path:
    return ml_root() / "checkpoints"


def code_dir() -> Path:
    return ml_root() / "code"


def container_path(path: str) -> Path:
    """A path as the job's requests name it (``/opt/ml/input/data/code/...``) on this job's
    ml root: the same path in a sandbox, re-rooted under ``MODELYARD_ML_ROOT`` in tests."""
    try:
        return ml_root() / Path(path).relative_to(DEFAULT_ML_ROOT)
    except ValueError:
        return Path(path)


# ---------------------------------------------------------------- config files


def _read_json_object(path: Path) -> dict[str, Any]:
    """Read a config file; a missing file means an empty config (SageMaker omits none,
    but a runtime should not crash with a traceback on a hand-made job directory)."""
    if not path.exists():
        return {}
    with path.open(encoding="utf-8") as f:
        value = json.load(f)
    if not isinstance(value, dict):
        raise UserError(f"{path.name} must hold a JSON object, found {type(value).__name__}")
    return value


def read_hyperparameters() -> dict[str, str]:
    """The CreateTrainingJob ``HyperParameters`` map exactly as given (string -> string)."""
    return {str(k): str(v) for k, v in _read_json_object(hyperparameters_file()).items()}


def read_input_data_config() -> dict[str, dict[str, Any]]:
    """``{channel: {"ContentType": ..., "TrainingInputMode": "File", ...}}``."""
    return _read_json_object(input_data_config_file())


def read_resource_config() -> dict[str, Any]:
    """``{"current_host": "algo-1", "hosts": ["algo-1"], ...}`` with single-host defaults."""
    config = _read_json_object(resource_config_file())
    config.setdefault("current_host", "algo-1")
    config.setdefault("hosts", [config["current_host"]])
    config.setdefault("network_interface_name", "eth0")
    return config


def decode_hyperparameter(value: str) -> Any:
    """Undo the SageMaker SDK's encoding of framework hyperparameters.

    Framework estimators JSON-encode every value (``"\\"train.py\\""``, ``"10"``,
    ``"true"``); generic estimators send ``str(value)``. JSON when it parses, else the raw
    string -- the same rule as the sagemaker-training toolkit."""
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


# ---------------------------------------------------------------- data channels


def channel_names(input_data_config: dict[str, Any]) -> list[str]:
    """The job's channels: inputdataconfig.json's, or -- for a hand-made job directory
    without one -- the directories under input/data."""
    if input_data_config:
        return sorted(input_data_config)
    data = input_data_dir()
    return sorted(path.name for path in data.iterdir() if path.is_dir()) if data.is_dir() else []


def channel_files(name: str) -> list[Path]:
    """Every data file of a channel, recursively, in a stable order.

    Hidden files (``.DS_Store``, editor droppings) are skipped: they are never data."""
    root = channel_dir(name)
    if not root.is_dir():
        return []
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )


def num_cpus() -> int:
    """Cores the job may use: the executor's ``SM_NUM_CPUS``, else this process's affinity."""
    for variable in ("SM_NUM_CPUS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------- logging and failure


def log(message: str) -> None:
    """One line to the job's log stream, flushed at once so the log follows the job live."""
    print(message, flush=True)


def write_failure(message: str) -> None:
    """Write the failure reason SageMaker-style; the executor reports it as FailureReason."""
    reason = message.strip() or "unknown error"
    if len(reason) > MAX_FAILURE_REASON_CHARS:
        reason = reason[: MAX_FAILURE_REASON_CHARS - 3] + "..."
    path = failure_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(reason + "\n", encoding="utf-8")
    temporary.replace(path)  # never leave a half-written reason behind


def fail(message: str, exit_code: int = 1) -> NoReturn:
    """Record ``message`` as the failure reason, show it in the log, and exit."""
    write_failure(message)
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(exit_code)


def run_main(main: Callable[[], None]) -> NoReturn:
    """Run a runtime's entry function under the failure contract.

    ``UserError`` -> ``ClientError: <message>``; any other exception -> ``AlgorithmError:
    <type>: <message>`` with the traceback in the log (it is a bug of ours or of a
    library, and the traceback is what someone will need)."""
    try:
        main()
    except SystemExit:
        raise
    except UserError as error:
        fail(f"ClientError: {error}")
    except BaseException as error:  # noqa: BLE001 - every failure must reach the failure file
        traceback.print_exc()
        fail(f"AlgorithmError: {type(error).__name__}: {error}")
    sys.stdout.flush()
    raise SystemExit(0)
