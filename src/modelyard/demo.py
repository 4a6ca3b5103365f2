"""``modelyard demo``: the platform end to end, through the SageMaker Python SDK.

It uses a server already running on the data directory, or starts one for the demo's
duration. Each step prints as it runs, and a table sums up at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .config import DEFAULT_PORT, load_settings
from .server import export_lines, running_endpoint


class Steps:
    """Runs named steps, printing each as it starts and ends, and keeps a summary."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, float]] = []

    def run(self, title: str, action: Callable[[], Any], describe: Callable[[Any], str]) -> Any:
        print(f"  … {title}", flush=True)
        started = time.perf_counter()
        result = action()
        elapsed = time.perf_counter() - started
        outcome = describe(result)
        print(f"  ✓ {title}: {outcome} ({elapsed:.2f}s)", flush=True)
        self.rows.append((title, outcome, elapsed))
        return result

    def table(self) -> str:
        width = max(len(title) for title, _, _ in self.rows)
        result_width = max(len(outcome) for _, outcome, _ in self.rows)
        lines = [f"{'step'.ljust(width)}  {'result'.ljust(result_width)}  seconds"]
        lines.append(f"{'-' * width}  {'-' * result_width}  -------")
        for title, outcome, elapsed in self.rows:
            lines.append(f"{title.ljust(width)}  {outcome.ljust(result_width)}  {elapsed:7.2f}")
        return "\n".join(lines)


def run_demo(*, data_dir: str | None = None, port: int | None = None) -> int:
    try:
        import sagemaker  # noqa: F401
    except ImportError:
        print("modelyard demo drives the SageMaker Python SDK; install it with "
              "pip install 'modelyard[sdk]' (or '.[test]' from a checkout).", file=sys.stderr)
        return 1
    settings = load_settings(data_dir=data_dir)
    with _server(settings.data_dir, port) as endpoint:
        os.environ.update(_client_env(settings, endpoint))
        print(f"modelyard demo against {endpoint} (data in {settings.data_dir})")
        steps = Steps()
        _storage_round_trip(steps)
        print()
        print(steps.table())
    return 0


def _storage_round_trip(steps: Steps) -> None:
    import sagemaker

    session = sagemaker.Session()
    role = steps.run("resolve execution role", sagemaker.get_execution_role, str)
    del role
    bucket = steps.run("create default bucket", session.default_bucket, str)
    workdir = Path(tempfile.mkdtemp(prefix="modelyard-demo-"))
    source = workdir / "tickets.jsonl"
    steps.run("write sample tickets", lambda: _write_sample_tickets(source),
              lambda count: f"{count} tickets, {source.stat().st_size:,} bytes")
    uri = steps.run(
        "upload with Session.upload_data",
        lambda: session.upload_data(str(source), bucket=bucket, key_prefix="demo/tickets"),
        str,
    )
    target = workdir / "downloaded"
    steps.run(
        "download with Session.download_data",
        lambda: session.download_data(str(target), bucket=bucket, key_prefix="demo/tickets"),
        lambda files: f"{len(files)} file(s)",
    )
    same = _sha256(source) == _sha256(target / "tickets.jsonl")
    steps.run("compare bytes", lambda: same, lambda ok: "identical" if ok else "DIFFERENT")
    if not same:
        raise SystemExit(f"downloaded copy of {uri} differs from the upload")


CATEGORIES = ["comp.graphics", "comp.sys.mac.hardware", "sci.crypt", "sci.space", "misc.forsale"]


def _write_sample_tickets(path: Path) -> int:
    rng = random.Random(7)
    words = "router dhcp screen driver install key cipher orbit launch sale price monitor".split()
    with path.open("w") as handle:
        for number in range(1000):
            category = rng.choice(CATEGORIES)
            content = " ".join(rng.choice(words) for _ in range(rng.randint(8, 40)))
            handle.write(json.dumps({
                "ticket_id": f"T{number:05d}", "content": content, "category": category,
                "priority": rng.choice(["low", "medium", "high"]),
            }) + "\n")
    return 1000


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def _server(data_dir: Path, port: int | None) -> Iterator[str]:
    """Yield the endpoint of a server on ``data_dir``, starting one if none runs."""
    running = running_endpoint(data_dir)
    if running:
        yield running
        return
    port = port or (DEFAULT_PORT if _port_is_free(DEFAULT_PORT) else _free_port())
    log_path = data_dir / "demo-server.log"
    print(f"starting modelyard server on port {port} (log: {log_path})", flush=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelyard", "server", "--port", str(port),
             "--data-dir", str(data_dir)],
            stdout=log, stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(endpoint, process, log_path)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _client_env(settings, endpoint: str) -> dict[str, str]:
    env = {}
    for line in export_lines(settings):
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value
    env["AWS_ENDPOINT_URL"] = endpoint
    env.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    return env


def _wait_healthy(endpoint: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited; see {log_path}")
        try:
            with urllib.request.urlopen(f"{endpoint}/_modelyard/health", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the server did not become healthy within 60 s; see {log_path}")


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
