"""Tests drive a real modelyard server on a free loopback port, as users do."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from server_process import ServerProcess  # noqa: E402


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory):
    """One server for the whole session; tests that kill servers start their own."""
    process = ServerProcess.start(tmp_path_factory.mktemp("modelyard-data"))
    os.environ.update(process.client_env())
    yield process
    process.stop()


@pytest.fixture()
def s3(server):
    return server.client("s3")


@pytest.fixture()
def sagemaker_client(server):
    return server.client("sagemaker")


@pytest.fixture()
def unique_name(request) -> str:
    """A resource name unique to the test, valid for buckets and SageMaker names."""
    import uuid

    base = request.node.name.lower().replace("_", "-")
    base = "".join(ch for ch in base if ch.isalnum() or ch == "-")[:40].strip("-")
    return f"{base}-{uuid.uuid4().hex[:8]}"
