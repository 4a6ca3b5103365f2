"""A job's private view of the file system: its own /opt/ml and /tmp, nothing of others.

Each job process starts in a new mount (and PID) namespace via util-linux ``unshare``.
Inside it, the job's directory is bound at ``/opt/ml`` and its own tmp at ``/tmp``, and
the server's data directory (metadata, blobs, credentials, other jobs) is covered by an
empty tmpfs. Root gets plain namespaces; other users get them through a user namespace
(``--map-root-user``), which needs unprivileged user namespaces enabled in the kernel.
The namespace's first process dies with the job's supervisor thread (PR_SET_PDEATHSIG),
and every process in the namespace dies with it, so no job outlives the server.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .cgroups import join_in_child

ML_ROOT = "/opt/ml"
_PR_SET_PDEATHSIG = 1

# Runs inside the new namespaces, as its root, before the job's own command. Positional
# arguments: the job's ml dir, its tmp dir, the data dir to hide, the working directory,
# then the command. KEEP_MOUNTS (built per job) binds what the job's Python needs from the
# host's /tmp into the private one before it covers /tmp.
_ENTER = """
set -e
if [ ! -d /opt/ml ]; then
  mount -t tmpfs modelyard-opt /opt
  mkdir -p /opt/ml
fi
mount --bind "$1" /opt/ml
KEEP_MOUNTS
mount --rbind "$2" /tmp
# A data directory under /tmp is already out of sight; any other is covered.
if [ -d "$3" ]; then mount -t tmpfs -o size=1m,ro modelyard-hidden "$3"; fi
cd "$4"
shift 4
exec "$@"
"""


def _paths_jobs_need() -> list[Path]:
    """Where the job's Python and modelyard live: these must stay visible in the sandbox.
    Also the base interpreter (job-private and framework environments run on it) and the
    cached framework environments (engine/framework_envs.py)."""
    import modelyard

    from .framework_envs import cache_root

    package_root = Path(modelyard.__file__).resolve().parent.parent
    paths = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), package_root, cache_root()]
    return [path for path in dict.fromkeys(paths) if path.exists()]


def _keep_mounts(sandbox: "Sandbox") -> str:
    """Shell lines binding each needed path under /tmp into the job's private tmp."""
    lines = []
    for path in _paths_jobs_need():
        try:
            relative = path.relative_to("/tmp")
        except ValueError:
            continue  # not under /tmp: stays visible as it is
        target = sandbox.tmp / relative
        target.mkdir(parents=True, exist_ok=True)
        lines.append(f"mount --bind {shlex.quote(str(path))} {shlex.quote(str(target))}")
    return "\n".join(lines)


class SandboxUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Sandbox:
    """A job's directories on the host; ``ml`` is what the job sees as /opt/ml."""

    root: Path

    @property
    def ml(self) -> Path:
        return self.root / "ml"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def create(self, directories: list[str]) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        self.tmp.mkdir(parents=True)
        self.ml.mkdir()
        os.chmod(self.tmp, 0o1777)
        for relative in directories:
            self.host_path(relative).mkdir(parents=True, exist_ok=True)

    def host_path(self, container_path: str) -> Path:
        """Map a path under /opt/ml (as user code sees it) to the host path behind it."""
        path = Path(container_path)
        if path.is_absolute():
            try:
                path = path.relative_to(ML_ROOT)
            except ValueError:
                raise ValueError(f"{container_path} is not under {ML_ROOT}") from None
        resolved = (self.ml / path).resolve()
        if resolved != self.ml.resolve() and self.ml.resolve() not in resolved.parents:
            raise ValueError(f"{container_path} escapes {ML_ROOT}")
        return resolved

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def namespace_command(sandbox: Sandbox, hidden_dir: Path, cwd: str, argv: list[str]) -> list[str]:
    """The command line that runs ``argv`` inside ``sandbox``'s private namespaces."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise SandboxUnavailable(
            "modelyard runs jobs in Linux mount namespaces with util-linux's `unshare`, which "
            "is not installed (apt-get install util-linux)."
        )
    flags = ["--mount", "--propagation", "private", "--pid", "--fork", "--kill-child"]
    if os.geteuid() != 0:
        flags = ["--user", "--map-root-user", *flags]
    script = _ENTER.replace("KEEP_MOUNTS", _keep_mounts(sandbox))
    return [
        unshare, *flags, "--", "/bin/sh", "-c", script, "modelyard-sandbox",
        str(sandbox.ml), str(sandbox.tmp), str(hidden_dir), cwd, *argv,
    ]


def start_in_sandbox(
    sandbox: Sandbox, hidden_dir: Path, cwd: str, argv: list[str], env: dict[str, str],
    *, cgroup_procs: Path | None = None, pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen:
    """Start the job; its stdout and stderr arrive merged, line by line, on ``stdout``.

    ``cgroup_procs``: the ``cgroup.procs`` file of the job's cgroup (engine/cgroups.py),
    which the job's first process joins before it runs anything, so all of it is limited.
    ``pass_fds``: descriptors the command inherits (``engine.warm_start``'s stub socket).
    """
    procs = os.fsencode(cgroup_procs) if cgroup_procs is not None else None

    def prepare_child() -> None:
        _die_with_parent_thread()
        if procs is not None:
            join_in_child(procs)

    return subprocess.Popen(
        namespace_command(sandbox, hidden_dir, cwd, argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        preexec_fn=prepare_child,
        pass_fds=pass_fds,
    )


def terminate(process: subprocess.Popen, grace_seconds: float) -> None:
    """SIGTERM the job's process group, then SIGKILL what is left after the grace period."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def check_sandbox_support() -> str | None:
    """A sentence saying why jobs cannot run here, or None when they can."""
    probe = Sandbox(Path(os.environ.get("TMPDIR", "/tmp")) / f"modelyard-probe-{os.getpid()}")
    probe.create([])
    try:
        result = subprocess.run(
            namespace_command(probe, probe.tmp, "/", ["true"]),
            capture_output=True, text=True, timeout=30,
        )
    except (SandboxUnavailable, OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    finally:
        probe.remove()
    if result.returncode != 0:
        return (
            "this machine cannot create the mount namespaces jobs run in "
            f"({shlex.join(['unshare', '--mount'])} failed: {result.stderr.strip()}). "
            "Run modelyard as root, or enable unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1)."
        )
    return None


def _die_with_parent_thread() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
