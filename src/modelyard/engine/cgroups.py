"""Job memory limits through Linux cgroups, sized from the job's instance type.

Each job runs in its own memory cgroup, created as a child of the server's own cgroup
(so whatever limits the server itself has still apply) and removed when the job ends:

- **cgroup v2** (the unified hierarchy): ``memory.max``, ``memory.swap.max`` 0, OOM kills
  counted in ``memory.events`` (``oom_kill``). The server's cgroup must have the memory
  controller available (a delegated cgroup, e.g. ``systemd-run -p Delegate=yes``); if the
  server's cgroup holds processes, the server moves itself into a ``modelyard-server``
  leaf first, as cgroup v2 requires.
- **cgroup v1** (the legacy ``memory`` hierarchy, also in hybrid layouts):
  ``memory.limit_in_bytes`` (and ``memory.memsw.limit_in_bytes`` where swap accounting
  is on), OOM kills counted in ``memory.oom_control`` (``oom_kill``).

When the kernel kills a job's process at the limit, the job fails with
``OutOfMemory: ...``. Where neither hierarchy is usable (no permission, no controller, a
read-only ``/sys/fs/cgroup``), the job runs without a memory limit and its log says why.
The limit is the instance type's memory unless ``MODELYARD_JOB_MEMORY_LIMIT`` sets a size
or ``off``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from .instance_types import memory_bytes

log = logging.getLogger("modelyard.cgroups")

_PREFIX = "modelyard-"
_MiB = 1024 * 1024


@dataclass(frozen=True)
class Hierarchy:
    """Where job cgroups are created: the server's cgroup in one memory hierarchy."""

    version: int  # 1 or 2
    parent: Path


@dataclass(frozen=True)
class JobCgroup:
    """One job's cgroup. ``procs_file`` is what the job's first process writes itself to."""

    hierarchy: Hierarchy
    path: Path
    limit_bytes: int

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def contains(self, pid: int) -> bool:
        try:
            return str(pid) in self.procs_file.read_text().split()
        except OSError:
            return False

    def oom_kills(self) -> int | None:
        """How many processes the kernel killed at this cgroup's limit (None: unknown)."""
        name = "memory.events" if self.hierarchy.version == 2 else "memory.oom_control"
        try:
            fields = dict(line.split() for line in (self.path / name).read_text().splitlines()
                          if len(line.split()) == 2)
        except OSError:
            return None
        return int(fields["oom_kill"]) if "oom_kill" in fields else None

    def hit_limit(self) -> bool:
        """cgroup v1 without an oom_kill counter (kernels before 4.13): did usage reach
        the limit (``memory.failcnt``)? Only evidence together with a SIGKILLed job."""
        try:
            return int((self.path / "memory.failcnt").read_text()) > 0
        except (OSError, ValueError):
            return False

    def peak_bytes(self) -> int | None:
        name = "memory.peak" if self.hierarchy.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self.path / name).read_text())
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        """Kill whatever is left in the cgroup and delete it."""
        kill_file = self.path / "cgroup.kill"
        deadline = time.monotonic() + 10
        while True:
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError as error:
                if error.errno != errno.EBUSY or time.monotonic() > deadline:
                    log.warning("could not remove the job cgroup %s: %s", self.path, error)
                    return
            if kill_file.exists():
                with contextlib.suppress(OSError):
                    kill_file.write_text("1")
            else:
                for pid in _pids(self.procs_file):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)


def out_of_memory_reason(cgroup: JobCgroup, killed_by_signal: bool) -> str | None:
    """The job's FailureReason if the kernel's OOM killer ended it, else None."""
    kills = cgroup.oom_kills()
    if kills is None:
        if not (killed_by_signal and cgroup.hit_limit()):
            return None
    elif kills == 0:
        return None
    return (f"OutOfMemory: The job's processes used all of its {format_bytes(cgroup.limit_bytes)} "
            "of memory and the kernel stopped the job (OOM kill). Use an instance type with "
            "more memory, or reduce the data or model size the job holds in memory.")


@contextlib.contextmanager
def job_memory_cgroup(settings: Settings, instance_type: str, job_name: str,
                      say: Callable[[str], None]) -> Iterator[JobCgroup | None]:
    """A memory cgroup for one job, removed afterwards; None (and a log line via ``say``)
    when limits are off or this machine cannot enforce them."""
    if settings.job_memory_limit_bytes == 0:
        say("modelyard: no memory limit for this job (MODELYARD_JOB_MEMORY_LIMIT=off)")
        yield None
        return
    if settings.job_memory_limit_bytes is not None:
        limit, source = settings.job_memory_limit_bytes, "MODELYARD_JOB_MEMORY_LIMIT"
    else:
        limit, source = memory_bytes(instance_type), f"the memory of {instance_type}"
    hierarchy, problem = memory_hierarchy()
    cgroup = None
    if hierarchy is not None:
        try:
            cgroup = _create(hierarchy, job_name, limit)
        except OSError as error:
            problem = f"creating a cgroup under {hierarchy.parent} failed: {error}"
    if cgroup is None:
        say(f"modelyard: no memory limit for this job: {problem}. The job may use all of "
            "this machine's memory. Run modelyard as root on a machine with the cgroup "
            "memory controller to enforce instance-type memory.")
        yield None
        return
    say(f"modelyard: memory limit {format_bytes(limit)} ({source}), enforced by the cgroup "
        f"v{hierarchy.version} memory controller")
    try:
        yield cgroup
    finally:
        cgroup.remove()


def memory_controller_problem() -> str | None:
    """Why job memory limits cannot work here, or None when they can."""
    return memory_hierarchy()[1]


def format_bytes(count: int) -> str:
    if count % (1024 * _MiB) == 0 or count >= 10 * 1024 * _MiB:
        return f"{count / (1024 * _MiB):g} GiB"
    return f"{count / _MiB:g} MiB"


# --- finding the hierarchy ------------------------------------------------------------

_detected: tuple[Hierarchy | None, str | None] | None = None
_detect_lock = threading.Lock()


def memory_hierarchy() -> tuple[Hierarchy | None, str | None]:
    """(the hierarchy to create job cgroups in, None) or (None, why there is none).
    Found once per process; stale job cgroups of an earlier server are removed then."""
    global _detected
    with _detect_lock:
        if _detected is None:
            try:
                _detected = _detect()
            except (OSError, ValueError, IndexError) as error:  # an unexpected layout
                _detected = None, f"cannot read this machine's cgroup layout ({error})"
            if _detected[0] is not None:
                _sweep(_detected[0].parent)
        return _detected


def _detect() -> tuple[Hierarchy | None, str | None]:
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        memberships = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError as error:
        return None, f"cannot read this process's cgroups ({error})"
    v2_mount = v1_mount = None
    for line in mounts:
        fields = line.split()
        if " - " not in line:
            continue
        fstype, _source, options = line.split(" - ", 1)[1].split()[:3]
        if fstype == "cgroup2" and v2_mount is None:
            v2_mount = Path(fields[4])
        elif fstype == "cgroup" and "memory" in options.split(",") and v1_mount is None:
            v1_mount = Path(fields[4])
    own: dict[str, str] = {}
    for line in memberships:
        hierarchy_id, controllers, path = line.split(":", 2)
        own["v2" if hierarchy_id == "0" else controllers] = path
        for controller in controllers.split(","):
            own.setdefault(controller, path)
    problems = []
    if v2_mount is not None and "v2" in own:
        parent = v2_mount / own["v2"].lstrip("/")
        hierarchy, problem = _usable_v2(parent)
        if hierarchy is not None:
            return hierarchy, None
        problems.append(problem)
    if v1_mount is not None and "memory" in own:
        parent = v1_mount / own["memory"].lstrip("/")
        if os.access(parent, os.W_OK):
            return Hierarchy(1, parent), None
        problems.append(f"the cgroup v1 memory hierarchy ({parent}) is not writable "
                        "(modelyard is not root, or /sys/fs/cgroup is read-only)")
    if not problems:
        problems.append("this machine has no cgroup memory controller mounted")
    return None, "; ".join(problems)


def _usable_v2(parent: Path) -> tuple[Hierarchy | None, str]:
    """cgroup v2: the memory controller must be enabled for the server's children."""
    try:
        available = (parent / "cgroup.controllers").read_text().split()
    except OSError as error:
        return None, f"cannot read {parent / 'cgroup.controllers'} ({error})"
    if "memory" not in available:
        return None, (f"the cgroup v2 memory controller is not available in {parent} "
                      "(it is not delegated to modelyard's cgroup)")
    if not os.access(parent, os.W_OK):
        return None, f"the cgroup v2 hierarchy at {parent} is not writable"
    subtree = parent / "cgroup.subtree_control"
    if "memory" in subtree.read_text().split():
        return Hierarchy(2, parent), ""
    try:
        subtree.write_text("+memory")
    except OSError as error:
        if error.errno != errno.EBUSY:
            return None, f"cannot enable the memory controller in {subtree} ({error})"
        # "No internal processes": move the server into a leaf of its own, then enable.
        try:
            leaf = parent / f"{_PREFIX}server-{os.getpid()}"
            leaf.mkdir(exist_ok=True)
            (leaf / "cgroup.procs").write_text(str(os.getpid()))
            subtree.write_text("+memory")
        except OSError as second:
            return None, (f"cannot enable the memory controller in {subtree}: its cgroup "
                          f"holds other processes ({second})")
    return Hierarchy(2, parent), ""


def _create(hierarchy: Hierarchy, job_name: str, limit: int) -> JobCgroup:
    # The server's pid in the name lets a later server tell leftovers from live jobs.
    path = hierarchy.parent / f"{_PREFIX}job-{os.getpid()}-{job_name}-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    cgroup = JobCgroup(hierarchy, path, limit)
    try:
        if hierarchy.version == 2:
            (path / "memory.max").write_text(str(limit))
            with contextlib.suppress(OSError):  # no swap accounting: nothing to limit
                (path / "memory.swap.max").write_text("0")
        else:
            (path / "memory.limit_in_bytes").write_text(str(limit))
            with contextlib.suppress(OSError):  # memory+swap; absent without swapaccount
                (path / "memory.memsw.limit_in_bytes").write_text(str(limit))
    except BaseException:
        cgroup.remove()
        raise
    return cgroup


def _sweep(parent: Path) -> None:
    """Remove job cgroups that a server no longer running left behind."""
    try:
        entries = [path for path in parent.iterdir() if path.name.startswith(f"{_PREFIX}job-")]
    except OSError:
        return
    for path in entries:
        server_pid = path.name[len(f"{_PREFIX}job-"):].split("-", 1)[0]
        if server_pid.isdigit() and not Path(f"/proc/{server_pid}").exists():
            JobCgroup(Hierarchy(0, parent), path, 0).remove()


def _pids(procs_file: Path) -> list[int]:
    try:
        return [int(pid) for pid in procs_file.read_text().split()]
    except (OSError, ValueError):
        return []


def join_in_child(procs_file: bytes) -> None:
    """In a forked child before exec: move this process into the job's cgroup. Plain
    system calls only; a failure is noticed by the parent (``JobCgroup.contains``)."""
    try:
        fd = os.open(procs_file, os.O_WRONLY)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)
    except OSError:
        pass
