"""Built-in XGBoost hosting, as ``sagemaker-xgboost:1.7-1``'s algorithm-mode server answers.

The model is ``xgboost-model`` as ``runtimes.xgboost_algorithm`` writes it (UBJSON); any
single non-hidden file in the model directory is taken when that name is absent, as the
container does. Pickled boosters (what containers before 1.3-1 wrote) are refused: loading
a pickle runs code.

Requests (``Content-Type``):

- ``text/csv``: rows of features, no label column, no header; the delimiter is ``,`` or, when
  the first line has none, sniffed; an empty field is a missing value;
- ``text/libsvm`` / ``text/x-libsvm``: ``[label] index:value ...`` per line, column indices
  kept as written (as training reads them); a missing Content-Type means libsvm, as in
  the container;
- ``application/json``: a modelyard convenience the container refuses with 415: a list of
  rows, one row, or ``{"instances": [...]}``;
- ``application/x-recordio-protobuf``: refused with 415 (modelyard has no RecordIO codec).

An empty body answers 204, as the container does. Responses (``Accept``; missing or ``*/*``
means ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``, else ``text/csv``):

- ``text/csv``: numpy ``savetxt`` of the predictions, i.e. one prediction per line (a
  multi-class probability row comma-separated), values as Python prints them;
- ``application/json``: ``{"predictions": [{"score": 0.43}, ...]}``;
- ``application/jsonlines``: ``{"score": 0.43}`` per line.

With ``SAGEMAKER_BATCH`` set (batch transform), the container writes one prediction per
line whatever the Accept, and so does this server. ``SAGEMAKER_INFERENCE_OUTPUT`` selects
per-record fields instead (``serving.xgboost_selectable``). A payload XGBoost cannot score (wrong
number of features) is a 400, "Unable to evaluate payload provided: ...", as in the container.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from . import xgboost_selectable
from .base import HttpError, ModelHandler, ModelLoadError, accept_type, decode_text, media_type
from .http import Request, Response

MODEL_NAME = "xgboost-model"
CSV = "text/csv"
LIBSVM = ("text/libsvm", "text/x-libsvm")
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"
ACCEPTS = (JSON, JSONLINES, CSV)
# text/csv bodies at least this large are parsed by pandas' C reader when they can be
# (``parse_csv_fast``); smaller ones are parsed in Python, which costs less than importing
# pandas for them.
FAST_CSV_MIN_BYTES = 64 * 1024
_NUMERIC_CSV_BYTES = b"0123456789.,+-eE\n"


def import_xgboost() -> Any:
    """``import xgboost`` without its scikit-learn wrappers.

    ``xgboost.compat`` imports scikit-learn (seconds on a busy machine) just to define
    ``XGBClassifier``'s base classes; the server needs ``Booster`` only. Hiding sklearn
    while xgboost loads makes it fall back to its stand-ins, as when sklearn is absent;
    sklearn stays importable afterwards.
    """
    if "xgboost" in sys.modules:
        return sys.modules["xgboost"]
    hide = "sklearn" not in sys.modules
    if hide:
        sys.modules["sklearn"] = None  # type: ignore[assignment]  # "import sklearn" fails
    try:
        import xgboost
    finally:
        if hide and sys.modules.get("sklearn", 0) is None:
            del sys.modules["sklearn"]
    return xgboost


def _model_file(model_dir: Path) -> Path:
    preferred = model_dir / MODEL_NAME
    if preferred.is_file():
        return preferred
    files = sorted(p for p in model_dir.iterdir() if p.is_file() and not p.name.startswith(".")) \
        if model_dir.is_dir() else []
    if not files:
        raise ModelLoadError(f"No XGBoost model in the model directory {model_dir}: the model's "
                             f"ModelDataUrl must be a model.tar.gz holding {MODEL_NAME}.")
    return files[0]


def xgboost_error_text(error: Exception) -> str:
    """An XGBoostError's first line without its timestamp and source location."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return re.sub(r"^\[[\d:]+\]\s+\S+:\d+:\s*", "", first)


def parse_csv_fast(body: bytes) -> Any:
    """A large text/csv body of plain numbers as ``parse_csv`` would read it, by pandas' C
    reader (its converter rounds exactly as Python's ``float``, and the float32 matrix is
    cast from float64 as ``parse_csv``'s is), or None for ``parse_csv`` to decide: a small
    body, any character besides digits, signs, points, exponents, commas and newlines
    (other delimiters, quotes, NaN, CR), an empty field or line, a single column, rows of
    different widths, or anything pandas refuses."""
    if len(body) < FAST_CSV_MIN_BYTES:
        return None
    data = body.strip()
    if data.translate(None, _NUMERIC_CSV_BYTES):
        return None
    end = data.find(b"\n")
    first = data if end < 0 else data[:end]
    if b"," not in first:
        return None
    import numpy as np
    import pandas

    try:
        matrix = pandas.read_csv(io.BytesIO(data), header=None, dtype=np.float64,
                                 engine="c").to_numpy()
    except (ValueError, pandas.errors.ParserError):
        return None
    # An empty field reads as NaN (no other field here can), and so does the padding of a
    # short row; pandas refuses a long row and skips an empty line (the count shows it).
    if matrix.shape != (data.count(b"\n") + 1, first.count(b",") + 1) or np.isnan(matrix).any():
        return None
    return matrix.astype(np.float32)


def parse_csv(text: str) -> Any:
    import numpy as np

    lines = text.strip().replace("\r\n", "\n").split("\n")
    delimiter = ","
    if "," not in lines[0]:
        try:
            delimiter = csv.Sniffer().sniff(lines[0][:512], delimiters=";\t| ").delimiter
        except csv.Error:
            delimiter = ","  # one feature per row
    rows = [["nan" if field.strip() == "" else field for field in line.split(delimiter)] for line in lines]
    widths = {len(row) for row in rows}
    if len(widths) > 1:
        raise HttpError(400, f"text/csv rows have different numbers of columns ({sorted(widths)}); "
                             "send one row of features per line, no label column, no header")
    try:
        return np.array(rows, dtype=np.float32)
    except ValueError as error:
        raise HttpError(400, f"Loading csv data failed: {error}; text/csv must hold numbers only "
                             "(no header row, no label column)") from None


def parse_libsvm(text: str, num_features: int) -> Any:
    import numpy as np
    import scipy.sparse

    rows, columns, values = [], [], []
    lines = text.strip().replace("\r\n", "\n").split("\n")
    try:
        for row, line in enumerate(lines):
            for item in line.split():
                if ":" in item:
                    index, _, value = item.partition(":")
                    rows.append(row)
                    columns.append(int(index))
                    values.append(float(value))
    except ValueError as error:
        raise HttpError(400, f"Loading libsvm data failed on line {row + 1}: {error}; expected "
                             "'index:value' pairs") from None
    if columns and min(columns) < 0:
        raise HttpError(400, "Loading libsvm data failed: negative feature index")
    width = max([num_features, *(c + 1 for c in columns)])
    return scipy.sparse.csr_matrix((np.array(values, dtype=np.float32), (rows, columns)),
                                   shape=(len(lines), width))


def parse_json(text: str) -> Any:
    import numpy as np

    try:
        payload = json.loads(text)
    except ValueError as error:
        raise HttpError(400, f"application/json payload is not valid JSON: {error}") from None
    if isinstance(payload, dict):
        payload = payload.get("instances")
    if not isinstance(payload, list) or not payload:
        raise HttpError(400, 'application/json payload must be a list of rows, one row, or '
                             '{"instances": [[...], ...]}')
    try:
        matrix = np.array(payload, dtype=np.float32)
    except (ValueError, TypeError) as error:
        raise HttpError(400, f"application/json rows must be lists of numbers of equal length: {error}") from None
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2:
        raise HttpError(400, "application/json rows must be flat lists of numbers")
    return matrix


def encode_predictions(predictions: list[Any], accept: str) -> bytes:
    """The container's encodings of ``booster.predict(...).tolist()``."""
    if os.environ.get("SAGEMAKER_BATCH"):
        return ("\n".join(map(str, predictions)) + "\n").encode()
    if accept == JSON:
        return json.dumps({"predictions": [{"score": value} for value in predictions]}).encode()
    if accept == JSONLINES:
        return "".join(json.dumps({"score": value}) + "\n" for value in predictions).encode()
    # text/csv: numpy.savetxt(stream, predictions, delimiter=",", fmt="%s")
    lines = (",".join(map(str, value)) if isinstance(value, list) else str(value) for value in predictions)
    return "".join(line + "\n" for line in lines).encode()


class XGBoostAlgorithmHandler(ModelHandler):
    def __init__(self, model_dir: Path) -> None:
        super().__init__(model_dir)
        path = _model_file(model_dir)
        xgb = import_xgboost()
        self.xgb = xgb
        with path.open("rb") as handle:
            if handle.read(1) == b"\x80":
                raise ModelLoadError(
                    f"{path.name} is a pickled booster (written by a SageMaker XGBoost container "
                    "before 1.3-1); modelyard does not unpickle models. Re-save it with "
                    "Booster.save_model and package that file as xgboost-model.")
        try:  # from memory: XGBoost tells UBJSON, JSON and its old binary format apart by content
            self.booster = xgb.Booster()
            self.booster.load_model(bytearray(path.read_bytes()))
        except xgb.core.XGBoostError as error:
            raise ModelLoadError(f"{path.name} is not an XGBoost model XGBoost can load: "
                                 f"{xgboost_error_text(error)}") from None
        self.booster.set_param("nthread", 1)
        self.num_features = self.booster.num_features()
        self.selected_keys = xgboost_selectable.selected_keys()
        learner = json.loads(self.booster.save_config())["learner"]
        self.objective = learner["objective"]["name"]
        self.num_class = int(learner["learner_model_param"].get("num_class") or 0)
        if os.environ.get("SAGEMAKER_BATCH"):  # big CSV batches ahead (``parse_csv_fast``)
            import pandas  # noqa: F401 - loaded once here, not by every worker's first batch
        # Loading ran no OpenMP region (nthread 1) and started no thread: safe to fork.
        self.forkable = True

    def invoke(self, request: Request) -> Response:
        if not request.body:
            return Response(204)
        kind, _ = media_type(request.content_type)
        kind = kind or LIBSVM[0]
        if kind == RECORDIO:
            raise HttpError(415, "Content-Type application/x-recordio-protobuf is not supported in "
                                 "modelyard: send text/csv, text/libsvm or application/json.")
        if kind not in (CSV, JSON, *LIBSVM):
            raise HttpError(415, f"Content-Type {request.content_type} is not supported: send text/csv, "
                                 "text/libsvm or application/json.")
        accept = accept_type(request.accept, CSV)  # checked after the content type, as the container does
        if accept not in ACCEPTS:
            raise HttpError(406, f"Accept type {accept} is not supported. Please use supported accept "
                                 f"types: {', '.join(ACCEPTS)}.")
        if kind == CSV:
            data = parse_csv_fast(request.body)
            if data is None:
                data = parse_csv(decode_text(request.body, CSV))
        elif kind == JSON:
            data = parse_json(decode_text(request.body, JSON))
        else:
            data = parse_libsvm(decode_text(request.body, kind), self.num_features)
        try:
            predictions = self.booster.inplace_predict(data, validate_features=False)
        except (self.xgb.core.XGBoostError, ValueError) as error:
            raise HttpError(400, f"Unable to evaluate payload provided: {xgboost_error_text(error)}") from None
        if self.selected_keys is not None:  # SAGEMAKER_INFERENCE_OUTPUT; a failure here is a 500
            records = xgboost_selectable.select(predictions, self.selected_keys, self.objective, self.num_class)
            return Response(200, xgboost_selectable.encode(records, self.selected_keys, accept), accept)
        return Response(200, encode_predictions(predictions.tolist(), accept), accept)

    def execution_parameters(self) -> dict[str, Any]:
        return {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}

