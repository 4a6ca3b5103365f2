"""Warm start of built-in algorithms: their model servers (endpoint instances, transform
jobs) and their training jobs.

Starting a built-in algorithm cold costs a new interpreter plus the imports of numpy,
pandas, scikit-learn and xgboost (or fastText): one to four seconds before the model even
loads or the first round trains -- for the small trainings of a tuning job, nearly all of
its time. Here one long-lived **zygote** per framework (``runtimes.zygote``) has done those
imports once and forks each new model server or training run into the job's sandbox.

``start_warm`` is a drop-in for ``sandbox.start_in_sandbox``: the sandbox is made
exactly as for a cold start (``unshare``, its mounts, the job's cgroup, a new session,
PR_SET_PDEATHSIG); what runs in it is a small stub that asks the zygote for the server and
stands for it (signals forwarded, its exit status returned, its output on the same pipe),
or execs the cold command itself when the zygote is missing, dead or fails. So a dead
zygote never fails a job: that launch starts cold and the next one restarts the zygote.

Only the built-in algorithms (``xgboost`` without ``SAGEMAKER_PROGRAM``, ``blazingtext``)
on modelyard's own interpreter start warm (``runtimes.zygote.RUNNABLE``); script mode, which
may run on a framework environment's interpreter and imports the user's code, always
starts cold.
``MODELYARD_WARM_START=off`` turns warm starts off.

A zygote starts on first use (``warm_up``, called as a job or endpoint begins to prepare,
so its imports overlap the downloads); it exits when the modelyard server closes its
control socket (``shutdown``, at exit) or dies. Differences from a cold start, by design:
pages the zygote loaded are shared copy-on-write and counted in the zygote's memory cgroup,
not the job's; the server's command line in ``ps`` is the zygote's.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from ..runtimes import zygote as zygote_module
from ..runtimes.zygote import FD_ENV, MODEL_SERVER, RUNNABLE
from .sandbox import Sandbox, start_in_sandbox

log = logging.getLogger("modelyard.warm_start")

SWITCH_ENV = "MODELYARD_WARM_START"


def enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "on").strip().lower() not in ("off", "0", "false", "no")


def runs_warm(framework: str, module: str) -> bool:
    """Whether ``python -m module`` of a ``framework`` image starts warm."""
    return enabled() and module in RUNNABLE.get(framework, ())


def applies(framework: str, argv: list[str]) -> bool:
    """Whether ``argv``, a process of a ``framework`` image, can start warm."""
    return len(argv) >= 3 and argv[:2] == [sys.executable, "-m"] and runs_warm(framework, argv[2])


class Zygote:
    """One framework's zygote process and the host's end of its control socket."""

    def __init__(self, framework: str) -> None:
        self.framework = framework
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
            # No thread pools in the zygote: a forked child would inherit them broken.
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        }
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-u", "-m", "modelyard.runtimes.zygote", "--framework", framework,
                 "--control-fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                env=env, cwd="/", start_new_session=True)
        finally:
            theirs.close()
        self.control = ours
        self._lock = threading.Lock()
        log.info("started the %s zygote (pid %d)", framework, self.process.pid)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def hand_over(self, sandbox_pid: int, cgroup_procs: Path | None, stub_peer: socket.socket) -> bool:
        """Ask for a server in the sandbox of ``sandbox_pid``; False if the zygote is gone."""
        request = json.dumps({"pid": sandbox_pid, "cgroup": str(cgroup_procs) if cgroup_procs else None})
        with self._lock:
            try:
                socket.send_fds(self.control, [request.encode()], [stub_peer.fileno()])
                return True
            except OSError:
                return False

    def stop(self) -> None:
        self.control.close()  # the zygote exits on end of file
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_lock = threading.Lock()
_zygotes: dict[str, Zygote] = {}


def _zygote(framework: str) -> Zygote:
    """The framework's running zygote, started (or restarted, if it died) as needed."""
    with _lock:
        zygote = _zygotes.get(framework)
        if zygote is None or not zygote.alive:
            if zygote is not None:
                log.warning("the %s zygote exited (status %s); starting a new one",
                            framework, zygote.process.returncode)
                zygote.control.close()
            zygote = _zygotes[framework] = Zygote(framework)
        return zygote


def warm_up(framework: str, module: str = MODEL_SERVER) -> None:
    """Start ``framework``'s zygote now, if ``python -m module`` (its model server by
    default) starts warm, so that its imports overlap whatever comes before the launch.
    Never raises."""
    if not runs_warm(framework, module):
        return
    try:
        _zygote(framework)
    except OSError:
        log.warning("cannot start the %s zygote", framework, exc_info=True)


def start_warm(sandbox: Sandbox, hidden_dir: Path, cwd: str, argv: list[str],
               env: dict[str, str], *, framework: str,
               cgroup_procs: Path | None = None) -> subprocess.Popen:
    """``start_in_sandbox`` for a built-in algorithm's process: warm when it applies (see
    the module)."""
    if not applies(framework, argv):
        return start_in_sandbox(sandbox, hidden_dir, cwd, argv, env, cgroup_procs=cgroup_procs)
    try:
        zygote = _zygote(framework)
    except OSError:
        log.warning("cannot start the %s zygote: starting cold", framework, exc_info=True)
        return start_in_sandbox(sandbox, hidden_dir, cwd, argv, env, cgroup_procs=cgroup_procs)
    ours, stubs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        # As a plain script without site-packages (-I -S): the stub needs only the stdlib.
        stub = [sys.executable, "-I", "-S", zygote_module.__file__, "--stub", "--", *argv]
        try:
            process = start_in_sandbox(sandbox, hidden_dir, cwd, stub,
                                       {**env, FD_ENV: str(stubs.fileno())},
                                       cgroup_procs=cgroup_procs, pass_fds=(stubs.fileno(),))
        finally:
            stubs.close()
        if not zygote.hand_over(process.pid, cgroup_procs, ours):
            log.warning("the %s zygote did not take the request: this process starts cold", framework)
    finally:
        ours.close()  # with the zygote gone, the stub sees end of file and starts cold
    return process


def shutdown() -> None:
    """Stop every zygote (the servers they started live on in their sandboxes)."""
    with _lock:
        zygotes = list(_zygotes.values())
        _zygotes.clear()
    for zygote in zygotes:
        zygote.stop()


atexit.register(shutdown)
