"""Run the server in the foreground: one process per data directory, clean stop on signals."""

from __future__ import annotations

import fcntl
import gc
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import IO

import uvicorn

from .app import build_app
from .config import Settings
from .platform import Platform

log = logging.getLogger("modelyard")

LOCK_FILE = "server.lock"
ENDPOINT_FILE = "server.json"
# The SageMaker SDK's defaults file; its only setting stops the SDK's telemetry calls to
# AWS, which cannot succeed (or be wanted) from a modelyard machine.
SDK_CONFIG_FILE = "sagemaker-sdk-config.yaml"
SDK_CONFIG = """SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


class DataDirInUse(RuntimeError):
    pass


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold an exclusive lock on the data directory for this process's lifetime.

    Two servers writing one object tree would delete each other's temporary files.
    """
    handle = open(data_dir / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirInUse(
            f"Another modelyard server is using {data_dir} "
            f"({running_endpoint(data_dir) or 'endpoint unknown'}). Stop it, or pass "
            "--data-dir to use another directory."
        ) from None
    return handle


def running_endpoint(data_dir: Path) -> str | None:
    """The endpoint of the server that holds ``data_dir``, if one is running."""
    lock_path = data_dir / LOCK_FILE
    if not lock_path.exists():
        return None
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads((data_dir / ENDPOINT_FILE).read_text())["endpoint_url"]
            except (OSError, ValueError, KeyError):
                return None
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


def export_lines(settings: Settings) -> list[str]:
    credentials = settings.credentials
    return [
        f"export AWS_ENDPOINT_URL={settings.endpoint_url}",
        f"export AWS_DEFAULT_REGION={settings.region}",
        f"export AWS_ACCESS_KEY_ID={credentials.access_key_id}",
        f"export AWS_SECRET_ACCESS_KEY={credentials.secret_access_key}",
        "export BOTOCORE_EXPERIMENTAL__PLUGINS=modelyard=modelyard.botocore_plugin",
        f"export SAGEMAKER_USER_CONFIG_OVERRIDE={settings.data_dir / SDK_CONFIG_FILE}",
    ]


def run_server(settings: Settings, *, log_level: str = "info") -> None:
    lock = lock_data_dir(settings.data_dir)
    platform = Platform.open(settings)
    config = uvicorn.Config(
        build_app(platform),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=10,
        # No X-Forwarded-* rewriting: nothing reads the client address, and it costs a
        # middleware call per request.
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    # What startup built (service models, the app, caches) lives as long as the server: out
    # of the collector's generations, so a full collection no longer walks it and stalls every
    # request in flight.
    gc.freeze()
    _announce(settings)
    # uvicorn re-raises SIGTERM once it has shut down; as SystemExit rather than the default
    # action (which ends the process at once) it lets the finally below close the platform
    # and exit handlers flush (endpoint metrics, data capture).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        server.run()
    finally:
        platform.close()
        (settings.data_dir / ENDPOINT_FILE).unlink(missing_ok=True)
        lock.close()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _announce(settings: Settings) -> None:
    (settings.data_dir / SDK_CONFIG_FILE).write_text(SDK_CONFIG)
    endpoint = {"endpoint_url": settings.endpoint_url, "pid": os.getpid()}
    (settings.data_dir / ENDPOINT_FILE).write_text(json.dumps(endpoint))
    lines = [
        f"modelyard serving the SageMaker API at {settings.endpoint_url} "
        f"(region {settings.region}, account {settings.account_id}, data {settings.data_dir})",
    ]
    if not os.environ.get("MODELYARD_ACCESS_KEY_ID"):
        lines.append("Point boto3, the AWS CLI and the SageMaker SDK at it with:")
        lines.extend("  " + line for line in export_lines(settings))
    print("\n".join(lines), file=sys.stderr, flush=True)
