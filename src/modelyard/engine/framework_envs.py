"""Framework versions: script-mode jobs run on the library versions their image names.

A SageMaker framework image pins its libraries: ``sagemaker-scikit-learn:1.2-1-cpu-py3``
has scikit-learn 1.2.1, ``sagemaker-xgboost:1.7-1`` XGBoost 1.7. modelyard has no images,
so for each framework version it builds a Python environment with those libraries, once,
and keeps it in a cache shared by every job (and every modelyard server) on the machine.

How an environment is built: with uv (the ``uv`` PyPI package, a dependency of modelyard;
``uv.find_uv_bin()``), ``uv venv --relocatable --seed`` on the server's interpreter and
``uv pip install --only-binary :all: --exclude-newer <date>`` of the framework library
plus what the container ships with it that scripts import (pandas, boto3; numpy, scipy and
joblib come as dependencies). ``--exclude-newer`` resolves the set as of the container's
release (numpy < 2 for the older ones), but never earlier than the first wheels for the
server's Python; a version not in the tables below resolves its library series
(``1.6-1``: ``scikit-learn==1.6.*``) as of today. Wheels only: nothing is compiled. A
version without wheels for this Python (scikit-learn 0.23, 1.0), or no network, makes the
job run on the server's own libraries, with a warning in its log. Only script mode uses
these environments: built-in algorithms and processing jobs run on the server's.

Concurrency: a build happens under an exclusive ``flock`` on ``.<key>.lock``, into
``.build-<key>-<random>``, and is renamed to ``<key>`` only when complete (with its
``modelyard-env.json`` written first), so no job sees a half-built environment and two
jobs (or two servers) never build the same one twice. A failed build is not retried for
``RETRY_AFTER_SECONDS`` by the same server, so a machine without network does not pay the
failure on every job.

Where the cache lives: ``MODELYARD_FRAMEWORK_ENVS_DIR``, else
``$XDG_CACHE_HOME/modelyard/framework-envs`` (``~/.cache/modelyard/framework-envs``).
Not in the data directory: jobs must see the environments, and the sandbox covers the data
directory; and an environment depends only on the framework version and the Python, not
on a server's data, so every data directory (every test server, too) shares one build.
The sandbox keeps the directory visible even when it lies under /tmp
(``sandbox._paths_jobs_need``). ``MODELYARD_FRAMEWORK_ENVS=off`` turns the feature off.

The runner (``modelyard.runtimes.script_mode``) runs with the environment's interpreter.
It needs only the standard library and the ``modelyard`` package, which reaches it through
a per-job directory in the job's /tmp holding one symlink to the package: the server's
site-packages stay out of the environment, or its newer libraries would shadow the
framework's.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .images import Image

ENABLE_ENV = "MODELYARD_FRAMEWORK_ENVS"
DIR_ENV = "MODELYARD_FRAMEWORK_ENVS_DIR"
MARKER = "modelyard-env.json"
# Part of every environment's key: bump it when the recipe below changes meaning.
RECIPE_VERSION = 1
BUILD_TIMEOUT_SECONDS = 30 * 60
RETRY_AFTER_SECONDS = 10 * 60
RUNNER_DIR = "modelyard-runner"  # in the job's /tmp

Log = Callable[[str], None]

# framework_version -> (the library's version specifier, the container's release, roughly).
_SKLEARN = {
    "0.20.0": ("0.20.0", "2019-06-01"), "0.23-1": ("0.23.2", "2021-01-01"),
    "1.0-1": ("1.0.2", "2022-06-01"), "1.2-1": ("1.2.1", "2023-06-01"),
    "1.4-2": ("1.4.2", "2024-06-01"),
}
_XGBOOST = {
    "0.90-1": ("0.90", "2020-03-01"), "0.90-2": ("0.90", "2020-06-01"),
    "1.0-1": ("1.0.*", "2020-09-01"), "1.2-1": ("1.2.*", "2021-03-01"),
    "1.2-2": ("1.2.*", "2021-06-01"), "1.3-1": ("1.3.*", "2021-09-01"),
    "1.5-1": ("1.5.*", "2022-06-01"), "1.7-1": ("1.7.*", "2023-06-01"),
    "3.0-5": ("3.0.*", "2025-09-01"),
}
# The first wheels of numpy / scipy / pandas for each Python: resolving earlier finds none.
_PYTHON_WHEELS_SINCE = {
    (3, 10): "2022-01-15", (3, 11): "2023-02-01", (3, 12): "2024-01-15",
    (3, 13): "2025-01-15", (3, 14): "2026-01-15",
}


@dataclass(frozen=True)
class FrameworkEnvSpec:
    """What one cached environment holds."""

    framework: str  # "sklearn", "xgboost"
    framework_version: str  # the SDK's framework_version, e.g. "1.2-1"
    requirements: tuple[str, ...]
    exclude_newer: str | None  # YYYY-MM-DD

    @property
    def key(self) -> str:
        recipe = json.dumps([RECIPE_VERSION, self.requirements, self.exclude_newer, sys.version_info[:2]])
        digest = hashlib.sha256(recipe.encode()).hexdigest()[:10]
        python = f"py{sys.version_info.major}{sys.version_info.minor}"
        return f"{self.framework}-{self.framework_version}-{python}-{digest}"

    @property
    def title(self) -> str:
        return f"{self.framework} {self.framework_version}"


def enabled() -> bool:
    """False when ``MODELYARD_FRAMEWORK_ENVS`` is off/0/false/no."""
    return os.environ.get(ENABLE_ENV, "on").strip().lower() not in ("off", "0", "false", "no")


def cache_root() -> Path:
    """Where the environments live (see the module docstring for why there)."""
    configured = os.environ.get(DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return (Path(cache_home).expanduser() / "modelyard" / "framework-envs").resolve()


def spec_for(image: Image) -> FrameworkEnvSpec | None:
    """The environment a script-mode job on ``image`` runs in; None for the server's own."""
    version = image.framework_version
    if version is None or image.framework not in ("sklearn", "xgboost"):
        return None
    table = _SKLEARN if image.framework == "sklearn" else _XGBOOST
    library, released = table.get(version) or (_minor_series(version), None)
    if image.framework == "sklearn":
        requirements = (f"scikit-learn=={library}", "pandas", "boto3")
    else:
        # From 2.1 on, the "xgboost" wheel drags in 200 MB of NVIDIA NCCL; "xgboost-cpu" is
        # the same library without it.
        series = tuple(int(part) for part in library.split(".")[:2] if part.isdigit())
        package = "xgboost-cpu" if series >= (2, 1) else "xgboost"
        requirements = (f"{package}=={library}", "scikit-learn", "pandas", "boto3")
    # A version not in the tables resolves as of today: its release date is not known.
    floor = _PYTHON_WHEELS_SINCE.get(sys.version_info[:2])
    exclude_newer = max(filter(None, [released, floor])) if released else None
    return FrameworkEnvSpec(image.framework, version, requirements, exclude_newer)


def _minor_series(version: str) -> str:
    """``2.1-1`` -> ``2.1.*``: an unknown framework version's library series."""
    return version.split("-", 1)[0] + ".*" if version.count(".") == 1 else version.split("-", 1)[0]


# ---------------------------------------------------------------- building


_failures: dict[Path, tuple[float, str]] = {}
_failures_lock = threading.Lock()


def ensure_environment(spec: FrameworkEnvSpec, root: Path, log: Log) -> Path:
    """The environment's directory, built first if needed; raises ``OSError`` with the
    reason when it cannot be built."""
    final = root / spec.key
    if _ready(final):
        return final
    with _failures_lock:
        failed = _failures.get(final)
    if failed and time.monotonic() - failed[0] < RETRY_AFTER_SECONDS:
        raise OSError(f"{failed[1]} (a build failed {int(time.monotonic() - failed[0])} s ago; "
                      f"modelyard tries again {RETRY_AFTER_SECONDS // 60} minutes after a failure)")
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{spec.key}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"modelyard: waiting for another job that is building the {spec.title} environment")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if _ready(final):
            return final
        try:
            _build(spec, root, final, log)
        except OSError as error:
            with _failures_lock:
                _failures[final] = (time.monotonic(), str(error))
            raise
        with _failures_lock:
            _failures.pop(final, None)
        return final


def _ready(environment: Path) -> bool:
    """Complete (its marker is written last, before the rename) and its interpreter still
    there (the base Python it links to may have been removed since)."""
    return (environment / MARKER).is_file() and (environment / "bin" / "python").exists()


def _build(spec: FrameworkEnvSpec, root: Path, final: Path, log: Log) -> None:
    for stale in root.glob(f".build-{spec.key}-*"):  # left by a crash; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    if final.exists():  # not ready: rebuild it
        shutil.rmtree(final)
    import uv

    uv_bin = uv.find_uv_bin()
    building = Path(tempfile.mkdtemp(prefix=f".build-{spec.key}-", dir=root))
    building.chmod(0o755)  # mkdtemp's 0700 would hide it from other users sharing the cache
    python = building / "bin" / "python"
    log(f"modelyard: building the {spec.title} environment with uv in {final} "
        f"({', '.join(spec.requirements)}; wheels as of {spec.exclude_newer or 'today'}); "
        "once, later jobs reuse it")
    started = time.monotonic()
    try:
        _run_uv([uv_bin, "venv", "--relocatable", "--seed", "--python", sys.executable,
                 "--allow-existing", str(building)], log)
        install = [uv_bin, "pip", "install", "--python", str(python), "--only-binary", ":all:"]
        if spec.exclude_newer:
            install += ["--exclude-newer", spec.exclude_newer]
        _run_uv([*install, *spec.requirements], log)
        frozen = subprocess.run([uv_bin, "pip", "freeze", "--python", str(python)], capture_output=True,
                                text=True, check=True, timeout=120).stdout.split()
        (building / MARKER).write_text(json.dumps({
            "framework": spec.framework, "framework_version": spec.framework_version,
            "requirements": list(spec.requirements), "exclude_newer": spec.exclude_newer,
            "python": sys.version.split()[0], "packages": frozen,
        }, indent=2))
        os.rename(building, final)
    except (OSError, subprocess.SubprocessError) as error:
        shutil.rmtree(building, ignore_errors=True)
        raise OSError(str(error)) from None
    log(f"modelyard: built the {spec.title} environment in {time.monotonic() - started:.0f} s: "
        + " ".join(frozen))


def _run_uv(command: list[str], log: Log) -> None:
    """Run uv with its progress lines in the job's log; OSError naming uv's last words."""
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never", NO_COLOR="1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env, stdin=subprocess.DEVNULL)
    lines: list[str] = []
    timer = threading.Timer(BUILD_TIMEOUT_SECONDS, process.kill)
    timer.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            if line:
                lines.append(line)
                log(f"uv: {line}")
        code = process.wait()
    finally:
        timer.cancel()
    if code != 0:
        start = next((i for i, line in enumerate(lines) if "error" in line.lower()), max(0, len(lines) - 1))
        reason = " ".join(line.strip() for line in lines[start:start + 2])  # the error and its cause
        raise OSError(f"uv exited with {code}: {reason}".strip())


# ---------------------------------------------------------------- jobs


@dataclass(frozen=True)
class JobRunner:
    """How the executor starts a job's runtime: the command and what to add to its env."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def runner_for(image: Image, module: str, job_tmp: Path, base_env: dict[str, str], log: Log) -> JobRunner:
    """The command for ``module``: in the framework version's environment for script mode,
    else (or when that cannot be built) with the server's interpreter."""
    server = JobRunner([sys.executable, "-m", module])
    if module != "modelyard.runtimes.script_mode" or not enabled():
        return server
    spec = spec_for(image)
    if spec is None:
        return server
    try:
        environment = ensure_environment(spec, cache_root(), log)
    except OSError as error:
        log(f"modelyard: WARNING: cannot build the {spec.title} environment ({error}); "
            f"this job runs on modelyard's own library versions instead")
        return server
    log(f"modelyard: running on the {spec.title} environment {environment} "
        f"({', '.join(_library_versions(environment, spec))})")
    runner_dir = job_tmp / RUNNER_DIR
    runner_dir.mkdir(parents=True, exist_ok=True)
    import modelyard

    (runner_dir / "modelyard").symlink_to(Path(modelyard.__file__).resolve().parent, target_is_directory=True)
    bin_dir = str(environment / "bin")
    return JobRunner([str(environment / "bin" / "python"), "-m", module], {
        "PATH": os.pathsep.join(filter(None, [bin_dir, base_env.get("PATH")])),
        "PYTHONPATH": os.pathsep.join(filter(None, [f"/tmp/{RUNNER_DIR}", base_env.get("PYTHONPATH")])),
        "VIRTUAL_ENV": str(environment),
    })


def _library_versions(environment: Path, spec: FrameworkEnvSpec) -> list[str]:
    """``scikit-learn==1.2.1`` etc.: the installed versions of the requested packages."""
    try:
        packages = json.loads((environment / MARKER).read_text())["packages"]
    except (OSError, ValueError, KeyError):
        return list(spec.requirements)
    wanted = {requirement.split("=")[0].split("<")[0].lower() for requirement in spec.requirements}
    return [package for package in packages if package.split("==")[0].lower() in wanted]
