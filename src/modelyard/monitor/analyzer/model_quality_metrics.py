"""Model quality metrics with scikit-learn, named and shaped as SageMaker writes them.

Each scalar metric is ``{"value": v, "standard_deviation": s}``. As SageMaker documents,
the standard deviation is given only with at least 200 samples: the metric is recomputed on
5 random samples of 80% of the data (without replacement; a fixed seed, so reruns agree; the
same 5 samples for every metric, which SageMaker's identical deviations of accuracy and
weighted_recall suggest) and ``s`` is the (sample, ddof=1) standard deviation of those 5
values; else it is ``"NaN"``.
Undefined values (AUC with one class present) are ``"NaN"`` too.

- Binary: the positive label is ``positive_label`` if given, else ``1`` / ``true`` when
  present, else the larger of the two labels. ``confusion_matrix`` is
  ``{actual: {predicted: count}}``; the ``*_best_constant_classifier`` metrics are those of
  always predicting the positive label (as SageMaker's example shows: its accuracy is the
  positive rate). ROC / PR curves and AUC need probabilities.
- Multiclass: the confusion matrix, accuracy and support-weighted recall / precision /
  F-scores; the best constant classifier always predicts the most frequent actual label.
- Regression: mae, mse, rmse, r2.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

MIN_SAMPLES_FOR_STDDEV = 200
RESAMPLES = 5
RESAMPLE_FRACTION = 0.8
SEED = 20200423

PROBLEM_TYPES = {
    "BinaryClassification": "binary_classification",
    "MulticlassClassification": "multiclass_classification",
    "Regression": "regression",
}

# metric -> comparison operator of a suggested constraint (threshold: the baseline value)
CONSTRAINED = {
    "binary_classification": {
        "recall": "LessThanThreshold", "precision": "LessThanThreshold",
        "accuracy": "LessThanThreshold", "true_positive_rate": "LessThanThreshold",
        "true_negative_rate": "LessThanThreshold",
        "false_positive_rate": "GreaterThanThreshold",
        "false_negative_rate": "GreaterThanThreshold", "auc": "LessThanThreshold",
        "f0_5": "LessThanThreshold", "f1": "LessThanThreshold", "f2": "LessThanThreshold",
    },
    "multiclass_classification": {
        "accuracy": "LessThanThreshold", "weighted_recall": "LessThanThreshold",
        "weighted_precision": "LessThanThreshold", "weighted_f0_5": "LessThanThreshold",
        "weighted_f1": "LessThanThreshold", "weighted_f2": "LessThanThreshold",
    },
    "regression": {
        "mae": "GreaterThanThreshold", "mse": "GreaterThanThreshold",
        "rmse": "GreaterThanThreshold", "r2": "LessThanThreshold",
    },
}


class MetricsError(ValueError):
    """The data cannot give these metrics; the message says what to fix."""


def _json_number(value: float) -> float | str:
    return "NaN" if value is None or not math.isfinite(value) else float(value)


def _sort_labels(labels: set[str]) -> list[str]:
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


def canonical_label(value: str) -> str:
    """``"1.0"`` and ``"1"`` are the same class; other text is kept as it is."""
    try:
        number = float(value)
    except ValueError:
        return value
    if math.isfinite(number) and number == int(number):
        return str(int(number))
    return value


def _subsamples(n: int) -> list[np.ndarray]:
    """The 5 random 80% samples every metric of a dataset is recomputed on (none when
    n < 200); one set for all metrics, so e.g. recall and true_positive_rate agree."""
    if n < MIN_SAMPLES_FOR_STDDEV:
        return []
    rng = np.random.default_rng(SEED)
    size = int(n * RESAMPLE_FRACTION)
    return [np.sort(rng.choice(n, size=size, replace=False)) for _ in range(RESAMPLES)]


def _with_stddev(compute: Callable[[np.ndarray], float], n: int,
                 samples: list[np.ndarray]) -> dict[str, float | str]:
    value = compute(np.arange(n))
    stddev: float | str = "NaN"
    if samples:
        stddev = _json_number(float(np.std([compute(idx) for idx in samples], ddof=1)))
    return {"value": _json_number(value), "standard_deviation": stddev}


def _confusion(truth: np.ndarray, predicted: np.ndarray, labels: list[str]) -> dict:
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(truth, predicted, labels=labels)
    return {actual: {label: int(matrix[i][j]) for j, label in enumerate(labels)}
            for i, actual in enumerate(labels)}


def positive_label(labels: set[str], configured: str | None) -> str:
    if configured:
        return canonical_label(configured)
    for candidate in ("1", "true", "True", "TRUE"):
        if candidate in labels:
            return candidate
    return _sort_labels(labels)[-1]


def binary_metrics(truth: list[str], predicted: list[str], probability: list[float] | None,
                   positive: str | None = None) -> dict[str, Any]:
    """SageMaker's ``binary_classification_metrics``."""
    from sklearn import metrics as m

    labels = set(truth) | set(predicted)
    if len(labels) > 2:
        raise MetricsError(
            f"BinaryClassification needs two classes but the labels and predictions hold "
            f"{len(labels)} ({', '.join(_sort_labels(labels)[:10])}); use "
            "MulticlassClassification, or a probability_threshold_attribute to turn "
            "probabilities into 0/1 predictions.")
    pos = positive_label(labels, positive)
    y = (np.asarray(truth) == pos).astype(int)
    p = (np.asarray(predicted) == pos).astype(int)
    scores = np.asarray(probability, dtype=float) if probability is not None else None
    n = len(y)
    samples = _subsamples(n)
    ones = np.ones(n, dtype=int)

    def rate(fn: Callable[..., float], constant: bool = False, **kw: Any):
        return lambda idx: float(fn(y[idx], (ones if constant else p)[idx],
                                    zero_division=0.0, **kw))

    def fpr(idx: np.ndarray) -> float:
        negatives = int((y[idx] == 0).sum())
        return float(((p[idx] == 1) & (y[idx] == 0)).sum() / negatives) if negatives else 0.0

    def auc(idx: np.ndarray) -> float:
        if scores is None or len(set(y[idx].tolist())) < 2:
            return float("nan")
        return float(m.roc_auc_score(y[idx], scores[idx]))

    ordered = _sort_labels(labels | {pos})
    if len(ordered) == 1:
        ordered = _sort_labels({pos, "0" if pos != "0" else "1"})
    result: dict[str, Any] = {
        "confusion_matrix": _confusion(np.asarray(truth), np.asarray(predicted), ordered)}
    recall = rate(m.recall_score)
    precision = rate(m.precision_score)
    result["recall"] = _with_stddev(recall, n, samples)
    result["precision"] = _with_stddev(precision, n, samples)
    result["accuracy"] = _with_stddev(lambda i: float(m.accuracy_score(y[i], p[i])), n, samples)
    result["recall_best_constant_classifier"] = _with_stddev(rate(m.recall_score, True), n, samples)
    result["precision_best_constant_classifier"] = _with_stddev(
        rate(m.precision_score, True), n, samples)
    result["accuracy_best_constant_classifier"] = _with_stddev(
        lambda i: float(m.accuracy_score(y[i], ones[i])), n, samples)
    result["true_positive_rate"] = _with_stddev(recall, n, samples)
    result["true_negative_rate"] = _with_stddev(lambda i: 1.0 - fpr(i), n, samples)
    result["false_positive_rate"] = _with_stddev(fpr, n, samples)
    result["false_negative_rate"] = _with_stddev(lambda i: 1.0 - recall(i), n, samples)
    if scores is not None and len(set(y.tolist())) == 2:
        fprs, tprs, _ = m.roc_curve(y, scores)
        precisions, recalls, _ = m.precision_recall_curve(y, scores)
        result["receiver_operating_characteristic_curve"] = {
            "false_positive_rates": [float(v) for v in fprs],
            "true_positive_rates": [float(v) for v in tprs]}
        result["precision_recall_curve"] = {
            "precisions": [float(v) for v in precisions[::-1]],
            "recalls": [float(v) for v in recalls[::-1]]}
    if scores is not None:
        result["auc"] = _with_stddev(auc, n, samples)
    for beta, name in ((0.5, "f0_5"), (1.0, "f1"), (2.0, "f2")):
        result[name] = _with_stddev(rate(m.fbeta_score, beta=beta), n, samples)
    for beta, name in ((0.5, "f0_5"), (1.0, "f1"), (2.0, "f2")):
        result[f"{name}_best_constant_classifier"] = _with_stddev(
            rate(m.fbeta_score, True, beta=beta), n, samples)
    return result


def multiclass_metrics(truth: list[str], predicted: list[str]) -> dict[str, Any]:
    """SageMaker's ``multiclass_classification_metrics``."""
    from sklearn import metrics as m

    labels = _sort_labels(set(truth) | set(predicted))
    y = np.asarray(truth)
    p = np.asarray(predicted)
    n = len(y)
    values, counts = np.unique(y, return_counts=True)
    constant = np.full(n, values[int(np.argmax(counts))], dtype=y.dtype)
    samples = _subsamples(n)

    def weighted(fn: Callable[..., float], guess: np.ndarray, **kw: Any):
        return lambda idx: float(fn(y[idx], guess[idx], average="weighted",
                                    zero_division=0.0, **kw))

    result: dict[str, Any] = {"confusion_matrix": _confusion(y, p, labels)}
    result["accuracy"] = _with_stddev(lambda i: float(m.accuracy_score(y[i], p[i])), n, samples)
    result["weighted_recall"] = _with_stddev(weighted(m.recall_score, p), n, samples)
    result["weighted_precision"] = _with_stddev(weighted(m.precision_score, p), n, samples)
    for beta, name in ((0.5, "weighted_f0_5"), (1.0, "weighted_f1"), (2.0, "weighted_f2")):
        result[name] = _with_stddev(weighted(m.fbeta_score, p, beta=beta), n, samples)
    result["accuracy_best_constant_classifier"] = _with_stddev(
        lambda i: float(m.accuracy_score(y[i], constant[i])), n, samples)
    result["weighted_recall_best_constant_classifier"] = _with_stddev(
        weighted(m.recall_score, constant), n, samples)
    result["weighted_precision_best_constant_classifier"] = _with_stddev(
        weighted(m.precision_score, constant), n, samples)
    for beta, name in ((0.5, "weighted_f0_5"), (1.0, "weighted_f1"), (2.0, "weighted_f2")):
        result[f"{name}_best_constant_classifier"] = _with_stddev(
            weighted(m.fbeta_score, constant, beta=beta), n, samples)
    return result


def regression_metrics(truth: list[float], predicted: list[float]) -> dict[str, Any]:
    """SageMaker's ``regression_metrics``."""
    from sklearn import metrics as m

    y = np.asarray(truth, dtype=float)
    p = np.asarray(predicted, dtype=float)
    n = len(y)
    samples = _subsamples(n)
    return {
        "mae": _with_stddev(lambda i: float(m.mean_absolute_error(y[i], p[i])), n, samples),
        "mse": _with_stddev(lambda i: float(m.mean_squared_error(y[i], p[i])), n, samples),
        "rmse": _with_stddev(
            lambda i: float(math.sqrt(m.mean_squared_error(y[i], p[i]))), n, samples),
        "r2": _with_stddev(lambda i: float(m.r2_score(y[i], p[i])), n, samples),
    }
