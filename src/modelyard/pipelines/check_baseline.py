"""The calculated constraints of a QualityCheck run that also checked drift.

A QualityCheck step always calculates a new baseline (``CalculatedBaselineStatistics`` and
``CalculatedBaselineConstraints``), also when its job compares the data with a previous
baseline. modelyard's analyzer, like SageMaker's monitoring executions, writes
``statistics.json`` and ``constraint_violations.json`` when it compares, and
``constraints.json`` only when it baselines; so after a checking run the step suggests
``constraints.json`` from the job's ``statistics.json`` with the analyzer's own suggestion
rules (data quality: ``constraints.suggest_feature``; model quality:
``model_quality_checks.suggest_constraints``), which is what a baselining run of the same
data writes.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.errors import AwsError
from ..engine.channels import S3Location

if TYPE_CHECKING:
    from ..platform import Platform


def ensure_constraints(platform: "Platform", output: str, check_type: str,
                       environment: dict[str, str]) -> None:
    """Write ``<output>/constraints.json`` from ``<output>/statistics.json`` if the job did
    not write it; leave everything as it is when statistics are missing or unreadable."""
    target = S3Location.parse(f"{output}/constraints.json")
    try:
        platform.objects.get_object_info(target.bucket, target.key)
        return  # the analyzer wrote it
    except AwsError:
        pass
    source = S3Location.parse(f"{output}/statistics.json")
    try:
        reader = platform.objects.open_object(source.bucket, source.key)
        statistics = json.loads(b"".join(reader.iter_chunks()))
    except (AwsError, ValueError):
        return
    if check_type == "MODEL_QUALITY":
        document = _model_quality(statistics)
    else:
        document = _data_quality(statistics, environment.get("categorical_drift_method"))
    if document is None:
        return
    from ..monitor.analyzer import statistics_json

    with tempfile.TemporaryDirectory(dir=platform.objects.spool_dir) as folder:
        path = Path(folder) / "constraints.json"
        statistics_json.write(path, document)
        platform.objects.put_file(target.bucket, target.key, path, now=platform.clock.now(),
                                  content_type="application/json", link=False)


def _data_quality(statistics: dict[str, Any], drift_method: str | None) -> dict[str, Any] | None:
    import numpy as np
    import pandas as pd

    from ..monitor.analyzer.constraints import monitoring_config, suggest_feature
    from ..monitor.analyzer.statistics import ColumnProfile

    features = statistics.get("features")
    if not isinstance(features, list):
        return None
    suggested = []
    for feature in features:
        numbers = feature.get("numerical_statistics")
        strings = feature.get("string_statistics")
        common = (numbers or strings or {}).get("common", {})
        profile = ColumnProfile(name=str(feature.get("name")),
                                inferred_type=str(feature.get("inferred_type")),
                                num_present=int(common.get("num_present", 0)),
                                num_missing=int(common.get("num_missing", 0)))
        if numbers and numbers.get("min") is not None and common.get("num_present"):
            profile.values = np.array([float(numbers["min"])])
        if strings:
            buckets = strings.get("distribution", {}).get("categorical", {}).get("buckets", [])
            profile.categories = pd.Series({str(b["value"]): b.get("count", 0) for b in buckets},
                                           dtype="float64")
        suggested.append(suggest_feature(profile))
    return {"version": 0.0, "features": suggested,
            "monitoring_config": monitoring_config(drift_method)}


def _model_quality(statistics: dict[str, Any]) -> dict[str, Any] | None:
    from ..monitor.analyzer.model_quality_checks import suggest_constraints

    for key, metrics in statistics.items():
        if key.endswith("_metrics") and isinstance(metrics, dict):
            return suggest_constraints(key.removesuffix("_metrics"), metrics)
    return None
