"""CreateHyperParameterTuningJob's checks, as SageMaker makes them, before anything runs.

``check_request`` returns the search space; every refusal is a ValidationException naming
the member to fix.
"""

from __future__ import annotations

import re
from typing import Any

from ..api.errors import validation_error
from ..engine.images import require_image, training_runtime
from ..services.jobs_common import check_metric_definitions
from .search import Space
from .space import Range, grid_size, parse_ranges

MAX_DEFINITIONS = 10
MAX_STATIC = 100
# Static hyperparameters Hyperband reads MaxResource from when it is not given.
EPOCH_NAMES = ("epochs", "num_epochs", "n_epochs", "epoch", "max_epochs", "num_epoch",
               "num_round", "num_rounds", "n_estimators", "num_iterations", "iterations")
MAX_HYPERBAND_RESOURCE = 20000
_XGBOOST_METRIC = re.compile(r"^(train|validation):[\w@.:-]+$")
BLAZINGTEXT_METRICS = ("train:accuracy", "validation:accuracy")


def definitions_of(request: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    """(definition name or None, definition) for a single- or multi-algorithm request."""
    if "TrainingJobDefinition" in request:
        return [(None, request["TrainingJobDefinition"])]
    return [(item["DefinitionName"], item) for item in request["TrainingJobDefinitions"]]


def check_request(request: dict[str, Any]) -> Space:
    config = request["HyperParameterTuningJobConfig"]
    single, multi = "TrainingJobDefinition" in request, "TrainingJobDefinitions" in request
    if single == multi:
        raise validation_error(
            "Specify exactly one of TrainingJobDefinition and TrainingJobDefinitions.")
    if request.get("Autotune"):
        raise validation_error("Autotune is not supported by modelyard; set the strategy, "
                               "ranges and limits explicitly.")
    definitions: dict[str | None, list[Range]] = {}
    if single:
        if "HyperParameterTuningJobObjective" not in config:
            raise validation_error(
                "HyperParameterTuningJobConfig.HyperParameterTuningJobObjective is required "
                "with a TrainingJobDefinition.")
        definition = request["TrainingJobDefinition"]
        ranges = parse_ranges(config.get("ParameterRanges", {}), prefix="",
                              where="HyperParameterTuningJobConfig.ParameterRanges")
        _check_definition(definition, config["HyperParameterTuningJobObjective"], ranges,
                          "TrainingJobDefinition")
        definitions[None] = ranges
    else:
        items = request["TrainingJobDefinitions"]
        if len(items) > MAX_DEFINITIONS:
            raise validation_error(
                f"TrainingJobDefinitions has {len(items)} definitions; at most "
                f"{MAX_DEFINITIONS} are allowed.")
        types = set()
        for index, definition in enumerate(items):
            name = definition.get("DefinitionName")
            where = f"TrainingJobDefinitions[{index}]"
            if not name:
                raise validation_error(f"{where}.DefinitionName is required with "
                                       "TrainingJobDefinitions.")
            if name in definitions:
                raise validation_error(f"{where}.DefinitionName {name} is used twice.")
            if "TuningObjective" not in definition or "HyperParameterRanges" not in definition:
                raise validation_error(f"{where} ({name}) needs TuningObjective and "
                                       "HyperParameterRanges.")
            ranges = parse_ranges(definition["HyperParameterRanges"], prefix=f"{name}.",
                                  where=f"{where}.HyperParameterRanges")
            _check_definition(definition, definition["TuningObjective"], ranges, where)
            types.add(definition["TuningObjective"]["Type"])
            definitions[name] = ranges
        if len(types) > 1:
            raise validation_error("All TrainingJobDefinitions must share the same "
                                   "TuningObjective Type (Maximize or Minimize).")
    space = Space(definitions)
    _check_strategy(config, space, request)
    return space


def _check_definition(definition: dict[str, Any], objective: dict[str, Any],
                      ranges: list[Range], where: str) -> None:
    algorithm = definition["AlgorithmSpecification"]
    if "TrainingImage" not in algorithm:
        raise validation_error(
            f"{where}.AlgorithmSpecification.TrainingImage is required by modelyard: "
            "algorithms by AlgorithmName (AWS Marketplace) are not available.")
    image = require_image(algorithm["TrainingImage"],
                          f"{where}.AlgorithmSpecification.TrainingImage")
    static = definition.get("StaticHyperParameters", {})
    if len(static) > MAX_STATIC:
        raise validation_error(f"{where}.StaticHyperParameters has {len(static)} entries; "
                               f"at most {MAX_STATIC} are allowed.")
    overlap = sorted(set(static) & {item.name for item in ranges})
    if overlap:
        raise validation_error(
            f"{where}: hyperparameter {overlap[0]} is both static and tunable; give it in "
            "StaticHyperParameters or in the parameter ranges, not both.")
    module, _ = training_runtime(image, static)
    metric_definitions = algorithm.get("MetricDefinitions", [])
    check_metric_definitions(metric_definitions)
    metric = objective["MetricName"]
    if any(item["Name"] == metric for item in metric_definitions):
        return
    if module.endswith("blazingtext") and metric in BLAZINGTEXT_METRICS:
        return
    if module.endswith("xgboost_algorithm") and _XGBOOST_METRIC.match(metric):
        return
    known = [item["Name"] for item in metric_definitions]
    raise validation_error(
        f"{where}: the objective metric {metric} is not among the "
        f"AlgorithmSpecification.MetricDefinitions ({', '.join(known) or 'none given'}). Add a "
        "MetricDefinition with that Name and a Regex that captures its value.")


def _check_strategy(config: dict[str, Any], space: Space, request: dict[str, Any]) -> None:
    strategy = config["Strategy"]
    limits = config["ResourceLimits"]
    early = config.get("TrainingJobEarlyStoppingType", "Off")
    if strategy == "Grid":
        if space.multi:
            raise validation_error("The Grid strategy takes one TrainingJobDefinition, not "
                                   "TrainingJobDefinitions.")
        ranges = space.ranges(None)
        offending = next((item for item in ranges if item.kind != "Categorical"), None)
        if offending is not None:
            raise validation_error(
                f"The Grid strategy searches categorical ranges only; {offending.name} is a "
                f"{offending.kind}ParameterRange. Make it a CategoricalParameterRange of the "
                "values to try, or use another strategy.")
        if not ranges:
            raise validation_error("The Grid strategy needs at least one "
                                   "CategoricalParameterRange.")
        size = grid_size(ranges)
        wanted = limits.get("MaxNumberOfTrainingJobs")
        if wanted is not None and wanted != size:
            raise validation_error(
                f"With the Grid strategy, ResourceLimits.MaxNumberOfTrainingJobs must be the "
                f"number of combinations of the categorical values, {size} (got {wanted}), "
                "or be left out.")
    elif "MaxNumberOfTrainingJobs" not in limits:
        raise validation_error(
            f"ResourceLimits.MaxNumberOfTrainingJobs is required with the {strategy} strategy.")
    hyperband = config.get("StrategyConfig", {}).get("HyperbandStrategyConfig")
    if hyperband and strategy != "Hyperband":
        raise validation_error("StrategyConfig.HyperbandStrategyConfig is only valid with the "
                               "Hyperband strategy.")
    if strategy == "Hyperband":
        if early != "Off":
            raise validation_error("The Hyperband strategy stops trials itself: set "
                                   "TrainingJobEarlyStoppingType to Off.")
        hyperband_resources(config, request)


def hyperband_resources(config: dict[str, Any], request: dict[str, Any]) -> tuple[int, int]:
    """(MinResource, MaxResource); MaxResource from an epochs hyperparameter when not given."""
    given = config.get("StrategyConfig", {}).get("HyperbandStrategyConfig", {})
    low = given.get("MinResource", 1)
    high = given.get("MaxResource")
    if high is None:
        for _, definition in definitions_of(request):
            static = definition.get("StaticHyperParameters", {})
            for name in EPOCH_NAMES:
                if name in static:
                    try:
                        high = int(float(static[name]))
                    except ValueError:
                        continue
                    break
            if high is not None:
                break
    if high is None:
        raise validation_error(
            "HyperbandStrategyConfig.MaxResource is required when no static epochs "
            f"hyperparameter ({', '.join(EPOCH_NAMES[:4])}, ...) gives it.")
    if not 1 <= high <= MAX_HYPERBAND_RESOURCE:
        raise validation_error(f"HyperbandStrategyConfig.MaxResource must be between 1 and "
                               f"{MAX_HYPERBAND_RESOURCE} (got {high}).")
    if low > high:
        raise validation_error(f"HyperbandStrategyConfig.MinResource ({low}) is greater than "
                               f"MaxResource ({high}).")
    return int(low), int(high)
