"""Framework script mode: ``python -m modelyard.runtimes.script_mode``.

Does what the sagemaker-training toolkit does in the scikit-learn and XGBoost framework
containers (https://github.com/aws/sagemaker-training-toolkit): reads ``sagemaker_program``
and the other ``sagemaker_*`` hyperparameters, builds the ``SM_*`` environment exactly as
``Environment.to_env_vars()`` does, passes the user's hyperparameters as ``--key value``
arguments (``mapping.to_cmd_args``), installs ``requirements.txt`` with pip, and runs the
entry point from the code directory with this interpreter, its output streaming through.
A failing script ends the job with the toolkit's ``ExecuteUserScriptError`` message.

Entry points: ``train.py`` runs as a script, ``train.sh`` (or any other file) as a command,
and a name without a file of its own whose module is in the code directory (``train`` for
``train.py``) as ``python -m train``, as the framework containers' ``run_module`` does. With
``EnableNetworkIsolation`` the SDK sends the code as the ``code`` channel and names
``/opt/ml/input/data/code/sourcedir.tar.gz`` as the submit directory; it is unpacked into
the code directory here, as the toolkit's ``download_and_extract`` does.

"This interpreter" is the framework version's environment when the executor found one
(engine/framework_envs.py), else the server's. One deliberate difference: pip installs
into a job-private virtual environment layered on this interpreter's site-packages (a
``.pth`` file that adds them after the environment's own) instead of into the shared
interpreter itself, so one job's requirements cannot change what other jobs, or
modelyard, import. The script sees the same packages plus the ones it asked for, whether
this interpreter is a virtual environment or not.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import site
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable

from modelyard.runtimes import container
from modelyard.runtimes.container import UserError, decode_hyperparameter, log

# sagemaker_training.params.SAGEMAKER_HYPERPARAMETERS: consumed by the toolkit, never
# passed to the script. Other sagemaker_* keys become "additional framework parameters".
TOOLKIT_HYPERPARAMETERS = (
    "sagemaker_program", "sagemaker_submit_directory", "sagemaker_enable_cloudwatch_metrics",
    "sagemaker_region", "sagemaker_container_log_level", "sagemaker_job_name",
    "default_user_module_name", "_tuning_objective_metric", "sagemaker_s3_output",
)
# The toolkit quotes a failed script's stderr from the first line naming a Python error
# (sagemaker_training._PYTHON_ERRORS_: every builtin *Error / *Exception, plus pip's
# "Invalid requirement"); matching the suffixes also catches library errors (XGBoostError).
ERROR_MARKERS = ("Error", "Exception", "Invalid requirement")
# Room for the quoted stderr in a FailureReason of at most 1024 characters.
MAX_QUOTED_STDERR_CHARS = 700
INFO = 20  # logging.INFO, the toolkit's default log level
MODULE_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


# ---------------------------------------------------------------- the training environment


def _json(value: Any) -> str:
    """mapping.to_env_vars' encoding of a non-string value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _env_value(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else _json(value)


def to_cmd_args(hyperparameters: dict[str, Any]) -> list[str]:
    """mapping.to_cmd_args: sorted ``--name value`` pairs (``-n`` for one-letter names),
    values rendered with ``str`` (``True``, ``0.1``), mappings as ``k=v,k=v``."""
    arguments: list[str] = []
    for name in sorted(hyperparameters):
        value = hyperparameters[name]
        arguments.append(f"--{name}" if len(name) > 1 else f"-{name}")
        if isinstance(value, dict):
            arguments.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:
            arguments.append("" if value is None else str(value))
    return arguments


def training_environment(raw_hyperparameters: dict[str, str]) -> dict[str, Any]:
    """The toolkit's ``Environment`` as a dict of its properties (what SM_TRAINING_ENV holds)."""
    decoded = {name: decode_hyperparameter(value) for name, value in raw_hyperparameters.items()}
    toolkit = {k: v for k, v in decoded.items() if k in TOOLKIT_HYPERPARAMETERS or k.startswith("sagemaker_")}
    user_hyperparameters = {k: v for k, v in decoded.items() if k not in toolkit}
    framework_params = {k: v for k, v in toolkit.items() if k not in TOOLKIT_HYPERPARAMETERS}

    input_data_config = container.read_input_data_config()
    resource_config = container.read_resource_config()
    hosts = list(resource_config["hosts"])
    groups = resource_config.get("instance_groups") or []
    current_group = resource_config.get("current_group_name", "homogeneousCluster")
    distribution_groups = framework_params.get("sagemaker_distribution_instance_groups", [])
    distribution_hosts = (
        [host for group in groups if group["instance_group_name"] in distribution_groups for host in group["hosts"]]
        if groups else list(hosts)
    )
    program = toolkit.get("sagemaker_program")
    program = None if program is None else str(program)
    return {
        "additional_framework_parameters": framework_params,
        "channel_input_dirs": {name: str(container.channel_dir(name)) for name in input_data_config},
        "current_host": resource_config["current_host"],
        "current_instance_group": current_group,
        "current_instance_group_hosts": next(
            (group["hosts"] for group in groups if group["instance_group_name"] == current_group), []),
        "current_instance_type": resource_config.get("current_instance_type", "local"),
        "distribution_hosts": distribution_hosts,
        "distribution_instance_groups": distribution_groups,
        # The image's SAGEMAKER_TRAINING_MODULE (e.g. sagemaker_sklearn_container.training:main).
        "framework_module": os.environ.get("SAGEMAKER_TRAINING_MODULE"),
        "hosts": hosts,
        "hyperparameters": user_hyperparameters,
        "input_config_dir": str(container.input_config_dir()),
        "input_data_config": input_data_config,
        "input_dir": str(container.input_dir()),
        "instance_groups": [group["instance_group_name"] for group in groups],
        "instance_groups_dict": {group["instance_group_name"]: group for group in groups},
        "is_hetero": len(groups) > 1,
        "is_master": resource_config["current_host"] == (distribution_hosts or hosts)[0],
        "is_modelparallel_enabled": None,  # the toolkit's value when SM_HP_MP_PARAMETERS is unset
        "is_smddpmprun_installed": False,
        "is_smddprun_installed": False,
        "job_name": os.environ.get("TRAINING_JOB_NAME"),
        "log_level": toolkit.get("sagemaker_container_log_level", INFO),
        "master_hostname": (distribution_hosts or hosts)[0],
        "model_dir": str(container.model_dir()),
        # The SDK's sagemaker_submit_directory is the s3:// URI of sourcedir.tar.gz; the
        # executor has already extracted it into the code directory, as the toolkit would.
        "module_dir": str(toolkit.get("sagemaker_submit_directory", container.code_dir())),
        "module_name": program[:-3] if program and program.endswith(".py") else program,
        "network_interface_name": resource_config.get("network_interface_name", "eth0"),
        "num_cpus": container.num_cpus(),
        "num_gpus": 0,
        "num_neurons": 0,
        "output_data_dir": str(container.output_data_dir()),
        "output_dir": str(container.output_dir()),
        "output_intermediate_dir": str(container.output_intermediate_dir()),
        "resource_config": resource_config,
        "topology": resource_config.get("topology", []),
        "user_entry_point": program,
    }


def to_env_vars(env: dict[str, Any]) -> dict[str, str]:
    """Environment.to_env_vars(): the SM_* variables the script reads."""
    variables = {
        "hosts": env["hosts"],
        "network_interface_name": env["network_interface_name"],
        "hps": env["hyperparameters"],
        "user_entry_point": env["user_entry_point"],
        "framework_params": env["additional_framework_parameters"],
        "resource_config": env["resource_config"],
        "input_data_config": env["input_data_config"],
        "output_data_dir": env["output_data_dir"],
        "channels": sorted(env["channel_input_dirs"]),
        "current_host": env["current_host"],
        "current_instance_type": env["current_instance_type"],
        "current_instance_group": env["current_instance_group"],
        "current_instance_group_hosts": env["current_instance_group_hosts"],
        "instance_groups": env["instance_groups"],
        "instance_groups_dict": env["instance_groups_dict"],
        "distribution_instance_groups": env["distribution_instance_groups"],
        "is_hetero": env["is_hetero"],
        "module_name": env["module_name"],
        "log_level": env["log_level"],
        "framework_module": env["framework_module"],
        "input_dir": env["input_dir"],
        "input_config_dir": env["input_config_dir"],
        "output_dir": env["output_dir"],
        "num_cpus": env["num_cpus"],
        "num_gpus": env["num_gpus"],
        "num_neurons": env["num_neurons"],
        "model_dir": env["model_dir"],
        "module_dir": env["module_dir"],
        "training_env": env,
        "user_args": to_cmd_args(env["hyperparameters"]),
        "output_intermediate_dir": env["output_intermediate_dir"],
    }
    if env["topology"]:
        variables["topology"] = env["topology"]
    for name, path in env["channel_input_dirs"].items():
        variables[f"channel_{name}"] = path
    for name, value in env["hyperparameters"].items():
        variables[f"hp_{name}"] = value
    return {f"SM_{name.upper()}": _env_value(value) for name, value in variables.items()}


# ---------------------------------------------------------------- running processes


class ProcessError(Exception):
    """The toolkit's _CalledProcessError family; str() is the toolkit's failure message."""

    def __init__(self, kind: str, command: list[str], return_code: int, stderr: str) -> None:
        super().__init__(kind)
        if return_code < 0:  # killed by a signal; the toolkit ran through a shell, which says 128+N
            return_code = 128 - return_code
        extra = '\nExtraInfo "OutOfMemory: Process killed by SIGKILL (signal 9)"' if return_code == 137 else ""
        self.message = (f'{kind}:\nExitCode {return_code}\nErrorMessage "{stderr}"{extra}\n'
                        f'Command "{" ".join(command)}"')

    def __str__(self) -> str:
        return self.message


def _quoted_error(lines: Iterable[str]) -> str:
    """stderr from the first line that names an error, without repeats, as the toolkit
    quotes it; the tail when no line names one."""
    lines = [line.strip(" :\n") for line in lines if line.strip()]
    start = next((i for i, line in enumerate(lines) if any(m in line for m in ERROR_MARKERS)), None)
    quoted = list(dict.fromkeys(lines[start:] if start is not None else lines[-10:]))
    text = "\n".join(quoted)
    return text if len(text) <= MAX_QUOTED_STDERR_CHARS else "..." + text[-MAX_QUOTED_STDERR_CHARS:]


def run_streaming(kind: str, command: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Run a command with its stdout passed straight through and its stderr relayed line by
    line (and remembered), so the job log follows it live; raise ProcessError on failure."""
    sys.stdout.flush()
    process = subprocess.Popen(command, cwd=cwd, env=env, stderr=subprocess.PIPE)
    tail: collections.deque[str] = collections.deque(maxlen=200)

    def relay() -> None:
        assert process.stderr is not None
        for raw in iter(process.stderr.readline, b""):
            line = raw.decode("utf-8", "replace")
            sys.stderr.write(line)
            sys.stderr.flush()
            tail.append(line)

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    # StopTrainingJob signals this process; pass it on so the script can stop cleanly.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: process.send_signal(signum))
    try:
        return_code = process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    reader.join()
    if return_code != 0:
        raise ProcessError(kind, command, return_code, _quoted_error(tail))


def _python_module_in(program: str, code_dir: Path) -> bool:
    """Whether ``python -m program`` finds a module (``train.py``, ``pkg/train.py``) or a
    package with a ``__main__.py`` in the code directory."""
    if program.endswith((".py", ".sh")) or not MODULE_NAME.fullmatch(program):
        return False
    path = code_dir.joinpath(*program.split("."))
    return path.with_name(path.name + ".py").is_file() or (path / "__main__.py").is_file()


def resolve_entry_point(program: str, code_dir: Path) -> str:
    """The entry point's kind: ``entry_point_type`` for a file in the code directory;
    "module" (or "package" with a setup.py) for a module name such as ``train``."""
    if (code_dir / program).is_file():
        return entry_point_type(program, code_dir)
    if _python_module_in(program, code_dir):
        return "package" if (code_dir / "setup.py").exists() else "module"
    present = sorted(path.name for path in code_dir.iterdir()) if code_dir.is_dir() else []
    module_hint = "" if program.endswith((".py", ".sh")) else f", nor a module {program}.py to run with python -m"
    raise UserError(f"Entry point {program} is not in the code directory {code_dir} "
                    f"(sagemaker_submit_directory){module_hint}; it holds: {', '.join(present) or 'nothing'}.")


def entry_point_type(program: str, code_dir: Path) -> str:
    """sagemaker_training._entry_point_type.get: "command" (.sh, or not Python), "package"
    (the code directory has a setup.py) or "program" (a .py script)."""
    if program.endswith(".sh"):
        return "command"
    if (code_dir / "setup.py").exists():
        return "package"
    return "program" if program.endswith(".py") else "command"


def _entry_point_command(kind: str, python: str, program: str, code_dir: Path, arguments: list[str]) -> list[str]:
    """ProcessRunner._create_command: a package (or a module name) runs as a module, a .py
    file as a script, a command through /bin/sh."""
    if kind in ("package", "module"):
        return [python, "-m", program.removesuffix(".py"), *arguments]
    if kind == "program":
        return [python, program, *arguments]
    with contextlib.suppress(OSError):  # a read-only code dir: the file may be executable already
        (code_dir / program).chmod(0o777)
    return ["/bin/sh", "-c", f"./{program} {' '.join(shlex.quote(a) for a in arguments)}".strip()]


def _site_directories() -> list[str]:
    """This interpreter's site-packages directories, in sys.path order (a virtual
    environment's own, or the system's, plus the user site when it is in use)."""
    candidates = [*site.getsitepackages(), site.getusersitepackages()]
    return [path for path in sys.path if path in candidates]


def _layered_venv(environment: Path) -> str:
    """A new virtual environment that sees this interpreter's packages after its own.

    ``venv --system-site-packages`` would not do: it layers on the *base* interpreter,
    which in a virtual environment (the usual install, and every framework environment)
    is not where the packages are. A ``.pth`` file that calls ``site.addsitedir`` adds
    the directories, with their own ``.pth`` files, after the new environment's."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(environment)],
                   check=True, stdout=subprocess.DEVNULL)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_packages = environment / "lib" / version / "site-packages"
    lines = [f"import site; site.addsitedir({path!r})" for path in _site_directories()]
    (site_packages / "_modelyard_job_base.pth").write_text("\n".join(lines) + "\n")
    return str(environment / "bin" / "python")


def _private_python(kind: str, code_dir: Path, scratch: Path, env: dict[str, str]) -> str:
    """entry_point.install: a package is pip-installed (with its requirements.txt), a script's
    (or module's) requirements.txt is installed, a command gets nothing -- here into a
    virtual environment layered on this interpreter. Returns the interpreter the entry
    point runs with."""
    has_requirements = (code_dir / "requirements.txt").exists()
    if kind == "command" or (kind in ("program", "module") and not has_requirements):
        return sys.executable
    python = _layered_venv(scratch / "venv")
    command = [sys.executable, "-m", "pip", "--python", python, "install"]
    command += ["."] if kind == "package" else []
    command += ["-r", "requirements.txt"] if has_requirements else []
    log("Installing module." if kind == "package" else "Installing dependencies from requirements.txt")
    run_streaming("InstallModuleError" if kind == "package" else "InstallRequirementsError", command, code_dir, env)
    return python


# ---------------------------------------------------------------- the code


def unpack_submit_directory(submit_directory: str, code_dir: Path) -> None:
    """files.download_and_extract for a submit directory inside the container: a tar.gz is
    unpacked, a directory copied, another file copied, into an empty code directory.
    (An s3:// URI the executor has unpacked already.)"""
    if submit_directory.startswith("s3://"):
        return
    source = container.container_path(submit_directory)
    if source == code_dir or (code_dir.is_dir() and any(code_dir.iterdir())):
        return
    if not source.exists():
        raise UserError(f"sagemaker_submit_directory {submit_directory} does not exist in the job. With "
                        "EnableNetworkIsolation the code must arrive in an input channel: the SDK adds "
                        "it as the channel 'code' (/opt/ml/input/data/code/sourcedir.tar.gz).")
    code_dir.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, code_dir, dirs_exist_ok=True)
    elif tarfile.is_tarfile(source):
        with tarfile.open(source) as archive:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.10.12: no escapes
                archive.extractall(code_dir, filter="data")
            else:
                archive.extractall(code_dir)
    else:
        shutil.copy2(source, code_dir)
    log(f"Extracted {submit_directory} into {code_dir}")


# ---------------------------------------------------------------- main


def main() -> None:
    raw = container.read_hyperparameters()
    env = training_environment(raw)
    program = env["user_entry_point"]
    if not program:
        raise UserError("Hyperparameter sagemaker_program is missing: script mode needs the entry point's "
                        "file name (the SDK sets it from entry_point).")
    code_dir = container.code_dir()
    unpack_submit_directory(str(env["module_dir"]), code_dir)
    kind = resolve_entry_point(program, code_dir)

    env_vars = to_env_vars(env)
    region = os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", ""))
    process_env = dict(os.environ)
    process_env.update(env_vars)
    process_env.update({
        # What the toolkit exports besides SM_*: its own process sees them, and so does the script.
        "SAGEMAKER_JOB_NAME": _env_value(decode_hyperparameter(raw.get("sagemaker_job_name", '""'))),
        "CURRENT_HOST": env["current_host"],
        "SAGEMAKER_REGION": _env_value(decode_hyperparameter(raw.get("sagemaker_region", json.dumps(region)))),
        # The code directory first. (The toolkit appends its whole sys.path; here that would
        # put the shared site-packages ahead of the job's own requirements.)
        "PYTHONPATH": os.pathsep.join(filter(None, [str(code_dir), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",  # the script's prints reach the log as they happen
    })
    with tempfile.TemporaryDirectory(prefix="modelyard-script-") as scratch:
        try:
            python = _private_python(kind, code_dir, Path(scratch), process_env)
            command = _entry_point_command(kind, python, program, code_dir, to_cmd_args(env["hyperparameters"]))
            log("Invoking user script\n\nTraining Env:\n\n" + json.dumps(env, indent=4, default=str)
                + "\n\nEnvironment variables:\n\n" + "\n".join(f"{k}={v}" for k, v in env_vars.items())
                + "\n\nInvoking script with the following command:\n\n" + " ".join(command) + "\n")
            run_streaming("ExecuteUserScriptError", command, code_dir, process_env)
        except ProcessError as error:
            container.fail(str(error))
    log("Reporting training SUCCESS")


if __name__ == "__main__":
    container.run_main(main)
