"""What every model server shares: the handler interface, HTTP errors, media types.

A ``ModelHandler`` is built once per process with the model directory; building it loads
the model (a failure raises ``ModelLoadError``, and the process exits non-zero with the
reason on stderr before it ever listens). After that, ``invoke`` turns one ``/invocations``
request into a response. It raises ``HttpError`` for anything the caller did wrong (bad
payload 400, unsupported Content-Type 415, unsupported Accept 406); any other exception is
the model's own failure and becomes a 500 whose body is the error text, which the gateway
reports as ``ModelError`` (424) with ``OriginalStatusCode`` / ``OriginalMessage``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .http import Request, Response

DEFAULT_PORT = 8080
PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
DEFAULT_ACCEPT_ENV = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"


class ModelLoadError(Exception):
    """The model cannot be served; the message is what FailureReason should quote."""


class HttpError(Exception):
    """A request the model server refuses, with the status and a message saying what to fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ModelHandler:
    """One model, loaded; subclasses implement ``invoke``.

    ``forkable``: the loaded handler may be forked into worker processes (its library keeps
    no threads or locks across ``fork``), so batch transform's concurrent mini-batches can
    use several cores (``model_server.invocation_workers``).
    """

    forkable = False

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir

    def invoke(self, request: Request) -> Response:
        raise NotImplementedError

    def execution_parameters(self) -> dict[str, Any] | None:
        """``GET /execution-parameters`` (batch transform asks it), or None for 404."""
        return None


def media_type(header: str) -> tuple[str, dict[str, str]]:
    """``"text/csv; charset=utf-8"`` -> ``("text/csv", {"charset": "utf-8"})``, lower-cased."""
    kind, *parameters = header.split(";")
    options = {}
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip():
            options[name.strip().lower()] = value.strip().strip('"')
    return kind.strip().lower(), options


def accept_type(header: str, default: str) -> str:
    """The media type to answer with: the first one in Accept; a missing Accept or ``*/*``
    means ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``, else ``default`` (the containers' rule)."""
    first = header.split(",")[0]
    kind, _ = media_type(first)
    if not kind or kind == "*/*":
        return os.environ.get(DEFAULT_ACCEPT_ENV) or default
    return kind


def decode_text(body: bytes, what: str) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise HttpError(400, f"{what} payload is not valid UTF-8 ({error})") from None


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        present = sorted(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else []
        raise ModelLoadError(
            f"{what} {path.name} is not in the model directory {path.parent} (it holds: "
            f"{', '.join(present) or 'nothing'}); the model's ModelDataUrl must be a model.tar.gz "
            f"with {path.name} at its top level.")
    return path
