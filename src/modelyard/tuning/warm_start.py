"""Warm start: a new tuning job learns from up to five finished ones.

SageMaker's rules, checked at creation: 1-5 parents, each finished (Completed, Stopped or
Failed); the same objective metric and type; the same number of hyperparameters (static
plus tunable); a hyperparameter tunable in both keeps its type (Integer, Continuous,
Categorical); at most 10 hyperparameters change between tunable and static or change their
static value. ``IdenticalDataAndAlgorithm`` also keeps the training image and the input
channels. Warm start is not recursive: a parent's own parents do not count.

The parents' completed trials (their parameters and final objective values) are copied
into the new job's document (``_WarmStart``) at creation and seed its study before its
first proposal; with ``IdenticalDataAndAlgorithm`` they also compete for
``OverallBestTrainingJob``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..api.errors import validation_error
from . import records as rec
from .validation import definitions_of

if TYPE_CHECKING:
    from ..platform import Platform

KIND = "HyperParameterTuningJob"
MAX_PARENTS = 5
MAX_CHANGES = 10


def warm_start_seeds(platform: "Platform", request: dict[str, Any]) -> list[dict[str, Any]]:
    """Check the WarmStartConfig against its parents; return the trials that seed the study."""
    warm = request["WarmStartConfig"]
    parents = warm["ParentHyperParameterTuningJobs"]
    if not 1 <= len(parents) <= MAX_PARENTS:
        raise validation_error(f"WarmStartConfig.ParentHyperParameterTuningJobs needs 1 to "
                               f"{MAX_PARENTS} parents (got {len(parents)}).")
    child = _shape(request)
    seeds: list[dict[str, Any]] = []
    seen = set()
    for item in parents:
        name = item["HyperParameterTuningJobName"]
        if name.lower() in seen:
            raise validation_error(f"WarmStartConfig lists parent {name} twice.")
        seen.add(name.lower())
        parent = platform.resources.get(KIND, name)
        if parent is None:
            raise validation_error(
                f"WarmStartConfig: parent tuning job {name} does not exist.")
        document = parent.document
        status = document["HyperParameterTuningJobStatus"]
        if status not in ("Completed", "Stopped", "Failed"):
            raise validation_error(
                f"WarmStartConfig: parent tuning job {name} is {status}; a parent must have "
                "finished (Completed, Stopped or Failed).")
        _compare(name, _shape(document), child, warm["WarmStartType"])
        for record in document.get("_Trials", []):
            if record["Status"] == "Completed" and record.get("Objective") is not None:
                seeds.append({"Params": record["Params"], "Objective": record["Objective"],
                              "Summary": rec.summary(document, record)})
    return seeds


def _shape(request: dict[str, Any]) -> dict[str, Any]:
    """What warm start compares: objective, hyperparameter kinds and static values, data."""
    config = request["HyperParameterTuningJobConfig"]
    definitions = definitions_of(request)
    name, definition = definitions[0]
    objective = (config.get("HyperParameterTuningJobObjective") if name is None
                 else definition.get("TuningObjective")) or {}
    ranges = (config.get("ParameterRanges", {}) if name is None
              else definition.get("HyperParameterRanges", {}))
    kinds = {}
    for member, kind in (("IntegerParameterRanges", "Integer"),
                         ("ContinuousParameterRanges", "Continuous"),
                         ("CategoricalParameterRanges", "Categorical")):
        for item in ranges.get(member, []):
            kinds[item["Name"]] = kind
    static = {key: value for key, value in definition.get("StaticHyperParameters", {}).items()
              if key != "_tuning_objective_metric"}
    channels = sorted((channel["ChannelName"],
                       channel["DataSource"].get("S3DataSource", {}).get("S3Uri"))
                      for channel in definition.get("InputDataConfig", []))
    return {"objective": (objective.get("Type"), objective.get("MetricName")),
            "kinds": kinds, "static": static, "channels": channels,
            "image": definition["AlgorithmSpecification"].get("TrainingImage")}


def _compare(parent: str, old: dict[str, Any], new: dict[str, Any], warm_type: str) -> None:
    if old["objective"] != new["objective"]:
        raise validation_error(
            f"WarmStartConfig: parent {parent} optimizes {old['objective'][0]} "
            f"{old['objective'][1]}; a warm start job must keep the same objective metric and "
            f"type (this job: {new['objective'][0]} {new['objective'][1]}).")
    old_count = len(old["kinds"]) + len(old["static"])
    new_count = len(new["kinds"]) + len(new["static"])
    if old_count != new_count:
        raise validation_error(
            f"WarmStartConfig: parent {parent} has {old_count} hyperparameters (static plus "
            f"tunable), this job {new_count}; the total must stay the same.")
    for name, kind in new["kinds"].items():
        if name in old["kinds"] and old["kinds"][name] != kind:
            raise validation_error(
                f"WarmStartConfig: hyperparameter {name} is a {old['kinds'][name]} range in "
                f"parent {parent} and a {kind} range here; its type cannot change.")
    changes = sum(1 for name in new["kinds"] if name in old["static"])
    changes += sum(1 for name in old["kinds"] if name in new["static"])
    changes += sum(1 for name, value in new["static"].items()
                   if name in old["static"] and old["static"][name] != value)
    if changes > MAX_CHANGES:
        raise validation_error(
            f"WarmStartConfig: {changes} hyperparameters change between static and tunable or "
            f"change their static value against parent {parent}; at most {MAX_CHANGES} may.")
    if warm_type == "IdenticalDataAndAlgorithm":
        if old["image"] != new["image"] or old["channels"] != new["channels"]:
            raise validation_error(
                f"WarmStartConfig: IdenticalDataAndAlgorithm needs the same training image and "
                f"input data as parent {parent}; use TransferLearning to change them.")
