"""Framework script mode hosting: the user's inference entry point (scikit-learn, XGBoost).

Does what the scikit-learn and XGBoost framework containers' servers do (sagemaker-
containers' ``Transformer`` with the frameworks' defaults): import the module named by
``SAGEMAKER_PROGRAM`` from the code directory, call ``model_fn(model_dir)`` once, then per
request ``input_fn(body, content_type)`` -> ``predict_fn(data, model)`` ->
``output_fn(prediction, accept)``, or ``transform_fn(model, body, content_type, accept)``
instead of the three (defining both is an error, as in the containers). Each function may
take a trailing ``context`` argument (the inference toolkit's form); it receives None.

Where the code is (``SAGEMAKER_SUBMIT_DIRECTORY``, as the SDK's ``Model`` sets it):

- ``/opt/ml/model/code`` -- the SDK repacked the entry point into model.tar.gz (estimator
  ``deploy()`` and any ``source_dir``): ``<model dir>/code``;
- ``file:///path`` or an absolute path -- that directory (local mode);
- ``s3://.../sourcedir.tar.gz`` -- the caller (the endpoint controller) downloads and
  extracts it into the code directory, ``/opt/ml/code`` (``--code-dir``), before starting
  the server, exactly as training does; unset -- ``<model dir>/code``.

Defaults when the module lacks a function:

- ``model_fn``: none; both containers require it, and the server exits with their message;
- ``input_fn``: scikit-learn decodes ``application/json`` / ``text/csv`` (to float32) and
  ``application/x-npy``; XGBoost decodes ``text/csv`` and ``text/libsvm`` to a DMatrix;
  anything else is 415;
- ``predict_fn``: ``model.predict(data)`` (XGBoost: ``validate_features=False``);
- ``output_fn``: encodes per Accept -- ``application/json``, ``text/csv``,
  ``application/x-npy``; anything else is 406. A missing Accept or ``*/*`` means
  ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``, else ``application/json``.

``.npy`` payloads are loaded with ``allow_pickle=False`` (the containers allow pickles; a
request must not run code). ``requirements.txt`` in the code directory is not installed
at serving time; packages the training environment has are available.
"""

from __future__ import annotations

import importlib
import inspect
import io
import json
import sys
from pathlib import Path
from typing import Any, Callable

from .base import HttpError, ModelHandler, ModelLoadError, accept_type, decode_text, media_type
from .http import Request, Response
from .xgboost_algorithm import parse_csv, parse_libsvm

CONTAINER_MODEL_DIR = "/opt/ml/model"
JSON, CSV, NPY = "application/json", "text/csv", "application/x-npy"
FRAMEWORKS = ("sklearn", "xgboost")


def code_directory(submit_directory: str | None, model_dir: Path, code_dir: Path) -> Path:
    """The local directory holding the entry point, per ``SAGEMAKER_SUBMIT_DIRECTORY``."""
    value = (submit_directory or "").strip()
    if not value:
        return model_dir / "code"
    if value.startswith("s3://"):
        return code_dir
    if value.startswith("file://"):
        value = value[len("file://"):]
    path = Path(value)
    if path.is_absolute():
        try:  # the SDK names the container's path; the model may be extracted elsewhere
            return model_dir / path.relative_to(CONTAINER_MODEL_DIR)
        except ValueError:
            return path
    raise ModelLoadError(f"SAGEMAKER_SUBMIT_DIRECTORY {value!r} is neither an s3:// URI, a file:// URI "
                         "nor an absolute path.")


def import_entry_point(program: str, directory: Path) -> Any:
    if not (directory / program).is_file():
        present = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
        raise ModelLoadError(f"Entry point {program} (SAGEMAKER_PROGRAM) is not in the code directory "
                             f"{directory}; it holds: {', '.join(present) or 'nothing'}.")
    if not program.endswith(".py"):
        raise ModelLoadError(f"Entry point {program} (SAGEMAKER_PROGRAM) must be a Python file (.py).")
    sys.path.insert(0, str(directory))
    try:
        return importlib.import_module(program[:-3].replace("/", "."))
    except Exception as error:  # noqa: BLE001 - any import failure is a load failure
        raise ModelLoadError(f"Importing the entry point {program} failed: {type(error).__name__}: {error}") from None


def _with_context(function: Callable[..., Any], arity: int) -> Callable[..., Any]:
    """Pass ``context=None`` when the user's function takes one more argument than usual."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return function
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) == arity + 1:
        return lambda *args: function(*args, None)
    return function


# ---------------------------------------------------------------- the frameworks' defaults


def _decode_npy(body: bytes) -> Any:
    import numpy as np

    try:
        return np.load(io.BytesIO(body), allow_pickle=False)
    except ValueError as error:
        raise HttpError(400, f"application/x-npy payload could not be loaded: {error}") from None


def sklearn_input_fn(body: bytes, content_type: str) -> Any:
    import numpy as np

    kind, _ = media_type(content_type)
    if kind == JSON:
        try:
            return np.array(json.loads(decode_text(body, JSON)), dtype=np.float32)
        except ValueError as error:
            raise HttpError(400, f"application/json payload could not be read as numbers: {error}") from None
    if kind == CSV:
        return parse_csv(decode_text(body, CSV))
    if kind == NPY:
        return _decode_npy(body)
    raise HttpError(415, f"Content-Type {content_type or '(none)'} is not supported by the default input_fn: "
                         f"send {JSON}, {CSV} or {NPY}, or define input_fn in the entry point.")


def xgboost_input_fn(body: bytes, content_type: str) -> Any:
    import xgboost as xgb

    kind, _ = media_type(content_type)
    if kind == CSV:
        return xgb.DMatrix(parse_csv(decode_text(body, CSV)))
    if kind in ("text/libsvm", "text/x-libsvm"):
        return xgb.DMatrix(parse_libsvm(decode_text(body, kind), 0))
    raise HttpError(415, f"Content-Type {content_type or '(none)'} is not supported by the default input_fn: "
                         "send text/csv or text/libsvm, or define input_fn in the entry point.")


def encode(prediction: Any, accept: str) -> bytes:
    """sagemaker-containers' encoders: JSON (numpy via tolist), CSV (savetxt), NPY."""
    import numpy as np

    if accept == JSON:
        return json.dumps(prediction, default=lambda value: value.tolist() if hasattr(value, "tolist")
                          else json.JSONEncoder().default(value)).encode()
    if accept == CSV:
        stream = io.StringIO()
        np.savetxt(stream, np.asarray(prediction), delimiter=",", fmt="%s")
        return stream.getvalue().encode()
    if accept == NPY:
        stream_bytes = io.BytesIO()
        np.save(stream_bytes, np.asarray(prediction), allow_pickle=False)
        return stream_bytes.getvalue()
    raise HttpError(406, f"Accept type {accept} is not supported by the default output_fn: ask for "
                         f"{JSON}, {CSV} or {NPY}, or define output_fn in the entry point.")


# ---------------------------------------------------------------- the handler


class ScriptModeHandler(ModelHandler):
    def __init__(self, model_dir: Path, framework: str, program: str | None, code_dir: Path) -> None:
        super().__init__(model_dir)
        if framework not in FRAMEWORKS:
            raise ModelLoadError(f"script mode serves {', '.join(FRAMEWORKS)}, not {framework}")
        self.framework = framework
        program = program or "inference.py"  # the inference toolkit's default
        module = import_entry_point(program, code_dir)
        functions = {name: getattr(module, name, None) for name in
                     ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")}
        if functions["transform_fn"] and (functions["input_fn"] or functions["predict_fn"] or functions["output_fn"]):
            raise ModelLoadError(f"{program}: Cannot use transform_fn implementation with input_fn, "
                                 "predict_fn, and/or output_fn")
        if functions["model_fn"] is None:
            raise ModelLoadError(f"{program} defines no model_fn: Please provide a model_fn implementation "
                                 "(the scikit-learn and XGBoost containers have no default).")
        self.transform_fn = _with_context(functions["transform_fn"], 4) if functions["transform_fn"] else None
        default_input = sklearn_input_fn if framework == "sklearn" else xgboost_input_fn
        self.input_fn = _with_context(functions["input_fn"], 2) if functions["input_fn"] else default_input
        self.predict_fn = _with_context(functions["predict_fn"], 2) if functions["predict_fn"] else self._predict
        self.output_fn = _with_context(functions["output_fn"], 2) if functions["output_fn"] else encode
        try:
            self.model = _with_context(functions["model_fn"], 1)(str(model_dir))
        except Exception as error:  # noqa: BLE001 - the user's model_fn may raise anything
            raise ModelLoadError(f"model_fn in {program} failed: {type(error).__name__}: {error}") from None

    def _predict(self, data: Any, model: Any) -> Any:
        if self.framework == "xgboost":
            return model.predict(data, validate_features=False)
        return model.predict(data)

    def invoke(self, request: Request) -> Response:
        accept = accept_type(request.accept, JSON)
        content_type = request.content_type
        body: Any = request.body
        if media_type(content_type)[0] in (JSON, CSV) and \
                (self.transform_fn or self.input_fn not in (sklearn_input_fn, xgboost_input_fn)):
            body = decode_text(body, content_type)  # the containers hand JSON and CSV over as str
        if self.transform_fn:
            result = self.transform_fn(self.model, body, content_type, accept)
            return _response(result, accept)
        data = self.input_fn(body, content_type)
        prediction = self.predict_fn(data, self.model)
        return _response(self.output_fn(prediction, accept), accept)


def _response(result: Any, accept: str) -> Response:
    """What transform_fn / output_fn returned: a body, or ``(body, content_type)``."""
    content_type = accept
    if isinstance(result, tuple) and len(result) == 2:
        result, content_type = result
    if isinstance(result, str):
        result = result.encode("utf-8")
    if not isinstance(result, (bytes, bytearray)):
        raise TypeError(f"output_fn / transform_fn returned {type(result).__name__}; return bytes or str "
                        "(or a (body, content_type) tuple)")
    return Response(200, bytes(result), content_type)
