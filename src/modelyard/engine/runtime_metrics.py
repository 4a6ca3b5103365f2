"""Metrics the built-in algorithms report without MetricDefinitions, as on SageMaker."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .job_process import MetricExtractor

_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
# XGBoost prints "[12]#011train-auc:0.99#011validation-auc:0.97" (#011 is a tab).
_XGBOOST_VALUE = re.compile(r"(?:#011|\t)(train|validation)-([\w@.:-]+?):" + _NUMBER)
_XGBOOST_ROUND = re.compile(r"\[\d+\]")
_BLAZINGTEXT = re.compile(r"#(train|validation)_accuracy:\s*" + _NUMBER)


def _xgboost(line: str) -> Iterable[tuple[str, float]]:
    if not _XGBOOST_ROUND.search(line):
        return
    for channel, metric, value in _XGBOOST_VALUE.findall(line):
        yield f"{channel}:{metric}", float(value)


def _blazingtext(line: str) -> Iterable[tuple[str, float]]:
    for channel, value in _BLAZINGTEXT.findall(line):
        yield f"{channel}:accuracy", float(value)


def builtin_extractors(framework: str, module: str) -> list[MetricExtractor]:
    if module.endswith("xgboost_algorithm"):
        return [_xgboost]
    if module.endswith("blazingtext"):
        return [_blazingtext]
    return []
