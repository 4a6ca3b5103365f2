"""BlazingText hosting, supervised (text classification) models.

The model is ``model.bin`` as fastText saves it (what ``runtimes.blazingtext`` writes, and
what BlazingText and fastText exchange both ways). Request formats, as the BlazingText
docs give them (https://docs.aws.amazon.com/sagemaker/latest/dg/blazingtext.html):

- ``application/json``: ``{"instances": ["text", ...], "configuration": {"k": 2}}`` ->
  ``[{"label": ["__label__x", ...], "prob": [0.9, ...]}, ...]``, one entry per instance,
  labels with their ``__label__`` prefix, top ``k`` (default 1) by probability;
- ``application/jsonlines`` (batch transform): ``{"source": "text", "k": 2}`` per line ->
  one ``{"label": [...], "prob": [...]}`` line each;
- ``text/plain`` (a modelyard convenience, not in BlazingText's docs): one text per line,
  top 1, answered as ``application/json`` like the JSON form.

As in BlazingText, the response format follows the Content-Type; Accept is ignored.
A newline inside one text is read as a space (fastText classifies one line at a time).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .base import HttpError, ModelHandler, ModelLoadError, decode_text, media_type, require_file
from .http import Request, Response

MODEL_FILE = "model.bin"
JSON = "application/json"
JSONLINES = "application/jsonlines"
TEXT = "text/plain"


def _k(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise HttpError(400, f"{where} must be a positive integer, got {json.dumps(value)}")
    try:
        number = float(value)
    except ValueError:
        raise HttpError(400, f"{where} must be a positive integer, got {json.dumps(value)}") from None
    if not number.is_integer() or number < 1:
        raise HttpError(400, f"{where} must be a positive integer, got {json.dumps(value)}")
    return int(number)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise HttpError(400, f"{where} must be a string (the text to classify), got {json.dumps(value)[:100]}")
    return value.replace("\r", " ").replace("\n", " ")


def _json_value(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise HttpError(400, f"{what} payload is not valid JSON: {error}") from None


class BlazingTextHandler(ModelHandler):
    def __init__(self, model_dir: Path) -> None:
        super().__init__(model_dir)
        path = require_file(model_dir / MODEL_FILE, "BlazingText model")
        import fasttext

        try:
            self.model = fasttext.load_model(str(path))
        except (ValueError, RuntimeError, OSError) as error:
            raise ModelLoadError(f"{MODEL_FILE} is not a fastText model fastText can load: {error}") from None
        if not self.model.get_labels():
            raise ModelLoadError(
                f"{MODEL_FILE} is a word-vector model; modelyard serves BlazingText's supervised "
                "(text classification) models only.")

    def classify(self, texts: list[str], k: int) -> list[dict[str, Any]]:
        if not texts:
            return []
        labels, probabilities = self.model.predict(texts, k=k)
        return [{"label": list(label), "prob": [float(p) for p in prob]}
                for label, prob in zip(labels, probabilities)]

    def invoke(self, request: Request) -> Response:
        kind, _ = media_type(request.content_type)
        if kind == JSON:
            return self._json(request.body)
        if kind == JSONLINES:
            return self._jsonlines(request.body)
        if kind == TEXT:
            lines = decode_text(request.body, "text/plain").splitlines()
            body = json.dumps(self.classify([_text(line, "line") for line in lines], 1))
            return Response(200, body.encode(), JSON)
        raise HttpError(415, f"Content-Type {request.content_type or '(none)'} is not supported by "
                             f"BlazingText: send {JSON} ({{\"instances\": [...]}}), {JSONLINES} "
                             f"({{\"source\": ...}} per line) or {TEXT} (one text per line).")

    def _json(self, body: bytes) -> Response:
        payload = _json_value(decode_text(body, JSON), JSON)
        if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
            raise HttpError(400, 'application/json payload must be an object with "instances": a list '
                                 'of texts, e.g. {"instances": ["my vpn drops"], "configuration": {"k": 2}}')
        configuration = payload.get("configuration") or {}
        if not isinstance(configuration, dict):
            raise HttpError(400, '"configuration" must be an object such as {"k": 2}')
        k = _k(configuration.get("k", 1), "configuration.k")
        texts = [_text(value, f"instances[{index}]") for index, value in enumerate(payload["instances"])]
        return Response(200, json.dumps(self.classify(texts, k)).encode(), JSON)

    def _jsonlines(self, body: bytes) -> Response:
        records = []
        for number, line in enumerate(decode_text(body, JSONLINES).splitlines(), start=1):
            if not line.strip():
                continue
            record = _json_value(line, f"{JSONLINES} line {number}")
            if not isinstance(record, dict) or "source" not in record:
                raise HttpError(400, f'{JSONLINES} line {number} must be an object with "source", '
                                     'e.g. {"source": "my vpn drops", "k": 2}')
            records.append((_text(record["source"], f"line {number} source"),
                            _k(record.get("k", 1), f"line {number} k")))
        answers: list[dict[str, Any]] = []
        start = 0
        while start < len(records):  # one predict call per run of equal k
            end = start
            while end < len(records) and records[end][1] == records[start][1]:
                end += 1
            answers += self.classify([text for text, _ in records[start:end]], records[start][1])
            start = end
        body_out = "".join(json.dumps(answer) + "\n" for answer in answers)
        return Response(200, body_out.encode(), JSONLINES)

    def execution_parameters(self) -> dict[str, Any]:
        return {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}
