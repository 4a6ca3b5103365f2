"""Suggesting ``constraints.json`` from a profile, and reading baseline files back.

Suggestions follow SageMaker's analyzer: per feature the inferred type, ``completeness``
(the observed non-null share), ``num_constraints.is_non_negative`` for numbers and
``string_constraints.domains`` (the observed values) for strings of small cardinality
(fewer than 120 distinct values, Deequ's cut-off for categorical columns), plus the global
``monitoring_config`` with the container's defaults (``datatype_check_threshold`` and
``domain_content_threshold`` 1.0; Robust comparison with threshold 0.1; LInfinity for
categorical features unless ``categorical_drift_method`` says ChiSquared).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .statistics import FRACTIONAL, INTEGRAL, STRING, ColumnProfile

DOMAIN_CARDINALITY_LIMIT = 120
DRIFT_METHODS = ("LInfinity", "ChiSquared")
COMPARISON_METHODS = ("Robust", "Simple")


class BaselineError(Exception):
    """A baseline file is missing or unreadable; the message says which and why."""


def monitoring_config(categorical_drift_method: str | None = None) -> dict[str, Any]:
    method = categorical_drift_method or "LInfinity"
    if method not in DRIFT_METHODS:
        raise BaselineError(f"categorical_drift_method {method!r} must be one of "
                            f"{', '.join(DRIFT_METHODS)}.")
    return {
        "evaluate_constraints": "Enabled",
        "emit_metrics": "Enabled",
        "datatype_check_threshold": 1.0,
        "domain_content_threshold": 1.0,
        "distribution_constraints": {
            "perform_comparison": "Enabled",
            "comparison_threshold": 0.1,
            "comparison_method": "Robust",
            "categorical_comparison_threshold": 0.1,
            "categorical_drift_method": method,
        },
    }


def suggest_feature(profile: ColumnProfile) -> dict[str, Any]:
    feature: dict[str, Any] = {"name": profile.name, "inferred_type": profile.inferred_type,
                               "completeness": float(profile.completeness)}
    if profile.inferred_type in (INTEGRAL, FRACTIONAL) and profile.values is not None:
        feature["num_constraints"] = {"is_non_negative": bool(profile.values.min() >= 0)}
    elif profile.inferred_type == STRING and profile.categories is not None and \
            0 < len(profile.categories) < DOMAIN_CARDINALITY_LIMIT:
        feature["string_constraints"] = {"domains": [str(v) for v in profile.categories.index]}
    return feature


def constraints_document(profiles: list[ColumnProfile],
                         categorical_drift_method: str | None = None) -> dict[str, Any]:
    """The constraints.json document."""
    return {"version": 0.0, "features": [suggest_feature(p) for p in profiles],
            "monitoring_config": monitoring_config(categorical_drift_method)}


def load_json(path: str | None, label: str) -> dict[str, Any] | None:
    """A baseline file (``baseline_statistics`` / ``baseline_constraints``), or None when
    the variable is unset. A directory means the file of the usual name inside it."""
    if not path:
        return None
    target = Path(path)
    if target.is_dir():
        target = target / ("statistics.json" if "statistics" in label else "constraints.json")
    if not target.is_file():
        raise BaselineError(f"The {label} file {path} does not exist in the container; check "
                            "the baseline S3 URI of the job.")
    try:
        document = json.loads(target.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BaselineError(f"The {label} file {target.name} is not valid JSON ({error}); "
                            f"give the {target.name} a baseline job wrote.") from None
    if not isinstance(document, dict) or not isinstance(document.get("features"), list):
        raise BaselineError(f"The {label} file {target.name} has no \"features\" list; it is "
                            f"not a Model Monitor {label.split()[-1]} file.")
    return document


def effective_config(constraints: dict[str, Any] | None, feature: dict[str, Any] | None
                     ) -> dict[str, Any]:
    """The global monitoring_config with the feature's ``monitoringConfigOverrides``."""
    config = json.loads(json.dumps(monitoring_config()))
    if constraints:
        _deep_update(config, constraints.get("monitoring_config") or {})
    if feature:
        _deep_update(config, feature.get("monitoringConfigOverrides") or {})
    return config


def _deep_update(target: dict[str, Any], source: dict[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value
