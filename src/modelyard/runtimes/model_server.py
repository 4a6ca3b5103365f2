"""The model server of one endpoint instance: ``python -m modelyard.runtimes.model_server``.

It speaks SageMaker's hosting container contract (``docker run IMAGE serve``):
``GET /ping`` answers 200 once the model is loaded, ``POST /invocations`` runs the model,
on ``SAGEMAKER_BIND_TO_PORT`` (default 8080). The model directory is ``/opt/ml/model``
with ``model.tar.gz`` already extracted into it (``--model-dir`` or ``MODELYARD_ML_ROOT``
move it, for tests and benchmarks). ``--framework`` is the image's framework as
``engine.images.parse_image`` names it:

- ``blazingtext``: the BlazingText algorithm (``serving.blazingtext``);
- ``xgboost``: the XGBoost algorithm (``serving.xgboost_algorithm``), or -- with
  ``SAGEMAKER_PROGRAM`` set -- the XGBoost framework's script mode, as the container does;
- ``sklearn``: scikit-learn script mode (``serving.script_mode``).

Start-up order: load the model, then listen, then print one line
``modelyard model server ready on http://HOST:PORT`` to stdout; the port is bound only
once ``/ping`` can pass. ``SAGEMAKER_BIND_TO_PORT=0`` lets the system pick a free port,
which the ready line names (no race between choosing a port and binding it). A model
that cannot be loaded ends the process with exit status 1 and ``ModelError: <reason>`` as
the last line on stderr (the endpoint quotes it in FailureReason); a port that cannot be
bound, exit status 2. SIGTERM stops it cleanly, while loading too (the handler is installed
first: as PID 1 of a sandbox's PID namespace it would otherwise ignore the signal).

Other environment: ``MODELYARD_BIND_HOST`` (default 127.0.0.1), ``MODELYARD_MAX_PAYLOAD_BYTES``
(default 100 MiB, batch transform's ceiling; the gateway enforces InvokeEndpoint's 6 MB),
``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``, ``SAGEMAKER_BATCH`` (batch transform output rules),
``SAGEMAKER_SUBMIT_DIRECTORY`` (see ``serving.script_mode`` for where code is looked up).
In batch transform, ``SAGEMAKER_MAX_CONCURRENT_TRANSFORMS`` > 1 forks that many worker
processes (at most one per CPU) for handlers that allow it (``invocation_workers``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from modelyard.runtimes import container
from modelyard.runtimes.serving.base import (
    DEFAULT_PORT, PORT_ENV, HttpError, ModelHandler, ModelLoadError,
)
from modelyard.runtimes.serving.http import Request, Response, bind, serve_forever, text_response

FRAMEWORKS = ("blazingtext", "xgboost", "sklearn")
DEFAULT_MAX_PAYLOAD = 100 * 1024 * 1024
READY_LINE = "modelyard model server ready on"


def serve_command(framework: str, python: str = sys.executable) -> list[str]:
    """The command an endpoint controller runs for an image of ``framework`` (as
    ``engine.images.parse_image`` names it), in the sandbox with cwd ``/opt/ml``; the
    model's ``Environment`` plus ``SAGEMAKER_BIND_TO_PORT`` go in its environment."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"no model server for {framework!r}: choose one of {', '.join(FRAMEWORKS)}")
    return [python, "-m", "modelyard.runtimes.model_server", "--framework", framework]


def load_handler(framework: str, model_dir: Path, code_dir: Path, environ: dict[str, str]) -> ModelHandler:
    """Load the model the way the framework's container would; raises ModelLoadError."""
    if not model_dir.is_dir():
        raise ModelLoadError(f"The model directory {model_dir} does not exist.")
    program = environ.get("SAGEMAKER_PROGRAM") or None
    if framework == "blazingtext":
        from modelyard.runtimes.serving.blazingtext import BlazingTextHandler

        return BlazingTextHandler(model_dir)
    if framework == "xgboost" and program is None:
        from modelyard.runtimes.serving.xgboost_algorithm import XGBoostAlgorithmHandler

        return XGBoostAlgorithmHandler(model_dir)
    if framework in ("xgboost", "sklearn"):
        from modelyard.runtimes.serving.script_mode import ScriptModeHandler, code_directory

        directory = code_directory(environ.get("SAGEMAKER_SUBMIT_DIRECTORY"), model_dir, code_dir)
        return ScriptModeHandler(model_dir, framework, program, directory)
    raise ModelLoadError(f"Unknown framework {framework!r}: choose one of {', '.join(FRAMEWORKS)}.")


def invocation_workers(handler: ModelHandler, environ: dict[str, str]) -> int:
    """Worker processes: in batch transform (``SAGEMAKER_BATCH``), as many as
    ``SAGEMAKER_MAX_CONCURRENT_TRANSFORMS`` up to this process's CPUs, for a handler that
    can be forked once loaded; otherwise 1 (one process, requests inline on its event loop:
    the lowest latency for a real-time endpoint's small requests)."""
    if not environ.get("SAGEMAKER_BATCH") or not handler.forkable:
        return 1
    try:
        wanted = int(environ.get("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS") or 1)
    except ValueError:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(wanted, cpus))


def make_app(handler: ModelHandler):
    """The request router: the contract's two routes plus ``/execution-parameters``."""

    def app(request: Request) -> Response:
        path = request.path
        if path == "/invocations":
            if request.method != "POST":
                return text_response(405, "use POST /invocations")
            try:
                return handler.invoke(request)
            except HttpError as error:  # the caller's mistake: one line in the log, no traceback
                print(f"/invocations {error.status}: {error.message}", file=sys.stderr, flush=True)
                return text_response(error.status, error.message)
            except Exception as error:  # noqa: BLE001 - the model's own failure: 500 with its text
                traceback.print_exc()
                sys.stderr.flush()
                return text_response(500, f"{type(error).__name__}: {error}")
        if path == "/ping":
            return Response(200) if request.method in ("GET", "HEAD") else text_response(405, "use GET /ping")
        if path == "/execution-parameters" and request.method == "GET":
            parameters = handler.execution_parameters()
            if parameters is not None:
                return Response(200, json.dumps(parameters).encode(), "application/json")
        return text_response(404, f"no route {request.method} {path}: the model server answers "
                                   "GET /ping and POST /invocations")

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelyard.runtimes.model_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("serve", nargs="?", help="ignored: SageMaker starts containers with 'serve'")
    parser.add_argument("--framework", required=True, choices=FRAMEWORKS)
    parser.add_argument("--model-dir", type=Path, default=None, help="default: /opt/ml/model")
    parser.add_argument("--code-dir", type=Path, default=None,
                        help="where an s3:// SAGEMAKER_SUBMIT_DIRECTORY was extracted (default: /opt/ml/code)")
    parser.add_argument("--port", type=int, default=None, help=f"default: ${PORT_ENV} or {DEFAULT_PORT}")
    args = parser.parse_args(argv)

    # Exit on SIGTERM while loading (PID 1 in a PID namespace has no default action);
    # the event loop installs its graceful handler once it serves.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    environ = dict(os.environ)
    model_dir = args.model_dir or container.model_dir()
    code_dir = args.code_dir or container.code_dir()
    try:
        port = args.port if args.port is not None else int(environ.get(PORT_ENV) or DEFAULT_PORT)
        max_body = int(environ.get("MODELYARD_MAX_PAYLOAD_BYTES") or DEFAULT_MAX_PAYLOAD)
    except ValueError as error:
        print(f"ModelError: bad port or payload limit setting: {error}", file=sys.stderr, flush=True)
        return 2
    host = environ.get("MODELYARD_BIND_HOST") or "127.0.0.1"

    started = time.monotonic()
    print(f"Loading the {args.framework} model from {model_dir}", flush=True)
    try:
        handler = load_handler(args.framework, model_dir, code_dir, environ)
    except ModelLoadError as error:
        print(f"ModelError: {error}", file=sys.stderr, flush=True)
        return 1
    except Exception as error:  # noqa: BLE001 - a library failure while loading
        traceback.print_exc()
        print(f"ModelError: loading the model failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return 1
    try:
        sock = bind(host, port)
    except OSError as error:
        print(f"ModelError: cannot listen on {host}:{port}: {error.strerror or error}", file=sys.stderr, flush=True)
        return 2
    bound_port = sock.getsockname()[1]
    print(f"Model loaded in {time.monotonic() - started:.2f} s", flush=True)
    workers = invocation_workers(handler, environ)
    if workers > 1:
        print(f"Serving /invocations with {workers} worker processes", flush=True)
    healthy = serve_forever(
        make_app(handler), sock, max_body,
        on_ready=lambda: print(f"{READY_LINE} http://{host}:{bound_port}", flush=True),
        workers=workers)
    print("Model server stopped", flush=True)
    return 0 if healthy else 1


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Without the interpreter's teardown: with xgboost and pandas loaded it takes 0.3 s or
    # more, which every endpoint update and transform job would wait for.
    os._exit(status)
