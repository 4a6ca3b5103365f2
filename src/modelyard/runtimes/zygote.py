"""Warm start for built-in algorithms: a zygote that forks their model servers and training
runs into a job's sandbox.

Two roles, one module (it imports nothing heavy at module level):

``python -m modelyard.runtimes.zygote --framework F --control-fd N`` is the **zygote**,
one per built-in framework, started by the modelyard server (``engine.warm_start``). It
imports what F's model server and training need (numpy, pandas, scipy, scikit-learn and
xgboost; or fasttext) once, then waits on its control socket (``SOCK_SEQPACKET``) for
launch requests: ``{"pid": P, "cgroup": path | null}`` plus one file descriptor, a socket
connected to a **stub**. It exits when the control socket closes or its parent changes
(the modelyard server died).

``python -I -S .../runtimes/zygote.py --stub -- ARGV...`` is the **stub**: what the job
sandbox (``engine.sandbox.start_in_sandbox``) runs instead of the cold ``ARGV``, ``python
-m M ...`` with M one of F's ``RUNNABLE`` modules (the model server, or the algorithm's
training). It is PID 1 of the sandbox's PID namespace, in the sandbox's mount namespace,
cgroup, session and working directory, exactly where the cold process would be. It sends
the zygote its argv, environment, working directory and stdin/stdout/stderr, and:

- on ``{"started": pid}`` it forwards SIGTERM/SIGINT/SIGHUP to every process of the
  namespace (``kill(-1)``) and exits with the server's status when told it ended;
- on a failure message, or if the zygote is gone (end of file), it ``exec``s ``ARGV``
  in place: a cold start, PID 1 as before.

For each request the zygote forks a **launcher** that receives the stub's message, checks
that M is runnable, joins the user (when the sandbox has one), mount and PID namespaces of
the sandbox process ``P`` (``setns``), changes to the stub's working directory and forks the
**server** (a model server or a training run), which it moves into the job's cgroup before
the server runs anything. The server gets a new session, the stub's stdio and environment,
``sys.argv`` and ``sys.path[0]`` as ``python -m`` sets them, default signal handlers, then
runs M as ``__main__`` (the model server: ``model_server.main``). The launcher waits for it
and reports its exit status to the stub; the server dies with the launcher
(PR_SET_PDEATHSIG), and the kernel kills it with the namespace when the stub -- which dies
with its job's supervisor thread -- ends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from typing import Any

FD_ENV = "MODELYARD_WARM_START_FD"
_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_PR_SET_PDEATHSIG = 1
_MESSAGE_BYTES = 1 << 20
STUB_REPLY_TIMEOUT = 300.0  # the zygote may still be importing on a busy machine
MODEL_SERVER = "modelyard.runtimes.model_server"
# What a zygote runs (``python -m`` one of these); anything else starts cold.
RUNNABLE = {
    "xgboost": (MODEL_SERVER, "modelyard.runtimes.xgboost_algorithm"),
    "blazingtext": (MODEL_SERVER, "modelyard.runtimes.blazingtext"),
}


# --- the zygote --------------------------------------------------------------------------


def preload(framework: str) -> None:
    """Import what ``framework``'s model server and training import, and nothing that
    starts a thread."""
    import modelyard.runtimes.model_server  # noqa: F401 - http server, handlers' base

    if framework == "xgboost":
        import numpy  # noqa: F401
        import pandas  # noqa: F401
        import scipy.sparse  # noqa: F401
        import sklearn.datasets  # noqa: F401 - LIBSVM input
        import sklearn.metrics  # noqa: F401 - the metrics xgboost has no eval_metric for

        import modelyard.runtimes.serving.xgboost_selectable  # noqa: F401
        import modelyard.runtimes.xgboost_algorithm  # noqa: F401
        from modelyard.runtimes.serving.xgboost_algorithm import import_xgboost

        import_xgboost()
    elif framework == "blazingtext":
        import fasttext  # noqa: F401
        import numpy  # noqa: F401

        import modelyard.runtimes.blazingtext  # noqa: F401
        import modelyard.runtimes.serving.blazingtext  # noqa: F401


def serve_zygote(framework: str, control_fd: int) -> int:
    runnable = RUNNABLE.get(framework, ())
    parent = os.getppid()
    control = socket.socket(fileno=control_fd)
    try:
        preload(framework)
    except Exception as error:  # noqa: BLE001 - the servers will import what they need
        print(f"modelyard zygote ({framework}): preloading failed: {error!r}", file=sys.stderr, flush=True)
    control.settimeout(1.0)
    while True:
        _reap()
        if os.getppid() != parent:
            return 0  # the modelyard server is gone
        try:
            message, fds, _, _ = socket.recv_fds(control, _MESSAGE_BYTES, 4)
        except TimeoutError:
            continue
        except OSError:
            return 0
        if not message:
            return 0  # the control socket was closed: the server stopped us
        try:
            request = json.loads(message)
        except ValueError:
            request = None
        if request is None or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _launcher(request, fds[0], control, runnable)  # never returns
        os.close(fds[0])


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _launcher(request: dict[str, Any], conn_fd: int, control: socket.socket,
              runnable: tuple[str, ...]) -> None:
    """In the zygote's child: set up the server's place and fork it (never returns)."""
    status = 1
    try:
        os.close(control.detach())
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # hold nothing of the modelyard server's output open
            os.dup2(devnull, fd)
        os.close(devnull)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        conn = socket.socket(fileno=conn_fd)
        conn.settimeout(STUB_REPLY_TIMEOUT)
        message, stdio, _, _ = socket.recv_fds(conn, _MESSAGE_BYTES, 3)
        if not message or len(stdio) != 3:
            os._exit(0)  # the stub is gone
        hello = json.loads(message)
        try:
            argv = hello["argv"]
            if len(argv) < 3 or argv[1] != "-m" or argv[2] not in runnable:
                raise ValueError(f"this zygote does not run {' '.join(argv[1:3])}")
            procs = _enter(int(request["pid"]), request.get("cgroup"), hello["cwd"])
            go, gate = os.pipe()
            server = os.fork()
            if server == 0:
                conn.detach()  # the stub's socket stays with the launcher
                os.close(gate)
                released = os.read(go, 1)
                os.close(go)
                if not released:
                    os._exit(1)
                _server(hello, stdio, conn_fd, procs)
            os.close(go)
            try:
                if procs is not None:  # the server, not the launcher, is in the job's cgroup
                    os.write(procs, str(server).encode())
            except OSError:
                os.kill(server, signal.SIGKILL)
                os.waitpid(server, 0)
                raise
            os.write(gate, b"1")
            os.close(gate)
        except Exception as error:  # noqa: BLE001 - any failure means: start cold
            conn.send(json.dumps({"failed": f"{type(error).__name__}: {error}"}).encode())
            os._exit(0)
        for fd in stdio:
            os.close(fd)
        if procs is not None:
            os.close(procs)
        conn.send(json.dumps({"started": server}).encode())
        _, wait_status = os.waitpid(server, 0)
        try:
            conn.send(json.dumps({"exit": os.waitstatus_to_exitcode(wait_status)}).encode())
        except OSError:
            pass  # the stub is gone (the namespace was torn down)
        status = 0
    finally:
        os._exit(status)


def _enter(ns_pid: int, cgroup: str | None, cwd: str) -> int | None:
    """Join the sandbox of process ``ns_pid`` (as ``unshare`` made it); the job cgroup's
    ``cgroup.procs``, opened for writing before (a failure is an error: start cold)."""
    procs = os.open(cgroup, os.O_WRONLY) if cgroup else None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    names = {"user": _CLONE_NEWUSER, "mnt": _CLONE_NEWNS, "pid_for_children": _CLONE_NEWPID}
    opened = {name: os.open(f"/proc/{ns_pid}/ns/{name}", os.O_RDONLY) for name in names}
    try:
        for name, kind in names.items():
            mine = os.stat(f"/proc/self/ns/{'pid' if name == 'pid_for_children' else name}")
            theirs = os.fstat(opened[name])
            if (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino):
                if name == "user":
                    continue  # a root server's sandbox has no user namespace of its own
                raise OSError(f"process {ns_pid} has no {name} namespace of its own")
            if libc.setns(opened[name], kind) != 0:
                error = ctypes.get_errno()
                raise OSError(error, f"setns {name}: {os.strerror(error)}")
    finally:
        for fd in opened.values():
            os.close(fd)
    os.chdir(cwd)
    return procs


def _server(hello: dict[str, Any], stdio: list[int], conn_fd: int, procs: int | None) -> None:
    """In the launcher's child, PID 2 of the sandbox: become ``python -m M ARGS`` (never
    returns)."""
    status = 1
    try:
        import ctypes

        os.setsid()
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        os.close(conn_fd)
        if procs is not None:
            os.close(procs)
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        for fd in stdio:
            if fd > 2:
                os.close(fd)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ.clear()
        os.environ.update(hello["env"])
        module, arguments = hello["argv"][2], hello["argv"][3:]
        sys.path[0] = os.getcwd()  # as ``python -m`` sets it
        try:
            if module == MODEL_SERVER:
                from modelyard.runtimes import model_server

                sys.argv = [model_server.__file__, *arguments]
                status = model_server.main(arguments)
            else:
                import runpy

                sys.argv = ["-m", *arguments]  # run_module puts the module's file first
                runpy.run_module(module, run_name="__main__", alter_sys=True)
                status = 0
        except SystemExit as stop:  # SIGTERM while loading, argparse errors, run_main's end
            status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # noqa: BLE001 - as an uncaught exception would end the interpreter
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


# --- the stub ----------------------------------------------------------------------------


def run_stub(argv: list[str]) -> int:
    """PID 1 of the sandbox: have the zygote start ``argv`` warm, or exec it cold."""
    stopping: list[int] = []
    started: list[bool] = []

    def forward(signum: int, frame: Any) -> None:
        stopping.append(signum)
        if started:
            try:
                os.kill(-1, signum)  # every process of this PID namespace but the stub
            except OSError:
                pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    reply: dict[str, Any] = {}
    conn = None
    try:
        conn = socket.socket(fileno=int(os.environ.pop(FD_ENV)))
        conn.settimeout(STUB_REPLY_TIMEOUT)
        hello = {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}
        socket.send_fds(conn, [json.dumps(hello).encode()], [0, 1, 2])
        reply = json.loads(conn.recv(_MESSAGE_BYTES) or b"{}")
    except (OSError, ValueError, KeyError) as error:
        reply = {"failed": f"{type(error).__name__}: {error}"}
    if "started" not in reply:
        if stopping:
            return 128 + stopping[0]
        reason = reply.get("failed", "the zygote is gone")
        print(f"modelyard: no warm start ({reason}); starting cold",
              file=sys.stderr, flush=True)
        if conn is not None:
            conn.close()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        os.execve(argv[0], argv, dict(os.environ))
    started.append(True)
    if stopping:
        forward(stopping[0], None)
    assert conn is not None
    conn.settimeout(None)
    try:
        message = conn.recv(_MESSAGE_BYTES)
        code = int(json.loads(message)["exit"]) if message else 1
    except (OSError, ValueError, KeyError):
        code = 1
    return 128 - code if code < 0 else code  # a signal's death as a shell reports it


def main() -> None:
    arguments = sys.argv[1:]
    if arguments[:1] == ["--stub"]:
        command = arguments[2:] if arguments[1:2] == ["--"] else arguments[1:]
        status = run_stub(command)
    else:
        import argparse

        parser = argparse.ArgumentParser(prog="python -m modelyard.runtimes.zygote")
        parser.add_argument("--framework", required=True)
        parser.add_argument("--control-fd", type=int, required=True)
        args = parser.parse_args(arguments)
        status = serve_zygote(args.framework, args.control_fd)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
