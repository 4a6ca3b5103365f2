"""Building Lambda deployment packages and functions for the Lambda tests and benchmarks."""

from __future__ import annotations

import io
import textwrap
import zipfile

ROLE = "arn:aws:iam::123456789012:role/lambda-role"


def make_zip(files: dict[str, str]) -> bytes:
    """A real deployment package: each file's (dedented) source at the zip's root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, source in files.items():
            archive.writestr(name, textwrap.dedent(source).lstrip())
    return buffer.getvalue()


def create_function(client, name: str, source: str, *, handler: str = "app.handler",
                    runtime: str = "python3.12", **extra):
    """Create ``name`` from one module app.py holding ``source``."""
    return client.create_function(
        FunctionName=name, Runtime=runtime, Role=ROLE, Handler=handler,
        Code={"ZipFile": make_zip({"app.py": source})}, **extra)
