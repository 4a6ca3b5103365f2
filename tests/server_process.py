"""Start and stop a modelyard server as a child process, the way a user runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import botocore.config
import requests

ACCESS_KEY = "AKIAMODELYARDTEST001"
SECRET_KEY = "modelyard-test-secret-key-0123456789abcd"
REGION = "us-east-1"


def postgres_database_for(data_dir: Path) -> str | None:
    """With MODELYARD_TEST_POSTGRES_URL set, give each data dir its own PostgreSQL database.

    The same data dir (a restarted server) gets the same database back.
    """
    admin_url = os.environ.get("MODELYARD_TEST_POSTGRES_URL")
    if not admin_url:
        return None
    remembered = data_dir / "test-database-url"
    if remembered.exists():
        return remembered.read_text()
    import uuid

    import sqlalchemy

    name = f"modelyard_test_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    remembered.write_text(url)
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    data_dir: Path
    port: int
    process: subprocess.Popen
    log_path: Path
    extra_env: dict = field(default_factory=dict)

    @classmethod
    def start(cls, data_dir: Path, port: int | None = None, **extra_env: str) -> "ServerProcess":
        chosen = port is None
        port = port or free_port()
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        database_url = postgres_database_for(Path(data_dir))
        if database_url:
            extra_env = {"MODELYARD_DATABASE_URL": database_url, **extra_env}
        env = {
            **os.environ,
            "MODELYARD_ACCESS_KEY_ID": ACCESS_KEY,
            "MODELYARD_SECRET_ACCESS_KEY": SECRET_KEY,
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        log_path = Path(data_dir) / f"server-{port}.log"
        log = open(log_path, "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "modelyard", "server", "--port", str(port),
             "--data-dir", str(data_dir)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        server = cls(Path(data_dir), port, process, log_path, extra_env)
        try:
            server.wait_until_healthy()
        except RuntimeError:
            # Another process took the free port between free_port() and the server's bind
            # (a busy machine running tests in parallel): start again on another one.
            if chosen and server.process.poll() is not None and "address already in use" in \
                    log_path.read_text(errors="replace").lower():
                return cls.start(data_dir, **extra_env)
            raise
        return server

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_until_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                if requests.get(f"{self.endpoint_url}/_modelyard/health", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not healthy after {timeout}s:\n{self.log_path.read_text()}")

    def client_env(self) -> dict[str, str]:
        """What a user exports to point boto3 and the SageMaker SDK at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "BOTOCORE_EXPERIMENTAL__PLUGINS": "modelyard=modelyard.botocore_plugin",
            "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
            "SAGEMAKER_USER_CONFIG_OVERRIDE": str(self.data_dir / "sagemaker-sdk-config.yaml"),
        }

    def client(self, service: str, **config):
        return boto3.session.Session().client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=config.pop("access_key", ACCESS_KEY),
            aws_secret_access_key=config.pop("secret_key", SECRET_KEY),
            config=botocore.config.Config(retries={"max_attempts": 1}, **config),
        )

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to clean up."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
