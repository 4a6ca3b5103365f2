"""Model-server benchmark: ``python bench/model_server.py [--seconds 5] [--compare-starlette]``.

Trains a small BlazingText-style fastText classifier on ticket-like lines, starts
``modelyard.runtimes.model_server`` on it as a subprocess, and measures ``POST
/invocations`` with one ticket per request (``application/json``, k=1) from a lean
asyncio client (keep-alive connections, pre-built request bytes; not boto3) at
concurrency 1 and 16: requests/s, p50 and p99. The baseline is ``model.predict`` on the
same text in this process, timed per call. ``--compare-starlette`` also serves the same
handler through Starlette on uvicorn (what the control plane runs on), to justify the
hand-written HTTP layer.

Both the client and the server share the machine's cores, so the figures are a floor.
Measured once (``--seconds 3 --compare-starlette``) on the 2-core development machine
while other test suites ran on it (load average 2.7), 2026-12-01:

    what                         conc     req/s   p50 ms   p99 ms
    model.predict in-process        1     74188    0.005    0.020
    modelyard model server          1      2027    0.172    7.449
    modelyard model server         16      2830    5.086   17.651
    starlette + uvicorn             1       833    0.485    8.067
    starlette + uvicorn            16      1206   12.984   31.674

At concurrency 16 the p50 is queueing (16 requests in flight / 2,830 per second); the p99
tails are the other work on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from server_process import free_port  # noqa: E402

TOPICS = {
    "network": "router dhcp wifi ethernet lease gateway dns vpn packet switch modem",
    "printer": "toner paper jam tray cartridge spooler duplex scan fuser ink queue",
    "screen": "monitor flicker resolution hdmi brightness pixel display refresh cable panel",
}
TICKET = "my vpn drops every hour and the router dhcp lease looks wrong"
STARLETTE_APP = """
import json, sys
from pathlib import Path
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from modelyard.runtimes.serving.blazingtext import BlazingTextHandler
from modelyard.runtimes.serving.http import Request

handler = BlazingTextHandler(Path(sys.argv[1]))

async def invocations(request):
    body = await request.body()
    answer = handler.invoke(Request("POST", "/invocations", dict(request.headers), body))
    return Response(answer.body, answer.status, media_type=answer.content_type)

async def ping(request):
    return Response(b"", 200)

app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping)])
"""


def train_model(directory: Path) -> Path:
    import fasttext

    rng = random.Random(0)
    lines = []
    for index in range(3000):
        label = list(TOPICS)[index % len(TOPICS)]
        words = TOPICS[label].split() + "the my is not after today please help every hour".split()
        lines.append(f"__label__{label} " + " ".join(rng.choice(words) for _ in range(12)))
    (directory / "train.txt").write_text("\n".join(lines) + "\n")
    model = fasttext.train_supervised(str(directory / "train.txt"), epoch=5, lr=0.5, wordNgrams=2,
                                      bucket=200000, dim=100, thread=1, verbose=0)
    model_dir = directory / "model"
    model_dir.mkdir()
    model.save_model(str(model_dir / "model.bin"))
    return model_dir


def request_bytes(port: int) -> bytes:
    body = json.dumps({"instances": [TICKET], "configuration": {"k": 1}}).encode()
    head = (f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _one_connection(port: int, payload: bytes, deadline: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected answer: {head[:40]!r} {body[:200]!r}")
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


def load(port: int, concurrency: int, seconds: float) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) over ``seconds`` of closed-loop load."""
    latencies: list[float] = []
    payload = request_bytes(port)

    async def run() -> float:
        await asyncio.gather(*(_one_connection(port, payload, time.perf_counter() + 0.5, [])
                               for _ in range(concurrency)))  # warm-up
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(_one_connection(port, payload, deadline, latencies) for _ in range(concurrency)))
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    return summarize(latencies, elapsed)


def summarize(latencies: list[float], elapsed: float) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return len(ordered) / elapsed, statistics.median(ordered) * 1e3, p99 * 1e3


def in_process(model_dir: Path, seconds: float) -> tuple[float, float, float]:
    import fasttext

    model = fasttext.load_model(str(model_dir / "model.bin"))
    latencies = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        begin = time.perf_counter()
        model.predict([TICKET], k=1)
        latencies.append(time.perf_counter() - begin)
    return summarize(latencies, time.perf_counter() - started)


def wait_ready(process: subprocess.Popen, port: int) -> None:
    import socket

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read() if process.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server not ready after 60 s")


def serve(command: list[str], port: int, env: dict[str, str]) -> subprocess.Popen:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_ready(process, port)
    return process


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--compare-starlette", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-model-server-") as scratch:
        model_dir = train_model(Path(scratch))
        rows = [("model.predict in-process", 1, *in_process(model_dir, args.seconds))]
        servers = {"modelyard model server": lambda port: [
            sys.executable, "-m", "modelyard.runtimes.model_server", "--framework", "blazingtext",
            "--model-dir", str(model_dir), "--port", str(port)]}
        if args.compare_starlette:
            (Path(scratch) / "starlette_app.py").write_text(STARLETTE_APP)
            servers["starlette + uvicorn"] = lambda port: [  # argv: -c CODE model_dir scratch port
                sys.executable, "-c",
                "import sys, uvicorn; sys.path.insert(0, sys.argv[2]); import starlette_app; "
                "uvicorn.run(starlette_app.app, host='127.0.0.1', port=int(sys.argv[3]), log_level='warning')",
                str(model_dir), scratch, str(port)]
        for name, command_for in servers.items():
            port = free_port()
            command = command_for(port)
            env = {**os.environ, "SAGEMAKER_BIND_TO_PORT": str(port)}
            process = serve(command, port, env)
            try:
                for concurrency in (1, 16):
                    rows.append((name, concurrency, *load(port, concurrency, args.seconds)))
            finally:
                process.terminate()
                process.wait(timeout=30)
    print(f"{'what':<28} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, concurrency, rate, p50, p99 in rows:
        print(f"{name:<28} {concurrency:>4} {rate:>9.0f} {p50:>8.3f} {p99:>8.3f}")


if __name__ == "__main__":
    main()
