"""Built-in XGBoost's selectable inference output: ``SAGEMAKER_INFERENCE_OUTPUT``.

With ``SAGEMAKER_INFERENCE_OUTPUT=predicted_label,probability`` (any of the keys below,
comma-separated), the XGBoost container answers each record with those fields instead of
the bare score -- what Autopilot, Clarify and Model Monitor's model-quality jobs read. The
keys an objective supports are the container's; a key the objective does not support is
answered as NaN (and logged), as the container does.

Encodings: ``application/json`` -> ``{"predictions": [{key: value, ...}, ...]}``;
``application/jsonlines`` -> one such object per line; ``text/csv`` -> one line per record,
values in the order the keys were given, lists written as ``"[0.1, 0.9]"``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES = "predicted_label", "labels", "probability", "probabilities"
RAW_SCORE, RAW_SCORES, PREDICTED_SCORE = "raw_score", "raw_scores", "predicted_score"
_CLASSIFICATION = [PREDICTED_LABEL, LABELS, RAW_SCORE, RAW_SCORES]
SUPPORTED_KEYS = {
    **{objective: [PREDICTED_SCORE] for objective in
       ("reg:squarederror", "reg:logistic", "reg:gamma", "reg:absoluteerror", "reg:tweedie")},
    "binary:logistic": [PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES, RAW_SCORE, RAW_SCORES],
    "binary:logitraw": _CLASSIFICATION,
    "binary:hinge": _CLASSIFICATION,
    "multi:softmax": _CLASSIFICATION,
    "multi:softprob": [PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES, RAW_SCORE, RAW_SCORES],
}
ENV = "SAGEMAKER_INFERENCE_OUTPUT"


def selected_keys() -> list[str] | None:
    """The requested keys, or None when selectable output is off."""
    if ENV not in os.environ:
        return None
    return [key for key in os.environ[ENV].replace(" ", "").lower().split(",") if key]


def _value(key: str, objective: str, num_class: int, score: Any) -> Any:
    """One field of one record; ``score`` is that record's row of ``predict`` output."""
    if key == PREDICTED_SCORE:
        return float(score)
    if key == LABELS:
        return [0, 1] if objective.startswith("binary:") else list(range(num_class))
    if objective == "multi:softprob":
        values = [float(v) for v in score]
        best = max(range(len(values)), key=values.__getitem__)
        return {PREDICTED_LABEL: best, PROBABILITY: values[best], PROBABILITIES: values,
                RAW_SCORE: values[best], RAW_SCORES: values}[key]
    value = float(score)
    if key == PREDICTED_LABEL:
        if objective in ("binary:hinge", "multi:softmax"):
            return value
        return int(value > (0.5 if objective == "binary:logistic" else 0.0))
    if key in (PROBABILITY, RAW_SCORE):
        return value
    return [1.0 - value, value]  # PROBABILITIES, RAW_SCORES


def select(predictions: Any, keys: list[str], objective: str, num_class: int) -> list[dict[str, Any]]:
    if objective not in SUPPORTED_KEYS:
        raise ValueError(f"Objective `{objective}` unsupported for selectable inference predictions.")
    unsupported = [key for key in keys if key not in SUPPORTED_KEYS[objective]]
    if unsupported:
        print(f"Selected key(s) {unsupported} incompatible for objective '{objective}'. Please use list of "
              f"compatible selectable inference predictions: {SUPPORTED_KEYS[objective]}", file=sys.stderr)
    return [{key: math.nan if key in unsupported else _value(key, objective, num_class, score) for key in keys}
            for score in predictions]


def encode(records: list[dict[str, Any]], keys: list[str], accept: str) -> bytes:
    if accept == "application/json":
        return json.dumps({"predictions": records}).encode()
    if accept == "application/jsonlines":
        return "".join(json.dumps(record) + "\n" for record in records).encode()
    lines = (",".join(f'"{record[key]}"' if isinstance(record[key], list) else str(record[key]) for key in keys)
             for record in records)
    text = "\n".join(lines)
    return (text + "\n" if os.environ.get("SAGEMAKER_BATCH") else text).encode()
